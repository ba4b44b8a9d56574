"""The specimen list: its total, its orders (each paged by its own key), its CSV export of
every match, and an exact barcode that opens the specimen; all within the user's sites."""

from __future__ import annotations

import csv
import io
import re

import sqlalchemy as sa

from biobank.models import Specimen
from biobank.models.vocab import MaterialType
from tests.biobank.api.test_requests import bank  # noqa: F401  (a fixture)
from tests.biobank.web.test_page_access import _login


def _barcodes(html):
    return re.findall(r'<td><a href="/specimens/([^"]+)">', html)


def test_total_orders_pages_and_csv(client, make, site, other_site, technician, db_session):
    person = make.participant(site=site)
    codes = [f"LST{n:03d}" for n in (5, 1, 4, 2, 3, 7, 6)]
    for code in codes:
        make.specimen(participant=person, barcode=code, material_type=MaterialType.SERUM)
    make.specimen(
        participant=make.participant(site=other_site), barcode="LST000", material_type=MaterialType.SERUM
    )
    _login(client, technician)
    html = client.get("/specimens?q=LST").get_data(as_text=True)
    assert re.search(r'id="total">7<', html)
    assert _barcodes(html) == codes  # oldest first
    newest = _barcodes(client.get("/specimens?q=LST&sort=newest").get_data(as_text=True))
    assert newest == codes[::-1]
    by_code = _barcodes(client.get("/specimens?q=LST&sort=barcode").get_data(as_text=True))
    assert by_code == sorted(codes)
    # paging keeps the order, each page after the last key shown
    page = client.get("/specimens?q=LST&sort=barcode&after=LST004").get_data(as_text=True)
    assert _barcodes(page) == ["LST005", "LST006", "LST007"]
    two = db_session.scalar(sa.select(Specimen.id).where(Specimen.barcode == "LST002"))
    page = client.get(f"/specimens?q=LST&sort=newest&after={two}").get_data(as_text=True)
    assert _barcodes(page) == ["LST004", "LST001", "LST005"]

    export = client.get("/specimens.csv?q=LST&material_type=SERUM")
    assert export.status_code == 200 and export.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(export.get_data(as_text=True))))
    assert [r["barcode"] for r in rows] == codes  # not the other site's LST000
    assert {r["material"] for r in rows} == {"Serum"} and {r["site"] for r in rows} == {site.code}
    assert client.get("/specimens.csv?status=frozen").status_code == 400

    # a whole barcode alone opens the specimen; another site's is only searched for
    assert client.get("/specimens?q=LST003").headers["Location"].endswith("/specimens/LST003")
    assert client.get("/specimens?q=LST000").status_code == 200


def test_the_request_list_filters_orders_counts_and_exports(client, bank, researcher, manager, headers):
    from tests.biobank.api.test_query import eq
    from tests.biobank.api.test_requests import approved, make_cohort, submit

    rh, mh = headers(researcher), headers(manager)
    cohort = make_cohort(client, rh, eq("cases.disease_group", "melanoma"), level="cases")
    first = approved(client, rh, mh, cohort["id"])
    second = submit(client, rh, cohort["id"], title="Second look").json
    _login(client, manager)
    html = client.get("/requests").get_data(as_text=True)
    assert re.search(r'class="table-total">2<', html)
    codes = re.findall(r">(REQ-\d{4}-\d{5})<", html)
    assert codes == [second["code"], first["code"]]  # newest first
    oldest = client.get("/requests?sort=submitted").get_data(as_text=True)
    assert re.findall(r">(REQ-\d{4}-\d{5})<", oldest) == [first["code"], second["code"]]
    approved_only = client.get("/requests?status=approved").get_data(as_text=True)
    assert re.findall(r">(REQ-\d{4}-\d{5})<", approved_only) == [first["code"]]
    rows = list(
        csv.DictReader(io.StringIO(client.get("/requests.csv?status=submitted").get_data(as_text=True)))
    )
    assert [(r["Request"], r["Status"], r["Title"]) for r in rows] == [
        (second["code"], "Submitted", "Second look")
    ]
    assert client.get("/requests?status=lost").status_code == 400
