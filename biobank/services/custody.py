"""Custody events: recording them on each specimen's hash chain."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import sqlalchemy as sa

from biobank import signals
from biobank.db import db, utcnow
from biobank.models import CustodyEvent, Specimen, User
from biobank.models.vocab import CustodyEventType


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def canonical_content(event: CustodyEvent, *, barcode: str) -> bytes:
    """The bytes an event's hash covers: every recorded field plus the previous hash.

    Sorted keys, no whitespace, UTC timestamps to the microsecond: the same event always
    serialises to the same bytes on SQLite and PostgreSQL.
    """
    content = {
        "specimen": barcode,
        "seq": event.seq,
        "type": event.event_type.value,
        "occurred_at": _iso(event.occurred_at),
        "recorded_at": _iso(event.recorded_at),
        "actor": event.actor_name,
        "from": event.from_location,
        "to": event.to_location,
        "details": event.details or {},
        "client_event_id": event.client_event_id,
        "prev": event.prev_hash,
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_hash(event: CustodyEvent, *, barcode: str) -> str:
    return hashlib.sha256(canonical_content(event, barcode=barcode)).hexdigest()


def record_custody_event(
    specimen: Specimen,
    event_type: CustodyEventType,
    *,
    actor: User | None,
    occurred_at: dt.datetime | None = None,
    from_location: str | None = None,
    to_location: str | None = None,
    details: dict[str, Any] | None = None,
    client_event_id: str | None = None,
) -> CustodyEvent:
    """Append one event to *specimen*'s custody chain and move its head.

    The specimen row is the chain's lock: concurrent scans of one specimen queue on it while
    scans of different specimens proceed in parallel.
    """
    if specimen.id is not None and db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(
            sa.select(Specimen.id).where(Specimen.id == specimen.id).with_for_update()
        )
        db.session.refresh(specimen, attribute_names=["custody_seq", "custody_head"])
    now = utcnow()
    event = CustodyEvent(
        specimen=specimen,
        seq=specimen.custody_seq + 1,
        event_type=event_type,
        occurred_at=occurred_at or now,
        recorded_at=now,
        actor=actor,
        actor_name=getattr(actor, "username", None) or "system",
        from_location=from_location,
        to_location=to_location,
        details=details or {},
        client_event_id=client_event_id,
        prev_hash=specimen.custody_head,
    )
    event.hash = event_hash(event, barcode=specimen.barcode)
    specimen.custody_seq = event.seq
    specimen.custody_head = event.hash
    db.session.add(event)
    db.session.flush()
    signals.custody_recorded.send(specimen, event=event, actor=actor)
    return event


def list_custody_events(specimen: Specimen) -> list[CustodyEvent]:
    return list(
        db.session.scalars(
            sa.select(CustodyEvent)
            .where(CustodyEvent.specimen_id == specimen.id)
            .order_by(CustodyEvent.seq)
        )
    )
