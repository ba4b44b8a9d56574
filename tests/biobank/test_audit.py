"""The audit trail written without a flush (a scan's path) is the one a flush writes."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from biobank.audit import set_actor, write_changes
from biobank.models import AuditRecord, Specimen, StorageContainer
from biobank.models.vocab import AuditAction, ContainerKind, SpecimenStatus

#: columns that differ between two specimens made alike, whatever is written
_OWN = {"id", "barcode", "created_at", "updated_at"}


def _audit_of(session, specimen):
    return session.scalars(
        sa.select(AuditRecord)
        .where(
            AuditRecord.entity == "specimens",
            AuditRecord.entity_id == str(specimen.id),
            AuditRecord.action == AuditAction.UPDATE,
        )
        .order_by(AuditRecord.id)
    ).all()


def _row(session, specimen):
    row = session.execute(sa.select(*Specimen.__table__.c).where(Specimen.id == specimen.id)).one()
    return {key: value for key, value in row._asdict().items() if key not in _OWN}


def _statements(session, work):
    """The statements *work* sends on the session's connection."""
    sent = []

    def note(_conn, _cursor, statement, *_args):
        sent.append(statement)

    connection = session.connection()
    sa.event.listen(connection, "before_cursor_execute", note)
    try:
        work()
    finally:
        sa.event.remove(connection, "before_cursor_execute", note)
    return sent


@pytest.fixture
def twins(make, site):
    """Two tubes alike in every column that a scan can change, the second in a box."""
    participant = make.participant(site=site)
    box = make.box(site=site, n_rows=2, n_cols=2)
    made = dict(participant=participant, status=SpecimenStatus.RECEIVED, quantity=Decimal("1.500"))
    return make.specimen(**made), make.specimen(**made), box


def _change(specimen, box, row):
    specimen.status = SpecimenStatus.IN_STORAGE
    specimen.container = box  # by the relationship only: its key is the writer's to set
    specimen.pos_row, specimen.pos_col = row, 1
    specimen.frozen_at = dt.datetime(2026, 5, 1, 8, 0, tzinfo=dt.UTC)
    specimen.freeze_thaw_count += 1
    specimen.quantity = Decimal("1.500")  # set to the value it has: not a change
    specimen.custody_seq += 1  # written, but kept out of the audit trail


def test_write_changes_writes_the_row_and_audit_record_a_flush_writes(db_session, twins, technician):
    flushed, written, box = twins
    set_actor(db_session, technician, reason="moved to the new freezer")
    before = written.updated_at
    _change(flushed, box, 1)
    db_session.flush()
    _change(written, box, 2)
    write_changes(db_session, written)

    db_session.expire_all()
    by_flush, by_writer = _audit_of(db_session, flushed), _audit_of(db_session, written)
    assert len(by_flush) == len(by_writer) == 1
    expected = {**by_flush[0].changes, "pos_row": [None, 2]}
    assert list(by_writer[0].changes.items()) == list(expected.items())  # the same keys, in order
    assert by_writer[0].changes["container_id"] == [None, box.id]
    assert "quantity" not in by_writer[0].changes and "custody_seq" not in by_writer[0].changes
    assert (by_writer[0].actor_id, by_writer[0].actor_name, by_writer[0].reason) == (
        technician.id,
        technician.username,
        "moved to the new freezer",
    )
    assert _row(db_session, written) == {**_row(db_session, flushed), "pos_row": 2}
    assert db_session.get(Specimen, written.id).updated_at > before


def test_after_write_changes_nothing_is_left_for_a_flush(db_session, twins):
    _, written, box = twins
    _change(written, box, 1)
    write_changes(db_session, written)
    assert written not in db_session.dirty
    assert _statements(db_session, db_session.flush) == []
    # the object holds what was written, the renewed timestamp included
    stored = db_session.execute(
        sa.select(Specimen.updated_at, Specimen.container_id).where(Specimen.id == written.id)
    )
    assert tuple(stored.one()) == (written.updated_at, box.id)


def test_write_changes_runs_the_models_update_listeners(db_session, make, site):
    """A specimen's case follows its visit (a ``before_update`` listener): the writer runs
    it as a flush does, in the same UPDATE."""
    participant = make.participant(site=site)
    case = make.case(participant=participant)
    visit = make.visit(participant=participant, case_id=case.id)
    specimen = make.specimen(participant=participant)
    assert specimen.case_id is None
    specimen.collection_event_id = visit.id
    sent = _statements(db_session, lambda: write_changes(db_session, specimen))
    assert sum(s.lstrip().upper().startswith("UPDATE") for s in sent) == 1
    db_session.expire_all()
    assert db_session.get(Specimen, specimen.id).case_id == case.id


def test_write_changes_refuses_a_related_row_not_yet_stored(db_session, twins, site):
    _, written, _ = twins
    written.container = StorageContainer(site=site, kind=ContainerKind.BOX, name="new", n_rows=1, n_cols=1)
    with pytest.raises(ValueError, match="not stored yet"):
        write_changes(db_session, written)


def test_write_changes_refuses_a_row_not_yet_stored(db_session, make, site):
    new = Specimen(barcode="NEW1", participant=make.participant(site=site), site_id=site.id)
    with pytest.raises(ValueError, match="written by a flush"):
        write_changes(db_session, new)
