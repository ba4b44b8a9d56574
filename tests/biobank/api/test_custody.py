"""Correcting a mistaken scan: a new event on the ledger, never an edit of it."""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa

from biobank.models import CustodyEvent
from biobank.models.vocab import SpecimenStatus
from biobank.services.ledger import verify_specimen_chain
from tests.biobank.api.test_scans import _post, scan


def _stored(client, make, site, technician, headers):
    p = make.participant(site=site)
    box = make.box(site=site, name="Box 7")
    s = make.specimen(participant=p, status=SpecimenStatus.RECEIVED, quantity=Decimal("0.030"))
    r = _post(
        client,
        headers(technician),
        scan(s.barcode, "store", location={"container_id": box.id, "position": "B3"}),
    )
    assert r.status_code == 201, r.json
    return s, box


def _correct(client, h, specimen, event_id, reason="wrong tube scanned"):
    return client.post(
        f"/api/v1/specimens/{specimen.id}/custody/corrections",
        json={"event_id": event_id, "reason": reason},
        headers=h,
    )


def test_a_mistaken_consume_is_corrected_and_the_tube_is_back(
    client, make, site, technician, manager, headers, db_session
):
    s, box = _stored(client, make, site, technician, headers)
    refused = _post(client, headers(technician), scan(s.barcode, "consume"))
    assert refused.status_code == 422 and refused.json["errors"][0]["field"] == "note"
    assert "why the tube is used up" in refused.json["detail"]
    consumed = _post(client, headers(technician), scan(s.barcode, "consume", note="ELISA plate 12"))
    assert consumed.json["specimen"]["status"] == "consumed"
    assert consumed.json["specimen"]["container_id"] is None

    r = _correct(client, headers(manager), s, consumed.json["event"]["id"])
    assert r.status_code == 201, r.json
    assert r.json["event_type"] == "corrected"
    assert r.json["details"]["corrects_event_id"] == consumed.json["event"]["id"]
    assert r.json["details"]["reason"] == "wrong tube scanned"
    assert r.json["to_location"].endswith("Box 7 › B3")

    db_session.expire_all()
    assert (s.status, s.quantity, s.container_id, s.position_label) == (
        SpecimenStatus.IN_STORAGE,
        Decimal("0.030"),
        box.id,
        "B3",
    )
    types = db_session.scalars(
        sa.select(CustodyEvent.event_type).where(CustodyEvent.specimen_id == s.id).order_by(CustodyEvent.seq)
    ).all()
    assert [t.value for t in types] == ["stored", "consumed", "corrected"]
    assert verify_specimen_chain(s) is None
    # the tube can be used again
    r = _post(client, headers(technician), scan(s.barcode, "check_out"))
    assert r.status_code == 201, r.json


def test_corrections_need_a_manager_a_reason_and_go_newest_first(
    client, make, site, technician, manager, headers, db_session
):
    s, _box = _stored(client, make, site, technician, headers)
    stored_id = db_session.scalar(sa.select(CustodyEvent.id).where(CustodyEvent.specimen_id == s.id))
    out = _post(client, headers(technician), scan(s.barcode, "check_out")).json["event"]["id"]

    assert _correct(client, headers(technician), s, out).status_code == 403
    r = _correct(client, headers(manager), s, out, reason="")
    assert r.status_code == 422 and r.json["errors"][0]["field"] == "reason"
    r = _correct(client, headers(manager), s, stored_id)
    assert r.status_code == 409 and "correct them first" in r.json["detail"]
    assert _correct(client, headers(manager), s, 10**9).status_code == 404

    assert _correct(client, headers(manager), s, out).status_code == 201
    r = _correct(client, headers(manager), s, out)
    assert r.status_code == 409 and "already corrected" in r.json["detail"]
    # with the check-out undone, the store before it may be corrected in turn
    assert _correct(client, headers(manager), s, stored_id).status_code == 201
    db_session.expire_all()
    assert (s.status, s.container_id) == (SpecimenStatus.RECEIVED, None)


def test_a_correction_does_not_put_a_tube_where_another_now_is(
    client, make, site, technician, manager, headers, db_session
):
    s, box = _stored(client, make, site, technician, headers)
    gone = _post(client, headers(technician), scan(s.barcode, "mark_missing", note="not in box"))
    assert gone.status_code == 201, gone.json
    other = make.specimen(participant=s.participant, status=SpecimenStatus.RECEIVED)
    r = _post(
        client,
        headers(technician),
        scan(other.barcode, "store", location={"container_id": box.id, "position": "B3"}),
    )
    assert r.status_code == 201
    r = _correct(client, headers(manager), s, gone.json["event"]["id"])
    assert r.status_code == 409 and "cannot put it back" in r.json["detail"]
    db_session.expire_all()
    assert s.status is SpecimenStatus.MISSING


def test_another_sites_specimen_cannot_be_corrected(
    client, make, site, other_site, manager, headers, db_session
):
    s = make.specimen(participant=make.participant(site=other_site))
    assert _correct(client, headers(manager), s, 1).status_code == 404
