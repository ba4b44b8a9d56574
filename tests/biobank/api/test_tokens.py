"""API tokens: listed without their secret, used (and so dated), revoked at once."""

from __future__ import annotations

import re

from biobank.cli import main
from tests.factories import PASSWORD


def test_create_use_list_and_revoke_a_token(client, researcher, technician, headers, db_session):
    h = headers(researcher)
    r = client.post("/api/v1/tokens/", headers=h, json={"name": "notebook", "days": 30})
    assert r.status_code == 201, r.json
    secret, token_id = r.json["secret"], r.json["id"]
    mine = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/v1/sites/", headers=mine).status_code == 200
    listed = client.get("/api/v1/tokens/", headers=mine).json
    new = next(t for t in listed if t["id"] == token_id)
    assert "secret" not in new and new["last_used_at"] and new["expires_at"]
    assert secret.startswith(new["prefix"])
    # another user's token is not theirs to see or revoke
    assert client.delete(f"/api/v1/tokens/{token_id}", headers=headers(technician)).status_code == 404
    r = client.delete(f"/api/v1/tokens/{token_id}", headers=h)
    assert r.status_code == 200 and r.json["revoked_at"]
    assert client.get("/api/v1/sites/", headers=mine).status_code == 401
    r = client.post("/api/v1/tokens/", headers=h, json={"name": "x", "days": 99999})
    assert r.status_code == 422 and r.json["errors"][0]["field"] == "days"


def test_tokens_from_the_command_line_and_the_account_page(app, client, technician, db_session):
    runner = app.test_cli_runner()
    secret = runner.invoke(main, ["create-token", technician.username, "--name", "bench"]).output.strip()
    listed = runner.invoke(main, ["tokens", "list", technician.username]).output
    token_id = int(listed.split("\t")[0])
    assert "bench" in listed and secret[:12] in listed
    out = runner.invoke(main, ["tokens", "revoke", str(token_id)])
    assert out.exit_code == 0 and "revoked token" in out.output
    assert client.get("/api/v1/sites/", headers={"Authorization": f"Bearer {secret}"}).status_code == 401

    html = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', html).group(1)
    client.post("/login", data={"username": technician.username, "password": PASSWORD, "csrf": csrf})
    page = client.get("/account").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    assert "revoked" in page and "bench" in page
    r = client.post("/account/tokens", data={"csrf": csrf, "name": "laptop", "days": "7"})
    shown = re.search(r'id="token-secret">([^<]+)<', r.get_data(as_text=True)).group(1)
    assert client.get("/api/v1/sites/", headers={"Authorization": f"Bearer {shown}"}).status_code == 200
    assert shown not in client.get("/account").get_data(as_text=True)  # shown only once
