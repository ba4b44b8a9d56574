"""Sample requests: feasibility with reasons, submission, e-signed decisions, bad input."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from biobank.models.vocab import MaterialType, QuantityUnit, SpecimenStatus
from tests.biobank.api.test_cohorts import freeze, make_cohort
from tests.biobank.api.test_query import Biobank, eq
from tests.factories import PASSWORD

FROZEN_20 = {"material_type": "TISSUE_FROZEN", "min_quantity": 20, "unit": "uL"}


@pytest.fixture
def bank(make, site, other_site):
    make.history = True  # tubes as the LIMS records them: the ledger is checked whole
    return Biobank(make, site, other_site)


def submit(client, h, cohort_id, **extra):
    body = {
        "title": "BRAF in primary melanoma",
        "purpose": "Exome of frozen primary tumours",
        "ethics_reference": "IRB-2026-117",
        "cohort_id": cohort_id,
        "requirements": FROZEN_20,
        "consent_scopes": ["genetic_research"],
        **extra,
    }
    return client.post("/api/v1/requests/", headers=h, json=body)


def test_feasibility_says_why_cases_cannot_be_served(client, bank, make, admin, headers):
    h = headers(admin)
    # a fifth melanoma case whose only frozen aliquot was thawed too often
    person = make.participant(site=bank.p1.site)
    case = make.case(participant=person, code="Q-C5")
    visit = make.visit(participant=person, case=case)
    make.specimen(
        participant=person,
        collection_event=visit,
        material_type=MaterialType.TISSUE_FROZEN,
        quantity=Decimal("50"),
        unit=QuantityUnit.UL,
        status=SpecimenStatus.IN_STORAGE,
        freeze_thaw_count=4,
    )
    cohort = make_cohort(client, h, eq("cases.disease_group", "melanoma"), level="cases")
    r = client.post(
        "/api/v1/requests/feasibility",
        headers=h,
        json={
            "cohort_id": cohort["id"],
            "consent_scopes": ["genetic_research"],
            "requirements": {**FROZEN_20, "max_freeze_thaw": 2},
        },
    )
    assert r.status_code == 200, r.json
    # Q-C1 (30 µL, consent) yes; Q-C2 10 µL; Q-C4 refused consent; Q-C5 thawed 4 times
    assert (r.json["cases"], r.json["servable"]) == (4, 1)
    assert r.json["not_servable"] == {
        "no consent for a needed scope": 1,
        "not enough material left": 1,
        "too many freeze–thaw cycles": 1,
    }
    r = client.post(
        "/api/v1/requests/feasibility",
        headers=h,
        json={"cohort_id": cohort["id"], "requirements": {"material_type": "URINE"}},
    )
    assert r.json["not_servable"] == {"no such material in storage": 4}


def test_submit_then_approve_with_a_signature(client, bank, researcher, manager, make, site, headers):
    rh = headers(researcher)
    cohort = make_cohort(client, rh, eq("cases.disease_group", "melanoma"), level="cases")
    snap = freeze(client, rh, cohort["id"])
    r = submit(client, rh, cohort["id"], snapshot_id=snap["id"])
    assert r.status_code == 201, r.json
    request = r.json
    assert request["code"].startswith("REQ-") and request["status"] == "submitted"
    assert request["feasibility"]["servable"] == "<5"  # researchers see small counts hidden

    mh = headers(manager)
    url = f"/api/v1/requests/{request['id']}/decision"
    r = client.post(url, headers=mh, json={"decision": "approve", "password": "wrong"})
    assert r.status_code == 403 and "nothing was signed" in r.json["detail"]
    assert client.get(f"/api/v1/requests/{request['id']}", headers=mh).json["status"] == "submitted"
    r = client.post(url, headers=mh, json={"decision": "approve", "password": PASSWORD})
    assert r.status_code == 200, r.json
    [signature] = r.json["signatures"]
    assert (signature["signer"], signature["meaning"]) == ("Manager", "approved")
    assert len(signature["content_sha256"]) == 64 and r.json["feasibility"]["servable"] == 1
    r = client.post(
        url, headers=mh, json={"decision": "reject", "password": PASSWORD, "reason": "changed my mind"}
    )
    assert r.status_code == 409 and r.json["current_state"] == "approved"
    mine = client.get("/api/v1/requests/", headers=rh).json
    assert [x["status"] for x in mine] == ["approved"]


def test_wrong_signature_passwords_lock_signing_like_a_login(client, app, bank, researcher, manager, headers):
    rh, mh = headers(researcher), headers(manager)
    cohort = make_cohort(client, rh, eq("cases.disease_group", "melanoma"), level="cases")
    request = submit(client, rh, cohort["id"]).json
    url = f"/api/v1/requests/{request['id']}/decision"
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        r = client.post(url, headers=mh, json={"decision": "approve", "password": "guess"})
        assert r.status_code == 403
    r = client.post(url, headers=mh, json={"decision": "approve", "password": PASSWORD})
    assert r.status_code == 429
    assert client.get(f"/api/v1/requests/{request['id']}", headers=mh).json["status"] == "submitted"


def test_bad_requests_and_decisions(client, bank, researcher, manager, admin, headers):
    rh, mh = headers(researcher), headers(manager)
    cohort = make_cohort(client, rh, eq("cases.disease_group", "melanoma"), level="cases")
    for requirements, field in (
        ({"material_type": "BLOOD"}, "requirements.material_type"),
        ({"material_type": "PLASMA", "min_quantity": 5}, "requirements.unit"),
        ({"material_type": "PLASMA", "aliquots_per_case": 0}, "requirements.aliquots_per_case"),
        ({"material_type": "PLASMA", "colour": "red"}, "requirements"),
    ):
        r = submit(client, rh, cohort["id"], requirements=requirements)
        assert r.status_code == 422 and r.json["errors"][0]["field"] == field, r.json
    r = submit(client, rh, cohort["id"], consent_scopes=["anything"])
    assert r.status_code == 422 and "genetic_research" in r.json["allowed"]
    specimens = make_cohort(client, rh, None, level="specimens")
    r = submit(client, rh, specimens["id"])
    assert r.status_code == 422 and r.json["errors"][0]["field"] == "cohort_id"

    own = submit(client, mh, make_cohort(client, mh, None, level="cases")["id"]).json
    r = client.post(
        f"/api/v1/requests/{own['id']}/decision",
        headers=mh,
        json={"decision": "approve", "password": PASSWORD},
    )
    assert r.status_code == 403 and "own request" in r.json["detail"]
    request = submit(client, rh, cohort["id"]).json
    url = f"/api/v1/requests/{request['id']}/decision"
    r = client.post(url, headers=mh, json={"decision": "reject", "password": PASSWORD})
    assert r.status_code == 422 and r.json["errors"][0]["field"] == "reason"
    assert client.post(url, headers=rh, json={"decision": "approve", "password": PASSWORD}).status_code == 403
    r = client.post(
        url,
        headers=headers(admin),
        json={"decision": "reject", "password": PASSWORD, "reason": "No ethics approval attached"},
    )
    assert r.status_code == 200 and r.json["status"] == "rejected"
    assert r.json["signatures"][0]["reason"] == "No ethics approval attached"
    other = submit(client, rh, cohort["id"]).json
    r = client.post(f"/api/v1/requests/{other['id']}/withdraw", headers=mh)
    assert r.status_code == 403
    r = client.post(f"/api/v1/requests/{other['id']}/withdraw", headers=rh)
    assert r.status_code == 200 and r.json["status"] == "withdrawn"


def approved(client, rh, mh, cohort_id, **extra):
    request = submit(client, rh, cohort_id, **extra).json
    r = client.post(
        f"/api/v1/requests/{request['id']}/decision",
        headers=mh,
        json={"decision": "approve", "password": PASSWORD},
    )
    assert r.status_code == 200, r.json
    return request


def test_allocation_prefers_aliquots_and_reserves_them(
    client, bank, researcher, manager, headers, db_session
):
    from biobank.models import Allocation, Specimen

    rh, mh = headers(researcher), headers(manager)
    cohort = make_cohort(client, rh, eq("cases.disease_group", "melanoma"), level="cases")
    request = approved(client, rh, mh, cohort["id"])
    r = client.post(f"/api/v1/requests/{request['id']}/allocation", headers=mh)
    assert r.status_code == 200, r.json
    # Q-C1: its 30 µL aliquot rather than the 100 µL primary; Q-C2 has 10 µL; Q-C4 no consent
    assert (r.json["cases_served"], r.json["tubes"], r.json["processing_tasks"]) == (1, 1, 0)
    assert r.json["cases_not_served"] == {"no consent for a needed scope": 1, "not enough material left": 1}
    [allocation] = db_session.scalars(sa.select(Allocation)).all()
    assert allocation.specimen_id == bank.a1.id
    assert db_session.scalar(sa.select(Specimen.status).where(Specimen.id == bank.a1.id)).value == "reserved"
    r = client.post(f"/api/v1/requests/{request['id']}/allocation", headers=mh)
    assert r.status_code == 409 and r.json["current_state"] == "allocated"
    pending = submit(client, rh, cohort["id"]).json
    r = client.post(f"/api/v1/requests/{pending['id']}/allocation", headers=mh)
    assert r.status_code == 409 and "only an approved request" in r.json["detail"]
    assert client.post(f"/api/v1/requests/{request['id']}/allocation", headers=rh).status_code == 403


def test_each_site_sees_and_picks_only_its_own_tubes(
    client, bank, researcher, manager, make, other_site, headers
):
    rh, mh = headers(researcher), headers(manager)
    cohort = make_cohort(client, rh, eq("cases.disease_group", "melanoma"), level="cases")
    request = approved(client, rh, mh, cohort["id"])
    assert client.post(f"/api/v1/requests/{request['id']}/allocation", headers=mh).status_code == 200
    url = f"/api/v1/requests/{request['id']}"
    mine = client.get(f"{url}/pick-list", headers=headers(manager)).json
    assert mine and {i["site"] for i in mine} == {bank.a1.site.code}
    elsewhere = headers(make.user("nrt-picker", role="technician", sites=[other_site]))
    assert client.get(f"{url}/pick-list", headers=elsewhere).json == []
    r = client.post(f"{url}/picks", headers=elsewhere, json={"barcode": mine[0]["barcode"]})
    assert r.status_code == 409 and "your site's pick list" in r.json["detail"]
    assert client.get(f"{url}/distribution-report", headers=elsewhere).json["tubes"] == []
    r = client.post(
        f"{url}/shipment",
        headers=elsewhere,
        json={"destination": "Lab 4, Shanghai", "courier": "SF Express", "temperature": "dry_ice"},
    )
    assert r.status_code == 403 and "other site" in r.json["detail"]
    # the requester sees every tube of their own request
    report = client.get(f"{url}/distribution-report", headers=rh).json
    assert {t["barcode"] for t in report["tubes"]} == {i["barcode"] for i in mine}


def test_pick_list_in_walking_order_and_scanning_each_tube(
    client, bank, researcher, manager, technician, headers, tmp_path
):
    import shutil
    import subprocess

    rh, mh, th = headers(researcher), headers(manager), headers(technician)
    cohort = make_cohort(client, rh, eq("cases.disease_group", "melanoma"), level="cases")
    request = approved(client, rh, mh, cohort["id"], requirements={**FROZEN_20, "aliquots_per_case": 2})
    r = client.post(f"/api/v1/requests/{request['id']}/allocation", headers=mh)
    assert (r.json["tubes"], r.json["processing_tasks"]) == (2, 1)  # the primary: aliquot it
    items = client.get(f"/api/v1/requests/{request['id']}/pick-list", headers=th).json
    primary = bank.a1.parent
    assert [(i["barcode"], i["position"], i["needs_processing"]) for i in items] == [
        (primary.barcode, "A1", True),
        (bank.a1.barcode, None, False),
    ]
    assert items[0]["box"] == primary.container.name and items[0]["freezer"]

    url = f"/api/v1/requests/{request['id']}/picks"
    r = client.post(url, headers=th, json={"barcode": bank.plasma.barcode})
    assert r.status_code == 409 and r.json["detail"].startswith("WRONG TUBE")
    r = client.post(url, headers=th, json={"barcode": primary.barcode})
    assert r.status_code == 200 and r.json["remaining"] == 1
    r = client.post(url, headers=th, json={"barcode": primary.barcode})
    assert r.status_code == 409 and "already picked by tech" in r.json["detail"]
    items = client.get(f"/api/v1/requests/{request['id']}/pick-list", headers=th).json
    assert items[0]["picked_by"] == "tech" and items[1]["picked_at"] is None

    pdf = client.get(f"/api/v1/requests/{request['id']}/pick-list.pdf", headers=th)
    assert pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF")
    if shutil.which("pdftotext"):
        (tmp_path / "p.pdf").write_bytes(pdf.data)
        text = subprocess.run(
            ["pdftotext", "-layout", str(tmp_path / "p.pdf"), "-"], capture_output=True, text=True, check=True
        ).stdout
        assert "Electronically signed by Manager" in text and "Meaning: approved" in text
        assert text.index(primary.barcode) < text.index(bank.a1.barcode)


def test_ship_receive_reconcile_and_report(
    client, bank, researcher, manager, technician, headers, db_session
):
    from biobank.models import CustodyEvent, Specimen
    from biobank.services.ledger import verify_ledger

    rh, mh, th = headers(researcher), headers(manager), headers(technician)
    cohort = make_cohort(client, rh, eq("cases.disease_group", "melanoma"), level="cases")
    request = approved(client, rh, mh, cohort["id"], requirements={**FROZEN_20, "aliquots_per_case": 2})
    client.post(f"/api/v1/requests/{request['id']}/allocation", headers=mh)
    primary, aliquot = bank.a1.parent, bank.a1
    parcel = {
        "destination": "Skin Genomics Lab, 12 Research Rd",
        "courier": "ColdChain",
        "temperature": "dry_ice",
        "tracking_number": "CC123",
    }
    url = f"/api/v1/requests/{request['id']}"
    r = client.post(f"{url}/shipment", headers=th, json=parcel)
    assert r.status_code == 409 and "not picked yet" in r.json["detail"]
    for tube in (primary, aliquot):
        assert client.post(f"{url}/picks", headers=th, json={"barcode": tube.barcode}).status_code == 200
    r = client.post(f"{url}/shipment", headers=th, json={**parcel, "temperature": "warm"})
    assert r.status_code == 422
    r = client.post(f"{url}/shipment", headers=th, json=parcel)
    assert r.status_code == 201, r.json

    def status(tube):
        return db_session.scalar(sa.select(Specimen.status).where(Specimen.id == tube.id)).value

    assert status(primary) == status(aliquot) == "in_transit"
    assert client.post(f"{url}/shipment", headers=th, json=parcel).status_code == 409

    r = client.post(
        f"{url}/receipt",
        headers=rh,
        json={
            "scans": [
                {"barcode": primary.barcode, "condition": "acceptable"},
                {"barcode": bank.plasma.barcode},
            ]
        },
    )
    assert r.status_code == 200, r.json
    assert r.json["reconciliation"] == {
        "received": 1,
        "missing": [aliquot.barcode],
        "damaged": [],
        "extra": [bank.plasma.barcode],
    }
    assert (status(primary), status(aliquot), status(bank.plasma)) == (
        "distributed",
        "missing",
        "collected",
    )  # the extra tube is not touched
    events = db_session.scalars(
        sa.select(CustodyEvent.event_type)
        .where(CustodyEvent.specimen_id == primary.id)
        .order_by(CustodyEvent.seq)
    ).all()
    assert [e.value for e in events][-2:] == ["shipped", "received_at_destination"]
    assert verify_ledger().ok

    manifest = client.get(f"{url}/shipment/manifest.csv", headers=rh)
    lines = manifest.get_data(as_text=True).splitlines()
    assert lines[0].startswith("barcode,participant,case") and len(lines) == 3
    assert {line.split(",")[0] for line in lines[1:]} == {primary.barcode, aliquot.barcode}
    assert "Ada" not in manifest.get_data(as_text=True)  # pseudonymous
    pdf = client.get(f"{url}/shipment/manifest.pdf", headers=th)
    assert pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF")
    report = client.get(f"{url}/distribution-report", headers=rh).json
    assert report["approval"]["signer"] == "Manager" and report["approval"]["still_matches"]
    [parcel] = report["shipments"]
    assert (parcel["courier"], parcel["site"], parcel["tubes"]) == ("ColdChain", "CTR", 2)
    assert {t["barcode"]: t["status"] for t in report["tubes"]} == {
        primary.barcode: "distributed",
        aliquot.barcode: "missing",
    }
    assert "genetic_research" in report["tubes"][0]["consent_scopes_now"]


def _page(client, user, path):
    from tests.biobank.web.test_page_access import _login

    _login(client, user)
    r = client.get(path)
    assert r.status_code == 200
    return r.get_data(as_text=True)


def test_each_site_ships_its_own_parcel_and_each_is_received(
    client, bank, make, site, other_site, technician, admin, headers, db_session
):
    """A request whose tubes lie at two sites: two parcels, one per site, each picked,
    shipped, followed and reconciled by itself; the request is shipped after the last."""
    from biobank.models import Allocation, SampleRequest
    from biobank.services.ledger import verify_ledger

    person = make.participant(site=other_site)
    case = make.case(participant=person, code="Q-C6")
    lesion = make.lesion(case=case, code="Q-L6")
    visit = make.visit(participant=person, case=case, lesion=lesion)
    primary = make.specimen(
        participant=person,
        collection_event=visit,
        lesion=lesion,
        material_type=MaterialType.TISSUE_FROZEN,
        quantity=Decimal("90"),
        unit=QuantityUnit.UL,
        container=make.box(site=other_site),
        pos_row=1,
        pos_col=1,
    )
    north = make.specimen(
        participant=person,
        collection_event=visit,
        lesion=lesion,
        parent=primary,
        material_type=MaterialType.TISSUE_FROZEN,
        quantity=Decimal("40"),
        unit=QuantityUnit.UL,
        status=SpecimenStatus.IN_STORAGE,
    )
    network = make.user("network-researcher", role="researcher", sites=[site, other_site])
    rh, th, ah = (headers(u) for u in (network, technician, admin))
    nh = headers(make.user("nrt-tech", role="technician", sites=[other_site]))
    cohort = make_cohort(client, rh, eq("cases.disease_group", "melanoma"), level="cases")
    request = approved(client, rh, ah, cohort["id"])  # a network-wide decision
    url = f"/api/v1/requests/{request['id']}"
    assert client.post(f"{url}/allocation", headers=ah).json["tubes"] == 2
    parcel = {"destination": "Skin Genomics Lab", "courier": "ColdChain", "temperature": "dry_ice"}

    r = client.post(f"{url}/picks", headers=th, json={"barcode": north.barcode})
    assert r.status_code == 409 and "your site's pick list" in r.json["detail"]
    assert client.post(f"{url}/picks", headers=th, json={"barcode": bank.a1.barcode}).status_code == 200
    r = client.post(f"{url}/shipment", headers=nh, json=parcel)
    assert r.status_code == 409 and north.barcode in r.json["unpicked"]  # NRT's own tube
    r = client.post(f"{url}/shipment", headers=ah, json=parcel)  # the administrator: which?
    assert r.status_code == 422 and r.json["allowed"] == ["CTR", "NRT"], r.json
    page = _page(client, admin, f"/requests/{request['id']}")
    assert '<select name="site"><option>CTR</option><option>NRT</option></select>' in page
    r = client.post(f"{url}/shipment", headers=th, json={**parcel, "site": "NRT"})
    assert r.status_code == 403 and "each site ships its own" in r.json["detail"]

    r = client.post(f"{url}/shipment", headers=th, json=parcel)
    assert r.status_code == 201, r.json
    south_parcel = r.json
    assert (south_parcel["site"], south_parcel["tubes"]) == ("CTR", 1)
    assert client.get(url, headers=rh).json["status"] == "allocated"  # NRT has not shipped
    r = client.post(f"{url}/shipment", headers=th, json=parcel)
    assert r.status_code == 403 and "other site" in r.json["detail"]
    page = _page(client, technician, f"/requests/{request['id']}")
    assert 'id="waiting-for-sites"' in page and 'id="ship"' not in page
    assert client.post(f"{url}/picks", headers=nh, json={"barcode": north.barcode}).status_code == 200
    r = client.post(f"{url}/shipment", headers=nh, json={**parcel, "courier": "SF Express"})
    assert r.status_code == 201 and (r.json["site"], r.json["tubes"]) == ("NRT", 1)
    north_parcel = r.json
    assert client.get(url, headers=rh).json["status"] == "shipped"

    # each site follows its own parcel; the requester follows both
    assert [p["site"] for p in client.get(f"{url}/shipments", headers=rh).json] == ["CTR", "NRT"]
    assert [p["site"] for p in client.get(f"{url}/shipments", headers=th).json] == ["CTR"]
    assert [p["site"] for p in client.get(f"{url}/shipments", headers=nh).json] == ["NRT"]
    assert client.get(f"{url}/shipments/{north_parcel['id']}/manifest.csv", headers=th).status_code == 404
    own = client.get(f"{url}/shipment/manifest.csv", headers=th).get_data(as_text=True)
    assert bank.a1.barcode in own and north.barcode not in own
    both = client.get(f"{url}/shipment/manifest.csv", headers=rh).get_data(as_text=True)
    assert {line.split(",")[6] for line in both.splitlines()[1:]} == {"CTR", "NRT"}
    report = client.get(f"{url}/distribution-report", headers=nh).json
    assert [p["courier"] for p in report["shipments"]] == ["SF Express"]
    assert [t["barcode"] for t in report["tubes"]] == [north.barcode]

    # two parcels on their way: the receiving lab names the one it unpacked
    page = _page(client, network, f"/requests/{request['id']}")
    assert f'<option value="{north_parcel["id"]}">{north_parcel["id"]} from NRT' in page
    r = client.post(f"{url}/receipt", headers=rh, json={"scans": []})
    assert r.status_code == 422 and r.json["errors"][0]["field"] == "shipment_id", r.json
    assert sorted(r.json["allowed"]) == sorted([south_parcel["id"], north_parcel["id"]])
    r = client.post(
        f"{url}/receipt",
        headers=rh,
        json={
            "shipment_id": south_parcel["id"],
            "scans": [{"barcode": bank.a1.barcode}, {"barcode": north.barcode}],
        },
    )
    assert r.status_code == 200, r.json
    assert r.json["reconciliation"] == {"received": 1, "missing": [], "damaged": [], "extra": [north.barcode]}
    assert client.get(url, headers=rh).json["status"] == "shipped"
    r = client.post(
        f"{url}/receipt",
        headers=rh,
        json={"shipment_id": south_parcel["id"], "scans": [{"barcode": bank.a1.barcode}]},
    )
    assert r.status_code == 409 and r.json["current_state"] == "received"
    r = client.post(f"{url}/receipt", headers=rh, json={"scans": [{"barcode": north.barcode}]})
    assert r.status_code == 200 and r.json["reconciliation"]["received"] == 1, r.json
    assert client.get(url, headers=rh).json["status"] == "received"
    tubes = db_session.scalars(
        sa.select(Allocation).join(SampleRequest).where(SampleRequest.id == request["id"])
    ).all()
    assert {(a.specimen.barcode, a.shipment.site.code, a.received_condition) for a in tubes} == {
        (bank.a1.barcode, "CTR", "acceptable"),
        (north.barcode, "NRT", "acceptable"),
    }
    assert verify_ledger().ok


def test_unused_material_comes_back_and_is_stored_again(
    client, bank, researcher, manager, technician, headers, db_session, site
):
    from tests.biobank.api.test_scans import scan

    rh, mh, th = headers(researcher), headers(manager), headers(technician)
    cohort = make_cohort(client, rh, eq("cases.disease_group", "melanoma"), level="cases")
    request = approved(client, rh, mh, cohort["id"])
    url = f"/api/v1/requests/{request['id']}"
    client.post(f"{url}/allocation", headers=mh)
    tube = bank.a1
    client.post(f"{url}/picks", headers=th, json={"barcode": tube.barcode})
    r = client.post(f"{url}/returns", headers=rh, json={"barcodes": [tube.barcode]})
    assert r.status_code == 409  # not received yet
    client.post(
        f"{url}/shipment",
        headers=th,
        json={"destination": "Lab", "courier": "ColdChain", "temperature": "dry_ice"},
    )
    client.post(f"{url}/receipt", headers=rh, json={"scans": [{"barcode": tube.barcode}]})
    r = client.post(f"{url}/returns", headers=rh, json={"barcodes": [bank.plasma.barcode]})
    assert r.status_code == 422 and r.json["barcodes"] == [bank.plasma.barcode]
    r = client.post(f"{url}/returns", headers=rh, json={"barcodes": [tube.barcode]})
    assert r.status_code == 200 and r.json["returned"] == 1
    box = bank.a1.parent.container
    r = client.post("/api/v1/scans/", headers=th, json=scan(tube.barcode, "receive_at_destination"))
    assert r.status_code == 201, r.json
    r = client.post(
        "/api/v1/scans/",
        headers=th,
        json=scan(tube.barcode, "store", location={"container_id": box.id, "pos_row": 2, "pos_col": 2}),
    )
    assert r.status_code == 201 and r.json["specimen"]["status"] == "in_storage", r.json


def test_labels_for_a_requests_tubes_and_its_parcel(client, bank, researcher, manager, technician, headers):
    rh, mh, th = headers(researcher), headers(manager), headers(technician)
    cohort = make_cohort(client, rh, eq("cases.disease_group", "melanoma"), level="cases")
    request = approved(client, rh, mh, cohort["id"], requirements={**FROZEN_20, "aliquots_per_case": 2})
    r = client.post(
        "/api/v1/print-jobs/", headers=th, json={"template": "cryovial-2d", "request_id": request["id"]}
    )
    assert r.status_code == 422 and "no allocated tube" in r.json["detail"]
    client.post(f"/api/v1/requests/{request['id']}/allocation", headers=mh)
    r = client.post(
        "/api/v1/print-jobs/", headers=th, json={"template": "cryovial-2d", "request_id": request["id"]}
    )
    assert r.status_code == 201, r.json
    assert r.json["barcodes"] == [bank.a1.parent.barcode, bank.a1.barcode]  # pick-list order
    r = client.post(
        "/api/v1/print-jobs/", headers=th, json={"template": "shipping-box", "request_id": request["id"]}
    )
    assert r.status_code == 201 and r.json["barcodes"] == [request["code"]]


def test_a_request_nothing_can_serve_is_refused(client, bank, researcher, headers, db_session):
    from biobank.models import SampleRequest

    rh = headers(researcher)
    cohort = make_cohort(client, rh, eq("cases.disease_group", "melanoma"), level="cases")
    r = submit(
        client,
        rh,
        cohort["id"],
        consent_scopes=["commercial"],
        requirements={"material_type": "TISSUE_FROZEN", "min_quantity": 5000, "unit": "uL"},
    )
    assert r.status_code == 409 and "no case of the cohort can be served" in r.json["detail"]
    assert r.json["not_servable"] == {"not enough material left": 2, "no consent for a needed scope": 1}
    assert db_session.query(SampleRequest).count() == 0


def _with_a_processing_task(client, rh, mh):
    """An allocated request of two tubes per melanoma case: Q-C1's aliquot and its primary,
    to be aliquoted first. Answers the request's API address."""
    cohort = make_cohort(client, rh, eq("cases.disease_group", "melanoma"), level="cases")
    request = approved(client, rh, mh, cohort["id"], requirements={**FROZEN_20, "aliquots_per_case": 2})
    client.post(f"/api/v1/requests/{request['id']}/allocation", headers=mh)
    return f"/api/v1/requests/{request['id']}"


