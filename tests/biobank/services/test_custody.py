"""Custody events written without a flush (a scan's path) are the ones a flush writes."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from biobank import signals
from biobank.models import AuditRecord, CustodyEvent, Specimen
from biobank.models.vocab import AuditAction, CustodyEventType, SpecimenStatus
from biobank.services.custody import record_custody_event, write_custody_event
from biobank.services.ledger import verify_specimen_chain

#: columns that differ between two events alike on two tubes
_OWN = {"id", "specimen_id", "recorded_at", "prev_hash", "hash"}


def _events(session, specimen):
    rows = session.execute(
        sa.select(*CustodyEvent.__table__.c)
        .where(CustodyEvent.specimen_id == specimen.id)
        .order_by(CustodyEvent.seq)
    ).all()
    return [row._asdict() for row in rows]


def test_write_custody_event_stores_what_record_custody_event_stores(db_session, make, site, technician):
    participant = make.participant(site=site)
    tubes = [
        make.specimen(participant=participant, status=SpecimenStatus.RECEIVED, history=True) for _ in range(2)
    ]
    heard = []

    def listen(specimen, *, event, actor):
        heard.append((specimen, event.id, event.hash, actor))

    at = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)
    with signals.custody_recorded.connected_to(listen):
        for tube, write, client_event_id in zip(
            tubes, (record_custody_event, write_custody_event), ("first-scan", "second-scan"), strict=True
        ):
            tube.status = SpecimenStatus.IN_STORAGE
            event = write(
                tube,
                CustodyEventType.STORED,
                actor=technician,
                occurred_at=at,
                from_location=None,
                to_location="Freezer 1 › Rack 1 › Box 1 › A1",
                details={"action": "store", "before": {"status": "received"}},
                client_event_id=client_event_id,
            )
            assert heard[-1] == (tube, event.id, event.hash, technician)

    db_session.expire_all()
    flushed, written = (_events(db_session, tube) for tube in tubes)
    assert [e["seq"] for e in written] == [1, 2]
    assert written[1]["prev_hash"] == written[0]["hash"]
    assert heard[1][1:3] == (written[1]["id"], written[1]["hash"])

    def alike(event):
        return {k: v for k, v in event.items() if k not in _OWN and k != "client_event_id"}

    assert alike(written[1]) == alike(flushed[1])
    for tube in tubes:
        stored = db_session.get(Specimen, tube.id)
        assert stored.status is SpecimenStatus.IN_STORAGE
        assert verify_specimen_chain(stored) is None  # the keyed chain holds
        audit = db_session.scalars(
            sa.select(AuditRecord.changes).where(
                AuditRecord.entity == "specimens",
                AuditRecord.entity_id == str(tube.id),
                AuditRecord.action == AuditAction.UPDATE,
            )
        ).all()
        assert audit == [{"status": ["received", "in_storage"]}]


def test_an_event_field_it_does_not_have_is_refused(db_session, make, site):
    tube = make.specimen(participant=make.participant(site=site), history=True)
    for write in (record_custody_event, write_custody_event):
        with pytest.raises(TypeError, match="custody events have no to_place"):
            write(tube, CustodyEventType.MOVED, actor=None, to_place="Freezer 2")
    assert len(_events(db_session, tube)) == 1
