"""Cohorts: saved filters, frozen snapshots, diffs, manifests and patient-grouped splits.

A snapshot records its members, their data objects (omics sample columns, images) and each
object's manifest row at the moment it is frozen; exports read those rows, so later edits
of the records do not change what a snapshot delivers. Its two digests are HMACs under the
custody key (:mod:`biobank.keys`), bound to the snapshot: someone who can write the database
but lacks the key cannot remove, add or repoint a member or an object, or edit a row, and
recompute them. Nothing of a snapshot changes afterwards (PostgreSQL triggers refuse UPDATE
and DELETE). Rows left out of an export after the freeze (consent withdrawn) are recorded on
the export with their reason, and the export records the SHA-256 of the bytes delivered.

Splits are decided per patient, never per row, by a threshold on a salted SHA-256 of the
pseudonymous patient code, so one salt gives a patient the same split in every cohort (cut
per stratum when stratified) and a patient's images and files all fall in one split. Every
export is stored with its assignments; a patient an earlier export of the same salt family
held out (test, validation) keeps that split (``keep_test``), or the export is refused if
that is turned off, and the others fill the asked ratios around them.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import io
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from flask import current_app

from biobank.auth import has_role, visible_site_ids
from biobank.cohort_objects import object_kinds
from biobank.db import db, utcnow
from biobank.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from biobank.keys import keyring
from biobank.models import (
    AuditRecord,
    Case,
    Cohort,
    CohortExport,
    CohortExportSplit,
    CohortSnapshot,
    CohortSnapshotMember,
    CohortSnapshotObject,
    Image,
    Lesion,
    Participant,
    RequestSignature,
    RequestStatus,
    SampleRequest,
    Specimen,
)
from biobank.models.users import Actor
from biobank.models.vocab import ConsentScope, Lineage, Role
from biobank.query.levels import LEVELS
from biobank.services import query
from biobank.services.consents import granted_scopes_by_participant

COHORT_LEVELS = tuple(LEVELS)
MANIFEST_COLUMNS = (
    "participant",
    "case",
    "lesion",
    "specimen",
    "aliquot",
    "modality",
    "object_kind",
    "name",
    "drs_uri",
    "size",
    "sha256",
    "diagnosis",
    "icd10_code",
    "breslow_mm",
    "ulceration",
    "ajcc_stage",
    "body_site",
    "split",
)
#: columns hashed into a snapshot's manifest_sha256 (no host-dependent URI, no split)
CANONICAL_COLUMNS = tuple(c for c in MANIFEST_COLUMNS if c not in ("drs_uri", "split"))
#: omics kinds whose files are genetic data: exporting them needs genetic-research consent
GENETIC_KINDS = {"exome", "rna_seq", "methylation"}
SPLIT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,15}$")
DEFAULT_RATIOS = {"train": 0.7, "val": 0.15, "test": 0.15}
INSERT_BATCH = 5000


# --- saved filters -------------------------------------------------------------------------


def create_cohort(
    *, actor: Actor, name: str, level: str, filters: Any = None, description: str | None = None
) -> Cohort:
    _check_level(level)
    query.parse_filters(filters)
    cohort = Cohort(
        name=name, level=level, filters=filters or None, description=description, owner_id=actor.id
    )
    db.session.add(cohort)
    db.session.flush()
    return cohort


def update_cohort(cohort: Cohort, *, actor: Actor, **changes: Any) -> Cohort:
    _check_owner(cohort, actor)
    if "level" in changes:
        _check_level(changes["level"])
    if "filters" in changes:
        query.parse_filters(changes["filters"])
        changes["filters"] = changes["filters"] or None
    for key, value in changes.items():
        setattr(cohort, key, value)
    db.session.flush()
    return cohort


def get_cohort(cohort_id: int, actor: Actor) -> Cohort:
    cohort = db.session.get(Cohort, cohort_id)
    if cohort is None or not _may_see(cohort, actor):
        raise NotFound(f"no cohort {cohort_id}")
    return cohort


def cohorts_query(actor: Actor, *, level: str | None = None, text: str | None = None) -> sa.Select:
    """The cohorts *actor* may see (their own; every one for managers), newest first,
    of one level and with *text* in the name if asked."""
    stmt = sa.select(Cohort).order_by(Cohort.id.desc())
    if not has_role(actor, (Role.ADMIN, Role.MANAGER)):
        stmt = stmt.where(Cohort.owner_id == actor.id)
    if level:
        stmt = stmt.where(Cohort.level == level)
    if text:
        stmt = stmt.where(Cohort.name.icontains(text, autoescape=True))
    return stmt


def list_cohorts(actor: Actor) -> list[Cohort]:
    return list(db.session.scalars(cohorts_query(actor)))


def _may_see(cohort: Cohort, actor: Actor) -> bool:
    return cohort.owner_id == actor.id or has_role(actor, (Role.ADMIN, Role.MANAGER))


def _check_owner(cohort: Cohort, actor: Actor) -> None:
    if cohort.owner_id != actor.id and not has_role(actor, (Role.ADMIN,)):
        raise PermissionDenied("only the cohort's owner may change it")


def _check_level(level: str) -> None:
    if level not in COHORT_LEVELS:
        raise InvalidInput(f"unknown level {level!r}", field="level", allowed=list(COHORT_LEVELS))


# --- snapshots -----------------------------------------------------------------------------


def freeze(cohort: Cohort, *, actor: Actor) -> CohortSnapshot:
    """Record the cohort's members, their data objects and each object's manifest row now;
    the snapshot never changes, and its manifest is read from what was recorded."""
    level = query.level_of(cohort.level)
    ids_stmt = query.matching_ids(level, query.parse_filters(cohort.filters), actor)
    member_ids = sorted(set(db.session.scalars(ids_stmt)))
    snapshot = CohortSnapshot(
        cohort_id=cohort.id,
        level=cohort.level,
        filters=cohort.filters,
        data_release=_data_release(),
        member_count=len(member_ids),
        object_count=0,
        members_sha256="",
        manifest_sha256="",
        created_by=actor.username,
    )
    db.session.add(snapshot)
    db.session.flush()
    _insert(CohortSnapshotMember, ({"snapshot_id": snapshot.id, "entity_id": i} for i in member_ids))
    objects = _live_rows(_objects_of_members(snapshot))
    _insert(
        CohortSnapshotObject,
        (
            {"snapshot_id": snapshot.id, "kind": kind, "object_id": oid, "content": content}
            for (kind, oid), content in objects.items()
        ),
    )
    snapshot.object_count = len(objects)
    ring = keyring()
    snapshot.key_id = ring.current_id
    snapshot.members_sha256 = members_digest(snapshot, member_ids, key=ring.current)
    # writing the digest seals the snapshot (on PostgreSQL a trigger then refuses changes)
    snapshot.manifest_sha256 = manifest_digest(snapshot, objects, key=ring.current)
    db.session.flush()
    return snapshot


def _mac(key: bytes, purpose: str, snapshot: CohortSnapshot) -> Any:
    """An HMAC under *key* bound to one snapshot of one cohort, for one digest."""
    mac = hmac.new(key, digestmod=hashlib.sha256)
    mac.update(
        f"cohort snapshot {purpose}\x1f{snapshot.id}\x1f{snapshot.cohort_id}\x1f{snapshot.level}\n".encode()
    )
    return mac


def members_digest(snapshot: CohortSnapshot, member_ids: Iterable[int], *, key: bytes | None) -> str:
    """Keyed digest of the snapshot's sorted member ids (plain SHA-256 without *key*: a
    snapshot frozen before keyed digests)."""
    text = "\n".join(str(i) for i in sorted(member_ids)).encode()
    if key is None:
        return hashlib.sha256(text).hexdigest()
    mac = _mac(key, "members", snapshot)
    mac.update(text)
    return mac.hexdigest()


def manifest_digest(
    snapshot: CohortSnapshot, objects: dict[tuple[str, int], dict[str, Any]], *, key: bytes | None
) -> str:
    """Keyed digest of every object (kind, id) with its frozen manifest row, so that a
    repointed object or an edited row no longer matches. Without *key*: the plain SHA-256
    of the canonical manifest of a snapshot frozen before keyed digests."""
    if key is None:
        digest = hashlib.sha256()
        digest.update(("\t".join(CANONICAL_COLUMNS) + "\n").encode())
        for row in sorted(objects.values(), key=_row_order):
            digest.update(("\t".join(_cell(row.get(c)) for c in CANONICAL_COLUMNS) + "\n").encode())
        return digest.hexdigest()
    mac = _mac(key, "manifest", snapshot)
    mac.update(("\t".join(("kind", "object_id", *CANONICAL_COLUMNS)) + "\n").encode())
    for kind, oid in sorted(objects):
        row = objects[(kind, oid)]
        mac.update(
            ("\t".join([kind, str(oid), *(_cell(row.get(c)) for c in CANONICAL_COLUMNS)]) + "\n").encode()
        )
    return mac.hexdigest()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _data_release() -> str:
    """The database state: the day and the newest audit record at the freeze."""
    newest = db.session.scalar(sa.select(sa.func.max(AuditRecord.id))) or 0
    return f"{utcnow():%Y-%m-%d}.a{newest}"


def _insert(model: Any, rows: Iterable[dict[str, Any]]) -> None:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= INSERT_BATCH:
            db.session.execute(sa.insert(model), batch)
            batch = []
    if batch:
        db.session.execute(sa.insert(model), batch)


def get_snapshot(snapshot_id: int, actor: Actor) -> CohortSnapshot:
    snapshot = db.session.get(CohortSnapshot, snapshot_id)
    if snapshot is None or not _may_see(snapshot.cohort, actor):
        raise NotFound(f"no snapshot {snapshot_id}")
    return snapshot


def member_ids(snapshot: CohortSnapshot) -> list[int]:
    return list(
        db.session.scalars(
            sa.select(CohortSnapshotMember.entity_id)
            .where(CohortSnapshotMember.snapshot_id == snapshot.id)
            .order_by(CohortSnapshotMember.entity_id)
        )
    )


def verify(snapshot: CohortSnapshot) -> dict[str, Any]:
    """Recompute both digests under the key they name: a member removed, added or changed,
    an object repointed or its frozen row edited no longer matches, even with the digest
    recomputed by someone without the key."""
    key: bytes | None = None
    out: dict[str, Any] = {"key_id": snapshot.key_id, "content_frozen": True}
    if snapshot.key_id is not None:
        key = keyring().keys.get(snapshot.key_id)
        if key is None:
            return {
                **out,
                "members_ok": False,
                "manifest_ok": False,
                "problem": f"the digests are under custody key {snapshot.key_id}, which "
                "this instance does not know: forged with another key, or the key lost",
            }
    else:
        out["problem"] = (
            "frozen before keyed digests: its plain SHA-256 digests can be "
            "recomputed by whoever can write the database, so they prove "
            "nothing against them; freeze the cohort again"
        )
    objects = _rows_of(snapshot)
    out["content_frozen"] = objects is not None
    if objects is None:
        objects = _live_rows(list(frozen_objects(snapshot)))
    return {
        **out,
        "members_ok": hmac.compare_digest(
            members_digest(snapshot, member_ids(snapshot), key=key), snapshot.members_sha256
        ),
        "manifest_ok": hmac.compare_digest(
            manifest_digest(snapshot, objects, key=key), snapshot.manifest_sha256
        ),
    }


def diff(a: CohortSnapshot, b: CohortSnapshot, *, actor: Actor) -> dict[str, Any]:
    """Members only in *a*, only in *b*, and in both (ids for staff, counts for everyone)."""
    if a.level != b.level:
        raise InvalidInput(
            f"snapshots at different levels ({a.level}, {b.level}) do not compare", field="other"
        )
    ma, mb = set(member_ids(a)), set(member_ids(b))
    removed, added = sorted(ma - mb), sorted(mb - ma)
    out: dict[str, Any] = {
        "level": a.level,
        "from_snapshot": a.id,
        "to_snapshot": b.id,
        "added_count": query.suppress(len(added), actor),
        "removed_count": query.suppress(len(removed), actor),
        "unchanged_count": query.suppress(len(ma & mb), actor),
    }
    if not query.counts_only(actor):
        out["added"] = _labels(a.level, added)
        out["removed"] = _labels(a.level, removed)
    return out


def _labels(level: str, ids: list[int]) -> list[str]:
    return [row[LEVELS[level].label] for row in query.rows_for(level, ids)]


# --- objects and manifests -----------------------------------------------------------------


def _objects_of_members(snapshot: CohortSnapshot) -> list[tuple[str, int]]:
    members = sa.select(CohortSnapshotMember.entity_id).where(CohortSnapshotMember.snapshot_id == snapshot.id)
    level = LEVELS[snapshot.level]
    parent = sa.orm.aliased(Specimen)
    spec_match = level.specimens_of(members, parent)
    images = sa.select(Image.id).where(level.images_of(members))
    return [
        (kind.name, i)
        for kind in object_kinds()
        for i in db.session.scalars(kind.of_specimens(spec_match, parent))
    ] + [("image", i) for i in db.session.scalars(images)]


def frozen_objects(snapshot: CohortSnapshot) -> dict[tuple[str, int], dict[str, Any] | None]:
    """The snapshot's objects with the manifest row each had at the freeze (``None`` for a
    snapshot frozen before rows were kept)."""
    return {
        (r.kind, r.object_id): r.content
        for r in db.session.execute(
            sa.select(
                CohortSnapshotObject.kind, CohortSnapshotObject.object_id, CohortSnapshotObject.content
            ).where(CohortSnapshotObject.snapshot_id == snapshot.id)
        )
    }


def _rows_of(snapshot: CohortSnapshot) -> dict[tuple[str, int], dict[str, Any]] | None:
    """The frozen rows, or ``None`` for a snapshot frozen before rows were kept."""
    objects = frozen_objects(snapshot)
    if any(content is None for content in objects.values()):
        return None
    return objects  # type: ignore[return-value]


def _row_order(row: dict[str, Any]) -> tuple[str, ...]:
    return tuple(
        str(row.get(c) or "")
        for c in ("participant", "case", "lesion", "aliquot", "modality", "sha256", "name")
    )


def manifest_rows(snapshot: CohortSnapshot, *, drs_host: str = "") -> list[dict[str, Any]]:
    """The snapshot's data objects, one row each as frozen, in a stable order (a snapshot
    frozen before rows were kept: as the records are now)."""
    objects = _rows_of(snapshot)
    if objects is None:
        objects = _live_rows(list(frozen_objects(snapshot)))
    rows = []
    for content in objects.values():
        row = {c: content.get(c) for c in CANONICAL_COLUMNS}
        row["drs_uri"] = f"drs://{drs_host}/{row['sha256']}" if drs_host else None
        row["split"] = None
        rows.append(row)
    rows.sort(key=_row_order)
    return rows


def _live_rows(objects: list[tuple[str, int]]) -> dict[tuple[str, int], dict[str, Any]]:
    """Each object's canonical manifest row from the records as they are now."""
    image_ids = [oid for kind, oid in objects if kind == "image"]
    parent = sa.orm.aliased(Specimen)
    raw = [
        (kind.name, r)
        for kind in object_kinds()
        for chunk in _chunks([oid for name, oid in objects if name == kind.name])
        for r in kind.rows(chunk)
    ]
    images = (
        sa.select(
            Image.id,
            Image.modality,
            Image.filename,
            Image.size_bytes,
            Image.sha256,
            Image.case_id,
            Image.lesion_id,
            Specimen.barcode,
            Specimen.lineage,
            parent.barcode.label("parent_barcode"),
        )
        .outerjoin(Specimen, Specimen.id == Image.specimen_id)
        .outerjoin(parent, parent.id == Specimen.parent_id)
    )
    raw_images = [
        r for chunk in _chunks(image_ids) for r in db.session.execute(images.where(Image.id.in_(chunk)))
    ]
    cases = case_facts({r.case_id for _, r in raw} | {r.case_id for r in raw_images})
    lesions = lesion_facts({r.lesion_id for _, r in raw} | {r.lesion_id for r in raw_images})
    participants = dict(
        db.session.execute(
            sa.select(Participant.id, Participant.code).where(
                Participant.id.in_({r.participant_id for _, r in raw})
            )
        ).all()
    )
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for kind, r in raw:
        rows[(kind, r.id)] = _row(
            participants[r.participant_id],
            cases.get(r.case_id, {}),
            lesions.get(r.lesion_id),
            r.barcode,
            r.lineage,
            r.parent_barcode,
            r.modality,
            kind,
            r.name,
            r.size_bytes,
            r.sha256,
        )
    for r in raw_images:
        case = cases[r.case_id]
        rows[("image", r.id)] = _row(
            case["participant"],
            case,
            lesions.get(r.lesion_id),
            r.barcode,
            r.lineage,
            r.parent_barcode,
            r.modality.value,
            "image",
            r.filename,
            r.size_bytes,
            r.sha256,
        )
    return rows


