"""Bulk import API: templates, upload as a background job, status, problem report."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import sqlalchemy as sa
from openpyxl import load_workbook

from biobank.models import Specimen
from biobank.services.imports import required_columns, template_columns
from tests.biobank.services.test_imports import FIXTURES, MASTER, storage  # noqa: F401


def _upload(client, headers, path, **query):
    with open(path, "rb") as f:
        return client.post(
            "/api/v1/imports/",
            headers=headers,
            query_string=query,
            data={"file": (f, Path(path).name)},
            content_type="multipart/form-data",
        )


def test_templates_download_as_csv_and_xlsx(client, manager, technician, headers):
    h = headers(manager)
    r = client.get("/api/v1/imports/templates", headers=h)
    assert r.status_code == 200
    assert [t["name"] for t in r.json] == ["participants", "cases", "specimens", "master"]
    master = next(t for t in r.json if t["name"] == "master")
    assert {c["name"] for c in master["columns"] if c["required"]} == set(required_columns("master"))
    assert "TISSUE_FROZEN" in next(c for c in master["columns"] if c["name"] == "material_type")["allowed"]
    r = client.get(master["csv_url"], headers=h)
    assert r.status_code == 200 and r.mimetype == "text/csv"
    header = next(csv.reader(io.StringIO(r.get_data(as_text=True))))
    assert header == [c.name for c in template_columns("master")]
    r = client.get(master["xlsx_url"], headers=h)
    book = load_workbook(io.BytesIO(r.data), read_only=True)
    assert [c.value for c in next(book["master"].iter_rows(max_row=1))] == header
    assert book["columns"].max_row == len(header) + 1
    assert client.get("/api/v1/imports/templates/master.pdf", headers=h).status_code == 404
    assert client.get("/api/v1/imports/templates/nope.csv", headers=h).status_code == 422
    assert client.get("/api/v1/imports/templates", headers=headers(technician)).status_code == 403


def test_upload_runs_a_job_and_a_second_upload_is_refused(
    client,
    manager,
    headers,
    storage,
    db_session,
):
    h = headers(manager)
    r = _upload(client, h, MASTER)
    assert r.status_code == 202, r.json
    assert r.json["status"] == "succeeded" and r.json["created"]["specimens"] == 10
    job_url = r.headers["Location"]
    r = client.get(job_url, headers=h)
    assert r.json["rows_read"] == 10 and r.json["error_count"] == 0
    assert db_session.scalar(sa.select(sa.func.count(Specimen.id))) == 10
    r = _upload(client, h, MASTER)
    assert r.status_code == 409 and "already imported" in r.json["detail"]
    r = client.get("/api/v1/imports/", headers=h)
    assert [j["status"] for j in r.json] == ["succeeded"]


def test_failed_upload_reports_every_problem_and_writes_nothing(
    client, manager, headers, storage, db_session
):
    h = headers(manager)
    r = _upload(client, h, FIXTURES / "master-one-bad-row.csv")
    assert r.status_code == 202 and r.json["status"] == "failed"
    assert r.json["error_count"] == 1
    r2 = client.get(f"/api/v1/imports/{r.json['id']}/problems", headers=h)
    assert r2.json == [{"line": 12, "column": "material_type", "message": r2.json[0]["message"]}]
    report = client.get(r.json["problems_url"], headers=h)
    assert report.status_code == 200
    rows = list(csv.reader(io.StringIO(report.get_data(as_text=True))))
    assert rows[0] == ["line", "column", "message"] and rows[1][:2] == ["12", "material_type"]
    assert db_session.scalar(sa.select(sa.func.count(Specimen.id))) == 0


def test_upload_bad_files_and_roles(
    client,
    manager,
    technician,
    admin,
    headers,
    storage,
    tmp_path,
):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    r = _upload(client, headers(manager), empty)
    assert r.status_code == 422 and r.json["errors"][0]["field"] == "file"
    r = _upload(client, headers(manager), MASTER, template="everything")
    assert r.status_code == 422 and r.json["errors"][0]["field"] == "template"
    binary = tmp_path / "photo.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    r = _upload(client, headers(manager), binary)
    assert r.status_code == 202 and r.json["status"] == "failed"
    assert r.json["error_count"] == 1
    assert _upload(client, headers(technician), MASTER).status_code == 403
    # another manager's job is not visible; an administrator sees it
    job_id = r.json["id"]
    assert client.get(f"/api/v1/imports/{job_id}", headers=headers(admin)).status_code == 200


def test_labels_for_every_specimen_an_import_created(
    client, manager, technician, headers, storage, db_session, tmp_path
):
    from tests.labels.render.test_pdf import decode, decoders  # noqa: F401

    h = headers(manager)
    job = _upload(client, h, MASTER).json
    r = client.post(
        "/api/v1/print-jobs/", headers=h, json={"template": "tube-side-code128", "import_id": job["id"]}
    )
    assert r.status_code == 201, r.json
    barcodes = sorted(db_session.scalars(sa.select(Specimen.barcode)))
    assert r.json["label_count"] == 10 and sorted(r.json["barcodes"]) == barcodes
    pdf = client.get(r.json["document_url"], headers=h).data
    found = set().union(*(codes for _dm, codes in decode(pdf, tmp_path, 300, datamatrix=False)))
    assert found == set(barcodes)  # every label decodes to its own barcode

    failed = _upload(client, h, FIXTURES / "master-one-bad-row.csv").json
    r = client.post(
        "/api/v1/print-jobs/", headers=h, json={"template": "tube-side-code128", "import_id": failed["id"]}
    )
    assert r.status_code == 409 and "only a succeeded import" in r.json["detail"]
    r = client.post(
        "/api/v1/print-jobs/",
        headers=headers(technician),
        json={"template": "tube-side-code128", "import_id": job["id"]},
    )
    assert r.status_code == 422 and r.json["errors"][0]["field"] == "import_id"  # not theirs
    r = client.post(
        "/api/v1/print-jobs/",
        headers=h,
        json={"template": "tube-side-code128", "import_id": job["id"], "specimen_ids": [1]},
    )
    assert r.status_code == 422


def test_xlsx_uploads_are_read_by_content(
    client,
    manager,
    headers,
    storage,
    tmp_path,
    db_session,
):
    from openpyxl import Workbook

    h = headers(manager)
    # the LIMS's own template: its example row is checked like any other
    template = client.get("/api/v1/imports/templates/master.xlsx", headers=h).data
    path = tmp_path / "template.xlsx"
    path.write_bytes(template)
    r = _upload(client, h, path, template="master", dry_run="true")
    assert r.status_code == 202, r.json
    assert r.json["status"] in ("validated", "failed") and r.json["rows_read"] >= 1
    problems = client.get(r.headers["Location"] + "/problems", headers=h).json
    assert all(p["line"] >= 2 for p in problems), problems
    # the master fixture saved as a workbook imports like the CSV
    book = Workbook()
    with open(MASTER, newline="", encoding="utf-8-sig") as f:
        for row in csv.reader(f):
            book.active.append(row)
    book.save(path)
    r = _upload(client, h, path, template="master")
    assert r.status_code == 202, r.json
    assert r.json["status"] == "succeeded" and r.json["created"]["specimens"] == 10
    assert db_session.scalar(sa.select(sa.func.count(Specimen.id))) == 10
