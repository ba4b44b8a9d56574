"""Printing through a real CUPS scheduler: a private ``cupsd`` on a loopback port whose raw
queues forward to a TCP listener, as CUPS drives a network Zebra (``socket://host:9100``)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from labels.models import Printer, PrinterKind
from tests.labels.test_printing import ZebraListener, _closed_port, _wait_for

CUPSD = shutil.which("cupsd") or "/usr/sbin/cupsd"


class CupsServer:
    """A CUPS scheduler of our own: its configuration, spool and logs in a temporary folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = f"127.0.0.1:{self.port}"
        for folder in ("spool", "cache", "state", "log"):
            (root / folder).mkdir()
        open_to_localhost = "  Order allow,deny\n  Allow from 127.0.0.1\n"
        (root / "cupsd.conf").write_text(
            f"Listen {self.server}\nLogLevel warn\nErrorPolicy abort-job\n"
            f"<Location />\n{open_to_localhost}</Location>\n"
            f"<Location /admin>\n{open_to_localhost}</Location>\n"
            "<Policy default>\n  <Limit All>\n    Order deny,allow\n  </Limit>\n</Policy>\n"
        )
        (root / "cups-files.conf").write_text(
            f"ServerRoot {root}\nRequestRoot {root}/spool\nCacheDir {root}/cache\n"
            f"StateDir {root}/state\nTempDir {root}/spool\nErrorLog {root}/log/error_log\n"
            f"AccessLog {root}/log/access_log\nPageLog {root}/log/page_log\n"
        )
        self.process = subprocess.Popen(
            [CUPSD, "-f", "-c", str(root / "cupsd.conf"), "-s", str(root / "cups-files.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"cupsd exited: {self.process.stderr.read().decode()}")
            ready = subprocess.run(["lpstat", "-h", self.server, "-r"], capture_output=True, text=True)
            if "is running" in ready.stdout:
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("cupsd did not start in 15 s")

    def add_raw_queue(self, name: str, device_uri: str) -> None:
        subprocess.run(
            ["lpadmin", "-h", self.server, "-p", name, "-E", "-v", device_uri, "-m", "raw"],
            check=True,
            capture_output=True,
        )

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self.process.stderr.close()


@pytest.fixture(scope="module")
def cups():
    missing = [tool for tool in ("lp", "lpadmin", "lpstat") if shutil.which(tool) is None]
    if not Path(CUPSD).exists():
        missing.append("cupsd")
    if missing or os.geteuid() != 0:
        reason = (
            f"missing {', '.join(missing)} (apt-get install cups)"
            if missing
            else "a private cupsd needs root"
        )
        if os.environ.get("CI"):
            pytest.fail(f"CUPS tests cannot run in CI: {reason}")
        pytest.skip(reason)
    # CUPS backends run as the unprivileged `lp` user: they must be able to reach the spool,
    # which pytest's own temporary folders (mode 0700) would not let them.
    root = Path(tempfile.mkdtemp(prefix="biobank-cups-"))
    root.chmod(0o755)
    try:
        server = CupsServer(root)
        yield server
        server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def zebra():
    listener = ZebraListener()
    yield listener
    listener.close()


def _print_one_tube(client, headers, make, site, user, *, name, address):
    """A new tube's label printed on a new CUPS printer at *address*: the job as it ends."""
    printer = make._save(Printer(name=name, kind=PrinterKind.CUPS, address=address))
    tube = make.specimen(participant=make.participant(site=site))
    return _print(client, headers, user, printer, [tube])


def _print(client, headers, user, printer, tubes, template="cryovial-2d"):
    r = client.post(
        "/api/v1/print-jobs/",
        headers=headers(user),
        json={"template": template, "printer_id": printer.id, "specimen_ids": [t.id for t in tubes]},
    )
    assert r.status_code == 201, r.json
    # The job is sent once the request's transaction has committed: read it afterwards.
    return client.get(f"/api/v1/print-jobs/{r.json['id']}", headers=headers(user)).json


def test_zpl_job_reaches_a_zebra_behind_a_cups_queue(
    client, make, site, technician, headers, cups, zebra, db_session
):
    cups.add_raw_queue("bench-zebra", f"socket://127.0.0.1:{zebra.port}")
    printer = make._save(
        Printer(
            name="Zebra via CUPS", kind=PrinterKind.CUPS, address=f"zpl:bench-zebra@{cups.server}", dpi=300
        )
    )
    p = make.participant(site=site)
    tubes = [make.specimen(participant=p) for _ in range(2)]
    job = _print(client, headers, technician, printer, tubes)
    assert job["status"] == "sent", job
    assert job["format"] == "zpl"
    assert job["device_job_id"].startswith("bench-zebra-")
    _wait_for(zebra, 1, timeout=15)
    assert len(zebra.jobs) == 1
    # CUPS passes the raw queue's bytes through untouched.
    assert hashlib.sha256(zebra.jobs[0]).hexdigest() == job["payload_sha256"]
    zpl = zebra.jobs[0].decode()
    assert zpl.count("^XA") == 2 and all(f"^FD{t.barcode}^FS" in zpl for t in tubes)


def test_pdf_job_reaches_an_office_queue_whole(
    client, make, site, technician, headers, cups, zebra, db_session
):
    cups.add_raw_queue("office", f"socket://127.0.0.1:{zebra.port}")
    printer = make._save(Printer(name="Office", kind=PrinterKind.CUPS, address=f"office@{cups.server}"))
    tube = make.specimen(participant=make.participant(site=site))
    job = _print(client, headers, technician, printer, [tube], template="specimen-bag")
    assert job["status"] == "sent" and job["format"] == "pdf"
    _wait_for(zebra, 1, timeout=15)
    assert zebra.jobs[0].startswith(b"%PDF-")
    assert hashlib.sha256(zebra.jobs[0]).hexdigest() == job["payload_sha256"]


def test_unknown_queue_fails_with_cups_reason_then_retry_sends(
    client, make, site, technician, headers, cups, zebra, db_session
):
    job = _print_one_tube(
        client,
        headers,
        make,
        site,
        technician,
        name="Not yet set up",
        address=f"zpl:freezer-room@{cups.server}",
    )
    assert job["status"] == "failed"
    assert f"CUPS queue freezer-room on {cups.server}" in job["last_error"]
    assert "does not exist" in job["last_error"]
    assert job["device_job_id"] is None
    # The queue is set up; the same job is sent on retry.
    cups.add_raw_queue("freezer-room", f"socket://127.0.0.1:{zebra.port}")
    r = client.post(f"/api/v1/print-jobs/{job['id']}/retry", headers=headers(technician))
    assert r.json["status"] == "sent" and r.json["attempts"] == 2
    _wait_for(zebra, 1, timeout=15)
    assert hashlib.sha256(zebra.jobs[0]).hexdigest() == job["payload_sha256"]


def test_cups_server_that_does_not_answer_leaves_a_failed_job(
    client, make, site, technician, headers, db_session
):
    server = f"127.0.0.1:{_closed_port()}"
    job = _print_one_tube(
        client, headers, make, site, technician, name="Print server down", address=f"zpl:labels@{server}"
    )
    assert job["status"] == "failed"
    assert f"CUPS queue labels on {server}" in job["last_error"]


def test_specimen_page_says_which_cups_request_took_the_label(
    client, make, site, technician, cups, zebra, db_session
):
    from tests.biobank.web.test_evacuation_page import _login

    cups.add_raw_queue("bench-2", f"socket://127.0.0.1:{zebra.port}")
    printer = make._save(Printer(name="Bench 2", kind=PrinterKind.CUPS, address=f"zpl:bench-2@{cups.server}"))
    tube = make.specimen(participant=make.participant(site=site))
    _login(client, "tech")
    html = client.get(f"/specimens/{tube.barcode}").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', html).group(1)
    r = client.post(
        "/labels/print",
        data={
            "csrf": csrf,
            "barcode": tube.barcode,
            "template": "cryovial-2d",
            "printer_id": printer.id,
            "copies": 1,
        },
        follow_redirects=True,
    )
    shown = re.search(r"Print job \d+: sent \(CUPS request (bench-2-\d+)\)", r.get_data(as_text=True))
    assert shown is not None
    _wait_for(zebra, 1, timeout=15)
    assert f"^FD{tube.barcode}^FS" in zebra.jobs[0].decode()
