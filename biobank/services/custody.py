"""Custody events: recording them on each specimen's hash chain."""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import hmac
import json
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, TypedDict, Unpack

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value

from biobank import signals
from biobank.audit import write_changes
from biobank.db import db, inserting, utcnow
from biobank.keys import keyring
from biobank.models import CustodyEvent, Specimen
from biobank.models.users import Actor
from biobank.models.vocab import CustodyEventType, SpecimenStatus


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _legacy_content(
    *,
    barcode: str,
    seq: int,
    event_type: CustodyEventType,
    occurred_at: dt.datetime,
    recorded_at: dt.datetime,
    actor_name: str,
    from_location: str | None,
    to_location: str | None,
    details: dict[str, Any] | None,
    client_event_id: str | None,
    prev_hash: str | None,
    **_ignored: Any,
) -> dict[str, Any]:
    return {
        "specimen": barcode,
        "seq": seq,
        "type": event_type.value,
        "occurred_at": _iso(occurred_at),
        "recorded_at": _iso(recorded_at),
        "actor": actor_name,
        "from": from_location,
        "to": to_location,
        "details": details or {},
        "client_event_id": client_event_id,
        "prev": prev_hash,
    }


def _canonical(content: dict[str, Any]) -> bytes:
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def content_hash(**fields: Any) -> str:
    """Plain SHA-256 of an event's canonical content, as events were hashed before the
    custody key: kept to verify those events (sealed since), never to write new ones.

    Sorted keys, no whitespace, UTC timestamps to the microsecond: the same event always
    serialises to the same bytes on SQLite and PostgreSQL.
    """
    return hashlib.sha256(_canonical(_legacy_content(**fields))).hexdigest()


class Digester:
    """Keyed event digests: HMAC-SHA256, under one custody key, of every column of an
    event (actor id, specimen id and barcode included) and the previous event's digest.
    Without the key, nobody can make an event that verifies."""

    def __init__(self, key: bytes, key_id: str) -> None:
        self.key_id = key_id
        self._base = hmac.new(key, digestmod=hashlib.sha256)

    def digest(self, *, specimen_id: int, actor_id: int | None, **fields: Any) -> str:
        content = _legacy_content(**fields)
        content.update(specimen_id=specimen_id, actor_id=actor_id, key=self.key_id)
        mac = self._base.copy()
        mac.update(_canonical(content))
        return mac.hexdigest()


def current_digester() -> Digester:
    ring = keyring()
    return Digester(ring.current, ring.current_id)


def event_hash(event: CustodyEvent, *, barcode: str, digester: Digester | None = None) -> str:
    """The digest *event* must carry, computed from its fields under the current key (or
    *digester*'s)."""
    digester = digester or current_digester()
    return digester.digest(
        specimen_id=event.specimen_id if event.specimen_id is not None else event.specimen.id,
        actor_id=event.actor_id if event.actor_id is not None else getattr(event.actor, "id", None),
        barcode=barcode,
        seq=event.seq,
        event_type=event.event_type,
        occurred_at=event.occurred_at,
        recorded_at=event.recorded_at,
        actor_name=event.actor_name,
        from_location=event.from_location,
        to_location=event.to_location,
        details=event.details,
        client_event_id=event.client_event_id,
        prev_hash=event.prev_hash,
    )


def chain_rows(
    *,
    specimen_id: int,
    barcode: str,
    actor_id: int | None,
    actor_name: str,
    events: list[tuple[CustodyEventType, dt.datetime, dict[str, Any]]],
    recorded_at: dt.datetime | None = None,
    digester: Digester | None = None,
) -> list[dict[str, Any]]:
    """Custody rows for a specimen written in bulk (demo data, imports), chained in time
    order under the custody key. Each event is ``(type, occurred_at, {from_location,
    to_location, details})``; ``recorded_at`` defaults to the time each event occurred."""
    digester = digester or current_digester()
    prev = None
    chain = []
    for seq, (kind, at, more) in enumerate(sorted(events, key=lambda e: e[1]), start=1):
        row = {
            "specimen_id": specimen_id,
            "seq": seq,
            "event_type": kind,
            "occurred_at": at,
            "recorded_at": recorded_at or at,
            "actor_id": actor_id,
            "actor_name": actor_name,
            "from_location": more.get("from_location"),
            "to_location": more.get("to_location"),
            "details": more.get("details", {}),
            "client_event_id": None,
            "prev_hash": prev,
            "key_id": digester.key_id,
        }
        row["hash"] = digester.digest(barcode=barcode, **row)
        chain.append(row)
        prev = row["hash"]
    return chain


