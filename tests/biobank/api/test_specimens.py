"""Specimens API: the full flow and the ways it refuses bad input."""

from __future__ import annotations

import sqlalchemy as sa

from biobank.models import AuditRecord, CustodyEvent, Specimen
from biobank.models.vocab import ContainerKind, CustodyEventType, MaterialType


def _new(participant, **over):
    body = {
        "barcode": "CTRPL0000001",
        "participant_id": participant.id,
        "material_type": "PLASMA",
        "quantity": "1.5",
        "unit": "mL",
    }
    body.update(over)
    return body


def test_specimen_create_list_get_update_flow(client, make, site, technician, headers, db_session):
    h = headers(technician)
    p = make.participant(site=site)
    box = make.box(site=site)

    r = client.post(
        "/api/v1/specimens/",
        json=_new(p, container_id=box.id, pos_row=2, pos_col=3, sprec_code="PL1-PED-A-D-N-A-B"),
        headers=h,
    )
    assert r.status_code == 201, r.json
    created = r.json
    assert created["status"] == "in_storage"
    assert created["position"] == "B3"
    assert created["participant_code"] == p.code

    r = client.get("/api/v1/specimens/", query_string={"participant_id": p.id}, headers=h)
    assert [s["barcode"] for s in r.json] == ["CTRPL0000001"]

    r = client.get(f"/api/v1/specimens/{created['id']}", headers=h)
    etag = r.headers["ETag"]
    r = client.patch(
        f"/api/v1/specimens/{created['id']}",
        json={"quantity": "1.0"},
        headers=h | {"If-Match": etag, "X-Change-Reason": "measured again"},
    )
    assert r.status_code == 200, r.json
    assert r.json["quantity"] == 1

    audit = db_session.scalars(
        sa.select(AuditRecord)
        .where(AuditRecord.entity == "specimens", AuditRecord.entity_id == str(created["id"]))
        .order_by(AuditRecord.id)
    ).all()
    assert [a.action.value for a in audit] == ["insert", "update"]
    assert audit[1].changes["quantity"] == ["1.500", "1.000"]
    assert audit[1].reason == "measured again"
    assert audit[1].actor_name == "tech"


def test_update_without_if_match_is_refused(client, make, site, technician, headers):
    s = make.specimen(participant=make.participant(site=site))
    r = client.patch(f"/api/v1/specimens/{s.id}", json={"label": "x"}, headers=headers(technician))
    assert r.status_code == 428


def test_update_with_stale_etag_gets_412(client, make, site, technician, headers):
    h = headers(technician)
    s = make.specimen(participant=make.participant(site=site))
    etag = client.get(f"/api/v1/specimens/{s.id}", headers=h).headers["ETag"]
    assert (
        client.patch(
            f"/api/v1/specimens/{s.id}", json={"label": "a"}, headers=h | {"If-Match": etag}
        ).status_code
        == 200
    )
    r = client.patch(f"/api/v1/specimens/{s.id}", json={"label": "b"}, headers=h | {"If-Match": etag})
    assert r.status_code == 412
    assert r.mimetype == "application/problem+json"


def test_duplicate_barcode_is_a_409_naming_the_field(client, make, site, technician, headers, db_session):
    p = make.participant(site=site)
    make.specimen(participant=p, barcode="DUP0001")
    r = client.post("/api/v1/specimens/", json=_new(p, barcode="DUP0001"), headers=headers(technician))
    assert r.status_code == 409
    assert r.json["errors"][0]["field"] == "barcode"
    assert db_session.scalar(sa.select(sa.func.count()).where(Specimen.barcode == "DUP0001")) == 1


def test_occupied_position_is_a_409(client, make, site, technician, headers):
    p = make.participant(site=site)
    box = make.box(site=site)
    make.specimen(participant=p, container=box, pos_row=1, pos_col=1)
    r = client.post(
        "/api/v1/specimens/",
        json=_new(p, container_id=box.id, pos_row=1, pos_col=1),
        headers=headers(technician),
    )
    assert r.status_code == 409
    assert "A1" in r.json["detail"]
    assert r.json["errors"][0]["field"] == "pos_row"


def test_database_refuses_two_specimens_in_one_position(make, site, db_session):
    import pytest
    from sqlalchemy.exc import IntegrityError

    p = make.participant(site=site)
    box = make.box(site=site)
    make.specimen(participant=p, container=box, pos_row=4, pos_col=4)
    with pytest.raises(IntegrityError), db_session.begin_nested():
        make.specimen(participant=p, container=box, pos_row=4, pos_col=4)


