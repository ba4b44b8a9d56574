"""Tampering with the custody ledger directly in the database is detected and named."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from biobank.db import db
from biobank.models import CustodyCheckpoint, CustodyEvent, Specimen
from biobank.models.vocab import CustodyEventType
from biobank.services.custody import record_custody_event
from biobank.services.ledger import create_checkpoint, verify_ledger


@pytest.fixture
def ledger(make, site, technician, db_session):
    """Three specimens with four events each, and a checkpoint."""
    p = make.participant(site=site)
    specimens = [make.specimen(participant=p) for _ in range(3)]
    for s in specimens:
        for kind in (CustodyEventType.COLLECTED, CustodyEventType.RECEIVED,
                     CustodyEventType.STORED, CustodyEventType.CHECKED_OUT):
            record_custody_event(s, kind, actor=technician, to_location="Box 1")
    create_checkpoint()
    db_session.commit()
    assert verify_ledger().ok
    return specimens


def tamper(db_session, sql, **params):
    """Change rows behind the application's back, as someone with database access would."""
    conn = db_session.connection()
    if conn.dialect.name == "postgresql":
        # The ledger's triggers refuse this; a superuser can switch them off for a session.
        conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
    conn.execute(sa.text(sql), params)
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL session_replication_role = origin")
    db_session.expire_all()


def _event(db_session, specimen, seq):
    return db_session.scalars(sa.select(CustodyEvent).where(
        CustodyEvent.specimen_id == specimen.id, CustodyEvent.seq == seq)).one()


def _first(db_session):
    report = verify_ledger(stop_at_first=True)
    assert not report.ok
    return report.findings[0]


def test_edited_event_is_detected(ledger, db_session):
    target = _event(db_session, ledger[1], 2)
    tamper(db_session, "UPDATE custody_events SET to_location = 'Freezer 9' WHERE id = :i",
           i=target.id)
    finding = _first(db_session)
    assert finding.barcode == ledger[1].barcode
    assert finding.seq == 2
    assert "edited" in finding.problem


def test_deleted_event_is_detected(ledger, db_session):
    target = _event(db_session, ledger[0], 3)
    tamper(db_session, "DELETE FROM custody_events WHERE id = :i", i=target.id)
    finding = _first(db_session)
    assert finding.barcode == ledger[0].barcode
    assert finding.seq == 4
    assert "removed or reordered" in finding.problem


def test_deleted_last_event_is_detected_at_the_head(ledger, db_session):
    target = _event(db_session, ledger[2], 4)
    tamper(db_session, "DELETE FROM custody_events WHERE id = :i", i=target.id)
    finding = _first(db_session)
    assert finding.barcode == ledger[2].barcode
    assert "chain ends at #4" in finding.problem


def test_inserted_event_is_detected(ledger, db_session):
    first = _event(db_session, ledger[0], 1)
    tamper(db_session, "UPDATE custody_events SET seq = seq + 10 WHERE specimen_id = :s AND seq > 1",
           s=ledger[0].id)
    tamper(db_session, "INSERT INTO custody_events (specimen_id, seq, event_type, occurred_at, "
           "recorded_at, actor_name, details, prev_hash, hash) SELECT specimen_id, 2, "
           "'disposed', occurred_at, recorded_at, 'intruder', details, hash, hash "
           "FROM custody_events WHERE id = :i", i=first.id)
    finding = _first(db_session)
    assert finding.barcode == ledger[0].barcode
    assert finding.seq == 2


def test_reordered_events_are_detected(ledger, db_session):
    a, b = _event(db_session, ledger[1], 2), _event(db_session, ledger[1], 3)
    tamper(db_session, "UPDATE custody_events SET seq = 99 WHERE id = :i", i=a.id)
    tamper(db_session, "UPDATE custody_events SET seq = 2 WHERE id = :i", i=b.id)
    tamper(db_session, "UPDATE custody_events SET seq = 3 WHERE id = :i", i=a.id)
    finding = _first(db_session)
    assert finding.barcode == ledger[1].barcode
    assert finding.seq == 2
    assert "inserted, removed or reordered" in finding.problem


def test_dropping_a_whole_chain_is_detected(ledger, db_session):
    tamper(db_session, "DELETE FROM custody_events WHERE specimen_id = :s", s=ledger[2].id)
    finding = _first(db_session)
    assert finding.barcode == ledger[2].barcode
    assert "whole chain was deleted" in finding.problem


def test_dropping_a_chain_and_its_traces_is_caught_by_the_checkpoint(ledger, db_session):
    victim = ledger[2]
    tamper(db_session, "DELETE FROM custody_events WHERE specimen_id = :s", s=victim.id)
    tamper(db_session, "UPDATE specimens SET custody_seq = 0, custody_head = NULL WHERE id = :s",
           s=victim.id)
    report = verify_ledger()
    problems = " | ".join(str(f) for f in report.findings)
    assert "events were deleted" in problems
    assert f"{victim.id // 256 * 256}–" in problems


