"""Verifying the custody ledger and signing checkpoints of it.

Every event carries a keyed digest (HMAC-SHA256 under the custody key, see
:mod:`biobank.keys`) of every column and of the previous event's digest, so an edited,
inserted, removed, reordered or forged event breaks its specimen's chain, and nobody
without the key can make one that verifies. Checkpoints add what a chain cannot see about
itself: they digest every chain's head (in buckets of 256 specimen ids, with a Merkle root
of the buckets), chain to the previous checkpoint, and are signed with the key; each is
also appended to a store outside the database (a file, and witnesses), so deleting a whole
chain, shortening one, or deleting the checkpoints themselves is found.

Events written before the custody key carry plain SHA-256 digests; they were *sealed* once
(a signed checkpoint of kind ``seal`` that digests their chains), and verification holds
them to that seal: an unkeyed event written after it is a forgery.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import current_app

from biobank.app import create_app
from biobank.db import after_commit, db, read_only, utcnow
from biobank.keys import keyring
from biobank.models import CustodyCheckpoint, CustodyEvent, Specimen
from biobank.models.vocab import SpecimenStatus
from biobank.services.custody import Digester, content_hash
from biobank.services.witnesses import FIELDS, consult, dispatch

BUCKET = 256
STORE_FILE = "checkpoints.jsonl"


@dataclass
class Finding:
    """One broken link: where, and what differs."""

    problem: str
    specimen_id: int | None = None
    barcode: str | None = None
    event_id: int | None = None
    seq: int | None = None

    def __str__(self) -> str:
        where = []
        if self.barcode or self.specimen_id:
            where.append(f"specimen {self.barcode or self.specimen_id}")
        if self.seq is not None:
            where.append(f"event #{self.seq}")
        if self.event_id is not None:
            where.append(f"(id {self.event_id})")
        return f"{' '.join(where)}: {self.problem}" if where else self.problem


@dataclass
class Report:
    events: int = 0
    specimens: int = 0
    checkpoints: int = 0
    #: checkpoints kept in the store outside the database
    external: int = 0
    #: the seal of the events written before the custody key: id, when, how many events
    seal: dict[str, Any] | None = None
    #: per witness instance: how many checkpoints it keeps, or the error reaching it
    witnesses: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


def custody_key() -> bytes:
    """The current custody key (see :mod:`biobank.keys`)."""
    return keyring().current


def digesters() -> dict[str, Digester]:
    """A digester for every known key, by key id."""
    ring = keyring()
    return {ident: Digester(key, ident) for ident, key in ring.keys.items()}


def _bucket_digests(heads: Iterator[tuple[int, int, str]]) -> dict[str, list[Any]]:
    """``{bucket: [digest of its chain heads, events in its chains]}``."""
    digests: dict[str, Any] = {}
    events: dict[str, int] = {}
    for specimen_id, seq, head in heads:
        key = str(specimen_id // BUCKET)
        digests.setdefault(key, hashlib.sha256()).update(f"{specimen_id}:{seq}:{head}\n".encode())
        events[key] = events.get(key, 0) + seq
    return {k: [v.hexdigest(), events[k]] for k, v in digests.items()}


def _digest_of(value: Any) -> str:
    """A bucket's digest, in the current ([digest, events]) or the earlier (digest) form."""
    return value if isinstance(value, str) else value[0]


def _events_of(value: Any) -> int | None:
    return None if isinstance(value, str) else value[1]


def merkle_root(buckets: dict[str, Any]) -> str:
    """Merkle root of the bucket digests in bucket order (a witness keeps only this)."""
    level = [
        hashlib.sha256(f"{k}:{_digest_of(buckets[k])}".encode()).digest() for k in sorted(buckets, key=int)
    ]
    if not level:
        return hashlib.sha256(b"").hexdigest()
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [hashlib.sha256(a + b).digest() for a, b in zip(level[::2], level[1::2], strict=True)]
    return level[0].hex()


def _content(checkpoint: Any) -> dict[str, Any]:
    """What a checkpoint's signature covers (*checkpoint* is a row or an external record)."""
    get = checkpoint.get if isinstance(checkpoint, dict) else lambda name: getattr(checkpoint, name)
    created = get("created_at")
    content = {
        "created_at": created if isinstance(created, str) else created.isoformat(timespec="microseconds"),
        "max_event_id": get("max_event_id"),
        "specimen_count": get("specimen_count"),
        "event_count": get("event_count"),
        "buckets": get("buckets"),
        "prev": get("prev_hash"),
    }
    if get("key_id") is not None:  # signed under a named key: kind and root are covered too
        content.update(kind=get("kind"), root=get("root"), key=get("key_id"))
    return content


