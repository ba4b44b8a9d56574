"""Tampering with the custody ledger directly in the database is detected and named."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from biobank.db import db
from biobank.models import CustodyCheckpoint, CustodyEvent, Specimen
from biobank.models.vocab import CustodyEventType
from biobank.services.custody import record_custody_event
from biobank.services.ledger import create_checkpoint, export_checkpoints, verify_ledger


class Ledger(list):
    """The ledger's specimens, and the id of the checkpoint taken of them."""

    checkpoint_id: int


@pytest.fixture
def ledger(make, site, technician, db_session):
    """Three specimens with four events each, and a checkpoint."""
    p = make.participant(site=site)
    specimens = [make.specimen(participant=p, history=False) for _ in range(3)]
    for s in specimens:
        for kind in (
            CustodyEventType.COLLECTED,
            CustodyEventType.RECEIVED,
            CustodyEventType.STORED,
            CustodyEventType.CHECKED_OUT,
        ):
            record_custody_event(s, kind, actor=technician, to_location="Box 1")
    specimens = Ledger(specimens)
    specimens.checkpoint_id = checkpoint(db_session).id
    assert verify_ledger().ok
    return specimens


def checkpoint(db_session):
    """A checkpoint committed, then written to the store outside the database (what
    `biobank custody checkpoint` and the scheduled task do)."""
    made = create_checkpoint()
    db_session.commit()
    export_checkpoints()
    return made


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
    return db_session.scalars(
        sa.select(CustodyEvent).where(CustodyEvent.specimen_id == specimen.id, CustodyEvent.seq == seq)
    ).one()


def _first(db_session):
    report = verify_ledger(stop_at_first=True)
    assert not report.ok
    return report.findings[0]


def test_edited_event_is_detected(ledger, db_session):
    target = _event(db_session, ledger[1], 2)
    tamper(db_session, "UPDATE custody_events SET to_location = 'Freezer 9' WHERE id = :i", i=target.id)
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
    tamper(
        db_session,
        "UPDATE custody_events SET seq = seq + 10 WHERE specimen_id = :s AND seq > 1",
        s=ledger[0].id,
    )
    tamper(
        db_session,
        "INSERT INTO custody_events (specimen_id, seq, event_type, occurred_at, "
        "recorded_at, actor_name, details, prev_hash, hash) SELECT specimen_id, 2, "
        "'disposed', occurred_at, recorded_at, 'intruder', details, hash, hash "
        "FROM custody_events WHERE id = :i",
        i=first.id,
    )
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
    tamper(db_session, "UPDATE specimens SET custody_seq = 0, custody_head = NULL WHERE id = :s", s=victim.id)
    report = verify_ledger()
    problems = " | ".join(str(f) for f in report.findings)
    assert "events were deleted" in problems
    assert f"{victim.id // 256 * 256}–" in problems


def test_rewritten_chain_with_recomputed_hashes_is_caught_by_the_signed_checkpoint(
    ledger, db_session, technician
):
    """Someone who recomputes every hash still cannot forge the signed checkpoint."""
    victim = ledger[0]
    tamper(db_session, "DELETE FROM custody_events WHERE specimen_id = :s", s=victim.id)
    tamper(db_session, "UPDATE specimens SET custody_seq = 0, custody_head = NULL WHERE id = :s", s=victim.id)
    specimen = db_session.get(Specimen, victim.id)
    record_custody_event(specimen, CustodyEventType.DISPOSED, actor=technician)
    report = verify_ledger()
    assert any("differ from checkpoint" in f.problem for f in report.findings)


def test_edited_or_removed_checkpoint_is_detected(ledger, db_session):
    checkpoint(db_session)
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

    for sql in (
        "UPDATE custody_events SET actor_name = 'x'",
        "DELETE FROM custody_events",
        "TRUNCATE custody_events CASCADE",
        "DELETE FROM custody_checkpoints",
    ):
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
    tamper(db_session, "UPDATE custody_events SET actor_name = 'someone else' WHERE id = :i", i=target.id)
    db.session.commit()
    result = runner.invoke(custody_verify)
    assert result.exit_code == 1
    assert f"BROKEN: specimen {ledger[1].barcode} event #1" in result.output
    assert isinstance(CliRunner, type)