def _chunks(ids: list[int], size: int = 5000) -> Iterator[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _row(
    participant: str,
    case: dict[str, Any],
    lesion: dict[str, Any] | None,
    barcode: str | None,
    lineage: Lineage | None,
    parent_barcode: str | None,
    modality: str,
    kind: str,
    name: str,
    size: int,
    sha256: str,
) -> dict[str, Any]:
    """An object's canonical manifest row (no host-dependent URI, no split)."""
    is_aliquot = lineage is not None and lineage is not Lineage.PRIMARY
    return {
        "participant": participant,
        "case": case.get("code"),
        "lesion": lesion["code"] if lesion else None,
        "specimen": parent_barcode if is_aliquot else barcode,
        "aliquot": barcode if is_aliquot else None,
        "modality": modality,
        "object_kind": kind,
        "name": name,
        "size": size,
        "sha256": sha256,
        "diagnosis": case.get("disease_group"),
        "icd10_code": case.get("icd10_code"),
        "breslow_mm": case.get("breslow_mm"),
        "ulceration": case.get("ulceration"),
        "ajcc_stage": case.get("ajcc_stage"),
        "body_site": lesion["body_site"] if lesion else None,
    }


def snapshot_of(cohort: Any, snapshot_id: int | None, actor: Actor) -> CohortSnapshot:
    """The cohort's snapshot *snapshot_id*, or its newest; 409 if it was never frozen."""
    if snapshot_id is None:
        snapshot_id = db.session.scalar(
            sa.select(sa.func.max(CohortSnapshot.id)).where(CohortSnapshot.cohort_id == cohort.id)
        )
        if snapshot_id is None:
            raise Conflict(
                "this cohort has no frozen snapshot: freeze it first "
                f"(POST /api/v1/cohorts/{cohort.id}/snapshots)",
                field="snapshot",
            )
    snapshot = get_snapshot(snapshot_id, actor)
    if snapshot.cohort_id != cohort.id:
        raise Conflict(f"snapshot {snapshot.id} belongs to another cohort", field="snapshot")
    return snapshot


def case_facts(ids: set[int | None]) -> dict[int, dict[str, Any]]:
    """Cases by id with the facts manifests and exports show (pseudonymous)."""
    stmt = (
        sa.select(
            Case.id,
            Case.code,
            Case.disease_group,
            Case.icd10_code,
            Case.breslow_mm,
            Case.ulceration,
            Case.ajcc_stage,
            Participant.code.label("participant"),
        )
        .join(Participant, Participant.id == Case.participant_id)
        .where(Case.id.in_({i for i in ids if i is not None}))
    )
    return {
        r.id: {
            "code": r.code,
            "disease_group": r.disease_group.value,
            "icd10_code": r.icd10_code,
            "breslow_mm": str(r.breslow_mm) if r.breslow_mm is not None else None,
            "ulceration": r.ulceration,
            "ajcc_stage": r.ajcc_stage.value if r.ajcc_stage else None,
            "participant": r.participant,
        }
        for r in db.session.execute(stmt)
    }


def lesion_facts(ids: set[int | None]) -> dict[int, dict[str, Any]]:
    """Lesions by id: code and body site."""
    stmt = sa.select(Lesion.id, Lesion.code, Lesion.body_site).where(
        Lesion.id.in_({i for i in ids if i is not None})
    )
    return {r.id: {"code": r.code, "body_site": r.body_site.value} for r in db.session.execute(stmt)}


# --- exports and splits --------------------------------------------------------------------


@dataclass
class Export:
    record: CohortExport
    rows: list[dict[str, Any]]
    checks: dict[str, Any] = field(default_factory=dict)


def check_ratios(ratios: dict[str, Any] | None) -> dict[str, float]:
    ratios = dict(ratios or DEFAULT_RATIOS)
    if not 2 <= len(ratios) <= 5:
        raise InvalidInput("give 2 to 5 splits", field="ratios")
    for name, value in ratios.items():
        if not SPLIT_NAME.match(name):
            raise InvalidInput(f"split name {name!r}: lower-case letters, digits, _ (≤16)", field="ratios")
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
            raise InvalidInput(f"ratio of {name!r} must be a number between 0 and 1", field=f"ratios.{name}")
    if abs(sum(ratios.values()) - 1) > 1e-6:
        raise InvalidInput(f"ratios add up to {sum(ratios.values()):g}, not 1", field="ratios")
    if "test" not in ratios or "train" not in ratios:
        raise InvalidInput("the splits must include 'train' and 'test'", field="ratios")
    return {k: float(v) for k, v in ratios.items()}


def patient_hash(salt: str, participant: str) -> str:
    return hashlib.sha256(f"{salt}\x1f{participant}".encode()).hexdigest()


def _unit(salt: str, participant: str) -> float:
    """The patient's place in [0, 1) under *salt*: the same in every cohort."""
    return int(patient_hash(salt, participant)[:15], 16) / 16**15


def assign_splits(
    patients: dict[str, str], *, salt: str, ratios: dict[str, float], pinned: dict[str, str] | None = None
) -> dict[str, str]:
    """A split for each patient by a threshold on the salted hash of their code: one salt
    gives a patient the same split in every cohort, whatever else the cohort holds.

    *patients* maps each pseudonymous code to its stratum ('' for none); each stratum is
    cut at the same thresholds, so strata keep the ratios as they grow (the export reports
    each stratum's shares). *pinned* patients keep the split an earlier export of the family
    gave them, and the others are cut at thresholds that keep the asked ratios overall.
    """
    pinned = {p: s for p, s in (pinned or {}).items() if p in patients and s in ratios}
    names = sorted(ratios)  # a stable order of the cut points
    free = [p for p in patients if p not in pinned]
    total = len(patients)
    # What the free patients must fill so that, with the pinned ones, each split gets its share.
    wanted = {n: max(ratios[n] * total - sum(1 for s in pinned.values() if s == n), 0.0) for n in names}
    room = sum(wanted.values()) or 1.0
    shares = {n: wanted[n] / room for n in names} if free else ratios
    out = dict(pinned)
    for patient in free:
        u, cumulative = _unit(salt, patient), 0.0
        for i, name in enumerate(names):
            cumulative += shares[name]
            if u < cumulative or i == len(names) - 1:
                out[patient] = name
                break
    return out


def export(
    snapshot: CohortSnapshot,
    *,
    actor: Actor,
    fmt: str,
    salt: str,
    salt_family: str | None = None,
    ratios: dict[str, Any] | None = None,
    stratify_by: str | None = None,
    keep_test: bool = True,
    drs_host: str = "",
) -> Export:
    """A manifest of *snapshot* with a split per patient, stored with its assignments."""
    check_may_export(snapshot, actor)
    if not salt or len(salt) > 128:
        raise InvalidInput("a salt of 1 to 128 characters is needed", field="salt")
    if stratify_by not in (None, "diagnosis"):
        raise InvalidInput("stratify_by is 'diagnosis' or nothing", field="stratify_by")
    ratios = check_ratios(ratios)
    family = salt_family or salt
    rows, exclusions = _consented(manifest_rows(snapshot, drs_host=drs_host))
    strata: dict[str, str] = {}
    for row in rows:
        stratum = row["diagnosis"] or "" if stratify_by else ""
        strata.setdefault(row["participant"], stratum)
    held = _held_out(family, list(strata))
    free_assignment = assign_splits(strata, salt=salt, ratios=ratios)
    leaked = sorted(p for p, split in held.items() if free_assignment[p] != split)
    if leaked and not keep_test:
        raise Conflict(
            f"{len(leaked)} patient(s) in the test split of an earlier export of "
            f"salt family {family!r} would leave the test split",
            field="keep_test",
            patients=leaked[:20],
        )
    # Patients held out before (test, validation) keep their split; the others fill the
    # ratios around them.
    assignment = assign_splits(strata, salt=salt, ratios=ratios, pinned=held)
    record = CohortExport(
        snapshot_id=snapshot.id,
        salt=salt,
        salt_family=family,
        ratios=ratios,
        stratify_by=stratify_by,
        format=fmt,
        pinned_to_test=len(leaked),
        exclusions=exclusions,
        created_by=actor.username,
    )
    db.session.add(record)
    db.session.flush()
    _insert(
        CohortExportSplit,
        ({"export_id": record.id, "participant": p, "split": s} for p, s in assignment.items()),
    )
    for row in rows:
        row["split"] = assignment[row["participant"]]
    checks = split_checks(rows, family, record.id)
    checks["excluded_by_consent"] = len(exclusions)
    checks["pinned_to_test"] = len(leaked)
    return Export(record, rows, checks)


def get_export(export_id: int, actor: Actor) -> CohortExport:
    """An export, to whoever may export its snapshot (managers; a researcher whose approved
    request names it), of sites they hold."""
    record = db.session.get(CohortExport, export_id)
    if record is None:
        raise NotFound(f"no export {export_id}")
    snapshot = get_snapshot(record.snapshot_id, actor)
    if not has_role(actor, (Role.ADMIN, Role.MANAGER)) and not approved_for(actor, snapshot):
        raise NotFound(f"no export {export_id}")
    check_export_sites(snapshot, actor)
    return record


def snapshot_site_ids(snapshot: CohortSnapshot) -> set[int]:
    """The sites of the participants whose data objects (omics samples, images) the snapshot
    holds."""
    objects = sa.select(CohortSnapshotObject.object_id).where(CohortSnapshotObject.snapshot_id == snapshot.id)
    image_sites = (
        sa.select(Participant.site_id)
        .join(Case, Case.participant_id == Participant.id)
        .join(Image, Image.case_id == Case.id)
        .where(Image.id.in_(objects.where(CohortSnapshotObject.kind == "image")))
    )
    return set(
        db.session.scalars(
            sa.union(
                image_sites,
                *(
                    kind.site_ids(objects.where(CohortSnapshotObject.kind == kind.name))
                    for kind in object_kinds()
                ),
            )
        )
    )


def check_may_export(snapshot: CohortSnapshot, actor: Actor) -> None:
    """Whether *actor* may take *snapshot*'s data out: biobank managers of every site it
    holds (administrators of all), or a researcher whose approved request names it."""
    if not has_role(actor, (Role.ADMIN, Role.MANAGER)) and not approved_for(actor, snapshot):
        raise PermissionDenied(
            "manifests are exported by biobank managers; a researcher gets "
            "the manifest of a snapshot an approved request of theirs names"
        )
    check_export_sites(snapshot, actor)


def check_export_sites(snapshot: CohortSnapshot, actor: Actor) -> None:
    """A manager exports the data of their own sites only: a snapshot that holds another
    site's is exported by an administrator (or reaches a researcher through an approved
    request)."""
    sites = visible_site_ids(actor)
    if sites is None or approved_for(actor, snapshot):
        return
    others = snapshot_site_ids(snapshot) - sites
    if others:
        raise PermissionDenied(
            f"this snapshot holds data of {len(others)} other site(s): an administrator exports it",
            field="snapshot",
        )


def granted_snapshot_ids(actor: Actor) -> sa.Select:
    """Ids of the snapshots an approved request of *actor* names, while the approval's data
    access lasts (``DATA_ACCESS_DAYS`` from the approving signature)."""
    granted = (RequestStatus.APPROVED, RequestStatus.ALLOCATED, RequestStatus.SHIPPED, RequestStatus.RECEIVED)
    since = utcnow() - dt.timedelta(days=current_app.config["DATA_ACCESS_DAYS"])
    return (
        sa.select(SampleRequest.snapshot_id)
        .join(RequestSignature, RequestSignature.request_id == SampleRequest.id)
        .where(
            SampleRequest.requester_id == actor.id,
            SampleRequest.snapshot_id.is_not(None),
            SampleRequest.status.in_(granted),
            RequestSignature.meaning == "approved",
            RequestSignature.signed_at >= since,
        )
    )


def approved_for(actor: Actor, snapshot: CohortSnapshot) -> bool:
    """Whether *actor* has an approved request (or one further on) for this very snapshot."""
    granted = (RequestStatus.APPROVED, RequestStatus.ALLOCATED, RequestStatus.SHIPPED, RequestStatus.RECEIVED)
    return (
        db.session.scalar(
            sa.select(sa.func.count())
            .select_from(SampleRequest)
            .where(
                SampleRequest.requester_id == actor.id,
                SampleRequest.snapshot_id == snapshot.id,
                SampleRequest.status.in_(granted),
            )
        )
        > 0
    )


#: splits whose patients never move out of them in later exports of the same salt family
HELD_OUT = ("test", "val")


def _held_out(family: str, participants: list[str], *, except_export: int | None = None) -> dict[str, str]:
    """The held-out split (test before validation) earlier exports of *family* gave each of
    *participants*."""
    stmt = (
        sa.select(CohortExportSplit.participant, CohortExportSplit.split)
        .join(CohortExport, CohortExport.id == CohortExportSplit.export_id)
        .where(
            CohortExport.salt_family == family,
            CohortExportSplit.split.in_(HELD_OUT),
            CohortExportSplit.participant.in_(participants),
        )
    )
    if except_export is not None:
        stmt = stmt.where(CohortExport.id != except_export)
    held: dict[str, str] = {}
    for participant, split in db.session.execute(stmt):
        if held.get(participant) != "test":
            held[participant] = split
    return held


def split_checks(rows: list[dict[str, Any]], family: str, export_id: int) -> dict[str, Any]:
    """No patient in two splits; no patient an earlier export of the family held out (test,
    validation) in another split now."""
    splits: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        splits[row["participant"]].add(row["split"])
    in_two = sorted(p for p, s in splits.items() if len(s) > 1)
    held = _held_out(family, list(splits), except_export=export_id)
    moved = sorted(p for p, split in held.items() if splits[p] != {split})
    if in_two or moved:  # cannot happen by construction: refuse rather than ship a leak
        raise Conflict(
            "the split check failed", patients_in_two_splits=in_two[:20], held_out_patients_moved=moved[:20]
        )
    return {
        "patients_in_two_splits": 0,
        "earlier_test_patients_in_train": 0,
        "held_out_patients_moved": 0,
        "patients": len(splits),
        "rows": len(rows),
        "per_split": {
            name: sum(1 for s in splits.values() if name in s) for name in sorted({r["split"] for r in rows})
        },
    }


def _consented(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows whose patient consents now (withdrawals since the freeze count): research use
    for every row, genetic research for exome, RNA-Seq and methylation files. The rows left
    out are returned with their reason."""
    ids = dict(
        db.session.execute(
            sa.select(Participant.code, Participant.id).where(
                Participant.code.in_({row["participant"] for row in rows})
            )
        ).all()
    )
    by_id = granted_scopes_by_participant(ids.values())
    scopes = {code: by_id.get(ident, set()) for code, ident in ids.items()}
    kept, left_out = [], []
    for row in rows:
        have = scopes.get(row["participant"], set())
        if row["participant"] not in ids:
            reason = "the participant is no longer in the biobank"
        elif ConsentScope.RESEARCH_USE not in have:
            reason = "no consent to research use (withdrawn or not given)"
        elif row["modality"] in GENETIC_KINDS and ConsentScope.GENETIC_RESEARCH not in have:
            reason = "no consent to genetic research (withdrawn or not given)"
        else:
            kept.append(row)
            continue
        left_out.append(
            {
                "participant": row["participant"],
                "object_kind": row["object_kind"],
                "modality": row["modality"],
                "name": row["name"],
                "sha256": row["sha256"],
                "reason": reason,
            }
        )
    return kept, left_out


# --- writers -------------------------------------------------------------------------------


def write_delimited(rows: Iterable[dict[str, Any]], delimiter: str) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    for i, row in enumerate(rows, 1):
        writer.writerow([_cell(row.get(c)) for c in MANIFEST_COLUMNS])
        if i % 1000 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def write_jsonl(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    for row in rows:
        yield json.dumps({c: row.get(c) for c in MANIFEST_COLUMNS}, ensure_ascii=False) + "\n"


def write_parquet(rows: list[dict[str, Any]], metadata: dict[str, str]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"size": pa.int64(), "ulceration": pa.bool_()}
    schema = pa.schema(
        [(c, types.get(c, pa.string())) for c in MANIFEST_COLUMNS],
        metadata={k.encode(): v.encode() for k, v in metadata.items()},
    )
    columns = {c: [row.get(c) for row in rows] for c in MANIFEST_COLUMNS}
    table = pa.Table.from_pydict(columns, schema=schema)
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def export_metadata(result: Export, snapshot: CohortSnapshot) -> dict[str, str]:
    record = result.record
    return {
        "export_id": str(record.id),
        "snapshot_id": str(snapshot.id),
        "data_release": snapshot.data_release,
        "manifest_sha256": snapshot.manifest_sha256,
        "snapshot_key_id": snapshot.key_id or "",
        "salt_family": record.salt_family,
        "ratios": json.dumps(record.ratios),
        "stratify_by": record.stratify_by or "",
        "checks": json.dumps(result.checks),
        "exclusions": json.dumps(record.exclusions or []),
        "created_at": (record.created_at or dt.datetime.now(dt.UTC)).isoformat(),
    }


def deliver(result: Export, snapshot: CohortSnapshot) -> bytes:
    """The export's file, in its format, and the SHA-256 of exactly these bytes recorded on
    the export (what ``X-Manifest-SHA256`` names)."""
    fmt = result.record.format
    if fmt == "parquet":
        body = write_parquet(result.rows, export_metadata(result, snapshot))
    else:
        parts = (
            write_jsonl(result.rows)
            if fmt == "jsonl"
            else write_delimited(result.rows, "\t" if fmt == "tsv" else ",")
        )
        body = "".join(parts).encode()
    result.record.manifest_sha256 = hashlib.sha256(body).hexdigest()
    db.session.flush()
    return body