def _mac(key: bytes, content: dict[str, Any]) -> str:
    raw = json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(key, raw, hashlib.sha256).hexdigest()


def _sign(checkpoint: CustodyCheckpoint) -> str:
    ring = keyring()
    checkpoint.key_id = ring.current_id
    return _mac(ring.current, _content(checkpoint))


def _signature_ok(checkpoint: Any) -> bool:
    """Whether the checkpoint's signature verifies under the key it names (one made before
    keys had ids: under any known key)."""
    stored = checkpoint["hash"] if isinstance(checkpoint, dict) else checkpoint.hash
    ident = checkpoint["key_id"] if isinstance(checkpoint, dict) else checkpoint.key_id
    ring = keyring()
    keys = [ring.keys[ident]] if ident in ring.keys else [] if ident else list(ring.keys.values())
    content = _content(checkpoint)
    return any(hmac.compare_digest(_mac(key, content), stored) for key in keys)


def _heads_as_of(max_event_id: int, *, unkeyed: bool = False) -> Iterator[tuple[int, int, str]]:
    last = sa.select(CustodyEvent.specimen_id, sa.func.max(CustodyEvent.seq).label("seq")).where(
        CustodyEvent.id <= max_event_id
    )
    if unkeyed:
        last = last.where(CustodyEvent.key_id.is_(None))
    last = last.group_by(CustodyEvent.specimen_id).subquery()
    stmt = (
        sa.select(CustodyEvent.specimen_id, CustodyEvent.seq, CustodyEvent.hash)
        .join(last, sa.and_(CustodyEvent.specimen_id == last.c.specimen_id, CustodyEvent.seq == last.c.seq))
        .order_by(CustodyEvent.specimen_id)
    )
    yield from db.session.execute(stmt)


def _latest() -> CustodyCheckpoint | None:
    return db.session.scalar(sa.select(CustodyCheckpoint).order_by(CustodyCheckpoint.id.desc()).limit(1))


def create_checkpoint() -> CustodyCheckpoint:
    """Sign the current heads of every chain. Flushes; the caller commits, then calls
    :func:`export_checkpoints` to write it outside the database."""
    max_id = db.session.scalar(sa.select(sa.func.max(CustodyEvent.id))) or 0
    return _signed(
        "checkpoint",
        list(_heads_as_of(max_id)),
        max_id=max_id,
        events=db.session.scalar(sa.select(sa.func.count(CustodyEvent.id)).where(CustodyEvent.id <= max_id)),
    )


def _signed(
    kind: str, heads: list[tuple[int, int, str]], *, max_id: int, events: int | None
) -> CustodyCheckpoint:
    """A checkpoint of *heads*, signed, linked to the latest one, written out after commit."""
    previous = _latest()
    buckets = _bucket_digests(iter(heads))
    checkpoint = CustodyCheckpoint(
        kind=kind,
        created_at=utcnow(),
        max_event_id=max_id,
        specimen_count=len(heads),
        event_count=events or 0,
        buckets=buckets,
        root=merkle_root(buckets),
        prev_hash=previous.hash if previous else None,
    )
    checkpoint.hash = _sign(checkpoint)
    db.session.add(checkpoint)
    db.session.flush()
    after_commit(export_checkpoints)
    after_commit(_witness)
    return checkpoint


def _witness() -> None:
    dispatch()


def seal_unkeyed_events() -> CustodyCheckpoint | None:
    """Seal the events written before the custody key, once: a signed checkpoint of kind
    ``seal`` digests the heads of their chains, so that they cannot be changed, removed or
    added to afterwards without the key. ``None`` when there is nothing to seal or a seal
    exists (an unkeyed event after it is a forgery, never sealed). The caller commits."""
    if (
        db.session.scalar(sa.select(CustodyCheckpoint.id).where(CustodyCheckpoint.kind == "seal").limit(1))
        is not None
    ):
        return None
    unkeyed = CustodyEvent.key_id.is_(None)
    max_id = db.session.scalar(sa.select(sa.func.max(CustodyEvent.id)).where(unkeyed))
    if max_id is None:
        return None
    return _signed(
        "seal",
        list(_heads_as_of(max_id, unkeyed=True)),
        max_id=max_id,
        events=db.session.scalar(sa.select(sa.func.count(CustodyEvent.id)).where(unkeyed)),
    )