def test_position_outside_the_grid_is_a_422(client, make, site, technician, headers):
    p = make.participant(site=site)
    box = make.box(site=site, n_rows=9, n_cols=9)
    r = client.post(
        "/api/v1/specimens/",
        json=_new(p, container_id=box.id, pos_row=10, pos_col=1),
        headers=headers(technician),
    )
    assert r.status_code == 422
    assert r.json["errors"][0]["field"] == "pos_row"
    assert "rows 1–9" in r.json["detail"]


def test_parent_from_another_participant_is_refused(client, make, site, technician, headers, db_session):
    parent = make.specimen(participant=make.participant(site=site))
    other = make.participant(site=site)
    r = client.post("/api/v1/specimens/", json=_new(other, parent_id=parent.id), headers=headers(technician))
    assert r.status_code == 422
    assert r.json["errors"][0]["field"] == "parent_id"
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Specimen)) == 1


def test_aliquot_records_lineage_and_custody(client, make, site, technician, headers, db_session):
    p = make.participant(site=site)
    parent = make.specimen(participant=p, material_type=MaterialType.PLASMA)
    r = client.post(
        "/api/v1/specimens/",
        json=_new(p, barcode="ALQ0001", parent_id=parent.id),
        headers=headers(technician),
    )
    assert r.status_code == 201, r.json
    assert r.json["lineage"] == "aliquot"
    events = db_session.scalars(sa.select(CustodyEvent).where(CustodyEvent.specimen_id == r.json["id"])).all()
    assert [e.event_type for e in events] == [CustodyEventType.ALIQUOTED]
    assert events[0].details == {"parent": parent.barcode}

    lineage = client.get(f"/api/v1/specimens/{parent.id}/lineage", headers=headers(technician)).json
    assert [d["specimen"]["barcode"] for d in lineage["descendants"]] == ["ALQ0001"]


def test_aliquot_of_another_material_must_be_a_derivative(client, make, site, technician, headers):
    p = make.participant(site=site)
    parent = make.specimen(participant=p, material_type=MaterialType.WHOLE_BLOOD)
    r = client.post("/api/v1/specimens/", json=_new(p, parent_id=parent.id), headers=headers(technician))
    assert r.status_code == 422
    assert r.json["errors"][0]["field"] == "material_type"
    r = client.post(
        "/api/v1/specimens/",
        json=_new(p, parent_id=parent.id, lineage="derivative"),
        headers=headers(technician),
    )
    assert r.status_code == 201


def test_unknown_vocabulary_term_and_unknown_field_are_422(client, make, site, technician, headers):
    p = make.participant(site=site)
    h = headers(technician)
    r = client.post("/api/v1/specimens/", json=_new(p, material_type="BLOOD_ORANGE"), headers=h)
    assert r.status_code == 422
    assert r.json["errors"][0]["field"] == "material_type"
    assert "PLASMA" in r.json["errors"][0]["message"]
    r = client.post("/api/v1/specimens/", json=_new(p, colour="red"), headers=h)
    assert r.status_code == 422
    assert r.json["errors"][0]["field"] == "colour"
    r = client.post("/api/v1/specimens/", json=_new(p, quantity="lots"), headers=h)
    assert r.status_code == 422
    assert r.json["errors"][0]["field"] == "quantity"


def test_bad_sprec_code_is_refused(client, make, site, technician, headers):
    p = make.participant(site=site)
    r = client.post(
        "/api/v1/specimens/", json=_new(p, sprec_code="XYZ-SST-A-D-N-A-E"), headers=headers(technician)
    )
    assert r.status_code == 422
    assert "XYZ" in r.json["errors"][0]["message"]


def test_malformed_json_is_a_4xx_problem(client, technician, headers):
    r = client.post(
        "/api/v1/specimens/", data="{not json", content_type="application/json", headers=headers(technician)
    )
    assert 400 <= r.status_code < 500
    assert r.mimetype == "application/problem+json"


def test_moving_a_specimen_records_custody_from_and_to(client, make, site, technician, headers, db_session):
    h = headers(technician)
    p = make.participant(site=site)
    box = make.box(site=site, name="Box A")
    s = client.post(
        "/api/v1/specimens/", json=_new(p, container_id=box.id, pos_row=1, pos_col=1), headers=h
    ).json
    etag = client.get(f"/api/v1/specimens/{s['id']}", headers=h).headers["ETag"]
    r = client.patch(
        f"/api/v1/specimens/{s['id']}", json={"pos_row": 2, "pos_col": 5}, headers=h | {"If-Match": etag}
    )
    assert r.status_code == 200, r.json
    events = client.get(f"/api/v1/specimens/{s['id']}/custody", headers=h).json
    assert [e["event_type"] for e in events] == ["collected", "stored", "moved"]
    assert events[2]["from_location"].endswith("Box A › A1")
    assert events[2]["to_location"].endswith("Box A › B5")
    assert [e["prev_hash"] for e in events[1:]] == [e["hash"] for e in events[:-1]]


