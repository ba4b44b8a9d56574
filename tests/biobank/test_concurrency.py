"""Real concurrent requests on committed data: two technicians racing for one position."""

from __future__ import annotations

import sqlite3
import threading
from decimal import Decimal

import pytest
import sqlalchemy as sa

from biobank.db import db
from biobank.models import Participant, Specimen
from biobank.models.vocab import SpecimenStatus
from biobank.services.users import create_token
from tests.conftest import wipe
from tests.factories import PASSWORD, Builder


@pytest.fixture
def committed(app):
    """Data committed for real (other connections must see it), removed afterwards."""
    with app.app_context():
        make = Builder(db.session)
        site = make.site(code="RACE")
        tech = make.user("racer", role="technician", sites=[site])
        participant = make.participant(site=site)
        box = make.box(site=site)
        secret = create_token(tech, name="race")
        db.session.commit()
        yield {"participant": participant.id, "box": box.id, "token": secret}
        db.session.rollback()
        wipe(db.engine)
        db.session.remove()


def test_two_users_racing_for_one_position_exactly_one_wins(app, committed):
    client = app.test_client()
    barrier = threading.Barrier(4)
    statuses: list[int] = []

    def place(n: int) -> None:
        barrier.wait()
        r = client.post(
            "/api/v1/specimens/",
            headers={"Authorization": f"Bearer {committed['token']}"},
            json={
                "barcode": f"RACE{n:04d}",
                "participant_id": committed["participant"],
                "material_type": "PLASMA",
                "quantity": "0.5",
                "unit": "mL",
                "container_id": committed["box"],
                "pos_row": 3,
                "pos_col": 3,
            },
        )
        statuses.append(r.status_code)

    threads = [threading.Thread(target=place, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert sorted(statuses) == [201, 409, 409, 409]
    with app.app_context():
        placed = db.session.scalars(
            sa.select(Specimen).where(Specimen.container_id == committed["box"])
        ).all()
        assert len(placed) == 1
        assert placed[0].quantity == Decimal("0.5")
        db.session.remove()


def test_parallel_scanners_with_retries_record_every_scan_exactly_once(app):
    """Six scanner clients, each retrying some scans, some retries racing each other."""
    import datetime as dt
    import random
    import uuid

    from biobank.models import CustodyEvent, Scan
    from biobank.services.ledger import verify_ledger

    with app.app_context():
        make = Builder(db.session)
        site = make.site(code="SCAN")
        tech = make.user("scanner", role="technician", sites=[site])
        participant = make.participant(site=site)
        box = make.box(site=site, n_rows=10, n_cols=10)
        tubes = [
            make.specimen(participant=participant, status=SpecimenStatus.COLLECTED).barcode for _ in range(60)
        ]
        token = create_token(tech, name="scanners")
        db.session.commit()
        box_id = box.id
    try:
        plans = []  # per client: list of scan bodies in order
        for client_no in range(6):
            bodies = []
            for n, barcode in enumerate(tubes[client_no * 10 : (client_no + 1) * 10]):
                slot = client_no * 10 + n
                for action, extra in (
                    ("receive", {}),
                    (
                        "store",
                        {
                            "location": {
                                "container_id": box_id,
                                "pos_row": slot // 10 + 1,
                                "pos_col": slot % 10 + 1,
                            }
                        },
                    ),
                    ("check_out", {}),
                    ("thaw", {}),
                    ("check_in", {}),
                ):
                    bodies.append(
                        {
                            "barcode": barcode,
                            "action": action,
                            "client_event_id": uuid.uuid4().hex,
                            "scanned_at": dt.datetime.now(dt.UTC).isoformat(),
                            **extra,
                        }
                    )
            plans.append(bodies)
        answers: dict[str, list] = {}
        lock = threading.Lock()
        errors: list = []

        def send(client, body):
            r = client.post("/api/v1/scans/", json=body, headers={"Authorization": f"Bearer {token}"})
            with lock:
                answers.setdefault(body["client_event_id"], []).append((r.status_code, r.json))
            return r

        def scanner(bodies, seed):
            rng = random.Random(seed)
            client = app.test_client()
            for body in bodies:
                r = send(client, body)
                if r.status_code != 201:
                    errors.append(r.json)
                if rng.random() < 0.3:  # the scanner did not see the answer and retries
                    send(client, body)
                if rng.random() < 0.1:  # a retry racing from a second connection
                    racer = threading.Thread(target=send, args=(app.test_client(), body))
                    racer.start()
                    send(client, body)
                    racer.join()

        threads = [threading.Thread(target=scanner, args=(plan, n)) for n, plan in enumerate(plans)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)

        assert errors == []
        for replies in answers.values():
            assert {code for code, _ in replies} == {201}
            assert all(body == replies[0][1] for _, body in replies)
        with app.app_context():
            assert db.session.scalar(sa.select(sa.func.count()).select_from(Scan)) == 300
            assert db.session.scalar(sa.select(sa.func.count()).select_from(CustodyEvent)) == 300
            stored = db.session.scalars(sa.select(Specimen).where(Specimen.barcode.in_(tubes)))
            assert {(s.status, s.freeze_thaw_count) for s in stored} == {(SpecimenStatus.IN_STORAGE, 1)}
            assert verify_ledger().ok
            db.session.remove()
    finally:
        with app.app_context():
            wipe(db.engine)
            db.session.remove()


def test_two_requests_racing_for_the_last_aliquot_exactly_one_gets_it(app):
    from biobank.db import transaction
    from biobank.models import Allocation
    from biobank.models.vocab import MaterialType, QuantityUnit
    from biobank.services import cohorts, requests

    with app.app_context():
        make = Builder(db.session)
        site = make.site(code="LAST")
        manager = make.user("allocator", role="manager", sites=[site])
        researchers = [make.user(f"asker{i}", role="researcher", sites=[site]) for i in (1, 2)]
        person = make.participant(site=site)
        case = make.case(participant=person)
        visit = make.visit(participant=person, case=case)
        primary = make.specimen(
            participant=person,
            collection_event=visit,
            material_type=MaterialType.SERUM,
            quantity=Decimal("0"),
            unit=QuantityUnit.UL,
            status=SpecimenStatus.CONSUMED,
        )
        last = make.specimen(
            participant=person,
            collection_event=visit,
            parent=primary,
            material_type=MaterialType.SERUM,
            quantity=Decimal("50"),
            unit=QuantityUnit.UL,
            status=SpecimenStatus.IN_STORAGE,
        )
        filters = {"op": "=", "content": {"field": "participants.site", "value": "LAST"}}
        ids = []
        for researcher in researchers:
            with transaction():
                cohort = cohorts.create_cohort(actor=researcher, name="serum", level="cases", filters=filters)
                request = requests.submit(
                    actor=researcher,
                    title="Serum",
                    purpose="Cytokines in lupus serum",
                    ethics_reference="IRB-1",
                    cohort_id=cohort.id,
                    consent_scopes=[],
                    requirements={"material_type": "SERUM", "min_quantity": 20, "unit": "uL"},
                )
            with transaction():
                requests.decide(request, actor=manager, approve=True, password=PASSWORD)
            ids.append(request.id)
        token = create_token(manager, name="race")
        db.session.commit()
        last_id = last.id
    client = app.test_client()
    barrier = threading.Barrier(2)
    answers: list[dict] = []

    def allocate(request_id: int) -> None:
        barrier.wait()
        r = client.post(
            f"/api/v1/requests/{request_id}/allocation", headers={"Authorization": f"Bearer {token}"}
        )
        answers.append({"status": r.status_code, **(r.json or {})})

    try:
        threads = [threading.Thread(target=allocate, args=(i,)) for i in ids]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert [a["status"] for a in answers] == [200, 200], answers
        assert sorted(a["tubes"] for a in answers) == [0, 1]
        with app.app_context():
            live = db.session.scalars(
                sa.select(Allocation).where(
                    Allocation.specimen_id == last_id, Allocation.released_at.is_(None)
                )
            ).all()
            assert len(live) == 1
            db.session.remove()
    finally:
        with app.app_context():
            wipe(db.engine)
            db.session.remove()


def _hold_tube(app, barcode: str):
    """A connection of its own holding what a scan of *barcode* waits for: the tube's row
    (PostgreSQL) or the database's write lock (SQLite). Returns (release, waiting), where
    ``waiting()`` counts the requests queued behind it (None where the database cannot tell)."""
    with app.app_context():
        engine = db.engine
    if engine.dialect.name != "postgresql":
        raw = sqlite3.connect(engine.url.database, isolation_level=None)
        raw.execute("BEGIN IMMEDIATE")

        def release() -> None:
            raw.execute("ROLLBACK")
            raw.close()

        return release, lambda: None
    conn = engine.connect()
    conn.execute(sa.select(Specimen.id).where(Specimen.barcode == barcode).with_for_update())

    def release() -> None:
        conn.rollback()
        conn.close()

    def waiting() -> int:
        with engine.connect() as probe:
            return probe.execute(
                sa.text(
                    "select count(*) from pg_stat_activity where wait_event_type = 'Lock' "
                    "and datname = current_database()"
                )
            ).scalar_one()

    return release, waiting


@pytest.mark.parametrize("batch", [False, True], ids=["scan", "batch"])
def test_a_retry_racing_its_first_attempt_gets_the_first_answer(app, committed, batch):
    """A scanner that timed out resends a scan while the first attempt is still running.
    Both pass the replay check before either has recorded anything; the tube's lock lets
    one through, the other then fails (the tube moved, or the client event id is taken)
    and answers with what the first one recorded."""
    import datetime as dt
    import time
    import uuid

    from biobank.models import CustodyEvent, Scan

    with app.app_context():
        participant = db.session.get_one(Participant, committed["participant"])
        tube = Builder(db.session).specimen(participant=participant, status=SpecimenStatus.RECEIVED)
        db.session.commit()
        barcode, tube_id = tube.barcode, tube.id
    body = {
        "barcode": barcode,
        "action": "store",
        "client_event_id": uuid.uuid4().hex,
        "scanned_at": dt.datetime.now(dt.UTC).isoformat(),
        "location": {"container_id": committed["box"], "pos_row": 1, "pos_col": 1},
    }
    path, sent = ("/api/v1/scans/batch", {"scans": [body]}) if batch else ("/api/v1/scans/", body)
    answers: list = []

    def send() -> None:
        r = app.test_client().post(path, json=sent, headers={"Authorization": f"Bearer {committed['token']}"})
        answers.append((r.status_code, r.headers.get("Idempotent-Replayed"), r.get_data()))

    release, waiting = _hold_tube(app, barcode)
    racers = [threading.Thread(target=send) for _ in range(2)]
    try:
        for racer in racers:
            racer.start()
        deadline = time.monotonic() + 10
        while (count := waiting()) is not None and count < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        if count is None:
            time.sleep(0.3)
        assert count is None or count == 2, "both attempts should be waiting for the tube"
    finally:
        release()
        for racer in racers:
            racer.join(timeout=60)

    assert [status for status, _, _ in answers] == [201, 201], answers
    assert answers[0][2] == answers[1][2]  # byte for byte
    if not batch:
        assert sorted(str(replayed) for _, replayed, _ in answers) == ["None", "true"]
    with app.app_context():
        assert (
            db.session.scalar(sa.select(sa.func.count()).select_from(Scan).where(Scan.specimen_id == tube_id))
            == 1
        )
        assert (
            db.session.scalar(
                sa.select(sa.func.count())
                .select_from(CustodyEvent)
                .where(CustodyEvent.specimen_id == tube_id)
            )
            == 1
        )
        db.session.remove()