def test_timeline_reports_a_broken_chain(ledger, db_session, client, technician, headers):
    h = headers(technician)
    target = _event(db_session, ledger[0], 2)
    assert (
        client.get(f"/api/v1/specimens/{ledger[0].barcode}/timeline", headers=h).json["chain"]["intact"]
        is True
    )
    tamper(db_session, "UPDATE custody_events SET occurred_at = occurred_at WHERE id = :i", i=target.id)
    tamper(db_session, "UPDATE custody_events SET actor_name = 'nobody' WHERE id = :i", i=target.id)
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

    app = create_app(
        {
            "DATABASE_URL": separate_database(tmp_path, "ledger_workers"),
            "CUSTODY_KEY": "test",
            "CUSTODY_CHECKPOINT_DIR": str(tmp_path),
        }
    )
    with app.app_context():
        migrate.upgrade()
        load_demo(participants=60, seed=5)
        checkpoint(db.session)

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
                    one.events,
                    one.specimens,
                    one.checkpoints,
                )
            return many

        intact = both()
        assert intact.ok and intact.events > 100
        ids = db.session.scalars(
            sa.select(Specimen.id).where(Specimen.custody_seq > 1).order_by(Specimen.id)
        ).all()
        # Several ranges, hence several workers: ids span more than two checkpoint buckets.
        assert ids[-1] - ids[0] > 2 * BUCKET
        low, high = ids[1], ids[-2]
        conn = db.session.connection()
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        conn.execute(
            sa.text("UPDATE custody_events SET actor_name = 'x' WHERE specimen_id = :s AND seq = 2"),
            {"s": high},
        )
        conn.execute(sa.text("DELETE FROM custody_events WHERE specimen_id = :s AND seq = 1"), {"s": low})
        db.session.commit()
        broken = both()
        assert [f.specimen_id for f in broken.findings][:2] == [low, high]
        assert both(stop_at_first=True).findings[0].specimen_id == low
        db.session.remove()
        db.engine.dispose()


# --- the keyed ledger: one test per way of tampering, done as a database administrator ----


@pytest.fixture
def keys(app):
    """Set the custody keys for one test (the keyring is re-read), then put them back."""
    from biobank.keys import forget_keyring

    saved = {k: app.config.get(k) for k in ("CUSTODY_KEY", "CUSTODY_RETIRED_KEYS")}

    def use(current, retired=""):
        app.config.update(CUSTODY_KEY=current, CUSTODY_RETIRED_KEYS=retired)
        forget_keyring()

    yield use
    app.config.update(saved)
    forget_keyring()


def _problems(report):
    return " | ".join(str(f) for f in report.findings)


def test_editing_the_actor_id_is_detected(ledger, db_session, make):
    intruder = make.user("intruder")
    target = _event(db_session, ledger[1], 3)
    tamper(db_session, "UPDATE custody_events SET actor_id = :a WHERE id = :i", a=intruder.id, i=target.id)
    finding = _first(db_session)
    assert (finding.barcode, finding.seq) == (ledger[1].barcode, 3)
    assert "edited or forged" in finding.problem


def test_a_forged_event_with_a_correct_sha256_is_detected(ledger, db_session):
    """The forger computes the plain SHA-256 of the event's content, as anyone can, and
    moves the tube's head to it: without the custody key the digest cannot be made."""
    from biobank.services.custody import content_hash

    victim = ledger[0]
    head = _event(db_session, victim, 4)
    fields = {
        "barcode": victim.barcode,
        "seq": 5,
        "event_type": CustodyEventType.DISPOSED,
        "occurred_at": head.occurred_at,
        "recorded_at": head.recorded_at,
        "actor_name": "tech",
        "from_location": None,
        "to_location": None,
        "details": {},
        "client_event_id": None,
        "prev_hash": head.hash,
    }
    digest = content_hash(**fields)
    for key_id in (None, head.key_id):  # no key named, or the real key's id copied
        tamper(db_session, "DELETE FROM custody_events WHERE specimen_id = :s AND seq = 5", s=victim.id)
        tamper(
            db_session,
            "INSERT INTO custody_events (specimen_id, seq, event_type, "
            "occurred_at, recorded_at, actor_name, details, prev_hash, hash, key_id) "
            "SELECT specimen_id, 5, 'disposed', occurred_at, recorded_at, 'tech', details, "
            ":prev, :h, :k FROM custody_events WHERE id = :i",
            prev=head.hash,
            h=digest,
            k=key_id,
            i=head.id,
        )
        tamper(
            db_session,
            "UPDATE specimens SET custody_seq = 5, custody_head = :h WHERE id = :s",
            h=digest,
            s=victim.id,
        )
        finding = _first(db_session)
        assert (finding.barcode, finding.seq) == (victim.barcode, 5)
        assert ("without the custody key" if key_id is None else "edited or forged") in finding.problem