def test_specimen_in_non_holding_container_is_refused(client, make, site, technician, headers):
    p = make.participant(site=site)
    freezer = make.container(site=site, kind=ContainerKind.FREEZER)
    r = client.post("/api/v1/specimens/", json=_new(p, container_id=freezer.id), headers=headers(technician))
    assert r.status_code == 422
    assert r.json["errors"][0]["field"] == "container_id"


def test_other_sites_specimens_are_invisible(client, make, site, other_site, technician, headers):
    theirs = make.specimen(participant=make.participant(site=other_site))
    h = headers(technician)
    assert client.get(f"/api/v1/specimens/{theirs.id}", headers=h).status_code == 404
    assert client.get("/api/v1/specimens/", headers=h).json == []


def test_admin_sees_every_site(client, make, site, other_site, admin, headers):
    theirs = make.specimen(participant=make.participant(site=other_site))
    assert client.get(f"/api/v1/specimens/{theirs.id}", headers=headers(admin)).status_code == 200


def test_researcher_may_read_but_not_create(client, make, site, researcher, headers):
    p = make.participant(site=site)
    h = headers(researcher)
    assert client.get("/api/v1/specimens/", headers=h).status_code == 200
    r = client.post("/api/v1/specimens/", json=_new(p), headers=h)
    assert r.status_code == 403
    assert "technician" in r.json["detail"]


def test_no_credentials_is_401_and_bad_token_is_401(client):
    r = client.get("/api/v1/specimens/")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    r = client.get("/api/v1/specimens/", headers={"Authorization": "Bearer bbk_nope"})
    assert r.status_code == 401
    assert "token" in r.json["detail"]


def test_keyset_pagination_walks_every_row_once(client, make, site, technician, headers):
    p = make.participant(site=site)
    made = {make.specimen(participant=p).barcode for _ in range(7)}
    h = headers(technician)
    seen, url = [], "/api/v1/specimens/?limit=3"
    while url:
        r = client.get(url, headers=h)
        seen += [s["barcode"] for s in r.json]
        link = r.headers.get("Link")
        url = link[1 : link.index(">")] if link else None
    assert sorted(seen) == sorted(made)


def test_filters_by_material_and_status(client, make, site, technician, headers):
    p = make.participant(site=site)
    make.specimen(participant=p, material_type=MaterialType.SERUM)
    make.specimen(participant=p, material_type=MaterialType.DNA)
    r = client.get(
        "/api/v1/specimens/", query_string={"material_type": ["SERUM", "DNA"]}, headers=headers(technician)
    )
    assert sorted(s["material_type"] for s in r.json) == ["DNA", "SERUM"]
    r = client.get("/api/v1/specimens/", query_string={"material_type": "NOPE"}, headers=headers(technician))
    assert r.status_code == 422
    assert r.json["errors"][0]["location"] == "query"


def test_by_barcode_lookup(client, make, site, technician, headers):
    s = make.specimen(participant=make.participant(site=site))
    r = client.get(f"/api/v1/specimens/by-barcode/{s.barcode}", headers=headers(technician))
    assert r.json["id"] == s.id
    r = client.get("/api/v1/specimens/by-barcode/NOPE", headers=headers(technician))
    assert r.status_code == 404


def test_q_matches_barcode_label_or_participant_code_prefixes(client, make, site, technician, headers):
    p = make.participant(site=site, code="SKN-777001")
    other = make.participant(site=site, code="SKN-888001")
    by_code = make.specimen(participant=p, barcode="AAA0001")
    by_label = make.specimen(participant=other, barcode="BBB0001", label="TUMOUR-LEFT-ARM")
    by_barcode = make.specimen(participant=other, barcode="SKN-7770099")
    make.specimen(participant=other, barcode="CCC0001")
    h = headers(technician)
    found = {s["barcode"] for s in client.get("/api/v1/specimens/?q=SKN-777", headers=h).json}
    assert found == {by_code.barcode, by_barcode.barcode}
    found = {s["barcode"] for s in client.get("/api/v1/specimens/?q=TUMOUR", headers=h).json}
    assert found == {by_label.barcode}