# --- the store outside the database -----------------------------------------------------


def store_path() -> Path:
    """The append-only file of checkpoints: ``CUSTODY_CHECKPOINT_DIR``, or the instance
    folder's ``custody-checkpoints``. Put it where the database's users cannot write."""
    folder = (
        current_app.config.get("CUSTODY_CHECKPOINT_DIR")
        or Path(current_app.instance_path) / "custody-checkpoints"
    )
    return Path(folder) / STORE_FILE


def read_store() -> list[dict[str, Any]]:
    """The checkpoints kept outside the database, oldest first ([] if there is no store)."""
    path = store_path()
    if not path.exists():
        return []
    records = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError:
                records.append({"id": None, "line": number, "broken": True})
    return records


def export_checkpoints() -> list[dict[str, Any]]:
    """Append to the external store every committed checkpoint it does not hold yet, in
    order (run after the commit that made them). Returns the records written."""
    path = store_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # two processes exporting at once append once
        handle.seek(0)
        known = [json.loads(line).get("id") for line in handle if line.strip()]
        last = max((i for i in known if isinstance(i, int)), default=0)
        began = not db.session().in_transaction()
        with read_only():
            fresh = list(
                db.session.scalars(
                    sa.select(CustodyCheckpoint)
                    .where(CustodyCheckpoint.id > last)
                    .order_by(CustodyCheckpoint.id)
                )
            )
            records = [checkpoint.as_record() for checkpoint in fresh]
        if began:  # run after a commit: end the read it began, holding no lock
            db.session.rollback()
        for record in records:
            handle.write(json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return records


def check_event(
    event: Any,
    *,
    barcode: str,
    prev_hash: str | None,
    expected_seq: int,
    keys: dict[str, Digester],
    sealed_up_to: int | None,
) -> str | None:
    """What is wrong with one event given its chain so far, or ``None``. *keys*: a digester
    per known key id; *sealed_up_to*: the last event id the seal covers."""
    if event.seq != expected_seq:
        return f"sequence jumps from #{expected_seq - 1} to #{event.seq}: an event was removed or reordered"
    if event.prev_hash != prev_hash:
        return (
            f"previous-hash link is {(event.prev_hash or 'empty')[:12]} but the previous "
            f"event's hash is {(prev_hash or 'empty')[:12]}: an event was inserted, removed "
            "or reordered"
        )
    fields = {
        "barcode": barcode,
        "seq": event.seq,
        "event_type": event.event_type,
        "occurred_at": event.occurred_at,
        "recorded_at": event.recorded_at,
        "actor_name": event.actor_name,
        "from_location": event.from_location,
        "to_location": event.to_location,
        "details": event.details,
        "client_event_id": event.client_event_id,
        "prev_hash": event.prev_hash,
    }
    if event.key_id is None:
        if sealed_up_to is None or event.id > sealed_up_to:
            return (
                "it carries no keyed digest and no seal covers it: it was written without "
                "the custody key (forged)"
            )
        recomputed = content_hash(**fields)
    else:
        digester = keys.get(event.key_id)
        if digester is None:
            return (
                f"its digest is under custody key {event.key_id}, which this instance does "
                "not know: forged with another key (or a retired key is missing)"
            )
        recomputed = digester.digest(specimen_id=event.specimen_id, actor_id=event.actor_id, **fields)
    if recomputed != event.hash:
        return (
            f"content does not match its digest (stored {event.hash[:12]}, recomputed "
            f"{recomputed[:12]}): the event was edited or forged"
        )
    return None


def _seal_limit() -> int | None:
    return db.session.scalar(
        sa.select(CustodyCheckpoint.max_event_id)
        .where(CustodyCheckpoint.kind == "seal")
        .order_by(CustodyCheckpoint.id)
        .limit(1)
    )


def verify_specimen_chain(specimen: Specimen) -> Finding | None:
    """Check one specimen's chain (for its page and timeline); ``None`` when intact."""
    events = db.session.execute(
        sa.select(*CustodyEvent.__table__.c)
        .where(CustodyEvent.specimen_id == specimen.id)
        .order_by(CustodyEvent.seq)
    ).all()
    prev_hash, expected = None, 1
    keys, sealed_up_to = digesters(), _seal_limit()
    for event in events:
        problem = check_event(
            event,
            barcode=specimen.barcode,
            prev_hash=prev_hash,
            expected_seq=expected,
            keys=keys,
            sealed_up_to=sealed_up_to,
        )
        if problem:
            return Finding(problem, specimen.id, specimen.barcode, event.id, event.seq)
        prev_hash, expected = event.hash, event.seq + 1
    last = (events[-1].seq, events[-1].hash) if events else (0, None)
    if (specimen.custody_seq, specimen.custody_head) != last:
        return Finding(
            f"the specimen says its chain ends at #{specimen.custody_seq} but the ledger ends at #{last[0]}",
            specimen.id,
            specimen.barcode,
        )
    if not events and specimen.status is not SpecimenStatus.EXPECTED:
        return Finding(NO_HISTORY, specimen.id, specimen.barcode)
    return None


NO_HISTORY = (
    "it has no custody history: every specimen is recorded with its first event "
    "(collected, received, aliquoted…), so its chain was wiped"
)


@dataclass
class Chains:
    """What checking the chains of a range of specimens found (picklable: worker processes
    send it back)."""

    events: int = 0
    specimens: int = 0
    findings: list[Finding] = field(default_factory=list)
    #: digests of the chains' heads as of the reference checkpoint, by bucket of specimen ids
    buckets: dict[str, list[Any]] = field(default_factory=dict)
    events_as_of_latest: int = 0
    #: digests of the heads of the unkeyed (sealed) part of each chain
    sealed_buckets: dict[str, list[Any]] = field(default_factory=dict)
    unkeyed_events: int = 0


def check_chains(
    low: int,
    high: int,
    *,
    max_event_id: int | None,
    stop_at_first: bool = False,
    progress: Callable[[int], None] | None = None,
    sealed_up_to: int | None = None,
) -> Chains:
    """Check the chains of the specimens with ``low <= id < high``: every event's sequence,
    link and keyed digest, and each specimen's recorded head. *max_event_id* is the
    reference checkpoint's: heads as of it are digested for the comparison with that
    checkpoint; the heads of the unkeyed events, for the comparison with the seal."""
    result = Chains()
    as_of_latest: list[tuple[int, int, str]] = []
    unkeyed_heads: list[tuple[int, int, str]] = []
    keys = digesters()

    def found(finding: Finding) -> bool:
        result.findings.append(finding)
        return stop_at_first

    def rows() -> Iterator[Any]:
        # Windows of specimen ids keep memory bounded without a server-side cursor.
        step = 2000
        for start in range(low, high, step):
            # Plain rows on the session's connection: no ORM loading, nothing accumulates.
            for row in db.session.connection().execute(
                sa.select(
                    *CustodyEvent.__table__.c, Specimen.barcode, Specimen.custody_seq, Specimen.custody_head
                )
                .join(Specimen, Specimen.id == CustodyEvent.specimen_id)
                .where(CustodyEvent.specimen_id >= start, CustodyEvent.specimen_id < min(start + step, high))
                .order_by(CustodyEvent.specimen_id, CustodyEvent.seq)
            ):
                yield row, row.barcode, row.custody_seq, row.custody_head

    current: int | None = None
    prev_hash: str | None = None
    expected_seq = 1
    head_row: tuple[Any, ...] | None = None
    latest_head: tuple[int, int, str] | None = None
    unkeyed_head: tuple[int, int, str] | None = None

    def close_chain() -> bool:
        if latest_head is not None:
            as_of_latest.append(latest_head)
        if unkeyed_head is not None:
            unkeyed_heads.append(unkeyed_head)
        if head_row is None:
            return False
        last_event, barcode, custody_seq, custody_head = head_row
        if (custody_seq, custody_head) != (last_event.seq, last_event.hash):
            return found(
                Finding(
                    f"the specimen says its chain ends at #{custody_seq} ({(custody_head or '')[:12]}) "
                    f"but the ledger ends at #{last_event.seq} ({last_event.hash[:12]})",
                    last_event.specimen_id,
                    barcode,
                    last_event.id,
                    last_event.seq,
                )
            )
        return False

    def finish() -> Chains:
        result.buckets = _bucket_digests(iter(as_of_latest))
        result.sealed_buckets = _bucket_digests(iter(unkeyed_heads))
        return result

    for event, barcode, custody_seq, custody_head in rows():
        if event.specimen_id != current:
            if close_chain():
                return finish()
            current, prev_hash, expected_seq = event.specimen_id, None, 1
            latest_head = unkeyed_head = None
            result.specimens += 1
        result.events += 1
        if progress and result.events % 100_000 == 0:
            progress(result.events)
        head_row = (event, barcode, custody_seq, custody_head)
        if max_event_id is not None and event.id <= max_event_id:
            latest_head = (event.specimen_id, event.seq, event.hash)
            result.events_as_of_latest += 1
        if event.key_id is None:
            unkeyed_head = (event.specimen_id, event.seq, event.hash)
            result.unkeyed_events += 1
        problem = check_event(
            event,
            barcode=barcode,
            prev_hash=prev_hash,
            expected_seq=expected_seq,
            keys=keys,
            sealed_up_to=sealed_up_to,
        )
        if problem and found(Finding(problem, event.specimen_id, barcode, event.id, event.seq)):
            head_row = None
            return finish()
        prev_hash = event.hash
        expected_seq = event.seq + 1
    close_chain()
    return finish()


def _check_chains_in_worker(
    database_url: str,
    config: dict[str, Any],
    low: int,
    high: int,
    max_event_id: int | None,
    stop_at_first: bool,
    sealed_up_to: int | None,
) -> Chains:
    """:func:`check_chains` in a worker process, with an application of its own (and the
    parent's custody keys)."""
    app = create_app({"DATABASE_URL": database_url, **config})
    with app.app_context(), read_only():
        try:
            return check_chains(
                low, high, max_event_id=max_event_id, stop_at_first=stop_at_first, sealed_up_to=sealed_up_to
            )
        finally:
            db.session.remove()
            db.engine.dispose()


#: fewer specimens than this are checked in one process: a worker takes seconds to start
MIN_PARALLEL_SPECIMENS = 50_000


def verify_ledger(
    *,
    stop_at_first: bool = False,
    progress: Callable[[int], None] | None = None,
    workers: int = 1,
    min_parallel_specimens: int = MIN_PARALLEL_SPECIMENS,
    witnesses: bool = True,
) -> Report:
    """Check every chain, every specimen's head, the seal, every checkpoint, and the
    database against the checkpoints kept outside it: in the store file and, with
    *witnesses*, by the witness instances of ``CUSTODY_WITNESSES``.

    With *workers* > 1 and at least *min_parallel_specimens* specimen ids, the chains are
    split into that many ranges of specimen ids, checked in parallel by worker processes
    (each chain is independent of the others); what they find is merged in id order, so the
    first finding is the same as one process would report.
    """
    report = Report()
    checkpoints = list(db.session.scalars(sa.select(CustodyCheckpoint).order_by(CustodyCheckpoint.id)))
    stored = read_store()
    seal = next((c for c in checkpoints if c.kind == "seal"), None)
    if seal is None:  # a seal deleted from the database is still known outside it
        seal_record = next((r for r in stored if r.get("kind") == "seal" and _signature_ok(r)), None)
    else:
        seal_record = seal.as_record()
    sealed_up_to = seal_record["max_event_id"] if seal_record else None
    if seal_record:
        report.seal = {
            "id": seal_record["id"],
            "created_at": seal_record["created_at"],
            "events": seal_record["event_count"],
        }
    reference = _reference(checkpoints, stored)
    max_event_id = reference["max_event_id"] if reference else None
    low = db.session.scalar(sa.select(sa.func.min(CustodyEvent.specimen_id)))
    high = (db.session.scalar(sa.select(sa.func.max(CustodyEvent.specimen_id))) or 0) + 1
    url = db.engine.url
    in_memory = url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")
    if low is None:
        parts: list[Chains] = [Chains()]
    elif workers <= 1 or high - low < min_parallel_specimens or in_memory:
        parts = [
            check_chains(
                low,
                high,
                max_event_id=max_event_id,
                stop_at_first=stop_at_first,
                progress=progress,
                sealed_up_to=sealed_up_to,
            )
        ]
    else:
        parts = _check_in_parallel(
            url.render_as_string(hide_password=False),
            low,
            high,
            workers=workers,
            max_event_id=max_event_id,
            stop_at_first=stop_at_first,
            progress=progress,
            sealed_up_to=sealed_up_to,
        )
    buckets: dict[str, list[Any]] = {}
    sealed: dict[str, list[Any]] = {}
    events_as_of_latest = unkeyed = 0
    for part in parts:
        report.events += part.events
        report.specimens += part.specimens
        report.findings += part.findings
        buckets.update(part.buckets)
        sealed.update(part.sealed_buckets)
        events_as_of_latest += part.events_as_of_latest
        unkeyed += part.unkeyed_events
    if stop_at_first and report.findings:
        del report.findings[1:]
        return report

    def found(finding: Finding) -> bool:
        report.findings.append(finding)
        return stop_at_first

    historyless = db.session.execute(
        sa.select(Specimen.id, Specimen.barcode, Specimen.custody_seq)
        .where(
            Specimen.status != SpecimenStatus.EXPECTED,
            ~sa.exists().where(CustodyEvent.specimen_id == Specimen.id),
        )
        .order_by(Specimen.id)
    ).all()
    for specimen_id, barcode, seq in historyless:
        problem = f"its {seq} custody events are gone: the whole chain was deleted" if seq else NO_HISTORY
        if found(Finding(problem, specimen_id, barcode)):
            return report

    if _verify_checkpoints(checkpoints, stored, report, found):
        return report
    if seal_record and _compare(seal_record, sealed, unkeyed, "the seal", found):
        return report
    if reference and _compare(
        reference, buckets, events_as_of_latest, f"checkpoint {reference['id']}", found
    ):
        return report
    if witnesses:
        _verify_witnesses(checkpoints, stored, reference, report, found)
    return report


def _verify_witnesses(
    checkpoints: list[CustodyCheckpoint],
    stored: list[dict[str, Any]],
    reference: dict[str, Any] | None,
    report: Report,
    found: Callable[[Finding], bool],
) -> bool:
    """What each witness keeps against the checkpoints here (database or store): one it
    keeps that is gone or different here, and events deleted since the newest it keeps.
    An unreachable witness is reported, not a finding. True to stop."""
    here = {r["id"]: r for r in stored if isinstance(r.get("id"), int)}
    here.update({c.id: c.as_record() for c in checkpoints})
    for answer in consult():
        name = answer["witness"]
        if "error" in answer:
            report.witnesses.append({"witness": name, "error": answer["error"]})
            continue
        kept = [item["checkpoint"] for item in answer["checkpoints"]]
        report.witnesses.append({"witness": name, "checkpoints": len(kept)})
        for record in kept:
            mine = here.get(record["id"])
            if mine is None:
                problem = (
                    f"witness {name} keeps checkpoint {record['id']} of "
                    f"{record['created_at'][:19]} ({record['event_count']} events), "
                    "which is neither in the database nor in the store outside it: "
                    "checkpoints were deleted"
                )
            elif any(mine.get(f) != record.get(f) for f in FIELDS):
                problem = (
                    f"checkpoint {record['id']} differs from the one witness {name} keeps: it was replaced"
                )
            else:
                continue
            if found(Finding(problem)):
                return True
        newest = max((r for r in kept if r["kind"] == "checkpoint"), key=lambda r: r["id"], default=None)
        if newest and (reference is None or newest["id"] > reference["id"]):
            remain = (
                db.session.scalar(
                    sa.select(sa.func.count(CustodyEvent.id)).where(CustodyEvent.id <= newest["max_event_id"])
                )
                or 0
            )
            if remain != newest["event_count"] and found(
                Finding(
                    f"witness {name}'s checkpoint {newest['id']} covered "
                    f"{newest['event_count']} events; {remain} of them remain"
                    + (
                        ": events were deleted"
                        if remain < newest["event_count"]
                        else ": events were added under it"
                    )
                )
            ):
                return True
    return False


def _reference(checkpoints: list[CustodyCheckpoint], stored: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest checkpoint (not seal) whose signature holds, from the database or from
    the store outside it (whichever is newer: checkpoints deleted from the database still
    count)."""
    candidates = [c.as_record() for c in checkpoints if c.kind == "checkpoint"]
    candidates += [r for r in stored if r.get("kind") == "checkpoint"]
    candidates = [c for c in candidates if isinstance(c.get("id"), int) and _signature_ok(c)]
    return max(candidates, key=lambda c: c["id"], default=None)


def _compare(
    reference: dict[str, Any],
    now: dict[str, list[Any]],
    event_count: int,
    name: str,
    found: Callable[[Finding], bool],
) -> bool:
    """The chains as of *reference* against what it signed; True to stop."""
    if event_count != reference["event_count"] and found(
        Finding(
            f"{name} covered {reference['event_count']} events; {event_count} of them remain"
            + (
                ": events were deleted"
                if event_count < reference["event_count"]
                else ": events were added under it"
            )
        )
    ):
        return True
    signed = reference["buckets"]
    for bucket in sorted(set(now) | set(signed), key=int):
        low, high = int(bucket) * BUCKET, int(bucket) * BUCKET + BUCKET - 1
        if bucket in now and bucket in signed and _digest_of(now[bucket]) == _digest_of(signed[bucket]):
            continue
        before = _events_of(signed[bucket]) if bucket in signed else 0
        after = now[bucket][1] if bucket in now else 0
        if before is not None and after < before:
            change = f"{before} events at {name}, {after} now: a chain was shortened or deleted"
        else:
            change = "a chain was deleted, rewritten or added"
        if found(Finding(f"the chains of specimens {low}–{high} differ from {name}: {change}")):
            return True
    return False


def _check_in_parallel(
    database_url: str,
    low: int,
    high: int,
    *,
    workers: int,
    max_event_id: int | None,
    stop_at_first: bool,
    progress: Callable[[int], None] | None,
    sealed_up_to: int | None,
) -> list[Chains]:
    """Ranges of specimen ids checked by *workers* processes, in id order. Range bounds are
    multiples of the checkpoint bucket, so each bucket's digest comes from one range."""
    ring = keyring()
    config = {
        "CUSTODY_KEY": ring.current.decode(),
        "CUSTODY_RETIRED_KEYS": [k.decode() for i, k in ring.keys.items() if i != ring.current_id],
    }
    size = -(-(high - low) // workers)
    size = -(-size // BUCKET) * BUCKET
    first = low // BUCKET * BUCKET
    bounds = [(max(a, low), min(a + size, high)) for a in range(first, high, size)]
    done = 0
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [
            pool.submit(
                _check_chains_in_worker, database_url, config, a, b, max_event_id, stop_at_first, sealed_up_to
            )
            for a, b in bounds
        ]
        parts = []
        for future in futures:
            parts.append(future.result())
            done += parts[-1].events
            if progress:
                progress(done)
    return parts


def _verify_checkpoints(
    checkpoints: list[CustodyCheckpoint],
    stored: list[dict[str, Any]],
    report: Report,
    found: Callable[[Finding], bool],
) -> bool:
    """Each checkpoint's link and signature, and the database's checkpoints against the
    store outside it; True to stop."""
    previous = None
    for checkpoint in checkpoints:
        report.checkpoints += 1
        if checkpoint.prev_hash != (previous.hash if previous else None) and found(
            Finding(
                f"checkpoint {checkpoint.id} does not link to the checkpoint before it: a "
                "checkpoint was removed or replaced"
            )
        ):
            return True
        if not _signature_ok(checkpoint) and found(
            Finding(
                f"checkpoint {checkpoint.id} has an invalid signature: it was edited, or "
                "signed with another custody key"
            )
        ):
            return True
        previous = checkpoint
    report.external = len(stored)
    in_database = {c.id: c for c in checkpoints}
    for record in stored:
        if record.get("broken"):
            if found(
                Finding(
                    f"line {record['line']} of the external checkpoint store is not "
                    "a checkpoint: the store was damaged"
                )
            ):
                return True
            continue
        if not _signature_ok(record):
            if found(
                Finding(
                    f"the external store's checkpoint {record.get('id')} has an "
                    "invalid signature: the store was edited"
                )
            ):
                return True
            continue
        twin = in_database.get(record["id"])
        if twin is None:
            if found(
                Finding(
                    f"{record['kind']} {record['id']} of {record['created_at'][:19]}, "
                    "kept outside the database, is missing from it: checkpoints "
                    "were deleted"
                )
            ):
                return True
        elif twin.hash != record["hash"] and found(
            Finding(
                f"checkpoint {record['id']} differs from the copy kept outside the database: it was replaced"
            )
        ):
            return True
    outside = {r.get("id") for r in stored}
    for checkpoint in checkpoints:
        if checkpoint.id not in outside and found(
            Finding(
                f"{checkpoint.kind} {checkpoint.id} is not in the external checkpoint store "
                f"({store_path().name}): it was never written out, or the store was lost; "
                "`biobank custody checkpoint` writes out what is missing"
            )
        ):
            return True
    return False