def test_a_processing_task_aliquots_the_primary_and_allocates_the_aliquot(
    client, bank, researcher, manager, technician, headers, db_session
):
    from biobank.models import Specimen

    rh, mh, th = headers(researcher), headers(manager), headers(technician)
    url = _with_a_processing_task(client, rh, mh)
    task, done = client.get(f"{url}/pick-list", headers=th).json
    assert task["needs_processing"] and not done["needs_processing"]
    r = client.post(f"{url}/allocations/{done['allocation_id']}/aliquot", headers=th, json={})
    assert r.status_code == 422 and r.json["errors"][0]["field"] == "allocation_id"
    r = client.post(f"{url}/allocations/{task['allocation_id']}/aliquot", headers=th, json={"quantity": "-5"})
    assert r.status_code == 422 and r.json["errors"][0]["field"] == "quantity"
    r = client.post(f"{url}/allocations/{task['allocation_id']}/aliquot", headers=th, json={"quantity": "25"})
    assert r.status_code == 201, r.json
    new = r.json
    assert new["barcode"] != task["barcode"] and not new["needs_processing"]
    child = db_session.scalar(sa.select(Specimen).where(Specimen.barcode == new["barcode"]))
    primary = db_session.scalar(sa.select(Specimen).where(Specimen.barcode == task["barcode"]))
    assert child.parent_id == primary.id and child.quantity == 25
    assert (primary.status.value, primary.quantity) == ("in_storage", 75)
    assert child.status.value == "reserved"
    barcodes = [i["barcode"] for i in client.get(f"{url}/pick-list", headers=th).json]
    assert sorted(barcodes) == sorted([new["barcode"], done["barcode"]])


