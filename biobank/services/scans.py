"""Scans: a barcode, an action and a place, checked against the specimen's lifecycle and
recorded once on its custody chain."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm.attributes import set_committed_value

from biobank.auth import visible_site_ids
from biobank.db import db, inserting
from biobank.errors import Conflict, InvalidInput, InvalidState, PermissionDenied
from biobank.models import (
    CollectionEvent,
    CustodyEvent,
    Participant,
    Scan,
    ScanAction,
    Site,
    Specimen,
    StorageContainer,
)
from biobank.models.users import Actor
from biobank.models.vocab import CustodyEventType, SpecimenStatus
from biobank.services.barcodes import named_by, resolve_row, specimen_statement
from biobank.services.consents import withdrawn
from biobank.services.custody import state_snapshot, write_custody_event
from biobank.services.storage import (
    PLACE_COLUMNS,
    check_position,
    container_with_path,
    ensure_free,
    place_names,
    place_path,
)

S = SpecimenStatus
#: action → (states it may be applied in, state afterwards; None keeps the state)
LIFECYCLE: dict[ScanAction, tuple[frozenset[SpecimenStatus], SpecimenStatus | None]] = {
    ScanAction.RECEIVE: (frozenset({S.EXPECTED, S.COLLECTED}), S.RECEIVED),
    ScanAction.STORE: (frozenset({S.COLLECTED, S.RECEIVED, S.MISSING, S.QUARANTINED}), S.IN_STORAGE),
    ScanAction.MOVE: (frozenset({S.IN_STORAGE, S.RESERVED, S.QUARANTINED}), None),
    ScanAction.CHECK_OUT: (frozenset({S.IN_STORAGE, S.RESERVED}), S.CHECKED_OUT),
    ScanAction.CHECK_IN: (frozenset({S.CHECKED_OUT}), S.IN_STORAGE),
    ScanAction.THAW: (frozenset({S.CHECKED_OUT}), None),
    ScanAction.SHIP: (frozenset({S.IN_STORAGE, S.CHECKED_OUT, S.RESERVED}), S.IN_TRANSIT),
    ScanAction.RECEIVE_AT_DESTINATION: (frozenset({S.IN_TRANSIT}), S.RECEIVED),
    ScanAction.CONSUME: (frozenset({S.IN_STORAGE, S.CHECKED_OUT}), S.CONSUMED),
    ScanAction.DISPOSE: (frozenset(set(S) - {S.DISTRIBUTED, S.CONSUMED, S.DISPOSED}), S.DISPOSED),
    ScanAction.MARK_MISSING: (
        frozenset({S.IN_STORAGE, S.CHECKED_OUT, S.IN_TRANSIT, S.RECEIVED, S.RESERVED}),
        S.MISSING,
    ),
}
EVENT_TYPE = {
    ScanAction.RECEIVE: CustodyEventType.RECEIVED,
    ScanAction.STORE: CustodyEventType.STORED,
    ScanAction.MOVE: CustodyEventType.MOVED,
    ScanAction.CHECK_OUT: CustodyEventType.CHECKED_OUT,
    ScanAction.CHECK_IN: CustodyEventType.CHECKED_IN,
    ScanAction.THAW: CustodyEventType.THAWED,
    ScanAction.SHIP: CustodyEventType.SHIPPED,
    ScanAction.RECEIVE_AT_DESTINATION: CustodyEventType.RECEIVED_AT_DESTINATION,
    ScanAction.CONSUME: CustodyEventType.CONSUMED,
    ScanAction.DISPOSE: CustodyEventType.DISPOSED,
    ScanAction.MARK_MISSING: CustodyEventType.MARKED_MISSING,
}
#: destructive actions: each says why (what the tube was used for, why it was destroyed or
#: is missing), so that a manager reviewing or correcting it knows
NEEDS_REASON = {ScanAction.CONSUME, ScanAction.DISPOSE, ScanAction.MARK_MISSING}
CLEARS_POSITION = {ScanAction.SHIP, ScanAction.CONSUME, ScanAction.DISPOSE, ScanAction.MARK_MISSING}
#: receive conditions that put a specimen in quarantine instead of the normal flow
BAD_CONDITIONS = {"damaged", "leaking", "thawed", "unlabelled", "insufficient"}
CONDITIONS = {"acceptable", *BAD_CONDITIONS}


def allowed_actions(status: SpecimenStatus) -> list[str]:
    """The actions a specimen in *status* accepts, for 409 answers and the scan station."""
    return [a.value for a, (sources, _) in LIFECYCLE.items() if status in sources]


def request_hash(scan: dict[str, Any]) -> str:
    """Fingerprint of a scan's content: a reused client event id must carry the same scan."""
    raw = json.dumps(scan, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()


@functools.cache
def _replay_statement() -> sa.Select:
    """The id and content fingerprint of the scan recorded under a client event id (built
    once: every scan asks it first)."""
    return sa.select(Scan.id, Scan.request_hash).where(Scan.client_event_id == sa.bindparam("id"))


def find_replay(client_event_id: str, fingerprint: str) -> Scan | None:
    """The scan already recorded under *client_event_id*, if any.

    Raises ``Conflict`` when the id was used for a different scan.
    """
    found = db.session.connection().execute(_replay_statement(), {"id": client_event_id}).first()
    if found is None:
        return None
    if found.request_hash != fingerprint:
        raise Conflict(
            f"client event id {client_event_id!r} was already used for another scan", field="client_event_id"
        )
    return db.session.get_one(Scan, found.id)


def recorded_answer(data: dict[str, Any]) -> dict[str, Any] | None:
    """The answer of the scan recorded under *data*'s client event id, or None: for a
    caller whose :func:`record` of *data* failed because another transaction recorded the
    same scan meanwhile. Raises ``Conflict`` when the id was used for a different scan."""
    earlier = find_replay(data["client_event_id"], request_hash(data))
    return None if earlier is None else answer_of(earlier)


@dataclass
class ScanResult:
    scan: Scan
    specimen: Specimen
    warnings: list[str] = field(default_factory=list)


def _resolve_location(
    location: dict[str, Any], *, actor: Actor
) -> tuple[StorageContainer, int | None, int | None]:
    if location.get("container_id") is not None:
        ident, field = location["container_id"], "location.container_id"
    elif location.get("container_barcode"):
        field = "location.container_barcode"
        ident = db.session.scalar(
            sa.select(StorageContainer.id).where(StorageContainer.barcode == location["container_barcode"])
        )
        if ident is None:
            raise InvalidInput(f"unknown container barcode {location['container_barcode']!r}", field=field)
    else:
        raise InvalidInput("give container_id or container_barcode", field="location")
    # The container and its path up to the site in one query; another site's is not found.
    container = container_with_path(ident)
    sites = visible_site_ids(actor)
    if container is None or (sites is not None and container.site_id not in sites):
        raise InvalidInput(f"no storagecontainer with id {ident}", field=field)
    row, col = location.get("pos_row"), location.get("pos_col")
    if location.get("position"):
        try:
            row, col = container.parse_position(location["position"])
        except ValueError as error:
            raise InvalidInput(str(error), field="location.position") from None
    try:
        check_position(container, row, col)
    except InvalidInput as error:
        raise InvalidInput(error.message, field=f"location.{error.field}") from None
    return container, row, col


def record(
    data: dict[str, Any], *, actor: Actor, answer: Callable[[ScanResult], dict[str, Any]]
) -> tuple[dict[str, Any], bool]:
    """Record one scan as a scanner sent it, exactly once; returns (answer, replayed).

    The one entry point for scans from the bench (single or in a batch). A scan already
    recorded under its ``client_event_id`` (a scanner's retry) gets the answer stored with
    it, byte for byte, and records nothing: it is looked up first, one read by a unique
    index. Otherwise the scan is applied and stored with the answer *answer* builds for it.
    Flushes; the caller commits, or rolls back on any error.

    Two transactions carrying the same scan at once (a retry sent before the first attempt
    was answered) do not see each other's row. The later one waits on the tube's lock, then
    fails: the tube has moved, or the ``client_event_id`` is taken. Its caller rolls back and
    asks :func:`recorded_answer` for the first one's answer, in a new transaction.
    """
    fingerprint = request_hash(data)
    earlier = find_replay(data["client_event_id"], fingerprint)
    if earlier is not None:
        return answer_of(earlier), True
    result = apply_scan(actor=actor, fingerprint=fingerprint, **data)
    db.session.flush()  # whatever a handler added to the session, before the answer
    result.scan.response = answer(result)
    _write_row(result.scan)
    return answer_of(result.scan), False


def _write_row(scan: Scan) -> None:
    """Write the scan's row with one INSERT of its table, which gives *scan* its id. The row
    is not audited and nothing refers to it; a flush of the ORM's unit of work for it cost
    more than the INSERT."""
    row = {
        "client_event_id": scan.client_event_id,
        "request_hash": scan.request_hash,
        "specimen_id": scan.specimen.id,
        "custody_event_id": scan.custody_event.id,
        "action": scan.action,
        "actor_id": scan.actor_id,
        "scanned_at": scan.scanned_at,
        "response": scan.response,
    }
    scan.id = db.session.connection().execute(inserting(Scan.__table__), row).scalar_one()


@dataclass
class _Scan:
    """One scan being applied: what was sent, the tube, and what the handlers add."""

    actor: Actor
    specimen: Specimen
    action: ScanAction
    scanned_at: dt.datetime
    location: dict[str, Any] | None
    condition: str | None
    destination_site_id: int | None
    #: the state the action leads to (a handler may change it: a damaged tube is quarantined)
    target: SpecimenStatus | None
    details: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    to_location: str | None = None


def _receive(scan: _Scan) -> None:
    condition = scan.condition or "acceptable"
    if condition not in CONDITIONS:
        raise InvalidInput(
            f"unknown condition {condition!r} (use one of: {', '.join(sorted(CONDITIONS))})",
            field="condition",
        )
    scan.details["condition"] = condition
    scan.specimen.received_at = scan.scanned_at
    if condition in BAD_CONDITIONS:
        scan.target = S.QUARANTINED
        scan.warnings.append(f"received {condition}: quarantined")


def _place(scan: _Scan) -> None:
    """Store, move, or check in to a given place: a free position of a container at the
    tube's own site."""
    if not scan.location:
        raise InvalidInput(f"{scan.action.value} needs a location", field="location")
    container, row, col = _resolve_location(scan.location, actor=scan.actor)
    specimen = scan.specimen
    if container.site_id != specimen.site_id:
        raise InvalidInput("that container is at another site: ship the specimen instead", field="location")
    ensure_free(container, row, col, specimen, field="location")
    specimen.container, specimen.pos_row, specimen.pos_col = container, row, col
    scan.to_location = specimen.location_text


def _store(scan: _Scan) -> None:
    _place(scan)
    if scan.specimen.frozen_at is None:
        scan.specimen.frozen_at = scan.scanned_at
    if scan.specimen.status is S.QUARANTINED:
        scan.target = None  # stored, and still quarantined


def _check_in(scan: _Scan) -> None:
    if scan.location:
        _place(scan)
    elif scan.specimen.container is None:
        raise InvalidInput("this specimen has no position to return to: give a location", field="location")


def _thaw(scan: _Scan) -> None:
    scan.specimen.freeze_thaw_count += 1
    scan.details["freeze_thaw_count"] = scan.specimen.freeze_thaw_count


def _ship(scan: _Scan) -> None:
    if scan.destination_site_id is None:
        raise InvalidInput("ship needs destination_site_id", field="destination_site_id")
    destination = db.session.get(Site, scan.destination_site_id)
    if destination is None:
        raise InvalidInput(f"no site {scan.destination_site_id}", field="destination_site_id")
    scan.details["destination_site"] = destination.code


def _receive_at_destination(scan: _Scan) -> None:
    sites = visible_site_ids(scan.actor)
    last_ship = _last_destination(scan.specimen)
    if sites is not None and (last_ship is None or last_ship.id not in sites):
        raise PermissionDenied("this shipment is addressed to another site", field="barcode")
    if last_ship is not None:
        scan.details["from_site"] = scan.specimen.site.code
        scan.specimen.site_id = last_ship.id


def _consume(scan: _Scan) -> None:
    scan.specimen.quantity = Decimal(0)


def _nothing_more(scan: _Scan) -> None:
    """The lifecycle change is all there is (check out, dispose, mark missing)."""


#: what each action does to the tube besides its lifecycle step, one handler each
HANDLERS: dict[ScanAction, Callable[[_Scan], None]] = {
    ScanAction.RECEIVE: _receive,
    ScanAction.STORE: _store,
    ScanAction.MOVE: _place,
    ScanAction.CHECK_OUT: _nothing_more,
    ScanAction.CHECK_IN: _check_in,
    ScanAction.THAW: _thaw,
    ScanAction.SHIP: _ship,
    ScanAction.RECEIVE_AT_DESTINATION: _receive_at_destination,
    ScanAction.CONSUME: _consume,
    ScanAction.DISPOSE: _nothing_more,
    ScanAction.MARK_MISSING: _nothing_more,
}


def _check_lifecycle(specimen: Specimen, action: ScanAction, note: str | None) -> None:
    sources, _target = LIFECYCLE[action]
    if specimen.status not in sources:
        raise InvalidState(
            f"{specimen.barcode} is {specimen.status.value}: it cannot be {action.value}d "
            f"(allowed: {', '.join(allowed_actions(specimen.status)) or 'none'})",
            field="action",
            current_state=specimen.status.value,
            allowed_actions=allowed_actions(specimen.status),
        )
    if action in NEEDS_REASON and not (note or "").strip():
        done = {ScanAction.CONSUME: "used up", ScanAction.DISPOSE: "disposed of"}.get(
            action, "marked missing"
        )
        raise InvalidInput(f"say in note why the tube is {done}", field="note")


def apply_scan(
    *,
    actor: Actor,
    fingerprint: str,
    barcode: str,
    action: ScanAction,
    client_event_id: str,
    scanned_at: dt.datetime,
    location: dict[str, Any] | None = None,
    note: str | None = None,
    condition: str | None = None,
    destination_site_id: int | None = None,
) -> ScanResult:
    """Apply one scan: resolve the barcode, check the lifecycle, let the action's handler
    change the tube, record the custody event. Flushes nothing itself; :func:`record` makes
    it happen once."""
    # Scans of one tube queue on its row; scans of different tubes run in parallel: the
    # row is locked (and read fresh) by the query that resolves the barcode.
    receiving = action is ScanAction.RECEIVE_AT_DESTINATION
    tube = _tube_for_scan(barcode, actor=actor, receiving=receiving, lock=True)
    specimen = tube.Specimen
    _check_lifecycle(specimen, action, note)
    check_scan_time(specimen, scanned_at, collected=tube.collected_at)

    # One UPDATE of the specimen at the end, not one per lazy load on the way.
    with db.session.no_autoflush:
        # What the specimen was before, so that a mistaken scan can be corrected.
        details: dict[str, Any] = {"action": action.value, "before": state_snapshot(specimen)}
        if note:
            details["note"] = note
        before = with_location(specimen).location_text
        scan = _Scan(
            actor=actor,
            specimen=specimen,
            action=action,
            scanned_at=scanned_at,
            location=location,
            condition=condition,
            destination_site_id=destination_site_id,
            target=LIFECYCLE[action][1],
            details=details,
        )
        HANDLERS[action](scan)
        if action in CLEARS_POSITION:
            specimen.container, specimen.pos_row, specimen.pos_col = None, None, None
        if scan.target is not None:
            specimen.status = scan.target
        warnings = scan.warnings + [
            w
            for w in warnings_for(specimen.status, withdrawn=tube.withdrawn)
            if not (w == "quarantined" and any("quarantined" in x for x in scan.warnings))
        ]

    # the specimen's row (and its audit record) and the event, written without a flush
    event = write_custody_event(
        specimen,
        EVENT_TYPE[action],
        actor=actor,
        occurred_at=scanned_at,
        from_location=before if before != scan.to_location else None,
        to_location=scan.to_location,
        details=details,
        client_event_id=client_event_id,
    )
    recorded = Scan(
        client_event_id=client_event_id,
        request_hash=fingerprint,
        specimen=specimen,
        custody_event=event,
        action=action,
        actor_id=actor.id,
        scanned_at=scanned_at,
    )
    return ScanResult(scan=recorded, specimen=specimen, warnings=warnings)


def earliest_event_time() -> dt.datetime:
    """No custody event is older than this (``CUSTODY_EARLIEST_DATE``): a scanner clock
    that fell back to 1900 is refused, not recorded."""
    value = current_app.config.get("CUSTODY_EARLIEST_DATE") or "2000-01-01"
    day = value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def check_scan_time(specimen: Specimen, scanned_at: dt.datetime, *, collected: dt.datetime | None) -> None:
    """Refuse a scan time before the specimen was collected (*collected*, when its visit
    says), or before the earliest date."""
    if collected is not None and scanned_at < collected:
        raise InvalidInput(
            f"scanned_at {scanned_at.isoformat()} is before {specimen.barcode} was collected "
            f"({collected.isoformat()}): check the scanner's clock",
            field="scanned_at",
        )
    earliest = earliest_event_time()
    if scanned_at < earliest:
        raise InvalidInput(
            f"scanned_at {scanned_at.isoformat()} is before {earliest.date().isoformat()}, the "
            "earliest date a custody event may have: check the scanner's clock",
            field="scanned_at",
        )


def answer_of(scan: Scan) -> dict[str, Any]:
    """The answer a scan got (older recordings stored it with its id)."""
    return {**scan.response, "scan_id": scan.id}


@functools.cache
def _scan_statement(lock: bool) -> sa.Select:
    """The tube a scanned code names (locked with *lock*), when it was collected, and
    whether its participant withdrew a consent: what a scan checks, in one statement
    (built once per locking mode)."""
    collected = (
        sa.select(CollectionEvent.collected_at)
        .where(CollectionEvent.id == Specimen.collection_event_id)
        .scalar_subquery()
    )
    return specimen_statement(lock).add_columns(
        collected.label("collected_at"), withdrawn(Specimen.participant_id).label("withdrawn")
    )


def _tube_for_scan(barcode: str, *, actor: Actor, receiving: bool, lock: bool) -> sa.Row[Any]:
    """The row of :func:`_scan_statement` for a scanned code (``Specimen``,
    ``collected_at``, ``withdrawn``), refused if the tube is another site's, except a tube
    in transit to one of the actor's sites that is being (or about to be) received there."""
    tube = resolve_row(barcode, _scan_statement, lock=lock)
    specimen = tube.Specimen
    sites = visible_site_ids(actor)
    if (
        sites is not None
        and specimen.site_id not in sites
        and not (
            receiving
            and specimen.status is S.IN_TRANSIT
            and (destination := _last_destination(specimen)) is not None
            and destination.id in sites
        )
    ):
        raise PermissionDenied(
            f"{specimen.barcode} belongs to {specimen.site.name}, not to a site you work at", field="barcode"
        )
    return tube


def with_location(specimen: Specimen) -> Specimen:
    """*specimen* with its container and every container above it loaded in one query
    (its location text then needs no more)."""
    if specimen.container_id is not None:
        set_committed_value(specimen, "container", container_with_path(specimen.container_id))
    return specimen


def warnings_for(status: SpecimenStatus, *, withdrawn: bool) -> list[str]:
    """What a technician must see before handling a tube in *status* (of a participant who
    has or has not withdrawn a consent)."""
    warnings = []
    if withdrawn:
        warnings.append("consent withdrawn: do not distribute")
    if status is S.QUARANTINED:
        warnings.append("quarantined")
    if status is S.MISSING:
        warnings.append("recorded as missing: store it to bring it back")
    return warnings


@dataclass
class ScanCard:
    """What the scan station shows for a scanned code before an action is picked."""

    #: the specimen: its columns, ``participant.code``, ``position_label``, ``location_text``
    specimen: Any
    allowed_actions: list[str]
    warnings: list[str]


@functools.cache
def _card_statement() -> sa.Select:
    """A specimen's columns by barcode or manufacturer's code, with its participant's code,
    whether the participant withdrew a consent, and the containers it is in: one row per
    container from the top down (one with no container for a tube that is nowhere), no
    objects, one round trip (built once)."""
    columns = [attr.columns[0].label(attr.key) for attr in sa.inspect(Specimen).column_attrs]
    tube = (
        sa.select(
            *columns,
            Participant.code.label("participant_code"),
            withdrawn(Specimen.participant_id).label("withdrawn"),
        )
        .join(Participant, Participant.id == Specimen.participant_id)
        .where(named_by(sa.bindparam("code")))
        .limit(1)
        .cte("tube")
    )
    up = place_path(StorageContainer.id == sa.select(tube.c.container_id).scalar_subquery())
    return (
        # the place columns named apart from the specimen's
        sa.select(tube, *(up.c[name].label(f"place_{name}") for name in PLACE_COLUMNS))
        .select_from(tube)
        .outerjoin(up, sa.true())
        .order_by(up.c.depth.desc())
    )


def scan_card(barcode: str, *, actor: Actor) -> ScanCard:
    """What a scanned code names and what may be done with it, recording nothing.

    The card is read column by column in one statement (the specimen with its
    participant's code and consent state, and the containers above it): a scan station
    asks for one at every scan. A code that names nothing, or a tube of another site,
    takes the scan's own path (:func:`_tube_for_scan`), which explains a misread code and
    lets a tube in transit to one of the actor's sites be shown where it is being received.
    """
    rows = db.session.connection().execute(_card_statement(), {"code": barcode.strip()}).all()
    sites = visible_site_ids(actor)
    if not rows or (sites is not None and rows[0].site_id not in sites):
        tube = _tube_for_scan(barcode, actor=actor, receiving=True, lock=False)
        specimen = with_location(tube.Specimen)
        return ScanCard(
            specimen,
            allowed_actions(specimen.status),
            warnings_for(specimen.status, withdrawn=tube.withdrawn),
        )
    row = rows[0]
    path = [
        SimpleNamespace(**{name: getattr(node, f"place_{name}") for name in PLACE_COLUMNS})
        for node in rows
        if node.place_name is not None
    ]
    position, location = place_names(path, row.pos_row, row.pos_col)
    specimen = SimpleNamespace(
        **row._asdict(),
        participant=SimpleNamespace(code=row.participant_code),
        position_label=position,
        location_text=location,
    )
    return ScanCard(specimen, allowed_actions(row.status), warnings_for(row.status, withdrawn=row.withdrawn))


def _last_destination(specimen: Specimen) -> Site | None:
    event = db.session.scalar(
        sa.select(CustodyEvent)
        .where(CustodyEvent.specimen_id == specimen.id, CustodyEvent.event_type == CustodyEventType.SHIPPED)
        .order_by(CustodyEvent.seq.desc())
        .limit(1)
    )
    code = event.details.get("destination_site") if event else None
    return db.session.scalar(sa.select(Site).where(Site.code == code)) if code else None