def test_an_event_written_by_the_lims_under_another_key_is_detected(ledger, db_session, keys, technician):
    keys("a key this biobank never had")
    specimen = db_session.get(Specimen, ledger[2].id)
    record_custody_event(specimen, CustodyEventType.DISPOSED, actor=technician)
    db_session.commit()
    keys("")  # back to this instance's own key
    finding = _first(db_session)
    assert (finding.barcode, finding.seq) == (ledger[2].barcode, 5)
    assert "does not know: forged with another key" in finding.problem


def drop_last_event(db_session, victim):
    """Delete the fourth and last event of *victim* and move its head back to the third."""
    third = _event(db_session, victim, 3)
    tamper(db_session, "DELETE FROM custody_events WHERE specimen_id = :s AND seq = 4", s=victim.id)
    tamper(
        db_session,
        "UPDATE specimens SET custody_seq = 3, custody_head = :h WHERE id = :s",
        h=third.hash,
        s=victim.id,
    )


def test_deleting_the_last_event_and_moving_the_head_back_is_detected(ledger, db_session):
    victim = ledger[1]
    drop_last_event(db_session, victim)
    problems = _problems(verify_ledger())
    assert "covered 12 events; 11 of them remain: events were deleted" in problems
    assert f"specimens {victim.id // 256 * 256}–" in problems
    assert f"12 events at checkpoint {ledger.checkpoint_id}, 11 now: a chain was shortened" in problems


def test_an_event_inserted_mid_chain_and_the_chain_rehashed_is_detected(ledger, db_session):
    """Re-hashing needs the key: the rehashed events carry digests no key makes."""
    from biobank.services.custody import content_hash

    victim = ledger[0]
    for shift in (100, -99):  # in two steps: seq is unique within a chain
        tamper(
            db_session,
            "UPDATE custody_events SET seq = seq + :d WHERE specimen_id = :s AND seq >= 3",
            d=shift,
            s=victim.id,
        )
    second = _event(db_session, victim, 2)
    tamper(
        db_session,
        "INSERT INTO custody_events (specimen_id, seq, event_type, occurred_at, "
        "recorded_at, actor_name, details, prev_hash, hash, key_id) SELECT specimen_id, 3, "
        "'checked_out', occurred_at, recorded_at, 'tech', details, hash, 'x', key_id "
        "FROM custody_events WHERE id = :i",
        i=second.id,
    )
    prev = second.hash
    for event in db_session.scalars(
        sa.select(CustodyEvent)
        .where(CustodyEvent.specimen_id == victim.id, CustodyEvent.seq >= 3)
        .order_by(CustodyEvent.seq)
    ).all():
        digest = content_hash(
            barcode=victim.barcode,
            seq=event.seq,
            event_type=event.event_type,
            occurred_at=event.occurred_at,
            recorded_at=event.recorded_at,
            actor_name=event.actor_name,
            from_location=event.from_location,
            to_location=event.to_location,
            details=event.details,
            client_event_id=event.client_event_id,
            prev_hash=prev,
        )
        tamper(
            db_session,
            "UPDATE custody_events SET prev_hash = :p, hash = :h WHERE id = :i",
            p=prev,
            h=digest,
            i=event.id,
        )
        prev = digest
    tamper(
        db_session,
        "UPDATE specimens SET custody_seq = 5, custody_head = :h WHERE id = :s",
        h=prev,
        s=victim.id,
    )
    finding = _first(db_session)
    assert (finding.barcode, finding.seq) == (victim.barcode, 3)
    assert "edited or forged" in finding.problem


def test_a_wiped_chain_with_its_head_reset_leaves_a_specimen_without_history(ledger, db_session):
    victim = ledger[2]
    tamper(db_session, "DELETE FROM custody_events WHERE specimen_id = :s", s=victim.id)
    tamper(db_session, "UPDATE specimens SET custody_seq = 0, custody_head = NULL WHERE id = :s", s=victim.id)
    finding = _first(db_session)
    assert finding.barcode == victim.barcode and "no custody history" in finding.problem


