"""Who may open which page: every page declares its roles, and researchers see counts and
the tubes of their approved requests, never rows of participants, cases or specimens."""

from __future__ import annotations

import re

import pytest

from tests.biobank.api.test_query import eq
from tests.biobank.api.test_requests import approved, bank, make_cohort  # noqa: F401
from tests.factories import PASSWORD

#: pages anyone may open, signed in or not
PUBLIC = {"/login", "/logout", "/api/docs", "/api/docs/assets/<path:filename>"}
#: pages a researcher opens (what they show is scoped inside)
FOR_RESEARCHERS = {"/", "/cohorts", "/cohorts/new", "/cohorts/<int:cohort_id>", "/requests",
                   "/requests/new", "/requests/<int:request_id>",
                   "/requests/<int:request_id>/report", "/specimens/<barcode>", "/account",
                   "/account/tokens", "/account/tokens/<int:token_id>/revoke"}


def _pages(app):
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(("/api/v1", "/ga4gh/", "/static/")) or rule.rule in PUBLIC:
            continue
        yield rule, app.view_functions[rule.endpoint]


def test_every_page_declares_its_roles(app):
    undeclared = [rule.rule for rule, view in _pages(app) if not getattr(view, "_roles", None)]
    assert undeclared == []


def test_only_the_listed_pages_are_open_to_researchers(app):
    from biobank.models.vocab import Role

    open_to = {rule.rule for rule, view in _pages(app) if Role.RESEARCHER in view._roles}
    assert open_to == FOR_RESEARCHERS


def _login(client, user):
    html = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', html).group(1)
    r = client.post("/login", data={"username": user.username, "password": PASSWORD,
                                    "csrf": csrf})
    assert r.status_code == 302


@pytest.mark.parametrize("path", ["/specimens", "/storage", "/participants/{p}", "/cases/{c}",
                                  "/lesions/{l}", "/scan"])
def test_researchers_get_no_row_pages(client, bank, researcher, path):  # noqa: F811
    _login(client, researcher)
    url = path.format(p=bank.p1.code, c=bank.c1.code, l=bank.l1.code)
    assert client.get(url).status_code == 403


def test_a_researcher_sees_only_the_tubes_their_approved_request_allocated(
        client, bank, researcher, manager, headers):  # noqa: F811
    rh, mh = headers(researcher), headers(manager)
    _login(client, researcher)
    assert client.get(f"/specimens/{bank.a1.barcode}").status_code == 404
    cohort = make_cohort(client, rh, eq("cases.disease_group", "melanoma"), level="cases")
    request = approved(client, rh, mh, cohort["id"])
    assert client.post(f"/api/v1/requests/{request['id']}/allocation", headers=mh
                       ).status_code == 200
    picks = client.get(f"/api/v1/requests/{request['id']}/pick-list", headers=mh).json
    page = client.get(f"/specimens/{picks[0]['barcode']}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Allocated to your request" in text and "Audit trail" not in text
    assert client.get(f"/specimens/{bank.plasma.barcode}").status_code == 404


def test_the_dashboard_shows_researchers_protected_counts(client, make, site, researcher,
                                                         technician):
    for _ in range(3):
        make.specimen(participant=make.participant(site=site))
    _login(client, researcher)
    page = client.get("/").get_data(as_text=True)
    assert re.search(r'id="total-specimens">&lt;5<', page), page[:2000]