def test_sprec_is_derived_from_recorded_history(client, make, site, technician, headers, db_session):
    import datetime as dt

    from biobank.models.vocab import CollectionProcedure, MaterialType, QuantityUnit

    p = make.participant(site=site)
    drawn = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
    visit = make.visit(participant=p, collected_at=drawn)
    blood = make.specimen(
        participant=p, collection_event=visit, material_type=MaterialType.WHOLE_BLOOD, unit=QuantityUnit.ML
    )
    h = headers(technician)
    r = client.post(
        f"/api/v1/specimens/{blood.id}/aliquots",
        headers=h,
        json={
            "count": 1,
            "quantity": "4",
            "material_type": "PLASMA",
            "unit": "mL",
            "processing": {
                "method": "centrifugation 2,000 g 10 min",
                "temperature": "RT",
                "started_at": "2026-03-02T09:30:00Z",
            },
        },
    )
    assert r.status_code == 201, r.json
    plasma = r.json[0]
    r = client.get(f"/api/v1/specimens/{plasma['id']}/aliquots", headers=h)
    r = client.post(
        f"/api/v1/specimens/{plasma['id']}/aliquots", headers=h, json={"count": 2, "quantity": "0.5"}
    )
    aliquot = r.json[0]
    r = client.get(f"/api/v1/specimens/{aliquot['id']}/sprec", headers=h)
    assert r.status_code == 200, r.json
    assert r.json["computed"] == "PL1-XXX-A-X-N-X-X"
    delay = next(e for e in r.json["elements"] if e["name"] == "pre-centrifugation delay")
    assert delay["basis"] == "1.5 h at RT from collection to centrifugation"

    excised = make.visit(participant=p, collected_at=drawn, procedure=CollectionProcedure.WIDE_LOCAL_EXCISION)
    tissue = make.specimen(
        participant=p,
        collection_event=excised,
        material_type=MaterialType.TISSUE_FROZEN,
        unit=QuantityUnit.MG,
        frozen_at=drawn + dt.timedelta(minutes=45),
        sprec_code="TIS-SRG-A-B-SNP-Z-C",
    )
    r = client.get(f"/api/v1/specimens/{tissue.id}/sprec", headers=h)
    assert r.json["computed"] == "TIS-SRG-X-E-SNP-X-X"
    assert r.json["differs"] == ["cold ischemia time"]
    from tests.biobank.web.test_evacuation_page import _login

    _login(client, technician.username)
    page = client.get(f"/specimens/{tissue.barcode}").get_data(as_text=True)
    assert "TIS-SRG-X-E-SNP-X-X" in page and "contradicts the records: cold ischemia" in page
    dna = make.specimen(participant=p, material_type=MaterialType.DNA, unit=QuantityUnit.UL)
    assert client.get(f"/api/v1/specimens/{dna.id}/sprec", headers=h).status_code == 404


def test_a_body_that_is_not_json_is_415(client, make, site, technician, headers):
    p = make.participant(site=site)
    h = headers(technician)
    for kind, body in (
        ("text/plain", "participant_id=1"),
        ("application/x-www-form-urlencoded", f"participant_id={p.id}"),
        (None, "{}"),
    ):
        r = client.post("/api/v1/specimens/", data=body, headers=h, content_type=kind)
        assert r.status_code == 415, (kind, r.json)
        assert r.mimetype == "application/problem+json"
        assert "application/json" in r.json["detail"]
    r = client.post("/api/v1/specimens/", json=_new(p), headers=h)
    assert r.status_code == 201


def test_bodies_beyond_their_limit_are_413_problems(client, app, technician, headers):
    h = headers(technician)
    big = b'{"x": "' + b"a" * (app.config["MAX_CONTENT_LENGTH"] + 10) + b'"}'
    r = client.post("/api/v1/specimens/", data=big, headers=h, content_type="application/json")
    assert r.status_code == 413 and r.mimetype == "application/problem+json"
    assert set(app.config["UPLOAD_LIMITS"]) <= set(app.view_functions)


def test_every_answer_says_its_server_time(client, technician, headers):
    answers = [client.get("/login"), client.get("/api/v1/sites/", headers=headers(technician))]
    answers.append(client.get("/api/v1/specimens/NO-SUCH", headers=headers(technician)))
    for r in answers:
        name, _, duration = r.headers["Server-Timing"].partition(";dur=")
        assert name == "app" and float(duration) >= 0
    assert answers[-1].status_code == 404


def test_pages_and_api_answers_carry_security_headers(client, technician, headers):
    for r in (client.get("/login"), client.get("/api/v1/sites/", headers=headers(technician))):
        assert "script-src 'self'" in r.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Referrer-Policy"] == "same-origin"
        assert r.headers["X-Frame-Options"] == "DENY"