def lock_specimens(specimens: Iterable[Specimen]) -> None:
    """Lock specimens' rows until the transaction ends and reload their chain heads, in one
    query per thousand (PostgreSQL; SQLite writers already hold the database lock from BEGIN).
    Rows are locked in id order, so two transactions locking overlapping sets wait for each
    other instead of deadlocking."""
    if db.session.get_bind().dialect.name != "postgresql":
        return
    by_id = {s.id: s for s in specimens if s.id is not None}
    ids = sorted(by_id)
    for start in range(0, len(ids), 1000):
        rows = db.session.execute(
            sa.select(Specimen.id, Specimen.custody_seq, Specimen.custody_head)
            .where(Specimen.id.in_(ids[start : start + 1000]))
            .order_by(Specimen.id)
            .with_for_update()
        )
        for ident, seq, head in rows:
            set_committed_value(by_id[ident], "custody_seq", seq)
            set_committed_value(by_id[ident], "custody_head", head)


class EventFields(TypedDict, total=False):
    """What an event records besides its specimen, type and actor (each optional)."""

    #: when it happened (the scanner's clock); when it is recorded if not given
    occurred_at: dt.datetime | None
    from_location: str | None
    to_location: str | None
    details: dict[str, Any] | None
    #: the scanner's id of the event, which makes a retry recognisable
    client_event_id: str | None


def _event_row(
    specimen: Specimen, event_type: CustodyEventType, *, actor: Actor | None, **more: Unpack[EventFields]
) -> dict[str, Any]:
    """The columns of a new event at the head of *specimen*'s chain (stored, and locked by
    the caller), its digest included; the specimen's head moves to it."""
    if unknown := more.keys() - EventFields.__annotations__.keys():
        raise TypeError(f"custody events have no {', '.join(sorted(unknown))}")
    now = utcnow()
    digester = current_digester()
    row = {
        "specimen_id": specimen.id,
        "seq": specimen.custody_seq + 1,
        "event_type": event_type,
        "occurred_at": more.get("occurred_at") or now,
        "recorded_at": now,
        "actor_id": getattr(actor, "id", None),
        "actor_name": getattr(actor, "username", None) or "system",
        "from_location": more.get("from_location"),
        "to_location": more.get("to_location"),
        "details": more.get("details") or {},
        "client_event_id": more.get("client_event_id"),
        "prev_hash": specimen.custody_head,
        "key_id": digester.key_id,
    }
    row["hash"] = digester.digest(barcode=specimen.barcode, **row)
    specimen.custody_seq = row["seq"]
    specimen.custody_head = row["hash"]
    return row


def _append(
    specimen: Specimen, event_type: CustodyEventType, *, actor: Actor | None, **more: Unpack[EventFields]
) -> CustodyEvent:
    """A new event at the head of *specimen*'s chain (locked by the caller), not yet
    flushed; the specimen's head moves to it."""
    if specimen.id is None:  # the digest covers the specimen's id
        db.session.flush()
    event = CustodyEvent(specimen=specimen, **_event_row(specimen, event_type, actor=actor, **more))
    db.session.add(event)
    return event


def record_custody_event(
    specimen: Specimen,
    event_type: CustodyEventType,
    *,
    actor: Actor | None,
    locked: bool = False,
    **more: Unpack[EventFields],
) -> CustodyEvent:
    """Append one event to *specimen*'s custody chain and move its head.

    The specimen row is the chain's lock: concurrent scans of one specimen queue on it while
    scans of different specimens proceed in parallel. Pass ``locked=True`` when the caller
    already holds that lock (with the specimen reloaded under it).
    """
    if specimen.id is not None and not locked:
        lock_specimens([specimen])
    event = _append(specimen, event_type, actor=actor, **more)
    db.session.flush()
    signals.custody_recorded.send(specimen, event=event, actor=actor)
    return event


