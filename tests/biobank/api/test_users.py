"""Accounts: administrators create them (with a temporary password shown once), change
roles and sites, lock and unlock them and reset passwords; a locked account's browsers and
tokens stop working at once; someone always remains able to administer."""

from __future__ import annotations

import re

import sqlalchemy as sa

from biobank.models import AuditRecord
from tests.factories import PASSWORD


def _sign_in(client, username, password):
    html = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', html).group(1)
    return client.post("/login", data={"username": username, "password": password, "csrf": csrf})


def test_an_administrator_opens_changes_locks_and_unlocks_an_account(
    client, admin, manager, site, other_site, headers, db_session
):
    ah = headers(admin)
    assert client.get("/api/v1/users/", headers=headers(manager)).status_code == 403
    r = client.post(
        "/api/v1/users/",
        headers=ah,
        json={
            "username": "li.na",
            "full_name": "Li Na",
            "role": "technician",
            "sites": [site.code],
            "email": "li.na@example.org",
        },
    )
    assert r.status_code == 201, r.json
    new, password = r.json, r.json["temporary_password"]
    assert (new["role"], new["sites"], new["is_active"]) == ("technician", [site.code], True)
    assert len(password) >= 12
    assert "temporary_password" not in client.get(f"/api/v1/users/{new['id']}", headers=ah).json
    r = client.post(
        "/api/v1/users/",
        headers=ah,
        json={"username": "li.na", "full_name": "Li Na again", "role": "technician"},
    )
    assert r.status_code == 409 and r.json["errors"][0]["field"] == "username"
    r = client.post(
        "/api/v1/users/",
        headers=ah,
        json={"username": "x", "full_name": "X", "role": "technician", "sites": ["NOPE"]},
    )
    assert r.status_code == 422

    assert _sign_in(client, "li.na", password).status_code == 302
    assert client.get("/account").status_code == 200
    token = headers(db_session.get(type(admin), new["id"]))

    r = client.patch(
        f"/api/v1/users/{new['id']}",
        headers=ah,
        json={"role": "manager", "sites": [site.code, other_site.code]},
    )
    assert r.status_code == 200, r.json
    assert (r.json["role"], r.json["sites"]) == ("manager", sorted([site.code, other_site.code]))

    r = client.post(f"/api/v1/users/{new['id']}/lock", headers=ah, json={"reason": ""})
    assert r.status_code == 422 and r.json["errors"][0]["field"] == "reason"
    r = client.post(
        f"/api/v1/users/{new['id']}/lock", headers=ah, json={"reason": "left the biobank on 30 November"}
    )
    assert r.status_code == 200 and r.json["is_active"] is False
    assert client.get("/account").status_code == 302  # the browser is signed out
    assert client.get("/api/v1/tokens/", headers=token).status_code == 401
    assert _sign_in(client, "li.na", password).status_code == 401  # refused
    audit = db_session.scalars(
        sa.select(AuditRecord)
        .where(AuditRecord.entity == "users", AuditRecord.entity_id == str(new["id"]))
        .order_by(AuditRecord.id)
    ).all()[-1]
    assert audit.changes == {"is_active": [True, False]}
    assert audit.reason == "left the biobank on 30 November"

    r = client.post(f"/api/v1/users/{new['id']}/unlock", headers=ah)
    assert r.status_code == 200 and r.json["is_active"] is True
    assert client.get("/api/v1/tokens/", headers=token).status_code == 200


def test_a_password_reset_signs_out_and_the_owner_chooses_their_own(client, admin, technician, headers):
    ah, th = headers(admin), headers(technician)
    assert _sign_in(client, technician.username, PASSWORD).status_code == 302
    r = client.post(f"/api/v1/users/{technician.id}/password-reset", headers=ah)
    assert r.status_code == 200
    temporary = r.json["temporary_password"]
    assert client.get("/account").status_code == 302
    assert _sign_in(client, technician.username, PASSWORD).status_code == 401
    assert _sign_in(client, technician.username, temporary).status_code == 302

    change = "/api/v1/users/me/password"
    r = client.post(change, headers=th, json={"current_password": "guess", "password": "a-new-passphrase"})
    assert r.status_code == 422 and r.json["errors"][0]["field"] == "current_password"
    r = client.post(change, headers=th, json={"current_password": temporary, "password": "short"})
    assert r.status_code == 422 and r.json["errors"][0]["field"] == "password"
    r = client.post(change, headers=th, json={"current_password": temporary, "password": "a-new-passphrase"})
    assert r.status_code == 204
    assert _sign_in(client, technician.username, "a-new-passphrase").status_code == 302


def test_someone_always_remains_an_administrator(client, admin, make, headers):
    ah = headers(admin)
    r = client.patch(f"/api/v1/users/{admin.id}", headers=ah, json={"role": "manager"})
    assert r.status_code == 409 and "last active administrator" in r.json["detail"]
    r = client.post(f"/api/v1/users/{admin.id}/lock", headers=ah, json={"reason": "test"})
    assert r.status_code == 422 and "your own account" in r.json["detail"]
    other = make.user("second-admin", role="admin")
    r = client.post(f"/api/v1/users/{other.id}/lock", headers=ah, json={"reason": "leave"})
    assert r.status_code == 200
    r = client.patch(f"/api/v1/users/{admin.id}", headers=ah, json={"role": "manager"})
    assert r.status_code == 409  # the other one is locked
    assert client.get("/api/v1/users/999999", headers=ah).status_code == 404
