"""Tables on pages sort by a column, filter, page, show their total and export every row as
CSV, each within what the user may see: cohorts, requests, imports, accounts, and a tube's
custody chain and audit trail."""

from __future__ import annotations

import csv
import io
import re

import sqlalchemy as sa

from biobank.models import CustodyEvent, Specimen
from biobank.models.imports import ImportStatus
from tests.biobank.web.test_page_access import _login


def _rows(response):
    assert response.status_code == 200 and response.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def _names(html):
    return re.findall(r'<td><a href="/cohorts/\d+">([^<]+)</a>', html)


def _total(html):
    return int(re.search(r'class="table-total">(\d+)<', html).group(1))


def test_cohorts_sort_filter_page_count_and_export(client, make, manager, researcher):
    names = [f"Cohort {n:02d}" for n in range(55)]
    for n, name in enumerate(names):
        make.cohort(owner=researcher if n % 2 else manager, name=name, level="lesions" if n < 5 else "cases")
    make.cohort(owner=manager, name="50% of psoriasis_cases", level="cases")
    _login(client, manager)

    html = client.get("/cohorts?sort=name").get_data(as_text=True)
    assert _total(html) == 56 and "page 1 of 2" in html
    assert _names(html) == sorted([*names, "50% of psoriasis_cases"])[:50]
    second = client.get("/cohorts?sort=name&page=2").get_data(as_text=True)
    assert _names(second) == sorted(names)[49:]
    assert _names(client.get("/cohorts?sort=-name").get_data(as_text=True))[:2] == ["Cohort 54", "Cohort 53"]
    # the link of a heading turns the order round, the pager keeps filters and order
    assert 'href="/cohorts?sort=-name"' in html and 'rel="next" href="/cohorts?sort=name&amp;page=2"' in html

    lesions = client.get("/cohorts?level=lesions").get_data(as_text=True)
    assert sorted(_names(lesions)) == names[:5]
    # what is typed is text, not a pattern: % and _ match themselves
    assert _names(client.get("/cohorts?q=50%25 of").get_data(as_text=True)) == ["50% of psoriasis_cases"]
    assert _names(client.get("/cohorts?q=s_c").get_data(as_text=True)) == ["50% of psoriasis_cases"]

    rows = _rows(client.get("/cohorts.csv?level=cases&sort=-name"))
    assert len(rows) == 51 and rows[0]["Name"] == "Cohort 54" and rows[-1]["Name"] == "50% of psoriasis_cases"
    assert {r["Owner"] for r in rows} == {manager.username, researcher.username}

    for bad in (
        "/cohorts?sort=filters",
        "/cohorts?level=tubes",
        "/cohorts?page=0",
        "/cohorts?page=x",
        "/cohorts.csv?sort=-x",
    ):
        r = client.get(bad)
        assert r.status_code == 400, bad
    assert "sort by one of name, level, created, updated" in client.get("/cohorts?sort=owner").get_data(
        as_text=True
    )

    # a researcher's list and export hold their own cohorts only
    client.post("/logout", data={"csrf": _csrf(client)})
    _login(client, researcher)
    mine = _rows(client.get("/cohorts.csv"))
    assert len(mine) == 27 and {r["Owner"] for r in mine} == {researcher.username}
    assert _total(client.get("/cohorts").get_data(as_text=True)) == 27


def _csrf(client):
    html = client.get("/account").get_data(as_text=True)
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def test_imports_and_accounts_filter_sort_and_export(client, make, admin, manager, technician):
    make.import_job(by=manager, filename="a.csv", status=ImportStatus.SUCCEEDED, rows_read=10)
    make.import_job(by=manager, filename="b.csv", status=ImportStatus.FAILED, rows_read=30, error_count=4)
    make.import_job(by=manager, filename="c.xlsx", template="participants", status=ImportStatus.SUCCEEDED)
    make.import_job(by=admin, filename="admins.csv", status=ImportStatus.SUCCEEDED)
    _login(client, manager)
    html = client.get("/imports?status=succeeded").get_data(as_text=True)
    assert _total(html) == 2  # not the administrator's import
    files = re.findall(
        r"<tr><td>\d+</td><td>([^<]+)</td>", client.get("/imports?sort=-rows").get_data(as_text=True)
    )
    assert files == ["b.csv", "a.csv", "c.xlsx"]
    rows = _rows(client.get("/imports.csv?template=master&sort=file"))
    assert [(r["File"], r["Status"], r["Problems"]) for r in rows] == [
        ("a.csv", "Succeeded", "0"),
        ("b.csv", "Failed", "4"),
    ]
    assert client.get("/imports?status=done").status_code == 400
    assert client.get("/imports?template=nope").status_code == 400

    client.post("/logout", data={"csrf": _csrf(client)})
    make.user("zz-locked", role="technician", is_active=False, email="zz@example.org")
    _login(client, admin)
    html = client.get("/admin/users?state=locked").get_data(as_text=True)
    assert re.findall(r'data-user="([^"]+)"', html) == ["zz-locked"]
    technicians = _rows(client.get("/admin/users.csv?role=technician&sort=-username"))
    names = [r["Username"] for r in technicians]
    assert names[0] == "zz-locked" and technician.username in names and names == sorted(names, reverse=True)
    assert technicians[0]["E-mail"] == "zz@example.org" and technicians[0]["State"] == "locked"
    assert client.get("/admin/users?role=king").status_code == 400

    client.post("/logout", data={"csrf": _csrf(client)})
    _login(client, manager)
    assert client.get("/admin/users.csv").status_code == 403


def test_a_tubes_custody_chain_and_audit_trail_export(client, make, site, other_site, technician, db_session):
    make.history = True
    tube = make.specimen(participant=make.participant(site=site), barcode="CSV-T1")
    elsewhere = make.specimen(participant=make.participant(site=other_site), barcode="CSV-T2")
    _login(client, technician)
    rows = _rows(client.get("/specimens/CSV-T1/custody.csv"))
    stored = db_session.scalars(
        sa.select(CustodyEvent).where(CustodyEvent.specimen_id == tube.id).order_by(CustodyEvent.seq)
    ).all()
    assert stored and [(int(r["#"]), r["Hash"]) for r in rows] == [(e.seq, e.hash) for e in stored]
    assert rows[0]["Previous hash"] == (stored[0].prev_hash or "")
    assert all(r["Event"] and r["Who"] for r in rows)

    audit = _rows(client.get("/specimens/CSV-T1/audit.csv"))
    assert audit and audit[0]["Action"] and "barcode" in audit[0]["Changes"]
    assert 'id="custody-csv"' in client.get("/specimens/CSV-T1").get_data(as_text=True)

    # another site's tube is not found, whichever export is asked
    assert db_session.get(Specimen, elsewhere.id) is not None
    assert client.get("/specimens/CSV-T2/custody.csv").status_code == 404
    assert client.get("/specimens/CSV-T2/audit.csv").status_code == 404