def write_custody_event(
    specimen: Specimen, event_type: CustodyEventType, *, actor: Actor | None, **more: Unpack[EventFields]
) -> CustodyEvent:
    """What :func:`record_custody_event` does for a stored specimen whose row the caller
    has locked, in three statements instead of a flush of the session: the specimen's
    changes and their audit record (:func:`biobank.audit.write_changes`), then the event.
    The rows are the same; the event returned is not in the session (it is never changed).
    For paths that record one event at a time, many times a second (scans)."""
    row = _event_row(specimen, event_type, actor=actor, **more)
    write_changes(db.session(), specimen)
    event = CustodyEvent(**row)
    event.id = db.session.connection().execute(inserting(CustodyEvent.__table__), row).scalar_one()
    set_committed_value(event, "specimen", specimen)
    signals.custody_recorded.send(specimen, event=event, actor=actor)
    return event


def record_custody_events(
    entries: Iterable[tuple[Specimen, CustodyEventType, dict[str, Any]]], *, actor: Actor | None
) -> list[CustodyEvent]:
    """Append one event to each of many chains (a rack confirmed, a box moved, a freezer
    evacuated, a parcel shipped): the specimens are locked in one query and the events
    written in one flush, instead of four statements per tube. Each entry is
    ``(specimen, event_type, {from_location, to_location, details, occurred_at})``."""
    entries = list(entries)
    lock_specimens(specimen for specimen, _kind, _more in entries)
    events = [_append(specimen, kind, actor=actor, **more) for specimen, kind, more in entries]
    db.session.flush()
    for (specimen, _kind, _more), event in zip(entries, events, strict=True):
        signals.custody_recorded.send(specimen, event=event, actor=actor)
    return events


def custody_events_query(specimen: Specimen) -> sa.Select:
    """The statement of a tube's custody events (unordered: lists sort it their way)."""
    return sa.select(CustodyEvent).where(CustodyEvent.specimen_id == specimen.id)


def list_custody_events(specimen: Specimen) -> list[CustodyEvent]:
    return list(db.session.scalars(custody_events_query(specimen).order_by(CustodyEvent.seq)))


#: specimen fields a scan may change, kept on its event (``details["before"]``) so that a
#: mistaken scan can be corrected
RESTORABLE = (
    "status",
    "quantity",
    "site_id",
    "container_id",
    "pos_row",
    "pos_col",
    "freeze_thaw_count",
    "received_at",
    "frozen_at",
)


def state_snapshot(specimen: Specimen) -> dict[str, Any]:
    """The restorable state of *specimen*, as JSON values."""
    state: dict[str, Any] = {}
    for name in RESTORABLE:
        value = getattr(specimen, name)
        if isinstance(value, enum.Enum):
            value = value.value
        elif isinstance(value, Decimal):
            value = str(value)
        elif isinstance(value, dt.datetime):
            value = _iso(value)
        state[name] = value
    return state


def restore_state(specimen: Specimen, state: dict[str, Any]) -> None:
    """Give *specimen* back the state a ``state_snapshot`` recorded."""
    for name in RESTORABLE:
        if name not in state:
            continue
        value = state[name]
        if value is not None and name == "status":
            value = SpecimenStatus(value)
        elif value is not None and name == "quantity":
            value = Decimal(value)
        elif value is not None and name in ("received_at", "frozen_at"):
            value = dt.datetime.fromisoformat(value)
        setattr(specimen, name, value)


def correctable_event(events: list[CustodyEvent]) -> CustodyEvent | None:
    """The event of a chain (oldest first) that a correction would undo now: the latest one
    in force, if it kept the state before it."""
    corrected = {
        e.details.get("corrects_event_id") for e in events if e.event_type is CustodyEventType.CORRECTED
    }
    for event in reversed(events):
        if event.event_type is CustodyEventType.CORRECTED or event.id in corrected:
            continue
        return event if isinstance(event.details.get("before"), dict) else None
    return None