def test_a_chain_deleted_with_its_specimen_is_caught_by_the_checkpoint(ledger, db_session):
    victim = ledger[2]
    tamper(db_session, "DELETE FROM custody_events WHERE specimen_id = :s", s=victim.id)
    tamper(
        db_session,
        "DELETE FROM audit_log WHERE entity_type = 'Specimen' AND entity_id = :s",
        s=str(victim.id),
    ) if _has_table(db_session, "audit_log") else None
    tamper(db_session, "DELETE FROM specimens WHERE id = :s", s=victim.id)
    problems = _problems(verify_ledger())
    assert "covered 12 events; 8 of them remain" in problems
    assert (
        f"12 events at checkpoint {ledger.checkpoint_id}, 8 now: a chain was shortened or deleted"
    ) in problems


def _has_table(db_session, name):
    return name in sa.inspect(db_session.connection()).get_table_names()


def test_deleting_every_checkpoint_row_is_caught_by_the_store_outside(ledger, db_session, technician):
    latest = checkpoint(db_session).id
    tamper(db_session, "DELETE FROM custody_checkpoints")
    report = verify_ledger()
    assert report.external == 2 and report.checkpoints == 0
    assert f"checkpoint {ledger.checkpoint_id} of" in _problems(report)
    assert "kept outside the database, is missing from it" in _problems(report)
    # …and what was done after is still compared with the latest checkpoint kept outside
    drop_last_event(db_session, ledger[0])
    assert f"12 events at checkpoint {latest}, 11 now" in _problems(verify_ledger())


def test_wiping_every_event_and_checkpoint_is_not_intact(ledger, db_session):
    tamper(db_session, "DELETE FROM custody_events")
    tamper(db_session, "DELETE FROM custody_checkpoints")
    tamper(db_session, "UPDATE specimens SET custody_seq = 0, custody_head = NULL")
    report = verify_ledger()
    assert not report.ok and report.events == 0
    problems = _problems(report)
    for specimen in ledger:
        assert f"specimen {specimen.barcode}: it has no custody history" in problems
    assert "kept outside the database, is missing from it" in problems


def test_a_checkpoint_missing_from_the_store_outside_is_a_finding(ledger, db_session):
    from biobank.services.ledger import store_path

    store_path().unlink()
    problems = _problems(verify_ledger())
    assert f"checkpoint {ledger.checkpoint_id} is not in the external checkpoint store" in problems
    export_checkpoints()  # written out again from the database
    assert verify_ledger().ok


def test_an_edited_store_outside_is_detected(ledger, db_session):
    import json

    from biobank.services.ledger import store_path

    path = store_path()
    record = json.loads(path.read_text())
    record["event_count"] = 11
    path.write_text(json.dumps(record) + "\n")
    assert f"external store's checkpoint {ledger.checkpoint_id} has an invalid signature" in _problems(
        verify_ledger()
    )


def test_a_rotated_key_keeps_earlier_events_verifiable(ledger, db_session, keys, technician):
    from biobank.keys import key_id

    keys("first key")
    specimen = db_session.get(Specimen, ledger[0].id)
    first = record_custody_event(specimen, CustodyEventType.RECEIVED, actor=technician)
    checkpoint(db_session)
    keys("second key", retired="first key, " + _instance_key())
    second = record_custody_event(specimen, CustodyEventType.STORED, actor=technician)
    checkpoint(db_session)
    assert (first.key_id, second.key_id) == (key_id(b"first key"), key_id(b"second key"))
    assert verify_ledger().ok, _problems(verify_ledger())
    keys("second key", retired=_instance_key())  # the first key lost
    problems = _problems(verify_ledger())
    assert f"custody key {first.key_id}, which this instance does not know" in problems


def _instance_key():
    from pathlib import Path

    from flask import current_app

    return (Path(current_app.instance_path) / "custody_key").read_text().strip()


def _legacy_events(db_session, specimen, kinds):
    """Events as written before the custody key: plain SHA-256, no key id."""
    from biobank.db import utcnow
    from biobank.services.custody import content_hash

    prev, seq = specimen.custody_head, specimen.custody_seq
    for kind in kinds:
        seq += 1
        now = utcnow()
        fields = {
            "barcode": specimen.barcode,
            "seq": seq,
            "event_type": kind,
            "occurred_at": now,
            "recorded_at": now,
            "actor_name": "tech",
            "from_location": None,
            "to_location": "Box 1",
            "details": {},
            "client_event_id": None,
            "prev_hash": prev,
        }
        digest = content_hash(**fields)
        tamper(
            db_session,
            "INSERT INTO custody_events (specimen_id, seq, event_type, "
            "occurred_at, recorded_at, actor_name, to_location, details, prev_hash, hash) "
            "VALUES (:s, :q, :t, :o, :o, 'tech', 'Box 1', '{}', :p, :h)",
            s=specimen.id,
            q=seq,
            t=kind.value,
            o=now,
            p=prev,
            h=digest,
        )
        prev = digest
    tamper(
        db_session,
        "UPDATE specimens SET custody_seq = :q, custody_head = :h WHERE id = :s",
        q=seq,
        h=prev,
        s=specimen.id,
    )


