"""Participants API: PHI stays with staff."""

from __future__ import annotations

import sqlalchemy as sa

from biobank.models import Participant, ParticipantPHI


def test_staff_register_participant_with_phi_and_generated_code(
    client, make, site, technician, headers, db_session
):
    study = make.study()
    r = client.post(
        "/api/v1/participants/",
        headers=headers(technician),
        json={
            "study_id": study.id,
            "site_id": site.id,
            "sex": "female",
            "birth_year": 1961,
            "phi": {"given_name": "Mei", "family_name": "Chen", "medical_record_number": "MRN42"},
        },
    )
    assert r.status_code == 201, r.json
    assert r.json["code"].startswith("P-") and len(r.json["code"]) == 10
    assert r.json["phi"]["family_name"] == "Chen"
    stored = db_session.get(ParticipantPHI, r.json["id"])
    assert stored.medical_record_number == "MRN42"


def test_researcher_never_receives_phi(client, make, site, researcher, headers):
    p = make.participant(site=site)
    h = headers(researcher)
    one = client.get(f"/api/v1/participants/{p.id}", headers=h).json
    assert one["code"] == p.code
    assert "phi" not in one
    listed = client.get("/api/v1/participants/", headers=h).json
    assert listed and all("phi" not in row for row in listed)
    assert "Test" not in client.get("/api/v1/participants/", headers=h).get_data(as_text=True)


def test_registering_at_a_site_one_is_not_member_of_is_forbidden(
    client, make, other_site, technician, headers, db_session
):
    study = make.study()
    r = client.post(
        "/api/v1/participants/",
        headers=headers(technician),
        json={"study_id": study.id, "site_id": other_site.id},
    )
    assert r.status_code == 403
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Participant)) == 0


def test_unknown_study_is_named(client, site, technician, headers):
    r = client.post(
        "/api/v1/participants/", headers=headers(technician), json={"study_id": 999999, "site_id": site.id}
    )
    assert r.status_code == 422
    assert r.json["errors"][0]["field"] == "study_id"


def test_update_phi_is_audited_without_leaking_password_fields(
    client, make, site, technician, headers, db_session
):
    from biobank.models import AuditRecord

    p = make.participant(site=site)
    h = headers(technician)
    etag = client.get(f"/api/v1/participants/{p.id}", headers=h).headers["ETag"]
    r = client.patch(
        f"/api/v1/participants/{p.id}",
        json={"phi": {"family_name": "Renamed"}},
        headers=h | {"If-Match": etag},
    )
    assert r.status_code == 200, r.json
    rec = db_session.scalars(
        sa.select(AuditRecord).where(AuditRecord.entity == "participant_phi", AuditRecord.action == "update")
    ).one()
    assert rec.changes["family_name"][1] == "Renamed"
