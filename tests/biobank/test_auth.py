"""Login, tokens, roles on every endpoint, and rate limiting."""

from __future__ import annotations

import datetime as dt
import re

import sqlalchemy as sa

from biobank.api import API_PREFIX
from biobank.auth import hash_token
from biobank.models import ApiToken
from tests.biobank.api.test_site_matrix import api_prefixes
from tests.factories import PASSWORD


def _csrf(client, path="/login"):
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def test_every_api_endpoint_declares_its_roles(app):
    undeclared = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(API_PREFIX) or rule.rule.endswith("openapi.json"):
            continue
        view = app.view_functions[rule.endpoint]
        view_class = getattr(view, "view_class", None)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            func = getattr(view_class, method.lower(), None) if view_class else view
            if not getattr(func, "_roles", None):
                undeclared.append(f"{method} {rule.rule}")
    assert undeclared == []


def test_openapi_documents_roles_and_bearer_auth(client, db_session):
    spec = client.get(f"{API_PREFIX}/openapi.json").json
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    post = spec["paths"]["/api/v1/specimens/"]["post"]
    assert "Roles: admin, manager, technician" in post["description"]


def test_tokens_are_stored_hashed(make, technician, db_session):
    headers = make.auth_headers(technician)
    secret = headers["Authorization"].split()[1]
    stored = db_session.scalars(sa.select(ApiToken.token_hash)).all()
    assert secret not in stored
    assert hash_token(secret) in stored


def test_revoked_and_expired_tokens_are_refused(client, make, technician, db_session):
    headers = make.auth_headers(technician)
    assert client.get(f"{API_PREFIX}/specimens/", headers=headers).status_code == 200
    token = db_session.scalars(sa.select(ApiToken)).one()
    token.expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    db_session.commit()
    assert client.get(f"{API_PREFIX}/specimens/", headers=headers).status_code == 401


def test_what_a_request_may_do_is_read_afresh_at_every_request(
    client, make, site, other_site, technician, db_session
):
    """A request acts for the account as it is when the request begins: a site taken away or
    an account made inactive counts at the next request, by token and by session alike, and
    a token's last use is kept."""
    from biobank.models import User

    headers = make.auth_headers(technician)
    theirs = make.specimen(participant=make.participant(site=other_site))
    path = f"{API_PREFIX}/specimens/{theirs.id}"
    assert client.get(path, headers=headers).status_code == 404
    user = db_session.get(User, technician.id)
    user.sites = [site, other_site]
    db_session.commit()
    assert client.get(path, headers=headers).status_code == 200
    assert db_session.scalars(sa.select(ApiToken.last_used_at)).one() is not None
    client.post("/login", data={"username": "tech", "password": PASSWORD, "csrf": _csrf(client)})
    assert client.get(path).status_code == 200
    user.sites = [site]
    db_session.commit()
    assert client.get(path, headers=headers).status_code == 404
    assert client.get(path).status_code == 404
    user.is_active = False
    db_session.commit()
    assert client.get(path, headers=headers).status_code == 401
    assert client.get(f"{API_PREFIX}/specimens/").status_code == 401
    assert client.get("/").status_code == 302  # the page asks to sign in again


def test_page_login_and_logout(client, technician, db_session):
    csrf = _csrf(client)
    r = client.post("/login", data={"username": "tech", "password": PASSWORD, "csrf": csrf})
    assert r.status_code == 302
    assert client.get("/").status_code == 200
    # The session also authenticates API reads from the pages.
    assert client.get(f"{API_PREFIX}/specimens/").status_code == 200
    client.post("/logout", data={"csrf": _csrf(client, "/")})
    assert client.get("/").status_code == 302


def test_login_form_without_csrf_token_is_refused(client, technician):
    r = client.post("/login", data={"username": "tech", "password": PASSWORD})
    assert r.status_code == 400


def test_repeated_failed_logins_lock_the_account(client, app, technician, db_session):
    csrf = _csrf(client)
    limit = app.config["LOGIN_MAX_FAILURES"]
    for _ in range(limit):
        r = client.post("/login", data={"username": "tech", "password": "wrong", "csrf": csrf})
        assert r.status_code == 401
        assert "wrong username or password" in r.get_data(as_text=True)
    r = client.post("/login", data={"username": "tech", "password": PASSWORD, "csrf": csrf})
    assert r.status_code == 429