def test_an_approved_request_opens_its_snapshots_manifest_to_the_researcher(
    client, bank, researcher, manager, headers, tmp_path, technician
):
    from tests.biobank.api.test_cohorts import manifest
    from tests.biobank.api.test_images import picture, upload

    upload(client, headers(technician), picture(tmp_path, "d.jpg"), modality="dermoscopy", lesion="Q-L1")
    rh, mh = headers(researcher), headers(manager)
    cohort = make_cohort(client, rh, eq("cases.disease_group", "melanoma"), level="cases")
    snap = freeze(client, rh, cohort["id"])
    assert manifest(client, rh, cohort["id"]).status_code == 403
    request = approved(client, rh, mh, cohort["id"], snapshot_id=snap["id"])
    r = manifest(client, rh, cohort["id"])
    assert r.status_code == 200, r.json
    assert request["code"] and "Q-L1" in r.get_data(as_text=True)
    newer = freeze(client, rh, cohort["id"])  # a later snapshot is not covered
    assert manifest(client, rh, cohort["id"], snapshot=newer["id"]).status_code == 403


def test_make_every_aliquot_places_allocates_and_prints_in_one_action(
    client, bank, make, site, other_site, researcher, manager, technician, headers, db_session
):
    from biobank.models import Specimen
    from labels.models import PrintJob

    rh, mh, th = headers(researcher), headers(manager), headers(technician)
    url = _with_a_processing_task(client, rh, mh)
    primary = bank.a1.parent
    # no room at the primary's −80 °C at its site: nothing is made, the task stays
    full = primary.container
    for row in range(1, 10):
        for col in range(1, 10):
            if (row, col) != (1, 1):
                make.specimen(participant=bank.p1, container=full, pos_row=row, pos_col=col)
    r = client.post(f"{url}/processing", headers=th, json={"quantity": "25"})
    assert r.status_code == 409, r.json
    assert r.json["detail"].startswith(
        f"no room for 1 new aliquots at −60 to −85 °C at site {site.code}: only 0 free positions"
    ), r.json
    assert [i["needs_processing"] for i in client.get(f"{url}/pick-list", headers=th).json] == [True, False]
    # a researcher does not process, nor another site's technician its tubes; a bad template
    # is a 4xx naming it; nothing made
    assert client.post(f"{url}/processing", headers=rh, json={}).status_code == 403
    elsewhere = headers(make.user("nrt-processor", role="technician", sites=[other_site]))
    r = client.post(f"{url}/processing", headers=elsewhere, json={})
    assert r.status_code == 409 and "no aliquot left to make at your sites" in r.json["detail"]
    room = make.box(site=site, name="Spare box")  # also −80 °C (the factory's freezer)
    r = client.post(
        f"{url}/processing", headers=th, json={"quantity": "25", "print": {"template": "no-such-template"}}
    )
    assert r.status_code == 422 and r.json["errors"][0]["field"] == "template", r.json
    r = client.post(
        f"{url}/processing", headers=th, json={"quantity": "25", "print": {"template": "cryovial-2d"}}
    )
    assert r.status_code == 201, r.json
    assert (r.json["made"], len(r.json["aliquots"])) == (1, 1)
    child = db_session.scalar(sa.select(Specimen).where(Specimen.barcode == r.json["aliquots"][0]))
    assert (child.container_id, child.pos_row, child.pos_col) == (room.id, 1, 1)
    assert (child.parent_id, child.quantity, child.status.value) == (primary.id, 25, "reserved")
    db_session.refresh(primary)
    assert (primary.status.value, primary.quantity) == ("in_storage", 75)
    job = db_session.get(PrintJob, r.json["print_job_id"])
    assert job.barcodes == {"items": [child.barcode]} and job.source == "request processing"
    items = client.get(f"{url}/pick-list", headers=th).json
    assert sorted(i["barcode"] for i in items) == sorted([child.barcode, bank.a1.barcode])
    assert items[0]["box"] and not any(i["needs_processing"] for i in items)
    r = client.post(f"{url}/processing", headers=th, json={})
    assert r.status_code == 409 and "no aliquot left to make" in r.json["detail"]
