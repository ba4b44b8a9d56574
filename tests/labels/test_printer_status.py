"""Printer status: a Zebra on the network is asked (~HS) with every job; paper out, ribbon
out, an open head or a pause fail the job, nothing prints twice, the printers page shows it."""

from __future__ import annotations

import re

import pytest

from labels.models import Printer, PrinterKind
from labels.printers import PrinterError, parse_host_status
from tests.labels.test_printing import _wait_for, zebra

__all__ = ["zebra"]  # the fake Zebra, a fixture

#: an answer to ~HS as the ZPL II Programming Guide lays it out (strings 1, 2 and 3)
READY = (
    b"\x02030,0,0,1245,000,0,0,0,000,0,0,0\x03\r\n"
    b"\x02001,0,0,0,1,2,6,0,00000000,1,000\x03\r\n\x021234,0\x03\r\n"
)


def test_host_status_strings_are_read_flag_by_flag():
    assert parse_host_status(READY).summary == "ready"
    status = parse_host_status(READY.replace(b"030,0,0,", b"030,1,1,").replace(b"001,0,0,0,", b"001,0,1,1,"))
    assert status.faults == ["paper out", "ribbon out", "head open", "paused"]
    for garbled in (b"", b"hello", READY[:40], READY.replace(b"030,0,0", b"030,x,0")):
        with pytest.raises(PrinterError, match="could not be read"):
            parse_host_status(garbled)


def _job(client, headers, user, make, site, printer):
    tube = make.specimen(participant=make.participant(site=site))
    r = client.post(
        "/api/v1/print-jobs/",
        headers=headers(user),
        json={"template": "cryovial-2d", "printer_id": printer.id, "specimen_ids": [tube.id]},
    )
    assert r.status_code == 201, r.json
    return client.get(f"/api/v1/print-jobs/{r.json['id']}", headers=headers(user)).json


def _zebra_printer(make, zebra, **options):
    return make._save(
        Printer(
            name="Bench Zebra",
            kind=PrinterKind.ZPL_TCP,
            address=f"127.0.0.1:{zebra.port}",
            dpi=203,
            **options,
        )
    )


@pytest.mark.parametrize("fault", ["paper_out", "head_open", "ribbon_out", "paused"])
def test_a_fault_before_sending_keeps_the_job_back_until_the_printer_is_ready(
    client, make, site, technician, headers, zebra, db_session, fault
):
    printer = _zebra_printer(make, zebra)
    zebra.flags[fault] = True
    job = _job(client, headers, technician, make, site, printer)
    words = fault.replace("_", " ")
    assert job["status"] == "failed" and words in job["last_error"]
    assert job["sent_at"] is None and zebra.jobs == []  # not sent into a stopped printer
    listed = client.get("/api/v1/printers/", headers=headers(technician)).json
    assert [p["last_status"] for p in listed] == [words]
    zebra.flags[fault] = False
    r = client.post(f"/api/v1/print-jobs/{job['id']}/retry", headers=headers(technician))
    assert r.json["status"] == "sent" and r.json["last_error"] is None
    _wait_for(zebra, 1)
    assert len(zebra.jobs) == 1
    assert client.get("/api/v1/printers/", headers=headers(technician)).json[0]["last_status"] == "ready"


def test_a_fault_after_sending_is_the_jobs_error_and_a_retry_never_prints_twice(
    client, make, site, technician, headers, zebra, db_session
):
    printer = _zebra_printer(make, zebra)
    zebra.fault_after_job = "paper_out"  # the roll runs out during the job
    job = _job(client, headers, technician, make, site, printer)
    assert job["status"] == "failed" and job["sent_at"] is not None
    assert "paper out" in job["last_error"] and "holds the job" in job["last_error"]
    assert len(zebra.jobs) == 1
    h = headers(technician)
    r = client.post(f"/api/v1/print-jobs/{job['id']}/retry", headers=h)
    assert r.json["status"] == "failed" and r.json["attempts"] == 2
    zebra.fault_after_job = None
    zebra.flags["paper_out"] = False  # a new roll: the printer prints what it holds
    r = client.post(f"/api/v1/print-jobs/{job['id']}/retry", headers=h)
    assert r.json["status"] == "sent" and r.json["attempts"] == 3
    assert len(zebra.jobs) == 1  # asked for its status, not sent the job again


