"""Sites, studies, consents, cases, lesions, collection events and containers over the API."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from biobank.models import Case, ConsentResponse


def test_only_admins_create_sites(client, admin, technician, headers):
    body = {"code": "WST", "name": "Western Hospital", "country": "CN"}
    assert client.post("/api/v1/sites/", json=body, headers=headers(technician)).status_code == 403
    r = client.post("/api/v1/sites/", json=body, headers=headers(admin))
    assert r.status_code == 201
    r = client.post("/api/v1/sites/", json=body, headers=headers(admin))
    assert r.status_code == 409
    assert r.json["errors"][0]["field"] == "code"
    r = client.post("/api/v1/sites/", json=body | {"code": "X2", "country": "China"}, headers=headers(admin))
    assert r.status_code == 422
    assert r.json["errors"][0]["field"] == "country"


def test_study_with_consent_tiers_and_duo_codes(client, manager, headers):
    r = client.post(
        "/api/v1/studies/",
        headers=headers(manager),
        json={
            "code": "MEL-1",
            "title": "Melanoma cohort",
            "consent_tiers": [
                {"code": "GEN", "scope": "genetic_research", "statement": "Genetic research"},
                {"code": "RES", "scope": "research_use", "statement": "Research"},
            ],
        },
    )
    assert r.status_code == 201, r.json
    assert [(t["code"], t["duo_code"]) for t in r.json["consent_tiers"]] == [
        ("GEN", "DUO:0000016"),
        ("RES", "DUO:0000042"),
    ]
    r = client.post(
        f"/api/v1/studies/{r.json['id']}/consent-tiers",
        headers=headers(manager),
        json={"code": "GEN", "scope": "storage", "statement": "again"},
    )
    assert r.status_code == 422
    assert r.json["errors"][0]["field"] == "code"


def test_study_with_duplicate_tier_codes_is_refused(client, manager, headers):
    tier = {"code": "A", "scope": "storage", "statement": "s"}
    r = client.post(
        "/api/v1/studies/",
        headers=headers(manager),
        json={"code": "DUPT", "title": "t", "consent_tiers": [tier, tier]},
    )
    assert r.status_code == 422
    assert r.json["errors"][0]["field"] == "consent_tiers"


def test_consent_withdrawal_is_final(client, make, site, technician, headers, db_session):
    p = make.participant(site=site, consent=False)
    tier = p.study.consent_tiers[1]
    h = headers(technician)
    r = client.post(
        "/api/v1/consents/",
        headers=h,
        json={"participant_id": p.id, "tier_id": tier.id, "decision": "yes", "signed_on": "2025-01-02"},
    )
    assert r.status_code == 201, r.json
    assert r.json["granted"] is True
    cid = r.json["id"]
    etag = client.get(f"/api/v1/consents/{cid}", headers=h).headers["ETag"]
    r = client.patch(
        f"/api/v1/consents/{cid}",
        json={"withdraw": True},
        headers=h | {"If-Match": etag, "X-Change-Reason": "participant letter"},
    )
    assert r.status_code == 200
    assert r.json["granted"] is False and r.json["withdrawn_at"]
    etag = r.headers["ETag"]
    r = client.patch(f"/api/v1/consents/{cid}", json={"decision": "yes"}, headers=h | {"If-Match": etag})
    assert r.status_code == 409, r.json
    assert db_session.get(ConsentResponse, cid).withdrawn_at is not None


def test_consent_for_another_studys_tier_is_refused(client, make, site, technician, headers):
    p = make.participant(site=site, consent=False)
    foreign_tier = make.study().consent_tiers[0]
    r = client.post(
        "/api/v1/consents/",
        headers=headers(technician),
        json={
            "participant_id": p.id,
            "tier_id": foreign_tier.id,
            "decision": "yes",
            "signed_on": "2025-01-02",
        },
    )
    assert r.status_code == 422
    assert r.json["errors"][0]["field"] == "tier_id"


def test_melanoma_case_with_staging(client, make, site, technician, headers):
    p = make.participant(site=site)
    r = client.post(
        "/api/v1/cases/",
        headers=headers(technician),
        json={
            "code": "C-MEL-1",
            "participant_id": p.id,
            "disease_group": "melanoma",
            "icd10_code": "C43.5",
            "breslow_mm": 1.25,
            "ulceration": True,
            "ajcc_stage": "IIA",
        },
    )
    assert r.status_code == 201, r.json
    assert r.json["breslow_mm"] == 1.25


def test_case_icd10_must_fit_the_disease_group(client, make, site, technician, headers, db_session):
    p = make.participant(site=site)
    h = headers(technician)
    r = client.post(
        "/api/v1/cases/",
        headers=h,
        json={"code": "C-1", "participant_id": p.id, "disease_group": "psoriasis", "icd10_code": "C43.5"},
    )
    assert r.status_code == 422
    assert r.json["errors"][0]["field"] == "icd10_code"
    r = client.post(
        "/api/v1/cases/",
        headers=h,
        json={
            "code": "C-2",
            "participant_id": p.id,
            "disease_group": "psoriasis",
            "icd10_code": "L40.0",
            "breslow_mm": 2,
        },
    )
    assert r.status_code == 422
    assert r.json["errors"][0]["field"] == "breslow_mm"
    r = client.post(
        "/api/v1/cases/",
        headers=h,
        json={"code": "C-3", "participant_id": p.id, "disease_group": "lupus", "icd10_code": "nonsense"},
    )
    assert r.status_code == 422
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Case)) == 0


@pytest.mark.parametrize(
    ("fields", "status", "field", "words"),
    [
        ({"icdo3_morphology": "8743/3", "icdo3_topography": "C44.5"}, 201, None, None),
        ({"icdo3_morphology": "8743/4"}, 422, "icdo3_morphology", "not an ICD-O-3 morphology"),
        ({"icdo3_morphology": "8743"}, 422, "icdo3_morphology", "such as 8720/3"),
        ({"icdo3_topography": "C44"}, 422, "icdo3_topography", "such as C44.5"),
        (
            {"disease_group": "psoriasis", "icd10_code": "L40.0", "icdo3_morphology": "8743/3"},
            422,
            "icdo3_morphology",
            "codes a tumour: not for psoriasis",
        ),
    ],
)
def test_a_tumour_is_coded_in_icd_o_3(client, make, site, technician, headers, fields, status, field, words):
    p = make.participant(site=site)
    body = {
        "code": "C-ICDO",
        "participant_id": p.id,
        "disease_group": "melanoma",
        "icd10_code": "C43.5",
    } | fields
    r = client.post("/api/v1/cases/", headers=headers(technician), json=body)
    assert r.status_code == status, r.json
    if status == 201:
        assert (r.json["icdo3_morphology"], r.json["icdo3_topography"]) == ("8743/3", "C44.5")
        # and kept in step on update: a morphology for a case that is no tumour is refused
        etag = client.get(f"/api/v1/cases/{r.json['id']}", headers=headers(technician)).headers
        r = client.patch(
            f"/api/v1/cases/{r.json['id']}",
            headers=headers(technician) | {"If-Match": etag["ETag"]},
            json={"disease_group": "psoriasis", "icd10_code": "L40.0", "breslow_mm": None},
        )
        assert r.status_code == 422 and r.json["errors"][0]["field"] == "icdo3_morphology"
    else:
        assert r.json["errors"][0]["field"] == field and words in r.json["detail"]


def test_lesion_and_collection_event_links_are_checked(client, make, site, technician, headers):
    h = headers(technician)
    p = make.participant(site=site)
    other = make.participant(site=site)
    case = make.case(participant=p)
    r = client.post(
        "/api/v1/lesions/",
        headers=h,
        json={"code": "L-1", "case_id": case.id, "body_site": "posterior_torso", "laterality": "left"},
    )
    assert r.status_code == 201, r.json
    lesion_id = r.json["id"]
    when = "2025-05-01T09:00:00+08:00"
    r = client.post(
        "/api/v1/collection-events/",
        headers=h,
        json={
            "participant_id": other.id,
            "site_id": site.id,
            "case_id": case.id,
            "collected_at": when,
            "procedure": "excision",
        },
    )
    assert r.status_code == 422
    assert r.json["errors"][0]["field"] == "case_id"
    r = client.post(
        "/api/v1/collection-events/",
        headers=h,
        json={
            "participant_id": p.id,
            "site_id": site.id,
            "case_id": case.id,
            "lesion_id": lesion_id,
            "collected_at": when,
            "procedure": "excision",
        },
    )
    assert r.status_code == 201, r.json
    assert r.json["collected_at"].startswith("2025-05-01T01:00:00")


def test_collection_time_needs_a_zone_and_not_the_future(client, make, site, technician, headers):
    h = headers(technician)
    p = make.participant(site=site)
    base = {"participant_id": p.id, "site_id": site.id, "procedure": "venipuncture"}
    r = client.post(
        "/api/v1/collection-events/", headers=h, json=base | {"collected_at": "2025-05-01T09:00:00"}
    )
    assert r.status_code == 422
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).isoformat()
    r = client.post("/api/v1/collection-events/", headers=h, json=base | {"collected_at": future})
    assert r.status_code == 422
    assert "future" in r.json["detail"]


def test_container_tree_rules(client, make, site, technician, headers):
    h = headers(technician)
    r = client.post(
        "/api/v1/containers/",
        headers=h,
        json={"site_id": site.id, "kind": "freezer", "name": "F1", "temperature": "-60to-85"},
    )
    assert r.status_code == 201, r.json
    freezer = r.json["id"]
    r = client.post(
        "/api/v1/containers/", headers=h, json={"parent_id": freezer, "kind": "rack", "name": "R1"}
    )
    rack = r.json["id"]
    r = client.post(
        "/api/v1/containers/",
        headers=h,
        json={"parent_id": rack, "kind": "box", "name": "B1", "n_rows": 9, "n_cols": 9},
    )
    assert r.status_code == 201
    assert r.json["effective_temperature"] == "-60to-85"
    assert r.json["capacity"] == 81
    r = client.post(
        "/api/v1/containers/", headers=h, json={"parent_id": rack, "kind": "freezer", "name": "nested"}
    )
    assert r.status_code == 422
    assert r.json["errors"][0]["field"] == "parent_id"
    r = client.post(
        "/api/v1/containers/", headers=h, json={"parent_id": rack, "kind": "box", "name": "B2", "n_rows": 9}
    )
    assert r.status_code == 422
    r = client.post(
        "/api/v1/containers/",
        headers=h,
        json={"parent_id": rack, "kind": "box", "name": "B1", "n_rows": 9, "n_cols": 9},
    )
    assert r.status_code == 409


def test_container_grid_cannot_shrink_below_occupied_positions(client, make, site, technician, headers):
    h = headers(technician)
    box = make.box(site=site)
    make.specimen(participant=make.participant(site=site), container=box, pos_row=9, pos_col=9)
    etag = client.get(f"/api/v1/containers/{box.id}", headers=h).headers["ETag"]
    r = client.patch(
        f"/api/v1/containers/{box.id}", json={"n_rows": 8, "n_cols": 8}, headers=h | {"If-Match": etag}
    )
    assert r.status_code == 409, r.json


def test_site_codes_hold_only_what_a_barcode_may(client, admin, headers, db_session):
    body = {"name": "Eastern Hospital", "country": "CN"}
    for bad in ("E-1", "E_1", "E.1", "1EAST", "E", "EASTERNHOS", "Ö1"):
        r = client.post("/api/v1/sites/", json=body | {"code": bad}, headers=headers(admin))
        assert r.status_code == 422, bad
        assert r.json["errors"][0]["field"] == "code"
    r = client.post("/api/v1/sites/", json=body | {"code": "east2"}, headers=headers(admin))
    assert r.status_code == 201
    assert r.json["code"] == "EAST2"


def test_every_accepted_site_code_issues_valid_barcodes(client, make, admin, headers, db_session):
    from biobank.barcodes import is_valid
    from biobank.models import Site

    r = client.post("/api/v1/sites/", json={"code": "Z9", "name": "Z"}, headers=headers(admin))
    site = db_session.get(Site, r.json["id"])
    legacy = make.site(code="OLD-S.1")  # a site created before codes were checked
    for where in (site, legacy):
        p = make.participant(site=where)
        r = client.post(
            "/api/v1/specimens/",
            headers=headers(admin),
            json={"participant_id": p.id, "material_type": "SERUM", "quantity": 1, "unit": "mL"},
        )
        assert r.status_code == 201, r.json
        assert is_valid(r.json["barcode"])
    assert r.json["barcode"].startswith("OLDS1SE")
