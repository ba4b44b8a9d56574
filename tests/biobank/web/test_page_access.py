"""Who may open which page: every page declares its roles, and researchers see counts and
the tubes of their approved requests, never rows of participants, cases or specimens."""

from __future__ import annotations

import re

import pytest

from tests.biobank.api.test_query import eq
from tests.biobank.api.test_requests import approved, bank, make_cohort  # noqa: F401
from tests.biobank.api.test_site_matrix import api_prefixes
from tests.factories import PASSWORD

#: pages anyone may open, signed in or not
PUBLIC = {"/login", "/logout", "/api/docs", "/api/docs/assets/<path:filename>"}
#: pages a researcher opens (what they show is scoped inside)
FOR_RESEARCHERS = {
    "/",
    "/cohorts",
    "/cohorts/new",
    "/cohorts.csv",
    "/cohorts/<int:cohort_id>",
    "/requests",
    "/requests/new",
    "/requests.csv",
    "/requests/<int:request_id>",
    "/requests/<int:request_id>/report",
    "/specimens/<barcode>",
    "/account",
    "/account/tokens",
    "/account/tokens/<int:token_id>/revoke",
    "/account/password",
}


def _pages(app):
    for rule in app.url_map.iter_rules():
        # API operations: test_site_matrix.test_every_operation_declares_its_roles
        if rule.rule.startswith((*api_prefixes(app), "/static/")) or rule.rule in PUBLIC:
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
    r = client.post("/login", data={"username": user.username, "password": PASSWORD, "csrf": csrf})
    assert r.status_code == 302


@pytest.mark.parametrize(
    "path", ["/specimens", "/storage", "/participants/{p}", "/cases/{c}", "/lesions/{l}", "/scan"]
)
def test_researchers_get_no_row_pages(client, bank, researcher, path):
    _login(client, researcher)
    url = path.format(p=bank.p1.code, c=bank.c1.code, l=bank.l1.code)
    assert client.get(url).status_code == 403


def test_a_researcher_sees_only_the_tubes_their_approved_request_allocated(
    client, bank, researcher, manager, headers
):
    rh, mh = headers(researcher), headers(manager)
    _login(client, researcher)
    assert client.get(f"/specimens/{bank.a1.barcode}").status_code == 404
    cohort = make_cohort(client, rh, eq("cases.disease_group", "melanoma"), level="cases")
    request = approved(client, rh, mh, cohort["id"])
    assert client.post(f"/api/v1/requests/{request['id']}/allocation", headers=mh).status_code == 200
    picks = client.get(f"/api/v1/requests/{request['id']}/pick-list", headers=mh).json
    page = client.get(f"/specimens/{picks[0]['barcode']}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Allocated to your request" in text and "Audit trail" not in text
    assert client.get(f"/specimens/{bank.plasma.barcode}").status_code == 404


def test_the_dashboard_shows_researchers_protected_counts(client, make, site, researcher, technician):
    for _ in range(3):
        make.specimen(participant=make.participant(site=site))
    _login(client, researcher)
    page = client.get("/").get_data(as_text=True)
    assert re.search(r'id="total-specimens">&lt;5<', page), page[:2000]


#: pages that show one site's record, with the other site's record they are opened on
SCOPED_PAGES = [
    "/specimens/{barcode}",
    "/specimens/{barcode}/aliquot",
    "/specimens/{barcode}/custody.csv",
    "/specimens/{barcode}/audit.csv",
    "/specimens/{barcode}/aliquot/made",
    "/aliquot?barcode={barcode}",
    "/accession/visits/{visit}",
    "/containers/{box}",
    "/containers/{box}/evacuation",
    "/participants/{participant}",
    "/cases/{case}",
    "/lesions/{lesion}",
]
#: pages with an identifier that are not one site's record, and why
EXEMPT_PAGES = {
    "/cohorts/<int:cohort_id>": "cohorts are their owner's",
    "/admin/users/<int:user_id>": "accounts are the administrators'",
    "/requests/<int:request_id>": "a request spans sites; tubes filtered per site",
    "/requests/<int:request_id>/report": "tubes filtered per site",
}


def test_every_page_with_an_identifier_is_in_the_matrix(app):
    templates = {re.sub(r"\{[^}]+\}", "<>", p) for p in SCOPED_PAGES}
    templates |= {re.sub(r"<[^>]+>", "<>", p) for p in EXEMPT_PAGES}
    pages = {
        re.sub(r"<[^>]+>", "<>", rule.rule)
        for rule, _ in _pages(app)
        if "<" in rule.rule and "GET" in rule.methods
    }
    assert sorted(pages - templates) == []


@pytest.mark.parametrize("role", ["technician", "manager"])
def test_another_sites_records_are_not_found_on_the_pages(client, make, site, other_site, role, db_session):
    participant = make.participant(site=other_site)
    case = make.case(participant=participant)
    lesion = make.lesion(case=case)
    box = make.box(site=other_site)
    tube = make.specimen(participant=participant, container=box, pos_row=1, pos_col=1)
    visit = make.visit(participant=participant)
    ids = {
        "barcode": tube.barcode,
        "box": box.id,
        "participant": participant.code,
        "case": case.code,
        "lesion": lesion.code,
        "visit": visit.id,
    }
    _login(client, make.user(f"page-{role}", role=role, sites=[site]))
    opened = [(p, client.get(p.format(**ids)).status_code) for p in SCOPED_PAGES]
    assert [(p, code) for p, code in opened if code not in (403, 404)] == []
    # nor split there: the form post is refused before anything is read from it
    html = client.get("/aliquot").get_data(as_text=True)
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)
    r = client.post(f"/specimens/{tube.barcode}/aliquot", data={"csrf": csrf, "count": "1", "quantity": "1"})
    assert r.status_code == 404
    db_session.refresh(tube)
    assert tube.children == []


def test_the_dashboard_keeps_its_counts_for_the_configured_seconds(app, client, make, site, technician):
    person = make.participant(site=site)
    make.specimen(participant=person)
    _login(client, technician)
    app.config["SUMMARY_CACHE_SECONDS"] = 60
    try:
        first = client.get("/").get_data(as_text=True)
        assert re.search(r'id="total-specimens">1<', first)
        make.specimen(participant=person)
        again = client.get("/").get_data(as_text=True)
        # the same counts, and the page says when they were counted
        assert re.search(r'id="total-specimens">1<', again) and "new counts at most 60 seconds later" in again
        app.config["SUMMARY_CACHE_SECONDS"] = 0
        assert re.search(r'id="total-specimens">2<', client.get("/").get_data(as_text=True))
    finally:
        app.config["SUMMARY_CACHE_SECONDS"] = 0
