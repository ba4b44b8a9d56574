"""Scans: lifecycle rules, exactly-once recording and bad input."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid

import sqlalchemy as sa

from biobank.barcodes import make_barcode
from biobank.models import CustodyEvent, Scan
from biobank.models.vocab import MaterialType, SpecimenStatus


def scan(barcode, action, **more):
    body = {
        "barcode": barcode,
        "action": action,
        "client_event_id": uuid.uuid4().hex,
        "scanned_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    body.update(more)
    return body


def _post(client, h, body):
    return client.post("/api/v1/scans/", json=body, headers=h)


def test_full_lifecycle_by_scans(client, make, site, other_site, technician, headers, db_session):
    h = headers(technician)
    p = make.participant(site=site)
    s = make.specimen(participant=p, barcode=make_barcode("CTR", MaterialType.PLASMA, 77))
    box = make.box(site=site, barcode="BOX-1", name="Box 1")

    r = _post(client, h, scan(s.barcode, "receive", condition="acceptable"))
    assert r.status_code == 201, r.json
    assert r.json["specimen"]["status"] == "received"
    r = _post(client, h, scan(s.barcode, "store", location={"container_barcode": "BOX-1", "position": "C4"}))
    assert r.json["specimen"]["position"] == "C4"
    assert r.json["event"]["to_location"].endswith("Box 1 › C4")
    assert set(r.json["allowed_actions"]) >= {"check_out", "move", "ship"}
    r = _post(
        client, h, scan(s.barcode, "move", location={"container_id": box.id, "pos_row": 1, "pos_col": 2})
    )
    assert r.json["event"]["from_location"].endswith("C4")
    r = _post(client, h, scan(s.barcode, "check_out"))
    assert r.json["specimen"]["status"] == "checked_out"
    r = _post(client, h, scan(s.barcode, "thaw"))
    assert r.json["specimen"]["freeze_thaw_count"] == 1
    r = _post(client, h, scan(s.barcode, "check_in"))
    assert r.json["specimen"]["status"] == "in_storage"
    assert r.json["specimen"]["position"] == "A2"
    r = _post(client, h, scan(s.barcode, "ship", destination_site_id=other_site.id))
    assert r.json["specimen"]["status"] == "in_transit"
    assert r.json["specimen"]["container_id"] is None

    events = db_session.scalars(
        sa.select(CustodyEvent).where(CustodyEvent.specimen_id == s.id).order_by(CustodyEvent.seq)
    ).all()
    assert [e.event_type.value for e in events] == [
        "received",
        "stored",
        "moved",
        "checked_out",
        "thawed",
        "checked_in",
        "shipped",
    ]
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(events))

    receiver = make.user("receiver", role="technician", sites=[other_site])
    r = _post(client, headers(receiver), scan(s.barcode, "receive_at_destination"))
    assert r.status_code == 201, r.json
    assert r.json["specimen"]["site_id"] == other_site.id
    assert r.json["specimen"]["status"] == "received"


def test_illegal_transition_is_409_with_state_and_allowed_actions(
    client, make, site, technician, headers, db_session
):
    s = make.specimen(participant=make.participant(site=site), status=SpecimenStatus.COLLECTED)
    r = _post(client, headers(technician), scan(s.barcode, "check_in"))
    assert r.status_code == 409
    assert r.json["current_state"] == "collected"
    assert "receive" in r.json["allowed_actions"]
    assert "check_in" not in r.json["allowed_actions"]
    assert db_session.scalar(sa.select(sa.func.count()).select_from(CustodyEvent)) == 0


def test_same_client_event_id_is_recorded_once_and_answered_the_same(
    client, make, site, technician, headers, db_session
):
    s = make.specimen(participant=make.participant(site=site), status=SpecimenStatus.COLLECTED)
    body = scan(s.barcode, "receive")
    h = headers(technician)
    first = _post(client, h, body)
    again = _post(client, h, body)
    assert first.status_code == again.status_code == 201
    assert again.json == first.json
    assert again.headers["Idempotent-Replayed"] == "true"
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Scan)) == 1
    assert db_session.scalar(sa.select(sa.func.count()).select_from(CustodyEvent)) == 1
    changed = body | {"action": "dispose"}
    r = _post(client, h, changed)
    assert r.status_code == 409
    assert r.json["errors"][0]["field"] == "client_event_id"


def test_wrong_check_character_is_rejected_with_the_reason(
    client, make, site, technician, headers, db_session
):
    good = make_barcode("CTR", MaterialType.SERUM, 12345)
    make.specimen(participant=make.participant(site=site), barcode=good)
    h = headers(technician)
    typo = good[:5] + ("1" if good[5] != "1" else "2") + good[6:]
    swapped = good[:8] + good[9] + good[8] + good[10:]
    for bad in (typo, swapped):
        assert bad != good
        r = _post(client, h, scan(bad, "receive"))
        assert r.status_code == 422, (bad, r.json)
        assert "check characters do not match" in r.json["detail"]
    assert db_session.scalar(sa.select(sa.func.count()).select_from(CustodyEvent)) == 0


def test_unknown_barcode_other_site_and_future_time(client, make, site, other_site, technician, headers):
    h = headers(technician)
    r = _post(client, h, scan("NOSUCHTUBE", "receive"))
    assert r.status_code == 404
    theirs = make.specimen(participant=make.participant(site=other_site))
    r = _post(client, h, scan(theirs.barcode, "receive"))
    assert r.status_code == 403
    assert other_site.name in r.json["detail"]
    mine = make.specimen(participant=make.participant(site=site))
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    r = _post(client, h, scan(mine.barcode, "receive", scanned_at=future))
    assert r.status_code == 422
    assert r.json["errors"][0]["field"] == "scanned_at"


def test_manufacturer_barcode_is_accepted_as_is(client, make, site, technician, headers):
    s = make.specimen(
        participant=make.participant(site=site),
        manufacturer_barcode="FX05653780",
        status=SpecimenStatus.COLLECTED,
    )
    r = _post(client, headers(technician), scan("FX05653780", "receive"))
    assert r.status_code == 201
    assert r.json["specimen"]["barcode"] == s.barcode


def test_damaged_on_receipt_goes_to_quarantine(client, make, site, technician, headers):
    s = make.specimen(participant=make.participant(site=site), status=SpecimenStatus.COLLECTED)
    r = _post(client, headers(technician), scan(s.barcode, "receive", condition="leaking"))
    assert r.json["specimen"]["status"] == "quarantined"
    assert "received leaking: quarantined" in r.json["warnings"]
    r = _post(client, headers(technician), scan(s.barcode, "receive", condition="sticky"))
    assert r.status_code == 409  # already received


def test_store_into_an_occupied_position_is_refused(client, make, site, technician, headers):
    p = make.participant(site=site)
    box = make.box(site=site)
    make.specimen(participant=p, container=box, pos_row=1, pos_col=1)
    s = make.specimen(participant=p, status=SpecimenStatus.RECEIVED)
    r = _post(
        client,
        headers(technician),
        scan(s.barcode, "store", location={"container_id": box.id, "position": "A1"}),
    )
    assert r.status_code == 409
    r = _post(
        client,
        headers(technician),
        scan(s.barcode, "store", location={"container_id": box.id, "position": "1A"}),
    )
    assert r.status_code == 422
    assert r.json["errors"][0]["field"] == "location.position"


def test_batch_is_all_or_nothing(client, make, site, technician, headers, db_session):
    p = make.participant(site=site)
    ok = [make.specimen(participant=p, status=SpecimenStatus.COLLECTED) for _ in range(3)]
    bad = make.specimen(participant=p, status=SpecimenStatus.DISPOSED)
    body = {"scans": [scan(s.barcode, "receive") for s in ok] + [scan(bad.barcode, "receive")]}
    r = client.post("/api/v1/scans/batch", json=body, headers=headers(technician))
    assert r.status_code == 409
    assert r.json["errors"][0]["field"] == "scans[3].action"
    assert r.json["detail"].startswith("scan 3:")
    assert db_session.scalar(sa.select(sa.func.count()).select_from(CustodyEvent)) == 0
    body["scans"].pop()
    r = client.post("/api/v1/scans/batch", json=body, headers=headers(technician))
    assert r.status_code == 201
    assert [a["specimen"]["status"] for a in r.json] == ["received"] * 3


def test_researchers_cannot_scan(client, make, site, researcher, headers):
    s = make.specimen(participant=make.participant(site=site))
    assert _post(client, headers(researcher), scan(s.barcode, "receive")).status_code == 403


def test_specimen_created_without_barcode_gets_an_issued_one(client, make, site, technician, headers):
    from biobank.barcodes import is_valid

    p = make.participant(site=site)
    h = headers(technician)
    codes = [
        client.post(
            "/api/v1/specimens/", headers=h, json={"participant_id": p.id, "material_type": "SERUM"}
        ).json["barcode"]
        for _ in range(3)
    ]
    assert codes[0].startswith("CTRSE")
    assert all(is_valid(c) for c in codes)
    assert len(set(codes)) == 3


def test_timeline_merges_custody_location_consent_and_audit(
    client, make, site, technician, headers, db_session
):
    h = headers(technician)
    p = make.participant(site=site)
    s = make.specimen(participant=p, status=SpecimenStatus.COLLECTED)
    box = make.box(site=site)
    _post(client, h, scan(s.barcode, "receive"))
    _post(client, h, scan(s.barcode, "store", location={"container_id": box.id, "position": "A1"}))
    consent = p.consents[0]
    etag = client.get(f"/api/v1/consents/{consent.id}", headers=h).headers["ETag"]
    client.patch(f"/api/v1/consents/{consent.id}", json={"withdraw": True}, headers=h | {"If-Match": etag})
    r = client.get(f"/api/v1/specimens/{s.barcode}/timeline", headers=h)
    assert r.status_code == 200
    kinds = [e["kind"] for e in r.json["entries"]]
    assert {"custody", "location", "consent", "audit"} <= set(kinds)
    times = [e["at"] for e in r.json["entries"]]
    assert times == sorted(times)
    assert any(e["summary"].endswith("withdrawn") for e in r.json["entries"])
    assert r.json["chain"] == {"intact": True, "events": 2, "problem": None}


def test_retry_that_would_be_accepted_again_is_still_recorded_once(
    client, make, site, technician, headers, db_session
):
    """A thaw or a move to the same place is legal twice in a row: the second sending of the
    same scan must still neither count a second thaw nor add a second custody event."""
    box = make.box(site=site, n_rows=2, n_cols=2)
    s = make.specimen(
        participant=make.participant(site=site),
        status=SpecimenStatus.CHECKED_OUT,
        container=box,
        pos_row=1,
        pos_col=1,
    )
    h = headers(technician)
    for body in (
        scan(s.barcode, "thaw"),
        scan(s.barcode, "check_in", location={"container_id": box.id, "position": "B2"}),
        scan(s.barcode, "move", location={"container_id": box.id, "position": "A2"}),
    ):
        first = _post(client, h, body)
        assert first.status_code == 201, first.json
        again = _post(client, h, body)
        assert again.status_code == 201 and again.json == first.json
        assert again.headers["Idempotent-Replayed"] == "true"
    db_session.expire_all()
    assert db_session.get(type(s), s.id).freeze_thaw_count == 1
    assert (
        db_session.scalar(
            sa.select(sa.func.count()).select_from(CustodyEvent).where(CustodyEvent.specimen_id == s.id)
        )
        == 3
    )
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Scan)) == 3


def test_batch_with_an_already_recorded_scan_answers_it_and_records_the_rest(
    client, make, site, technician, headers, db_session
):
    p = make.participant(site=site)
    tubes = [make.specimen(participant=p, status=SpecimenStatus.CHECKED_OUT) for _ in range(2)]
    h = headers(technician)
    thaw = scan(tubes[0].barcode, "thaw")
    first = _post(client, h, thaw)
    r = client.post("/api/v1/scans/batch", headers=h, json={"scans": [thaw, scan(tubes[1].barcode, "thaw")]})
    assert r.status_code == 201, r.json
    assert r.json[0] == first.json
    db_session.expire_all()
    assert [db_session.get(type(t), t.id).freeze_thaw_count for t in tubes] == [1, 1]


def test_scan_card_shows_the_tube_and_records_nothing(
    client, make, site, other_site, technician, headers, db_session
):
    from biobank.db import utcnow
    from biobank.models import ConsentResponse

    h = headers(technician)
    p = make.participant(site=site)
    box = make.box(site=site)
    s = make.specimen(
        participant=p,
        container=box,
        pos_row=2,
        pos_col=3,
        barcode=make_barcode("CTR", MaterialType.PLASMA, 4242),
    )
    freezer = box.parent.parent
    r = client.get(f"/api/v1/scans/card/{s.barcode}", headers=h)
    assert r.status_code == 200, r.json
    assert r.json["specimen"]["location"] == f"{freezer.name} › {box.parent.name} › {box.name} › B3"
    assert r.json["specimen"]["status"] == "in_storage"
    assert set(r.json["allowed_actions"]) == {
        "move",
        "check_out",
        "ship",
        "consume",
        "dispose",
        "mark_missing",
    }
    assert r.json["warnings"] == []
    # a withdrawal shows on the card before the technician does anything with the tube
    response = db_session.scalars(
        sa.select(ConsentResponse).where(ConsentResponse.participant_id == p.id)
    ).first()
    response.withdrawn_at = utcnow()
    db_session.commit()
    r = client.get(f"/api/v1/scans/card/{s.barcode}", headers=h)
    assert r.json["warnings"] == ["consent withdrawn: do not distribute"]
    # the same checks as a scan: a misread check character, another site's tube
    typo = s.barcode[:6] + ("1" if s.barcode[6] != "1" else "2") + s.barcode[7:]
    r = client.get(f"/api/v1/scans/card/{typo}", headers=h)
    assert r.status_code == 422 and "check characters do not match" in r.json["detail"]
    theirs = make.specimen(participant=make.participant(site=other_site))
    assert client.get(f"/api/v1/scans/card/{theirs.barcode}", headers=h).status_code == 403
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Scan)) == 0
    assert db_session.scalar(sa.select(sa.func.count()).select_from(CustodyEvent)) == 0


def test_dispose_and_mark_missing_need_a_reason(client, make, site, technician, headers, db_session):
    s = make.specimen(participant=make.participant(site=site), status=SpecimenStatus.RECEIVED)
    h = headers(technician)
    for action in ("dispose", "mark_missing"):
        r = _post(client, h, scan(s.barcode, action))
        assert r.status_code == 422, r.json
        assert r.json["errors"][0]["field"] == "note"
    r = _post(client, h, scan(s.barcode, "dispose", note="tube cracked"))
    assert r.status_code == 201
    assert r.json["event"]["details"]["note"] == "tube cracked"


def test_scan_times_before_collection_or_the_earliest_date_are_refused(
    client, app, make, site, technician, headers, db_session
):
    p = make.participant(site=site)
    visit = make.visit(participant=p, collected_at=dt.datetime(2025, 3, 1, 9, 30, tzinfo=dt.UTC))
    s = make.specimen(participant=p, collection_event=visit)
    h = headers(technician)
    r = _post(client, h, scan(s.barcode, "receive", scanned_at="2025-03-01T08:00:00+00:00"))
    assert r.status_code == 422
    assert r.json["errors"][0]["field"] == "scanned_at"
    assert "before" in r.json["detail"] and "collected" in r.json["detail"]
    loose = make.specimen(participant=p)
    r = _post(client, h, scan(loose.barcode, "receive", scanned_at="1900-01-01T00:00:00+00:00"))
    assert r.status_code == 422 and "earliest date" in r.json["detail"]
    assert db_session.scalar(sa.select(sa.func.count()).select_from(CustodyEvent)) == 0
    r = _post(client, h, scan(s.barcode, "receive", scanned_at="2025-03-01T10:00:00+00:00"))
    assert r.status_code == 201


def test_a_tube_in_transit_shows_its_card_only_at_its_destination(
    client, make, site, other_site, technician, headers, db_session
):
    third = make.site()
    s = make.specimen(participant=make.participant(site=site), status=SpecimenStatus.IN_STORAGE)
    r = _post(client, headers(technician), scan(s.barcode, "ship", destination_site_id=third.id))
    assert r.status_code == 201, r.json
    bystander = make.user("bystander", role="technician", sites=[other_site])
    r = client.get(f"/api/v1/scans/card/{s.barcode}", headers=headers(bystander))
    assert r.status_code == 403 and "specimen" not in r.json
    r = _post(client, headers(bystander), scan(s.barcode, "receive_at_destination"))
    assert r.status_code == 403
    receiver = make.user("receiver3", role="technician", sites=[third])
    r = client.get(f"/api/v1/scans/card/{s.barcode}", headers=headers(receiver))
    assert r.status_code == 200 and "receive_at_destination" in r.json["allowed_actions"]


def test_every_scan_action_has_its_lifecycle_step_event_and_handler():
    from biobank.models import ScanAction
    from biobank.services.scans import EVENT_TYPE, HANDLERS, LIFECYCLE

    assert set(HANDLERS) == set(LIFECYCLE) == set(EVENT_TYPE) == set(ScanAction)


def test_the_card_shows_a_tube_as_the_specimen_api_does(client, make, site, technician, headers, db_session):
    """The card is read column by column; what it shows of a tube is what the specimen's own
    page in the API shows, whatever the tube and its box."""
    from decimal import Decimal

    from biobank.models.storage import FillOrder, PositionScheme
    from biobank.models.vocab import Lineage

    h = headers(technician)
    p = make.participant(site=site)
    numbered = make.box(
        site=site,
        n_rows=8,
        n_cols=12,
        position_scheme=PositionScheme.NUMBER,
        fill_order=FillOrder.COLUMN_MAJOR,
    )
    rows_cols = make.box(site=site, position_scheme=PositionScheme.ROW_COLUMN)
    parent = make.specimen(participant=p, container=numbered, pos_row=3, pos_col=5, quantity=Decimal("0.125"))
    tubes = [
        parent,
        make.specimen(
            participant=p,
            parent=parent,
            lineage=Lineage.ALIQUOT,
            container=rows_cols,
            pos_row=9,
            pos_col=1,
            status=SpecimenStatus.QUARANTINED,
            manufacturer_barcode="FR0012345678",
            sprec_code="PL1-SST-A-B-B-A-A",
        ),
        make.specimen(participant=p, status=SpecimenStatus.MISSING, label="lost in transit", quantity=None),
        make.specimen(participant=p, material_type=MaterialType.TISSUE_FROZEN, container=numbered),
    ]
    codes = [tubes[0].barcode, "FR0012345678", tubes[2].barcode, tubes[3].barcode]
    for tube, code in zip(tubes, codes, strict=True):
        card = client.get(f"/api/v1/scans/card/{code}", headers=h)
        assert card.status_code == 200, card.json
        shown = client.get(f"/api/v1/specimens/{tube.id}", headers=h).json
        assert card.json["specimen"] == shown
    assert client.get(f"/api/v1/scans/card/{parent.barcode}", headers=h).json["specimen"]["position"] == "35"
    quarantined = client.get("/api/v1/scans/card/FR0012345678", headers=h).json
    assert quarantined["specimen"]["location"].endswith(" › 9/1")
    assert quarantined["warnings"] == ["quarantined"]
    missing = client.get(f"/api/v1/scans/card/{tubes[2].barcode}", headers=h).json
    assert missing["specimen"]["location"] is None and missing["warnings"] == [
        "recorded as missing: store it to bring it back"
    ]


def test_a_scan_warns_of_a_withdrawn_consent_read_with_the_tube(
    client, make, site, technician, headers, db_session
):
    """The scan reads the tube, its collection time and its participant's consent state in
    one statement; the warning is the card's."""
    from biobank.db import utcnow
    from biobank.models import ConsentResponse

    h = headers(technician)
    withdrew, stayed = make.participant(site=site), make.participant(site=site)
    response = db_session.scalars(
        sa.select(ConsentResponse).where(ConsentResponse.participant_id == withdrew.id)
    ).first()
    response.withdrawn_at = utcnow()
    db_session.commit()
    for participant, warnings in ((withdrew, ["consent withdrawn: do not distribute"]), (stayed, [])):
        tube = make.specimen(participant=participant, status=SpecimenStatus.CHECKED_OUT)
        r = _post(client, h, scan(tube.barcode, "thaw"))
        assert r.status_code == 201, r.json
        assert r.json["warnings"] == warnings
