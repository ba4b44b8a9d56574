"""Printers and print jobs: sent only after commit, checked on a real TCP listener,
failures recorded and retried, reprints explained."""

from __future__ import annotations

import re
import socket
import threading

import pytest
import sqlalchemy as sa

from biobank.db import transaction
from labels.models import Printer, PrinterKind, PrintJob, PrintJobStatus
from labels.services import print_specimens


class ZebraListener:
    """A stand-in for a Zebra printer on a loopback port: keeps the jobs it receives and
    answers ``~HS`` as a Zebra does (three <STX>…<ETX><CR><LF> strings, ZPL II Programming
    Guide), from its flags; silent when *silent* (as a Zebra out of media may be).
    *fault_after_job* is a flag that goes up once a job arrives (the paper runs out)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.jobs: list[bytes] = []
        self.status_queries = 0
        self.flags = {"paper_out": False, "paused": False, "head_open": False, "ribbon_out": False}
        self.silent = False
        self.fault_after_job: str | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def host_status(self) -> bytes:
        f = {k: int(v) for k, v in self.flags.items()}
        formats = len(self.jobs) if any(f.values()) else 0
        return (
            f"\x02030,{f['paper_out']},{f['paused']},1245,{formats:03d},0,0,0,000,0,0,0"
            f"\x03\r\n\x02001,0,{f['head_open']},{f['ribbon_out']},1,2,6,0,00000000,1,000"
            "\x03\r\n\x021234,0\x03\r\n"
        ).encode()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                job = b""
                while data := conn.recv(65536):
                    job += data
                    while b"~HS" in job:
                        before, _, job = job.partition(b"~HS")
                        if before:
                            self._take(before)
                        self.status_queries += 1
                        if not self.silent:
                            conn.sendall(self.host_status())
                if job:
                    self._take(job)

    def _take(self, job: bytes) -> None:
        self.jobs.append(job)
        if self.fault_after_job:
            self.flags[self.fault_after_job] = True

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def zebra():
    listener = ZebraListener()
    yield listener
    listener.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(listener, n, timeout=5.0):
    import time

    deadline = time.monotonic() + timeout
    while len(listener.jobs) < n and time.monotonic() < deadline:
        time.sleep(0.02)


def test_zpl_job_reaches_the_printer_after_commit(client, make, site, technician, headers, zebra, db_session):
    printer = make._save(
        Printer(name="Bench Zebra", kind=PrinterKind.ZPL_TCP, address=f"127.0.0.1:{zebra.port}", dpi=203)
    )
    p = make.participant(site=site)
    tubes = [make.specimen(participant=p) for _ in range(3)]
    r = client.post(
        "/api/v1/print-jobs/",
        headers=headers(technician),
        json={
            "template": "cryovial-2d",
            "printer_id": printer.id,
            "specimen_ids": [t.id for t in tubes],
            "copies": 2,
        },
    )
    assert r.status_code == 201, r.json
    _wait_for(zebra, 1)
    assert len(zebra.jobs) == 1
    zpl = zebra.jobs[0].decode()
    assert zpl.count("^XA") == zpl.count("^XZ") == 3
    assert "^CI28" in zpl and "^PQ2" in zpl and "^BXN,3,200" in zpl
    for tube in tubes:
        assert f"^FD{tube.barcode}^FS" in zpl
    job = client.get(f"/api/v1/print-jobs/{r.json['id']}", headers=headers(technician)).json
    assert job["status"] == "sent"
    assert job["attempts"] == 1
    assert job["actor"] == "tech"


def test_a_test_label_reaches_the_printer(client, make, site, other_site, technician, headers, zebra):
    printer = make._save(
        Printer(
            name="Bench 3 Zebra",
            kind=PrinterKind.ZPL_TCP,
            site_id=site.id,
            address=f"127.0.0.1:{zebra.port}",
            dpi=203,
        )
    )
    r = client.post(f"/api/v1/printers/{printer.id}/test-print", headers=headers(technician))
    assert r.status_code == 201, r.json
    _wait_for(zebra, 1)
    zpl = zebra.jobs[0].decode()
    assert zpl.count("^XA") == 1 and "TEST LABEL" in zpl and "^FDTEST" in zpl
    assert r.json["template"] == "cryovial-2d" and r.json["label_count"] == 1
    again = client.post(f"/api/v1/printers/{printer.id}/test-print", headers=headers(technician))
    assert again.status_code == 201  # a test label is never a reprint
    elsewhere = make._save(
        Printer(name="Far Zebra", kind=PrinterKind.ZPL_TCP, site_id=other_site.id, address="127.0.0.1:9")
    )
    assert (
        client.post(f"/api/v1/printers/{elsewhere.id}/test-print", headers=headers(technician)).status_code
        == 404
    )


def test_nothing_is_sent_when_the_transaction_rolls_back(make, site, technician, zebra, db_session):
    printer = make._save(Printer(name="Z2", kind=PrinterKind.ZPL_TCP, address=f"127.0.0.1:{zebra.port}"))
    tube = make.specimen(participant=make.participant(site=site))

    def aliquot_then_fail():
        with transaction():
            print_specimens([tube], template="cryovial-2d", actor=technician, printer=printer, source="test")
            raise RuntimeError("the aliquot creation failed")

    with pytest.raises(RuntimeError):
        aliquot_then_fail()
    _wait_for(zebra, 1, timeout=0.5)
    assert zebra.jobs == []
    assert db_session.scalar(sa.select(sa.func.count()).select_from(PrintJob)) == 0


def test_printer_that_does_not_answer_is_recorded_failed_and_retried(
    client, make, site, technician, headers, zebra, db_session
):
    printer = make._save(
        Printer(name="Offline", kind=PrinterKind.ZPL_TCP, address=f"127.0.0.1:{_closed_port()}")
    )
    tube = make.specimen(participant=make.participant(site=site))
    h = headers(technician)
    r = client.post(
        "/api/v1/print-jobs/",
        headers=h,
        json={"template": "tube-side-code128", "printer_id": printer.id, "specimen_ids": [tube.id]},
    )
    assert r.status_code == 201
    job = client.get(f"/api/v1/print-jobs/{r.json['id']}", headers=h).json
    assert job["status"] == "failed"
    assert "did not take the job" in job["last_error"]
    # The printer comes back: the same job, byte for byte, is sent on retry.
    db_session.get(Printer, printer.id).address = f"127.0.0.1:{zebra.port}"
    db_session.commit()
    r = client.post(f"/api/v1/print-jobs/{job['id']}/retry", headers=h)
    assert r.json["status"] == "sent"
    assert r.json["attempts"] == 2
    _wait_for(zebra, 1)
    import hashlib

    assert hashlib.sha256(zebra.jobs[0]).hexdigest() == job["payload_sha256"]


def test_pdf_job_is_downloaded(client, make, site, technician, headers):
    tube = make.specimen(participant=make.participant(site=site))
    h = headers(technician)
    r = client.post(
        "/api/v1/print-jobs/", headers=h, json={"template": "cryovial-2d", "specimen_ids": [tube.id]}
    )
    assert r.json["status"] == "ready"
    doc = client.get(r.json["document_url"], headers=h)
    assert doc.mimetype == "application/pdf"
    assert doc.data.startswith(b"%PDF")


def test_reprint_needs_a_reason_and_records_it(client, make, site, technician, headers):
    tube = make.specimen(participant=make.participant(site=site))
    h = headers(technician)
    body = {"template": "cryovial-2d", "specimen_ids": [tube.id]}
    assert client.post("/api/v1/print-jobs/", headers=h, json=body).status_code == 201
    r = client.post("/api/v1/print-jobs/", headers=h, json=body)
    assert r.status_code == 422
    assert r.json["errors"][0]["field"] == "reprint_reason"
    r = client.post("/api/v1/print-jobs/", headers=h, json=body | {"reprint_reason": "smudged"})
    assert r.status_code == 201
    assert r.json["reprint_reason"] == "smudged"


def test_bad_print_requests_are_422_and_record_nothing(client, make, site, technician, headers, db_session):
    tube = make.specimen(participant=make.participant(site=site), barcode="X" * 32)
    h = headers(technician)
    cases = [
        ({"template": "nope", "specimen_ids": [tube.id]}, "template"),
        ({"template": "cryovial-2d", "printer_id": 9999, "specimen_ids": [tube.id]}, "printer_id"),
        # the value at fault is named: the 32-character barcode does not fit the label
        ({"template": "tube-side-code128", "specimen_ids": [tube.id]}, "barcode"),
        ({"template": "cryovial-2d"}, "specimen_ids"),
    ]
    for body, field in cases:
        r = client.post("/api/v1/print-jobs/", headers=h, json=body)
        assert r.status_code == 422, (body, r.json)
        assert r.json["errors"][0]["field"] == field
    assert db_session.scalar(sa.select(sa.func.count()).select_from(PrintJob)) == 0


def test_whole_box_contents_print_in_position_order(client, make, site, technician, headers):
    p = make.participant(site=site)
    box = make.box(site=site)
    second = make.specimen(participant=p, container=box, pos_row=1, pos_col=2)
    first = make.specimen(participant=p, container=box, pos_row=1, pos_col=1)
    r = client.post(
        "/api/v1/print-jobs/",
        headers=headers(technician),
        json={"template": "cryovial-2d", "container_id": box.id, "box_contents": True},
    )
    assert r.json["barcodes"] == [first.barcode, second.barcode]
    r = client.post(
        "/api/v1/print-jobs/", headers=headers(technician), json={"template": "box", "container_id": box.id}
    )
    assert r.json["label_count"] == 1


def test_cli_prints_a_pdf(runner, make, site, technician, tmp_path, db_session):
    tube = make.specimen(participant=make.participant(site=site))
    out = tmp_path / "labels.pdf"
    result = runner.invoke(
        args=["labels", "print", tube.barcode, "--template", "cryovial-2d", "--pdf", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"%PDF")
    assert db_session.scalar(sa.select(PrintJob.source)) == "cli"
    assert PrintJobStatus.READY.value == "ready"


def test_cli_reads_barcodes_from_a_file_in_order_and_names_every_unknown_one(
    runner, make, site, tmp_path, db_session
):
    participant = make.participant(site=site)
    tubes = [make.specimen(participant=participant) for _ in range(3)]
    codes = tmp_path / "codes.txt"
    codes.write_text("\n".join([tubes[2].barcode, "", tubes[0].barcode, tubes[1].barcode]))
    out = tmp_path / "labels.pdf"
    result = runner.invoke(
        args=["labels", "print", "--from-file", str(codes), "--template", "cryovial-2d", "--pdf", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "3 label(s)" in result.output
    job = db_session.scalars(sa.select(PrintJob)).one()
    assert job.barcodes["items"] == [tubes[2].barcode, tubes[0].barcode, tubes[1].barcode]
    codes.write_text("NOPE-1\n" + tubes[0].barcode + "\nNOPE-2\n")
    result = runner.invoke(
        args=[
            "labels",
            "print",
            "--from-file",
            str(codes),
            "--template",
            "cryovial-2d",
            "--pdf",
            str(out),
            "--reason",
            "again",
        ]
    )
    assert result.exit_code != 0 and "'NOPE-1', 'NOPE-2'" in str(result.exception)
    assert db_session.scalar(sa.select(sa.func.count()).select_from(PrintJob)) == 1


@pytest.mark.parametrize(
    ("kind", "address"),
    [
        ("zpl_tcp", "10.2.0.15"),
        ("zpl_tcp", "zebra-3.lab.example.org:9100"),
        ("cups", "office"),
        ("cups", "zpl:bench_zebra-2"),
        ("cups", "zpl:labels@print.example.org:631"),
    ],
)
def test_printer_addresses_that_are_accepted(client, manager, headers, kind, address):
    r = client.post(
        "/api/v1/printers/",
        headers=headers(manager),
        json={"name": f"P {kind} {address}", "kind": kind, "address": address},
    )
    assert r.status_code == 201, r.json
    assert r.json["address"] == address


@pytest.mark.parametrize(
    ("kind", "address"),
    [
        ("zpl_tcp", "10.2.0.15:99999"),
        ("zpl_tcp", "-oProxyCommand"),
        ("zpl_tcp", "host:"),
        ("cups", "-E"),
        ("cups", "zpl:-d"),
        ("cups", "queue@-h"),
        ("cups", "two words"),
        ("cups", "queue@host:0"),
        ("cups", "queue/../x"),
    ],
)
def test_printer_addresses_that_are_refused_name_the_field(client, manager, headers, kind, address):
    r = client.post(
        "/api/v1/printers/", headers=headers(manager), json={"name": "Bad", "kind": kind, "address": address}
    )
    assert r.status_code == 422, r.json
    assert r.json["errors"][0]["field"] == "address"


def test_cups_sender_refuses_what_lp_would_read_as_an_option():
    from labels.printers import PrinterError, send_cups

    for queue, server in (("-E", None), ("labels", "-h")):
        with pytest.raises(PrinterError, match="not a queue name"):
            send_cups(queue, b"^XA^XZ", raw=True, server=server)


def test_a_template_that_cannot_print_the_object_is_refused_by_name(
    client, make, site, technician, headers, db_session
):
    box = make.box(site=site)
    tube = make.specimen(participant=make.participant(site=site), container=box, pos_row=1, pos_col=1)
    h = headers(technician)
    for body, words in (
        ({"template": "cryovial-2d", "container_id": box.id}, "cannot print a box"),
        ({"template": "box", "specimen_ids": [tube.id]}, "cannot print a specimen"),
        ({"template": "shipping-box", "specimen_ids": [tube.id]}, "{destination}"),
    ):
        r = client.post("/api/v1/print-jobs/", headers=h, json=body)
        assert r.status_code == 422, (body, r.json)
        assert r.json["errors"][0]["field"] == "template" and words in r.json["detail"]
    assert db_session.scalar(sa.select(sa.func.count()).select_from(PrintJob)) == 0


def test_researchers_do_not_print_from_the_pages(client, make, site, researcher, db_session):
    import re

    from tests.factories import PASSWORD

    tube = make.specimen(participant=make.participant(site=site))
    html = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', html).group(1)
    r = client.post("/login", data={"username": researcher.username, "password": PASSWORD, "csrf": csrf})
    assert r.status_code == 302
    html = client.get("/").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', html).group(1)
    r = client.post("/labels/print", data={"csrf": csrf, "barcode": tube.barcode, "template": "cryovial-2d"})
    assert r.status_code == 403
    assert db_session.scalar(sa.select(sa.func.count()).select_from(PrintJob)) == 0


def test_managers_see_print_jobs_of_their_sites_only(
    client, make, site, other_site, manager, headers, db_session
):
    here = make.user("ctr-tech", role="technician", sites=[site])
    there = make.user("nrt-tech", role="technician", sites=[other_site])
    ours = make.specimen(participant=make.participant(site=site))
    theirs = make.specimen(participant=make.participant(site=other_site))
    for user, tube in ((here, ours), (there, theirs)):
        r = client.post(
            "/api/v1/print-jobs/",
            headers=headers(user),
            json={"template": "cryovial-2d", "specimen_ids": [tube.id]},
        )
        assert r.status_code == 201, r.json
    listed = client.get("/api/v1/print-jobs/", headers=headers(manager)).json
    seen = {b for job in listed for b in job["barcodes"]}
    assert ours.barcode in seen and theirs.barcode not in seen
    other_job = next(j for j in client.get("/api/v1/print-jobs/", headers=headers(there)).json)
    r = client.get(f"/api/v1/print-jobs/{other_job['id']}", headers=headers(manager))
    assert r.status_code == 404


def test_cli_prints_box_and_parcel_labels(runner, make, site, tmp_path, db_session):
    import shutil

    from biobank.models import Cohort, SampleRequest
    from tests.labels.render.test_pdf import decode

    box = make.box(site=site, barcode="BOX00042")
    out = tmp_path / "box.pdf"
    result = runner.invoke(args=["labels", "print", "BOX00042", "--template", "box", "--pdf", str(out)])
    assert result.exit_code == 0, result.output
    assert "1 label(s)" in result.output
    researcher = make.user("cli-researcher", role="researcher", sites=[site])
    cohort = Cohort(name="c", level="cases", filters=None, owner_id=researcher.id)
    db_session.add(cohort)
    db_session.flush()
    request = SampleRequest(
        code="REQ-2026-0042",
        title="Exome",
        purpose="p",
        ethics_reference="IRB-1",
        requester_id=researcher.id,
        cohort_id=cohort.id,
        requirements={},
        consent_scopes=[],
    )
    db_session.add(request)
    db_session.commit()
    parcel = tmp_path / "parcel.pdf"
    result = runner.invoke(
        args=["labels", "print", "REQ-2026-0042", "--template", "shipping-box", "--pdf", str(parcel)]
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        args=[
            "labels",
            "print",
            str(request.id),
            "--template",
            "shipping-box",
            "--pdf",
            str(tmp_path / "by-id.pdf"),
            "--reason",
            "the first one was torn",
        ]
    )
    assert result.exit_code == 0, result.output  # the request's id does as well as its code
    result = runner.invoke(args=["labels", "print", "NO-SUCH-BOX", "--template", "box", "--pdf", str(out)])
    assert result.exit_code == 1 and "no container with barcode" in str(result.exception)
    if shutil.which("zbarimg") and shutil.which("dmtxread"):
        (tmp_path / "b").mkdir()
        (tmp_path / "p").mkdir()
        ((box_dm, box_1d),) = decode(out.read_bytes(), tmp_path / "b", 300)
        assert box.barcode in box_dm | box_1d
        ((parcel_dm, parcel_1d),) = decode(parcel.read_bytes(), tmp_path / "p", 300)
        assert "REQ-2026-0042" in parcel_dm | parcel_1d


def test_chinese_site_names_print_on_a_zebra_with_a_unicode_font(
    client, make, site, technician, headers, zebra, db_session, manager
):
    """The built-in font has no Chinese: without a Unicode font on the printer the job is
    refused naming the value ({site}); with one, the text goes out in it (^CW)."""
    site.name = "中国医学科学院皮肤病医院"
    box = make.box(site=site)
    db_session.commit()
    h = headers(manager)
    bad = client.post(
        "/api/v1/printers/",
        headers=h,
        json={
            "name": "Zebra CN",
            "kind": "zpl_tcp",
            "address": f"127.0.0.1:{zebra.port}",
            "zpl_font": "E:ANMDS.TTF^XZ",
        },
    )
    assert bad.status_code == 422 and "zpl_font" in str(bad.json)
    plain = client.post(
        "/api/v1/printers/",
        headers=h,
        json={"name": "Zebra", "kind": "zpl_tcp", "address": f"127.0.0.1:{zebra.port}"},
    ).json
    unicode = client.post(
        "/api/v1/printers/",
        headers=h,
        json={
            "name": "Zebra CN",
            "kind": "zpl_tcp",
            "address": f"127.0.0.1:{zebra.port}",
            "zpl_font": "E:ANMDS.TTF",
        },
    ).json
    assert unicode["zpl_font"] == "E:ANMDS.TTF" and unicode["asks_status"] is True
    t = headers(technician)
    r = client.post(
        "/api/v1/print-jobs/",
        headers=t,
        json={"template": "box", "printer_id": plain["id"], "container_id": box.id},
    )
    assert r.status_code == 422 and r.json["errors"][0]["field"] == "site"
    assert "U+4E2D" in r.json["detail"]
    r = client.post(
        "/api/v1/print-jobs/",
        headers=t,
        json={"template": "box", "printer_id": unicode["id"], "container_id": box.id},
    )
    assert r.status_code == 201 and r.json["status"] in ("pending", "sent")
    _wait_for(zebra, 1)
    zpl = zebra.jobs[0].decode()
    assert "^CW1,E:ANMDS.TTF" in zpl
    assert re.search(r"\^A1N,\d+,\d+\^FH_\^FD" + site.name + r"\^FS", zpl)


def test_the_preview_refuses_what_printing_refuses(client, make, site, technician, headers, db_session):
    tube = make.specimen(participant=make.participant(site=site), label="Block \U0001f9ea")
    r = client.get(
        "/api/v1/print-jobs/preview",
        headers=headers(technician),
        query_string={"template": "ffpe-cassette", "specimen_id": tube.id},
    )
    assert r.status_code == 422 and r.json["errors"][0]["field"] == "label"
    assert "U+1F9EA" in r.json["detail"]
