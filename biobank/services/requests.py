"""Sample requests: submit with feasibility at once, decide with an electronic signature.

Feasibility answers, case by case, whether the biobank can serve the request now and, when
it cannot, why: no such material in storage, no consent for a needed scope, not enough
left, too many freeze–thaw cycles. A decision is an electronic signature in the manner of
21 CFR Part 11 §11.50: the manager re-enters their password, and the signature records the
printed name, the time, the meaning (approved or rejected) and the hash of what was signed.
Nobody decides their own request.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import aliased, selectinload
from sqlalchemy.orm.attributes import set_committed_value
from werkzeug.security import check_password_hash

from biobank import signals
from biobank.auth import check_throttle, clear_throttle, has_role, visible_site_ids
from biobank.db import db, utcnow
from biobank.errors import Conflict, InvalidInput, InvalidState, NotFound, PermissionDenied
from biobank.models import (
    Allocation,
    Case,
    CohortSnapshotMember,
    Lesion,
    Participant,
    RequestSignature,
    RequestStatus,
    SampleRequest,
    Shipment,
    Site,
    Specimen,
    StorageContainer,
    User,
)
from biobank.models.users import Actor
from biobank.models.vocab import (
    ConsentScope,
    CustodyEventType,
    MaterialType,
    PathologyStatus,
    QuantityUnit,
    Role,
    SpecimenStatus,
    display_name,
)
from biobank.services import cohorts as cohort_service
from biobank.services import query
from biobank.services.barcodes import named_by
from biobank.services.consents import granted_scopes_by_participant
from biobank.services.custody import record_custody_events
from biobank.services.specimens import create_aliquots
from biobank.services.storage import find_free_space

NO_MATERIAL = "no such material in storage"
NO_CONSENT = "no consent for a needed scope"
NOT_ENOUGH = "not enough material left"
FREEZE_THAW = "too many freeze–thaw cycles"
TAKEN = "reserved by another request meanwhile"
REQUEST_LEVELS = ("cases", "lesions")


def check_requirements(raw: dict[str, Any]) -> dict[str, Any]:
    """Normalise the per-case requirements, or InvalidInput naming the field."""

    def enum_value(enum_cls: Any, key: str, *, required: bool = False) -> str | None:
        value = raw.get(key)
        if value in (None, ""):
            if required:
                raise InvalidInput(f"{key} is required", field=f"requirements.{key}")
            return None
        try:
            return enum_cls(value).value
        except ValueError:
            raise InvalidInput(
                f"unknown {key} {value!r}", field=f"requirements.{key}", allowed=[m.value for m in enum_cls]
            ) from None

    out: dict[str, Any] = {
        "material_type": enum_value(MaterialType, "material_type", required=True),
        "pathology_status": enum_value(PathologyStatus, "pathology_status"),
        "unit": enum_value(QuantityUnit, "unit"),
    }
    minimum = raw.get("min_quantity")
    if minimum is not None:
        try:
            minimum = Decimal(str(minimum))
        except ArithmeticError:
            raise InvalidInput("min_quantity must be a number", field="requirements.min_quantity") from None
        if minimum <= 0:
            raise InvalidInput("min_quantity must be more than 0", field="requirements.min_quantity")
        if out["unit"] is None:
            raise InvalidInput("a min_quantity needs its unit", field="requirements.unit")
        out["min_quantity"] = str(minimum)
    for key, low, high, default in (("aliquots_per_case", 1, 20, 1), ("max_freeze_thaw", 0, 50, None)):
        value = raw.get(key, default)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high
        ):
            raise InvalidInput(
                f"{key} must be a whole number from {low} to {high}", field=f"requirements.{key}"
            )
        out[key] = value
    extra = sorted(
        set(raw)
        - {
            "material_type",
            "pathology_status",
            "unit",
            "min_quantity",
            "aliquots_per_case",
            "max_freeze_thaw",
        }
    )
    if extra:
        raise InvalidInput(f"unknown requirement(s) {', '.join(extra)}", field="requirements")
    return out


def check_scopes(scopes: list[str]) -> list[str]:
    out = []
    for scope in scopes:
        try:
            out.append(ConsentScope(scope).value)
        except ValueError:
            raise InvalidInput(
                f"unknown consent scope {scope!r}",
                field="consent_scopes",
                allowed=[s.value for s in ConsentScope],
            ) from None
    return sorted(set(out))


def cases_of(cohort_id: int, snapshot_id: int | None, actor: Actor) -> tuple[Any, Any, list[int]]:
    """The cohort, its snapshot (if one is named) and the ids of its cases."""
    cohort = cohort_service.get_cohort(cohort_id, actor)
    if cohort.level not in REQUEST_LEVELS:
        raise InvalidInput(
            f"a request is for the cases of a cohort of cases or lesions, not {cohort.level}",
            field="cohort_id",
        )
    snapshot = None
    if snapshot_id is not None:
        snapshot = cohort_service.get_snapshot(snapshot_id, actor)
        if snapshot.cohort_id != cohort.id:
            raise InvalidInput(f"snapshot {snapshot_id} belongs to another cohort", field="snapshot_id")
        ids = list(
            db.session.scalars(
                sa.select(CohortSnapshotMember.entity_id).where(
                    CohortSnapshotMember.snapshot_id == snapshot.id
                )
            )
        )
    else:
        level = query.level_of(cohort.level)
        ids = list(db.session.scalars(query.matching_ids(level, query.parse_filters(cohort.filters), actor)))
    if cohort.level == "lesions":
        ids = list(db.session.scalars(sa.select(Lesion.case_id).where(Lesion.id.in_(ids)).distinct()))
    return cohort, snapshot, sorted(set(ids))


def feasibility(
    case_ids: list[int], requirements: dict[str, Any], scopes: list[str], *, actor: Actor
) -> dict[str, Any]:
    """How many cases can be served now, and why the others cannot (counts of 1–4 shown as
    "<5" to researchers)."""
    servable, reasons = _serve(case_ids, requirements, scopes)
    return {
        "cases": query.suppress(len(case_ids), actor),
        "servable": query.suppress(servable, actor),
        "not_servable": {reason: query.suppress(n, actor) for reason, n in sorted(reasons.items())},
        "checked_at": utcnow().isoformat(),
    }


class _Tubes:
    """What a request could take, case by case: the tubes of its material in storage, and
    which cases' participants consent to every scope it needs."""

    def __init__(self, case_ids: list[int], requirements: dict[str, Any], scopes: list[str]) -> None:
        self.per_case = requirements.get("aliquots_per_case") or 1
        self.minimum = Decimal(requirements["min_quantity"]) if requirements.get("min_quantity") else None
        self.unit = QuantityUnit(requirements["unit"]) if requirements.get("unit") else None
        self.max_ft = requirements.get("max_freeze_thaw")
        participants = dict(
            db.session.execute(sa.select(Case.id, Case.participant_id).where(Case.id.in_(case_ids))).all()
        )
        wanted = {ConsentScope(s) for s in scopes}
        granted = granted_scopes_by_participant(participants.values()) if wanted else {}
        self.consenting = {
            case for case, participant in participants.items() if wanted <= granted.get(participant, set())
        }
        stmt = sa.select(
            Specimen.id,
            Specimen.case_id,
            Specimen.lineage,
            Specimen.quantity,
            Specimen.unit,
            Specimen.freeze_thaw_count,
        ).where(
            Specimen.case_id.in_(case_ids),
            Specimen.material_type == MaterialType(requirements["material_type"]),
            Specimen.status == SpecimenStatus.IN_STORAGE,
        )
        if requirements.get("pathology_status"):
            stmt = stmt.where(Specimen.pathology_status == PathologyStatus(requirements["pathology_status"]))
        self.by_case: dict[int, list[Any]] = defaultdict(list)
        for row in db.session.execute(stmt):
            self.by_case[row.case_id].append(row)

    def enough(self, tube: Any) -> bool:
        return self.minimum is None or (
            tube.unit == self.unit and tube.quantity is not None and tube.quantity >= self.minimum
        )

    def thawed_little(self, tube: Any) -> bool:
        return self.max_ft is None or tube.freeze_thaw_count <= self.max_ft

    def usable(self, case_id: int) -> list[Any]:
        return [t for t in self.by_case.get(case_id, []) if self.enough(t) and self.thawed_little(t)]