def test_rewritten_chain_with_recomputed_hashes_is_caught_by_the_signed_checkpoint(
        ledger, db_session, technician):
    """Someone who recomputes every hash still cannot forge the signed checkpoint."""
    victim = ledger[0]
    tamper(db_session, "DELETE FROM custody_events WHERE specimen_id = :s", s=victim.id)
    tamper(db_session, "UPDATE specimens SET custody_seq = 0, custody_head = NULL WHERE id = :s",
           s=victim.id)
    specimen = db_session.get(Specimen, victim.id)
    record_custody_event(specimen, CustodyEventType.DISPOSED, actor=technician)
    report = verify_ledger()
    assert any("differ from checkpoint" in f.problem for f in report.findings)


def test_edited_or_removed_checkpoint_is_detected(ledger, db_session):
    create_checkpoint()
    db_session.commit()
    first = db_session.scalars(sa.select(CustodyCheckpoint).order_by(CustodyCheckpoint.id)).first()
    tamper(db_session, "UPDATE custody_checkpoints SET event_count = 5 WHERE id = :i", i=first.id)
    assert "invalid signature" in _first(db_session).problem
    tamper(db_session, "DELETE FROM custody_checkpoints WHERE id = :i", i=first.id)
    assert "does not link" in _first(db_session).problem


def test_ledger_refuses_update_and_delete_in_postgresql(ledger, db_session):
    conn = db_session.connection()
    if conn.dialect.name != "postgresql":
        pytest.skip("the append-only trigger is PostgreSQL's; SQLite relies on verification")
    from sqlalchemy.exc import DBAPIError

    for sql in ("UPDATE custody_events SET actor_name = 'x'", "DELETE FROM custody_events",
                "TRUNCATE custody_events CASCADE", "DELETE FROM custody_checkpoints"):
        with pytest.raises(DBAPIError, match="append-only"), db_session.begin_nested():
            db_session.execute(sa.text(sql))


def test_cli_verify_reports_the_broken_link(ledger, db_session, app):
    from click.testing import CliRunner

    from biobank.cli import custody_verify

    runner = app.test_cli_runner()
    result = runner.invoke(custody_verify)
    assert result.exit_code == 0, result.output
    assert "custody ledger intact" in result.output
    target = _event(db_session, ledger[1], 1)
    tamper(db_session, "UPDATE custody_events SET actor_name = 'someone else' WHERE id = :i",
           i=target.id)
    db.session.commit()
    result = runner.invoke(custody_verify)
    assert result.exit_code == 1
    assert f"BROKEN: specimen {ledger[1].barcode} event #1" in result.output
    assert isinstance(CliRunner, type)


def test_timeline_reports_a_broken_chain(ledger, db_session, client, technician, headers):
    h = headers(technician)
    target = _event(db_session, ledger[0], 2)
    assert client.get(f"/api/v1/specimens/{ledger[0].barcode}/timeline",
                      headers=h).json["chain"]["intact"] is True
    tamper(db_session, "UPDATE custody_events SET occurred_at = occurred_at WHERE id = :i",
           i=target.id)
    tamper(db_session, "UPDATE custody_events SET actor_name = 'nobody' WHERE id = :i",
           i=target.id)
    chain = client.get(f"/api/v1/specimens/{ledger[0].barcode}/timeline", headers=h).json["chain"]
    assert chain["intact"] is False
    assert "event #2" in chain["problem"] and "edited" in chain["problem"]


def test_worker_processes_find_what_one_process_finds(tmp_path):
    """Chains checked in parallel by worker processes (which see only committed data, so
    this ledger lives in a database of its own) give the same counts and findings, in the
    same order, as one process; the checkpoint's buckets are compared across ranges."""
    from biobank import create_app, migrate
    from biobank.db import read_only
    from biobank.demo import load_demo
    from biobank.services.ledger import BUCKET
    from tests.conftest import separate_database

    app = create_app({"DATABASE_URL": separate_database(tmp_path, "ledger_workers"),
                      "CUSTODY_KEY": "test"})
    with app.app_context():
        migrate.upgrade()
        load_demo(participants=60, seed=5)
        create_checkpoint()
        db.session.commit()

        def both(**options):
            db.session.commit()  # the checks read in transactions of their own, as the CLI's
            with read_only():
                one = verify_ledger(**options)
                db.session.commit()
                many = verify_ledger(workers=2, min_parallel_specimens=0, **options)
                db.session.commit()
            assert [str(f) for f in many.findings] == [str(f) for f in one.findings]
            if not options.get("stop_at_first"):  # each worker stops at its own first
                assert (many.events, many.specimens, many.checkpoints) == (
                    one.events, one.specimens, one.checkpoints)
            return many

        intact = both()
        assert intact.ok and intact.events > 100
        ids = db.session.scalars(sa.select(Specimen.id).where(Specimen.custody_seq > 1)
                                 .order_by(Specimen.id)).all()
        # Several ranges, hence several workers: ids span more than two checkpoint buckets.
        assert ids[-1] - ids[0] > 2 * BUCKET
        low, high = ids[1], ids[-2]
        conn = db.session.connection()
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        conn.execute(sa.text("UPDATE custody_events SET actor_name = 'x' "
                             "WHERE specimen_id = :s AND seq = 2"), {"s": high})
        conn.execute(sa.text("DELETE FROM custody_events WHERE specimen_id = :s AND seq = 1"),
                     {"s": low})
        db.session.commit()
        broken = both()
        assert [f.specimen_id for f in broken.findings][:2] == [low, high]
        assert both(stop_at_first=True).findings[0].specimen_id == low
        db.session.remove()
        db.engine.dispose()