def test_unknown_users_get_the_same_answers_and_the_same_lockout(client, app, technician, db_session):
    csrf = _csrf(client)
    answers = {}
    for name in ("tech", "nobody"):
        seen = []
        for _ in range(app.config["LOGIN_MAX_FAILURES"] + 1):
            r = client.post("/login", data={"username": name, "password": "x", "csrf": csrf})
            seen.append((r.status_code, re.sub(r'value="[^"]+"', "", r.get_data(as_text=True))))
        answers[name] = seen
    assert answers["tech"] == answers["nobody"]
    assert answers["nobody"][-1][0] == 429


def _signed_in(client):
    csrf = _csrf(client)
    r = client.post("/login", data={"username": "tech", "password": PASSWORD, "csrf": csrf})
    assert r.status_code == 302
    return client.get_cookie("session").value


def test_logging_out_ends_the_session_for_the_old_cookie_too(client, app, technician, db_session):
    cookie = _signed_in(client)
    assert client.get("/").status_code == 200
    client.post("/logout", data={"csrf": _csrf(client, "/")})
    client.set_cookie("session", cookie)  # the cookie as it was before logging out
    assert client.get("/").status_code == 302
    assert client.get(f"{API_PREFIX}/specimens/").status_code == 401


def test_an_idle_session_ends(client, app, technician, db_session):
    from biobank.models import UserSession

    _signed_in(client)
    assert client.get("/").status_code == 200
    idle = app.config["SESSION_IDLE_MINUTES"] + 1
    for record in db_session.scalars(sa.select(UserSession)):
        record.last_seen_at = record.last_seen_at - dt.timedelta(minutes=idle)
    db_session.commit()
    assert client.get("/").status_code == 302


def test_login_redirect_stays_on_this_site(client, technician):
    csrf = _csrf(client)
    r = client.post(
        "/login?next=//evil.example/", data={"username": "tech", "password": PASSWORD, "csrf": csrf}
    )
    assert r.headers["Location"] == "/"


def test_cookie_authenticated_api_writes_need_the_csrf_header(client, make, site, technician):
    csrf = _csrf(client)
    client.post("/login", data={"username": "tech", "password": PASSWORD, "csrf": csrf})
    page_csrf = _csrf(client, "/")
    body = {"code": "X1", "name": "x"}
    r = client.post(f"{API_PREFIX}/sites/", json=body)
    assert r.status_code == 401
    assert "X-CSRF-Token" in r.json["detail"]
    r = client.post(f"{API_PREFIX}/sites/", json=body, headers={"X-CSRF-Token": page_csrf})
    assert r.status_code == 403  # authenticated now; technicians may not create sites


def test_every_page_that_takes_a_post_refuses_one_without_the_form_token(app, client, make, site, db_session):
    make.user("clerk", role="technician", sites=[site])
    csrf = _csrf(client)
    assert (
        client.post("/login", data={"username": "clerk", "password": PASSWORD, "csrf": csrf}).status_code
        == 302
    )
    checked = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith((*api_prefixes(app), "/static/")) or "POST" not in rule.methods:
            continue
        url = re.sub(r"<[^>]+>", "1", rule.rule)  # every path variable gets an example
        r = client.post(url, data={"barcode": "X", "container_id": "1"})
        assert r.status_code == 400, (rule.rule, r.status_code)
        assert "reload the page" in r.get_data(as_text=True)
        checked.append(rule.rule)
    assert {"/labels/print", "/labels/print-box", "/logout", "/specimens/<barcode>/custody/correct"} <= set(
        checked
    )


def test_outside_the_demo_the_session_cookie_is_https_only(tmp_path):
    from biobank import create_app

    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'secure.db'}"})
    r = app.test_client().get("/login")
    cookie = r.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert r.headers["Strict-Transport-Security"].startswith("max-age=")
    with app.app_context():
        from biobank.db import db

        db.engine.dispose()