def _serve(case_ids: list[int], requirements: dict[str, Any], scopes: list[str]) -> tuple[int, Counter[str]]:
    """The number of cases that can be served, and the others by reason."""
    tubes = _Tubes(case_ids, requirements, scopes)
    reasons: Counter[str] = Counter()
    servable = 0
    for case_id in case_ids:
        if case_id not in tubes.consenting:
            reasons[NO_CONSENT] += 1
        elif not tubes.by_case.get(case_id):
            reasons[NO_MATERIAL] += 1
        elif len(tubes.usable(case_id)) >= tubes.per_case:
            servable += 1
        elif sum(map(tubes.enough, tubes.by_case[case_id])) >= tubes.per_case:
            reasons[FREEZE_THAW] += 1
        else:
            reasons[NOT_ENOUGH] += 1
    return servable, reasons


def preview(
    *,
    actor: Actor,
    cohort_id: int,
    snapshot_id: int | None = None,
    requirements: dict[str, Any],
    consent_scopes: list[str],
) -> dict[str, Any]:
    _cohort, _snapshot, ids = cases_of(cohort_id, snapshot_id, actor)
    return feasibility(ids, check_requirements(requirements), check_scopes(consent_scopes), actor=actor)


def submit(
    *,
    actor: Actor,
    title: str,
    purpose: str,
    ethics_reference: str,
    cohort_id: int,
    requirements: dict[str, Any],
    consent_scopes: list[str],
    snapshot_id: int | None = None,
) -> SampleRequest:
    cohort, snapshot, ids = cases_of(cohort_id, snapshot_id, actor)
    requirements = check_requirements(requirements)
    scopes = check_scopes(consent_scopes)
    if not ids:
        raise InvalidInput("the cohort has no case", field="cohort_id")
    servable, reasons = _serve(ids, requirements, scopes)
    if not servable:
        why = "; ".join(f"{reason}: {n} case(s)" for reason, n in sorted(reasons.items()))
        raise Conflict(
            f"no case of the cohort can be served as asked ({why})",
            field="requirements",
            not_servable=dict(reasons),
        )
    request = SampleRequest(
        code="",
        title=title,
        purpose=purpose,
        ethics_reference=ethics_reference,
        requester_id=actor.id,
        cohort_id=cohort.id,
        snapshot_id=snapshot.id if snapshot else None,
        requirements=requirements,
        consent_scopes=scopes,
        feasibility=feasibility(ids, requirements, scopes, actor=actor),
    )
    db.session.add(request)
    db.session.flush()
    request.code = f"REQ-{utcnow():%Y}-{request.id:05d}"
    db.session.flush()
    return request


def with_tubes(request: SampleRequest) -> SampleRequest:
    """*request* with its allocations, their tubes and sites loaded in a few queries, not a
    few per tube (the participants' consent records are left unloaded: a report asks for
    everyone's granted scopes at once): pages and reports that walk every allocation start
    here."""
    state = sa.inspect(request)
    if state.persistent and not getattr(request, "_tubes_loaded", False):
        tubes = selectinload(Allocation.specimen)
        rows = db.session.scalars(
            sa.select(Allocation)
            .where(Allocation.request_id == request.id)
            .order_by(Allocation.id)
            .options(
                tubes.joinedload(Specimen.site),
                tubes.defaultload(Specimen.participant).lazyload(Participant.consents),
            )
        ).all()
        if "allocations" in state.unloaded:
            set_committed_value(request, "allocations", list(rows))
        request._tubes_loaded = True
    return request


def get_request(request_id: int, actor: Actor) -> SampleRequest:
    request = db.session.get(SampleRequest, request_id)
    staff = has_role(actor, (Role.ADMIN, Role.MANAGER, Role.TECHNICIAN))  # they pick and ship
    if request is None or not (request.requester_id == actor.id or staff):
        raise NotFound(f"no request {request_id}")
    return request