def test_a_silent_zebra_is_a_failure_and_one_not_asked_is_not_queried(
    client, make, site, technician, headers, zebra, db_session
):
    printer = _zebra_printer(make, zebra)
    zebra.silent = True
    job = _job(client, headers, technician, make, site, printer)
    assert job["status"] == "failed" and "did not answer ~HS" in job["last_error"]
    assert zebra.jobs == []
    printer = make._save(
        Printer(
            name="Emulator", kind=PrinterKind.ZPL_TCP, address=f"127.0.0.1:{zebra.port}", asks_status=False
        )
    )
    queries = zebra.status_queries
    job = _job(client, headers, technician, make, site, printer)
    assert job["status"] == "sent"
    _wait_for(zebra, 1)
    assert zebra.status_queries == queries and b"~HS" not in zebra.jobs[0]


def test_the_printers_page_shows_each_printers_last_status_and_checks_it(
    client, make, site, technician, zebra, db_session
):
    from tests.biobank.web.test_page_access import _login

    printer = _zebra_printer(make, zebra, zpl_font="E:ANMDS.TTF")
    make._save(Printer(name="Office PDF", kind=PrinterKind.PDF))
    _login(client, technician)
    html = client.get("/labels/printers").get_data(as_text=True)
    assert "not asked yet" in html and "E:ANMDS.TTF" in html
    assert 'href="/labels/printers"' in client.get("/").get_data(as_text=True)
    zebra.flags["head_open"] = True
    csrf = re.search(r'name="csrf" value="([^"]+)"', html).group(1)
    r = client.post(f"/labels/printers/{printer.id}/status", data={"csrf": csrf}, follow_redirects=True)
    html = r.get_data(as_text=True)
    assert "Bench Zebra: head open." in html
    row = re.search(rf'<tr data-printer="{printer.id}">.*?</tr>', html, re.S).group(0)
    assert '<strong class="error">head open</strong>' in row


def test_status_endpoint_asks_now(client, make, technician, headers, zebra, db_session):
    printer = _zebra_printer(make, zebra)
    r = client.post(f"/api/v1/printers/{printer.id}/status", headers=headers(technician))
    assert r.status_code == 200 and r.json["last_status"] == "ready"
    assert zebra.status_queries == 1 and zebra.jobs == []
    pdf = make._save(Printer(name="Office PDF", kind=PrinterKind.PDF))
    r = client.post(f"/api/v1/printers/{pdf.id}/status", headers=headers(technician))
    assert r.status_code == 409 and "only a ZPL printer" in r.json["detail"]


def test_a_worker_retries_a_job_the_printer_held_back(tmp_path, zebra):
    """Through a real broker (Redis) and a Celery worker: the printer is paused at the first
    attempt, resumed before the retry, and the worker's retry sends the job once."""
    import hashlib
    import threading
    import time

    from celery.contrib.testing.worker import start_worker

    from biobank.db import db, transaction
    from biobank.jobs import celery
    from biobank.models import User
    from biobank.models.vocab import Role
    from labels.models import PrintJob
    from labels.tasks import send_print_job
    from tests.conftest import worker_app

    payload = b"^XA^FO10,10^A0N,20,20^FDworker^FS^XZ\n"
    with worker_app(tmp_path, "print_worker") as app:
        with app.app_context(), transaction():
            user = User(username="printer-bench", full_name="Bench", role=Role.TECHNICIAN, password_hash="x")
            printer = Printer(name="Zebra", kind=PrinterKind.ZPL_TCP, address=f"127.0.0.1:{zebra.port}")
            job = PrintJob(
                actor=user,
                printer=printer,
                template="cryovial-2d",
                format="zpl",
                label_count=1,
                barcodes={"items": ["X"]},
                payload=payload,
                source="test",
                payload_sha256=hashlib.sha256(payload).hexdigest(),
            )
            db.session.add(job)
            db.session.flush()
            job_id = job.id
        zebra.flags["paused"] = True

        def resume():
            while zebra.status_queries == 0:
                time.sleep(0.05)
            time.sleep(0.5)
            zebra.flags["paused"] = False

        threading.Thread(target=resume, daemon=True).start()
        with start_worker(celery, perform_ping_check=False, pool="solo", loglevel="WARNING"):
            assert send_print_job.delay(job_id).get(timeout=60) == "sent"
        assert zebra.jobs == [payload]
        with app.app_context():
            job = db.session.get(PrintJob, job_id)
            assert job.attempts == 2 and job.last_error is None