def test_events_from_before_the_key_are_sealed_once_and_held_to_the_seal(
    make, site, technician, db_session, app
):
    from biobank.services.ledger import seal_unkeyed_events

    person = make.participant(site=site)
    old = [make.specimen(participant=person, history=False) for _ in range(2)]
    for specimen in old:
        _legacy_events(db_session, specimen, [CustodyEventType.COLLECTED, CustodyEventType.STORED])
    assert "no seal covers it" in _first(db_session).problem  # not sealed yet
    seal = seal_unkeyed_events()
    db_session.commit()
    export_checkpoints()
    assert seal.kind == "seal" and seal.event_count == 4 and seal_unkeyed_events() is None
    specimen = db_session.get(Specimen, old[0].id)
    record_custody_event(specimen, CustodyEventType.CHECKED_OUT, actor=technician)
    db_session.commit()
    report = verify_ledger()
    assert report.ok, _problems(report)
    assert report.seal["events"] == 4 and report.seal["id"] == seal.id

    runner = app.test_cli_runner()
    from biobank.cli import custody_verify

    result = runner.invoke(custody_verify)
    assert result.exit_code == 0 and "events before the custody key: 4, sealed on" in result.output

    # a sealed chain rewritten with correct plain hashes, and an unkeyed event after it
    victim = db_session.get(Specimen, old[1].id)
    tamper(db_session, "DELETE FROM custody_events WHERE specimen_id = :s", s=victim.id)
    tamper(db_session, "UPDATE specimens SET custody_seq = 0, custody_head = NULL WHERE id = :s", s=victim.id)
    _legacy_events(db_session, db_session.get(Specimen, victim.id), [CustodyEventType.COLLECTED])
    problems = _problems(verify_ledger())
    assert "no seal covers it" in problems  # written after the seal
    assert "covered 4 events; 3 of them remain" in problems


def test_the_upgrade_seals_an_earlier_ledger(tmp_path):
    """`biobank db upgrade` (migrate.upgrade) seals events from before the key."""
    from biobank import create_app, migrate
    from biobank.models import CustodyCheckpoint
    from biobank.services.custody import content_hash
    from tests.conftest import separate_database
    from tests.factories import Builder

    app = create_app(
        {
            "DATABASE_URL": separate_database(tmp_path, "ledger_seal"),
            "CUSTODY_KEY": "k",
            "CUSTODY_CHECKPOINT_DIR": str(tmp_path),
        }
    )
    with app.app_context():
        migrate.upgrade()
        make = Builder(db.session)
        person = make.participant(site=make.site(code="OLD", name="Old"))
        specimen = make.specimen(participant=person, history=False)
        record = make.user("old-tech")
        digest = content_hash(
            barcode=specimen.barcode,
            seq=1,
            event_type=CustodyEventType.COLLECTED,
            occurred_at=specimen.created_at,
            recorded_at=specimen.created_at,
            actor_name=record.username,
            from_location=None,
            to_location=None,
            details={},
            client_event_id=None,
            prev_hash=None,
        )
        db.session.add(
            CustodyEvent(
                specimen_id=specimen.id,
                seq=1,
                event_type=CustodyEventType.COLLECTED,
                occurred_at=specimen.created_at,
                recorded_at=specimen.created_at,
                actor_name="old-tech",
                details={},
                hash=digest,
            )
        )
        specimen.custody_seq, specimen.custody_head = 1, digest
        db.session.commit()
        migrate.upgrade()
        [seal] = db.session.scalars(sa.select(CustodyCheckpoint)).all()
        assert (seal.kind, seal.event_count) == ("seal", 1)
        report = verify_ledger()
        assert report.ok and report.seal["events"] == 1 and report.external == 1
        db.session.rollback()  # end this read: the upgrade takes the write lock
        migrate.upgrade()  # never sealed twice
        assert db.session.scalar(sa.select(sa.func.count(CustodyCheckpoint.id))) == 1
        db.session.remove()
        db.engine.dispose()