def requests_query(actor: Actor, status: str | None = None) -> sa.Select:
    """The requests *actor* may follow (their own; every one for managers), newest first."""
    stmt = sa.select(SampleRequest).order_by(SampleRequest.id.desc())
    if not _is_manager(actor):
        stmt = stmt.where(SampleRequest.requester_id == actor.id)
    if status:
        stmt = stmt.where(SampleRequest.status == RequestStatus(status))
    return stmt


def list_requests(actor: Actor, status: str | None = None) -> list[SampleRequest]:
    return list(db.session.scalars(requests_query(actor, status)))


def _is_manager(actor: Actor) -> bool:
    return has_role(actor, (Role.ADMIN, Role.MANAGER))


def content_digest(request: SampleRequest) -> str:
    """SHA-256 of what a signature signs: the request's content, canonical JSON."""
    content = {
        "code": request.code,
        "title": request.title,
        "purpose": request.purpose,
        "ethics_reference": request.ethics_reference,
        "cohort_id": request.cohort_id,
        "snapshot_id": request.snapshot_id,
        "requirements": request.requirements,
        "consent_scopes": request.consent_scopes,
        "requester_id": request.requester_id,
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def signature_key(actor: Actor) -> str:
    """The throttle of *actor*'s e-signature password: as many wrong tries as a login."""
    return f"sign:{actor.id}"


def decide(
    request: SampleRequest, *, actor: Actor, approve: bool, password: str, reason: str | None = None
) -> SampleRequest:
    """Approve or reject with an electronic signature; nothing changes if any check fails."""
    if not _is_manager(actor):
        raise PermissionDenied("requests are decided by biobank managers")
    if request.requester_id == actor.id:
        raise PermissionDenied("nobody decides their own request", field="decision")
    if request.status is not RequestStatus.SUBMITTED:
        raise InvalidState(
            f"{request.code} is {request.status.value}: only a submitted request is decided",
            current_state=request.status.value,
        )
    if not approve and not (reason or "").strip():
        raise InvalidInput("a rejection needs its reason", field="reason")
    check_throttle(signature_key(actor))
    account = db.session.get_one(User, actor.id)  # the actor may be a request's principal
    if not account.password_hash or not check_password_hash(account.password_hash, password or ""):
        # The caller counts it once this transaction is rolled back (note_failure).
        raise PermissionDenied("the password does not match: nothing was signed", field="password")
    clear_throttle(signature_key(actor))
    if approve:
        _cohort, _snapshot, ids = cases_of(request.cohort_id, request.snapshot_id, actor)
        request.feasibility = feasibility(ids, request.requirements, request.consent_scopes, actor=actor)
        if not request.feasibility["servable"]:
            raise Conflict(f"no case of {request.code} can be served now", feasibility=request.feasibility)
    meaning = "approved" if approve else "rejected"
    request.signatures.append(
        RequestSignature(
            signer_id=actor.id,
            signer_name=actor.full_name,
            meaning=meaning,
            reason=(reason or "").strip() or None,
            content_sha256=content_digest(request),
        )
    )
    request.status = RequestStatus.APPROVED if approve else RequestStatus.REJECTED
    request.decision_reason = (reason or "").strip() or None
    db.session.flush()
    return request


def withdraw(request: SampleRequest, *, actor: Actor) -> SampleRequest:
    if request.requester_id != actor.id:
        raise PermissionDenied("only the requester withdraws a request")
    if request.status is not RequestStatus.SUBMITTED:
        raise InvalidState(
            f"{request.code} is {request.status.value}: it can no longer be withdrawn",
            current_state=request.status.value,
        )
    request.status = RequestStatus.WITHDRAWN
    db.session.flush()
    return request


def allocate(request: SampleRequest, *, actor: Actor) -> dict[str, Any]:
    """Reserve tubes for an approved request, case by case, all of a case's or none.

    Existing aliquots come first, then the smallest that is enough (so nothing is wasted),
    then the fewest freeze–thaw cycles. A primary with enough left is allocated as a
    processing task (an aliquot is to be made from it). Each tube is reserved by a
    conditional UPDATE (only while it is in storage) and a partial unique index on live
    allocations: when two requests race for the last aliquot, exactly one gets it.
    """
    if not _is_manager(actor):
        raise PermissionDenied("allocation is done by biobank managers")
    if request.status is not RequestStatus.APPROVED:
        raise InvalidState(
            f"{request.code} is {request.status.value}: only an approved request is allocated",
            current_state=request.status.value,
        )
    _cohort, _snapshot, case_ids = cases_of(request.cohort_id, request.snapshot_id, actor)
    candidates = _Tubes(case_ids, request.requirements, request.consent_scopes)
    per_case = candidates.per_case
    tubes = tasks = 0
    served: list[int] = []
    unserved: Counter[str] = Counter()
    for case_id in case_ids:
        if case_id not in candidates.consenting:
            unserved[NO_CONSENT] += 1
            continue
        rows = sorted(
            candidates.usable(case_id),
            key=lambda r: (r.lineage.value == "primary", r.quantity or 0, r.freeze_thaw_count, r.id),
        )
        savepoint = db.session.begin_nested()
        taken = []
        for row in rows:
            if len(taken) == per_case:
                break
            if _reserve(row.id):
                taken.append(row)
        if len(taken) < per_case:
            savepoint.rollback()  # all of a case's tubes or none
            unserved[TAKEN if len(rows) >= per_case else NOT_ENOUGH] += 1
            continue
        for row in taken:
            primary = row.lineage.value == "primary"
            db.session.add(
                Allocation(
                    request_id=request.id,
                    specimen_id=row.id,
                    case_id=case_id,
                    needs_processing=primary,
                    allocated_by=actor.username,
                )
            )
            tubes += 1
            tasks += primary
        db.session.flush()
        savepoint.commit()
        served.append(case_id)
    if served:
        request.status = RequestStatus.ALLOCATED
    db.session.flush()
    return {
        "request": request.code,
        "cases_served": len(served),
        "tubes": tubes,
        "processing_tasks": tasks,
        "cases_not_served": dict(sorted(unserved.items())),
    }


def _reserve(specimen_id: int) -> bool:
    """Reserve one tube if it is still in storage (the database decides races)."""
    result = db.session.execute(
        sa.update(Specimen)
        .where(Specimen.id == specimen_id, Specimen.status == SpecimenStatus.IN_STORAGE)
        .values(status=SpecimenStatus.RESERVED)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def _tube_sites(request: SampleRequest, actor: Actor | None) -> set[int] | None:
    """The sites whose tubes of *request* the actor sees: all for administrators, the
    requester and internal callers (no actor), their own sites for staff: each site picks,
    reports and ships its own tubes."""
    if actor is None or actor.id == request.requester_id:
        return None
    return visible_site_ids(actor)


def allocated_ids(actor: Actor) -> sa.Select:
    """Ids of the tubes allocated (and not released) to approved requests of *actor*'s."""
    granted = (RequestStatus.APPROVED, RequestStatus.ALLOCATED, RequestStatus.SHIPPED, RequestStatus.RECEIVED)
    return (
        sa.select(Allocation.specimen_id)
        .join(SampleRequest, SampleRequest.id == Allocation.request_id)
        .where(
            Allocation.released_at.is_(None),
            SampleRequest.requester_id == actor.id,
            SampleRequest.status.in_(granted),
        )
    )


def allocated_specimen(barcode: str, *, actor: Actor) -> Specimen:
    """The tube *barcode* if an approved request of *actor*'s allocated it, else not found
    (whether it exists or not): the one tube page a researcher may open."""
    specimen = db.session.scalar(sa.select(Specimen).where(Specimen.barcode == barcode))
    if specimen is None or not allocated_to(actor, specimen.id):
        raise NotFound(f"no specimen {barcode} among the tubes of your approved requests")
    return specimen


def allocated_to(actor: Actor, specimen_id: int) -> bool:
    """Whether *specimen_id* is allocated (and not released) to an approved request of
    *actor*'s: the only tubes a researcher sees one by one."""
    granted = (RequestStatus.APPROVED, RequestStatus.ALLOCATED, RequestStatus.SHIPPED, RequestStatus.RECEIVED)
    return (
        db.session.scalar(
            sa.select(
                sa.exists().where(
                    Allocation.specimen_id == specimen_id,
                    Allocation.released_at.is_(None),
                    Allocation.request_id == SampleRequest.id,
                    SampleRequest.requester_id == actor.id,
                    SampleRequest.status.in_(granted),
                )
            )
        )
        or False
    )


def pick_list(request: SampleRequest, actor: Actor | None = None) -> list[dict[str, Any]]:
    """The request's live allocations in walking order: site, freezer, rack, box, position
    (of the actor's sites, with *actor*)."""
    box = aliased(StorageContainer, name="box")
    rack, unit = (aliased(StorageContainer) for _ in range(2))
    rows = db.session.execute(
        sa.select(
            # columns, not whole rows: a pick list of hundreds of tubes is built per page view
            Allocation.id.label("allocation_id"),
            Allocation.needs_processing,
            Allocation.picked_at,
            Allocation.picked_by,
            Specimen.barcode,
            Specimen.material_type,
            Specimen.quantity,
            Specimen.unit,
            Specimen.pos_row,
            Specimen.pos_col,
            Site.code.label("site"),
            box,
            rack.name.label("rack"),
            unit.name.label("freezer"),
            Case.code.label("case"),
        )
        .join(Specimen, Specimen.id == Allocation.specimen_id)
        .join(Site, Site.id == Specimen.site_id)
        .join(Case, Case.id == Allocation.case_id)
        .outerjoin(box, box.id == Specimen.container_id)
        .outerjoin(rack, rack.id == box.parent_id)
        .outerjoin(unit, unit.id == rack.parent_id)
        .where(
            Allocation.request_id == request.id,
            Allocation.released_at.is_(None),
            sa.true()
            if (sites := _tube_sites(request, actor)) is None
            else Specimen.site_id.in_(sorted(sites)),
        )
        .order_by(
            Site.code,
            unit.name.nulls_last(),
            rack.name.nulls_last(),
            box.name.nulls_last(),
            Specimen.pos_row.nulls_last(),
            Specimen.pos_col.nulls_last(),
            Specimen.barcode,
        )
    ).all()
    out = []
    for row in rows:
        container = row.box
        position = (
            container.position_label(row.pos_row, row.pos_col)
            if container is not None and row.pos_row is not None
            else None
        )
        out.append(
            {
                "allocation_id": row.allocation_id,
                "barcode": row.barcode,
                "case": row.case,
                "material_type": row.material_type.value,
                "quantity": str(row.quantity) if row.quantity is not None else None,
                "unit": row.unit.value if row.unit else None,
                "site": row.site,
                "freezer": row.freezer,
                "rack": row.rack,
                "box": container.name if container is not None else None,
                "position": position,
                "needs_processing": row.needs_processing,
                "picked_at": row.picked_at.isoformat() if row.picked_at else None,
                "picked_by": row.picked_by,
            }
        )
    return out


def pick(request: SampleRequest, barcode: str, *, actor: Actor) -> dict[str, Any]:
    """Confirm a tube taken from the freezer by scanning it; a tube not on the list is
    refused (409) and nothing is recorded."""
    if request.status is not RequestStatus.ALLOCATED:
        raise InvalidState(
            f"{request.code} is {request.status.value}: only an allocated request is picked",
            current_state=request.status.value,
        )
    allocation = db.session.scalar(
        sa.select(Allocation)
        .join(Specimen, Specimen.id == Allocation.specimen_id)
        .where(
            Allocation.request_id == request.id,
            Allocation.released_at.is_(None),
            named_by(barcode),
        )
    )
    if allocation is None:
        raise Conflict(
            f"WRONG TUBE: {barcode} is not on the pick list of {request.code}; put it back", field="barcode"
        )
    sites = visible_site_ids(actor)
    if sites is not None and allocation.specimen.site_id not in sites:
        raise Conflict(
            f"WRONG TUBE: {barcode} is not on your site's pick list of "
            f"{request.code}; each site picks its own tubes",
            field="barcode",
        )
    if allocation.picked_at is not None:
        raise Conflict(
            f"{barcode} was already picked by {allocation.picked_by} at "
            f"{allocation.picked_at:%Y-%m-%d %H:%M}",
            field="barcode",
        )
    allocation.picked_at = utcnow()
    allocation.picked_by = actor.username
    db.session.flush()
    # what is left to pick at the actor's sites: each site picks its own tubes
    left = (
        sa.select(sa.func.count())
        .select_from(Allocation)
        .join(Specimen, Specimen.id == Allocation.specimen_id)
        .where(
            Allocation.request_id == request.id,
            Allocation.released_at.is_(None),
            Allocation.picked_at.is_(None),
        )
    )
    if sites is not None:
        left = left.where(Specimen.site_id.in_(sites))
    return {"barcode": barcode, "picked": True, "remaining": db.session.scalar(left)}


def pick_list_pdf(request: SampleRequest, actor: Actor | None = None) -> bytes:
    """The pick list on paper, with the approval's electronic signature printed on it."""
    rows = [
        [
            "☐" if not item["picked_at"] else "✓",
            item["barcode"],
            item["case"],
            item["material_type"],
            f"{item['quantity'] or ''} {item['unit'] or ''}".strip(),
            item["site"],
            item["freezer"] or "",
            item["rack"] or "",
            item["box"] or "",
            item["position"] or "",
            "aliquot first" if item["needs_processing"] else "",
        ]
        for item in pick_list(request, actor)
    ]
    header = ["", "Barcode", "Case", "Material", "Qty", "Site", "Freezer", "Rack", "Box", "Pos", "Note"]
    return _document(request, f"Pick list {request.code}: {request.title}", [], header, rows, landscape=True)


def _document(
    request: SampleRequest,
    title: str,
    lines: list[str],
    header: list[str],
    rows: list[list[Any]],
    *,
    landscape: bool = False,
) -> bytes:
    """A request's PDF: title, lines of text, its signatures, then a table."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.pagesizes import landscape as turned
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    story: list[Any] = [Paragraph(title, styles["Title"])]
    story += [Paragraph(line, styles["Normal"]) for line in lines]
    story += [
        Paragraph(
            f"Electronically signed by {s.signer_name} on "
            f"{s.signed_at:%Y-%m-%d %H:%M} UTC. Meaning: {s.meaning}. "
            f"Content SHA-256 {s.content_sha256[:16]}…",
            styles["Normal"],
        )
        for s in request.signatures
    ]
    table = Table([header, *rows], repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("FONTSIZE", (0, 0), (-1, -1), 8),
                ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey),
                ("GRID", (0, 0), (-1, -1), 0.3, colors.grey),
            ]
        )
    )
    sink = io.BytesIO()
    SimpleDocTemplate(sink, pagesize=turned(A4) if landscape else A4, title=title).build(
        [*story, Spacer(1, 8), table]
    )
    return sink.getvalue()


SHIPPING_TEMPERATURES = ("ambient", "2-8C", "dry_ice", "liquid_nitrogen")
RECEIVED_CONDITIONS = ("acceptable", "damaged", "thawed", "leaking")


def _site_by_code(code: str) -> Any:
    site = db.session.scalar(sa.select(Site).where(Site.code == code.strip().upper()))
    if site is None:
        raise InvalidInput(f"no site {code!r}", field="site")
    return site


def ship(
    request: SampleRequest,
    *,
    actor: Actor,
    destination: str,
    courier: str,
    temperature: str,
    tracking_number: str | None = None,
    site: str | None = None,
) -> Shipment:
    """Ship one site's picked tubes of an allocated request: a parcel leaves from one place,
    so each site of a request sends its own, once, with one custody event per tube. The
    request is shipped when the last site has sent its parcel. *site* (a code) says which
    site's tubes, when the actor works at more than one that has tubes to send."""
    if not has_role(actor, (Role.ADMIN, Role.MANAGER, Role.TECHNICIAN)):
        raise PermissionDenied("shipments are sent by biobank staff")
    if request.status is not RequestStatus.ALLOCATED:
        raise InvalidState(
            f"{request.code} is {request.status.value}: only an allocated, picked request is shipped",
            current_state=request.status.value,
        )
    if temperature not in SHIPPING_TEMPERATURES:
        raise InvalidInput(
            f"unknown temperature {temperature!r}", field="temperature", allowed=list(SHIPPING_TEMPERATURES)
        )
    waiting: dict[int, list[Allocation]] = defaultdict(list)
    for allocation in with_tubes(request).allocations:
        if allocation.released_at is None and allocation.shipment_id is None:
            waiting[allocation.specimen.site_id].append(allocation)
    sites = visible_site_ids(actor)
    mine = {site_id: tubes for site_id, tubes in waiting.items() if sites is None or site_id in sites}
    if site is not None:
        chosen = _site_by_code(site)
        if sites is not None and chosen.id not in sites:
            raise PermissionDenied(
                f"you do not work at {chosen.code}: each site ships its own tubes", field="site"
            )
        if chosen.id not in mine:
            raise Conflict(f"{request.code} has no tube left to ship from {chosen.code}", field="site")
        site_id = chosen.id
    elif not mine:
        if waiting:
            raise PermissionDenied(
                f"{request.code} has no tube at your site(s) to ship: its "
                f"tubes are at {len(waiting)} other site(s), and each site "
                "ships its own",
                field="request",
            )
        raise Conflict(f"every tube of {request.code} has been shipped", field="request")
    elif len(mine) > 1:
        codes = sorted(db.session.scalars(sa.select(Site.code).where(Site.id.in_(mine))))
        raise InvalidInput(
            f"{request.code} has tubes to ship from {len(codes)} sites: name "
            "the site this parcel leaves from",
            field="site",
            allowed=codes,
        )
    else:
        [site_id] = mine
    live = mine[site_id]
    unpicked = [a.specimen.barcode for a in live if a.picked_at is None]
    if unpicked:
        raise Conflict(
            f"{len(unpicked)} tube(s) of {request.code} are not picked yet: {', '.join(unpicked[:10])}",
            field="request",
            unpicked=unpicked,
        )
    shipment = Shipment(
        request_id=request.id,
        site_id=site_id,
        destination=destination,
        courier=courier,
        temperature=temperature,
        tracking_number=tracking_number,
        shipped_by=actor.username,
    )
    db.session.add(shipment)
    events = []
    for allocation in live:
        specimen = allocation.specimen
        allocation.shipment = shipment
        events.append(
            (
                specimen,
                CustodyEventType.SHIPPED,
                {
                    "from_location": specimen.location_text,
                    "to_location": destination[:128],
                    "details": {
                        "request": request.code,
                        "courier": courier,
                        "temperature": temperature,
                        "tracking_number": tracking_number,
                    },
                },
            )
        )
        specimen.container, specimen.pos_row, specimen.pos_col = None, None, None
        specimen.status = SpecimenStatus.IN_TRANSIT
    record_custody_events(events, actor=actor)
    if len(waiting) == 1:  # this was the last site to ship
        request.status = RequestStatus.SHIPPED
    db.session.flush()
    return shipment


def sites_to_ship(request: SampleRequest, actor: Actor) -> list[str]:
    """Codes of the actor's sites that hold tubes of *request* not shipped yet."""
    sites = visible_site_ids(actor)
    stmt = (
        sa.select(Site.code)
        .join(Specimen, Specimen.site_id == Site.id)
        .join(Allocation, Allocation.specimen_id == Specimen.id)
        .where(
            Allocation.request_id == request.id,
            Allocation.released_at.is_(None),
            Allocation.shipment_id.is_(None),
        )
        .distinct()
    )
    if sites is not None:
        stmt = stmt.where(Specimen.site_id.in_(sorted(sites)))
    return sorted(db.session.scalars(stmt))


def visible_shipments(request: SampleRequest, actor: Actor | None = None) -> list[Shipment]:
    """The request's parcels the actor follows: all for the requester and administrators,
    those leaving from their own sites for other staff."""
    sites = _tube_sites(request, actor)
    return [s for s in request.shipments if sites is None or s.site_id in sites]


def receive(
    request: SampleRequest, *, actor: Actor, scans: list[dict[str, Any]], shipment_id: int | None = None
) -> Shipment:
    """The receiving lab scans what arrived in one parcel; it is reconciled: tubes not
    scanned are missing, tubes scanned that were not in it are extra (and not recorded),
    damaged ones are noted. Received tubes are distributed. The request is received when
    every site has shipped and every parcel is reconciled."""
    if request.requester_id != actor.id and not _is_manager(actor):
        raise PermissionDenied("the requester's lab (or a manager) receives a shipment")
    travelling = [s for s in request.shipments if s.received_at is None]
    if shipment_id is not None:
        shipment = next((s for s in request.shipments if s.id == shipment_id), None)
        if shipment is None:
            raise InvalidInput(f"{request.code} has no parcel {shipment_id}", field="shipment_id")
        if shipment.received_at is not None:
            raise InvalidState(
                f"parcel {shipment_id} of {request.code} was received on "
                f"{shipment.received_at:%Y-%m-%d %H:%M} by "
                f"{shipment.received_by}",
                current_state="received",
            )
    elif not travelling:
        raise InvalidState(
            f"{request.code} is {request.status.value}: no parcel of it is on its way",
            current_state=request.status.value,
        )
    elif len(travelling) > 1:
        raise InvalidInput(
            f"{len(travelling)} parcels of {request.code} are on their way: name the one you unpacked",
            field="shipment_id",
            allowed=[s.id for s in travelling],
        )
    else:
        [shipment] = travelling
    sent = {a.specimen.barcode: a for a in shipment.allocations if a.released_at is None}
    seen: dict[str, str] = {}
    for i, scan in enumerate(scans):
        condition = scan.get("condition") or "acceptable"
        if condition not in RECEIVED_CONDITIONS:
            raise InvalidInput(
                f"unknown condition {condition!r}",
                field=f"scans[{i}].condition",
                allowed=list(RECEIVED_CONDITIONS),
            )
        seen[scan["barcode"]] = condition
    missing = sorted(set(sent) - set(seen))
    extra = sorted(set(seen) - set(sent))
    damaged = sorted(b for b, c in seen.items() if b in sent and c != "acceptable")
    events = []
    for barcode, allocation in sent.items():
        if barcode not in seen:
            continue
        specimen = allocation.specimen
        allocation.received_condition = seen[barcode]
        specimen.status = SpecimenStatus.DISTRIBUTED
        events.append(
            (
                specimen,
                CustodyEventType.RECEIVED_AT_DESTINATION,
                {
                    "to_location": shipment.destination[:128],
                    "details": {"request": request.code, "condition": seen[barcode]},
                },
            )
        )
    for barcode in missing:
        specimen = sent[barcode].specimen
        specimen.status = SpecimenStatus.MISSING
        events.append(
            (
                specimen,
                CustodyEventType.MARKED_MISSING,
                {"details": {"request": request.code, "note": "not in the parcel at the destination"}},
            )
        )
    record_custody_events(events, actor=actor)
    shipment.received_by = actor.username
    shipment.received_at = utcnow()
    shipment.reconciliation = {
        "received": len(sent) - len(missing),
        "missing": missing,
        "damaged": damaged,
        "extra": extra,
    }
    if request.status is RequestStatus.SHIPPED and all(s.received_at is not None for s in request.shipments):
        request.status = RequestStatus.RECEIVED
    db.session.flush()
    return shipment


def shipment_summary(shipment: Shipment) -> dict[str, Any]:
    return {
        "id": shipment.id,
        "site": shipment.site.code,
        "destination": shipment.destination,
        "courier": shipment.courier,
        "tracking_number": shipment.tracking_number,
        "temperature": shipment.temperature,
        "tubes": len(shipment.allocations),
        "shipped_by": shipment.shipped_by,
        "shipped_at": shipment.shipped_at.isoformat(),
        "received_by": shipment.received_by,
        "received_at": shipment.received_at.isoformat() if shipment.received_at else None,
        "reconciliation": shipment.reconciliation,
    }


def distribution_report(request: SampleRequest, actor: Actor | None = None) -> dict[str, Any]:
    """What was sent, to whom, when, under which approval and consent (the tubes of the
    actor's sites, for staff other than the requester)."""
    sites = _tube_sites(request, actor)

    approval = next((s for s in request.signatures if s.meaning == "approved"), None)
    tubes = []
    allocations = with_tubes(request).allocations
    granted = granted_scopes_by_participant(a.specimen.participant_id for a in allocations)
    for allocation in allocations:
        if allocation.released_at is not None:
            continue
        specimen = allocation.specimen
        if sites is not None and specimen.site_id not in sites:
            continue
        scopes = sorted(s.value for s in granted.get(specimen.participant_id, ()))
        tubes.append(
            {
                "barcode": specimen.barcode,
                "participant": specimen.participant.code,
                "material_type": specimen.material_type.value,
                "quantity": str(specimen.quantity) if specimen.quantity is not None else None,
                "unit": specimen.unit.value if specimen.unit else None,
                "status": specimen.status.value,
                "site": specimen.site.code,
                "shipment_id": allocation.shipment_id,
                "received_condition": allocation.received_condition,
                "consent_scopes_now": scopes,
            }
        )
    return {
        "request": request.code,
        "title": request.title,
        "purpose": request.purpose,
        "requester": request.requester.full_name,
        "ethics_reference": request.ethics_reference,
        "consent_scopes_required": request.consent_scopes,
        "approval": None
        if approval is None
        else {
            "signer": approval.signer_name,
            "signed_at": approval.signed_at.isoformat(),
            "meaning": approval.meaning,
            "content_sha256": approval.content_sha256,
            "still_matches": approval.content_sha256 == content_digest(request),
        },
        "shipments": [shipment_summary(s) for s in visible_shipments(request, actor)],
        "tubes": tubes,
    }


def return_unused(request: SampleRequest, barcodes: list[str], *, actor: Actor) -> dict[str, Any]:
    """The lab sends unused tubes back: each goes in transit to the site it left from, where
    the scan station receives and stores it as usual (receive at destination, store)."""
    if request.requester_id != actor.id and not _is_manager(actor):
        raise PermissionDenied("the requester's lab (or a manager) returns material")
    if not any(s.received_at is not None for s in request.shipments):
        raise InvalidState(
            f"{request.code} is {request.status.value}: material is returned after it was received",
            current_state=request.status.value,
        )
    ours = {
        a.specimen.barcode: a
        for a in with_tubes(request).allocations
        if a.released_at is None and a.shipment_id is not None
    }
    problems = [
        b for b in barcodes if b not in ours or ours[b].specimen.status is not SpecimenStatus.DISTRIBUTED
    ]
    if problems:
        raise InvalidInput(
            f"not distributed under {request.code}: {', '.join(problems[:10])}",
            field="barcodes",
            barcodes=problems,
        )
    events = []
    for barcode in dict.fromkeys(barcodes):
        specimen = ours[barcode].specimen
        specimen.status = SpecimenStatus.IN_TRANSIT
        events.append(
            (
                specimen,
                CustodyEventType.SHIPPED,
                {
                    "from_location": ours[barcode].shipment.destination[:128],
                    "details": {
                        "request": request.code,
                        "return": True,
                        "destination_site": specimen.site.code,
                    },
                },
            )
        )
    record_custody_events(events, actor=actor)
    db.session.flush()
    return {"request": request.code, "returned": len(dict.fromkeys(barcodes))}


MANIFEST_COLUMNS = (
    "barcode",
    "participant",
    "case",
    "material_type",
    "quantity",
    "unit",
    "shipped_from",
    "received_condition",
)


def _parcels(request: SampleRequest, actor: Actor | None, shipment_id: int | None) -> list[Shipment]:
    """The parcels a manifest covers: one named parcel, or all the actor follows."""
    parcels = visible_shipments(request, actor)
    if shipment_id is not None:
        parcels = [s for s in parcels if s.id == shipment_id]
        if not parcels:
            raise NotFound(f"{request.code} has no parcel {shipment_id} of yours")
    elif not parcels:
        raise InvalidState(
            f"{request.code} has not been shipped" + ("" if not request.shipments else " from your site(s)"),
            current_state=request.status.value,
        )
    return parcels


def shipment_manifest_rows(
    request: SampleRequest, actor: Actor | None = None, shipment_id: int | None = None
) -> list[dict[str, Any]]:
    """The parcels' content, pseudonymous: one row per tube."""
    rows = []
    for shipment in _parcels(request, actor, shipment_id):
        for allocation in shipment.allocations:
            specimen = allocation.specimen
            rows.append(
                {
                    "barcode": specimen.barcode,
                    "participant": specimen.participant.code,
                    "case": db.session.get(Case, allocation.case_id).code,
                    "material_type": specimen.material_type.value,
                    "quantity": str(specimen.quantity) if specimen.quantity is not None else "",
                    "unit": specimen.unit.value if specimen.unit else "",
                    "shipped_from": shipment.site.code,
                    "received_condition": allocation.received_condition or "",
                }
            )
    return sorted(rows, key=lambda r: r["barcode"])


def shipment_manifest_csv(
    request: SampleRequest, actor: Actor | None = None, shipment_id: int | None = None
) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, MANIFEST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(shipment_manifest_rows(request, actor, shipment_id))
    return buffer.getvalue()


def shipment_manifest_pdf(
    request: SampleRequest, actor: Actor | None = None, shipment_id: int | None = None
) -> bytes:
    rows = shipment_manifest_rows(request, actor, shipment_id)
    lines = []
    for shipment in _parcels(request, actor, shipment_id):
        tracking = f", tracking {shipment.tracking_number}" if shipment.tracking_number else ""
        lines.append(
            f"Parcel {shipment.id} from {shipment.site.code} to "
            f"{shipment.destination}. Courier: {shipment.courier}{tracking}. "
            f"Temperature: {shipment.temperature}. Shipped by {shipment.shipped_by} "
            f"on {shipment.shipped_at:%Y-%m-%d %H:%M} UTC; "
            f"{len(shipment.allocations)} tubes."
        )
    return _document(
        request,
        f"Shipment manifest {request.code}",
        lines,
        list(MANIFEST_COLUMNS),
        [[r[c] for c in MANIFEST_COLUMNS] for r in rows],
    )


def _may_process(request: SampleRequest, actor: Actor) -> None:
    if not has_role(actor, (Role.ADMIN, Role.MANAGER, Role.TECHNICIAN)):
        raise PermissionDenied("processing is done by biobank staff")
    if request.status is not RequestStatus.ALLOCATED:
        raise InvalidState(
            f"{request.code} is {request.status.value}: processing tasks are "
            "done between allocation and shipment",
            current_state=request.status.value,
        )


def processing_tasks(request: SampleRequest, actor: Actor | None = None) -> list[Allocation]:
    """The request's processing tasks still to do (an aliquot to make from an allocated
    primary), those of the actor's sites, in allocation order."""
    sites = _tube_sites(request, actor)
    stmt = (
        sa.select(Allocation)
        .join(Specimen, Specimen.id == Allocation.specimen_id)
        .where(
            Allocation.request_id == request.id,
            Allocation.needs_processing.is_(True),
            Allocation.released_at.is_(None),
            Allocation.shipment_id.is_(None),
        )
        # the tubes and their boxes; not their participants' consent records
        .options(
            selectinload(Allocation.specimen).defaultload(Specimen.participant).lazyload(Participant.consents)
        )
        .order_by(Allocation.id)
    )
    if sites is not None:
        stmt = stmt.where(Specimen.site_id.in_(sorted(sites)))
    return list(db.session.scalars(stmt))


def make_every_aliquot(
    request: SampleRequest, *, actor: Actor, quantity: Any = None, print_request: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Do every processing task of the actor's sites at once: each primary gives its aliquot,
    placed in free positions close together at the primary's site and storage temperature
    (found as the free-space search finds them), allocated in its place; with
    *print_request* the new tubes' labels are one print job. All or nothing: a task that
    cannot be done (not enough left, no room) refuses the whole action, naming it."""
    _may_process(request, actor)
    tasks = processing_tasks(request, actor)
    if not tasks:
        raise InvalidState(
            f"{request.code} has no aliquot left to make at your sites", current_state=request.status.value
        )
    groups: dict[tuple[int, Any], list[Allocation]] = defaultdict(list)
    for task in tasks:
        box = task.specimen.container
        groups[(task.specimen.site_id, box.effective_temperature() if box else None)].append(task)
    made = []
    for (site_id, temperature), group in groups.items():
        try:
            space = find_free_space(actor=actor, count=len(group), temperature=temperature, site_id=site_id)
        except Conflict as error:
            where = f" at {display_name(temperature)}" if temperature is not None else ""
            raise Conflict(
                f"no room for {len(group)} new aliquots{where} at site "
                f"{group[0].specimen.site.code}: {error.message}",
                field="placements",
            ) from None
        places = [
            {"container_id": found["container"].id, "pos_row": row, "pos_col": col}
            for found in space
            for row, col in found["positions"]
        ]
        for task, place in zip(group, places, strict=True):
            made.append(make_aliquot(request, task.id, actor=actor, quantity=quantity, placement=place))
    job_ids: list[int] = []
    if print_request:
        replies = signals.labels_wanted.send(
            actor,
            specimens=[a.specimen for a in made],
            print_request=print_request,
            source="request processing",
        )
        job_ids = [job.id for _receiver, job in replies if job is not None]
    return {
        "request": request.code,
        "made": len(made),
        "aliquots": [a.specimen.barcode for a in made],
        "print_job_id": job_ids[0] if job_ids else None,
    }


def make_aliquot(
    request: SampleRequest,
    allocation_id: int,
    *,
    actor: Actor,
    quantity: Any = None,
    container_id: int | None = None,
    placement: dict[str, int] | None = None,
) -> Allocation:
    """Do a processing task: aliquot the allocated primary, and allocate the new aliquot
    in its place (the primary goes back to storage with what is left). The aliquot goes
    to the first free position of *container_id*, or to *placement*."""
    _may_process(request, actor)
    allocation = next(
        (a for a in request.allocations if a.id == allocation_id and a.released_at is None), None
    )
    if allocation is None or not allocation.needs_processing:
        raise InvalidInput(
            f"allocation {allocation_id} of {request.code} is no processing task", field="allocation_id"
        )
    if allocation.shipment_id is not None:
        raise InvalidState(
            f"allocation {allocation_id} of {request.code} left in parcel {allocation.shipment_id}",
            current_state="shipped",
        )
    primary = allocation.specimen
    amount = quantity or request.requirements.get("min_quantity")
    if amount is None:
        raise InvalidInput("give the quantity of the aliquot to make", field="quantity")
    if Decimal(str(amount)) <= 0:
        raise InvalidInput("the aliquot's quantity must be more than 0", field="quantity")
    [child] = create_aliquots(
        primary,
        actor=actor,
        count=1,
        quantity=amount,
        container_id=container_id,
        placements=[placement] if placement else None,
    )
    allocation.released_at = utcnow()
    primary.status = SpecimenStatus.IN_STORAGE
    child.status = SpecimenStatus.RESERVED
    db.session.flush()
    replacement = Allocation(
        request_id=request.id,
        specimen_id=child.id,
        case_id=allocation.case_id,
        needs_processing=False,
        allocated_by=actor.username,
    )
    db.session.add(replacement)
    db.session.flush()
    return replacement
