"""Real concurrent requests on committed data: two technicians racing for one position."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
import sqlalchemy as sa

from biobank.db import db
from biobank.models import Specimen
from biobank.services.users import create_token
from tests.conftest import wipe
from tests.factories import Builder


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
        r = client.post("/api/v1/specimens/", headers={
            "Authorization": f"Bearer {committed['token']}"}, json={
            "barcode": f"RACE{n:04d}", "participant_id": committed["participant"],
            "material_type": "PLASMA", "quantity": "0.5", "unit": "mL",
            "container_id": committed["box"], "pos_row": 3, "pos_col": 3})
        statuses.append(r.status_code)

    threads = [threading.Thread(target=place, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert sorted(statuses) == [201, 409, 409, 409]
    with app.app_context():
        placed = db.session.scalars(sa.select(Specimen).where(
            Specimen.container_id == committed["box"])).all()
        assert len(placed) == 1
        assert placed[0].quantity == Decimal("0.5")
        db.session.remove()
