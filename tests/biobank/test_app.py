"""Configuration layering, the audit trail's transaction, the append-only custody ledger and
`biobank serve --demo` as the README runs it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import sqlalchemy as sa

from biobank import create_app
from biobank.models import AuditRecord, CustodyEvent, Lesion
from biobank.models.vocab import CustodyEventType
from biobank.services.custody import record_custody_event


def test_configuration_layers_env_then_instance_file_then_test_config(tmp_path, monkeypatch):
    instance = tmp_path / "instance"
    instance.mkdir()
    (instance / "biobank.cfg").write_text("LOGIN_MAX_FAILURES = 9\nAPI_DEFAULT_PAGE_SIZE = 7\n")
    monkeypatch.setenv("BIOBANK_INSTANCE_PATH", str(instance))
    monkeypatch.setenv("BIOBANK_LOGIN_MAX_FAILURES", "3")
    monkeypatch.setenv("BIOBANK_API_MAX_PAGE_SIZE", "50")
    app = create_app({"API_DEFAULT_PAGE_SIZE": 5})
    assert app.config["API_MAX_PAGE_SIZE"] == 50  # environment
    assert app.config["LOGIN_MAX_FAILURES"] == 9  # instance file wins over the environment
    assert app.config["API_DEFAULT_PAGE_SIZE"] == 5  # test config wins over everything
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{instance / 'biobank.db'}"
    assert (instance / "secret_key").read_text() == app.config["SECRET_KEY"]


def test_sqlite_default_runs_with_wal_and_foreign_keys(tmp_path):
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"})
    with app.app_context():
        from biobank.db import db

        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        db.engine.dispose()


def test_audit_records_share_the_transaction_of_the_change(make, site, technician, db_session):
    case = make.case(participant=make.participant(site=site))
    before = db_session.scalar(sa.select(sa.func.count()).select_from(AuditRecord))
    nested = db_session.begin_nested()
    lesion = Lesion(case=case, code="L-ROLLED", body_site="face")
    db_session.add(lesion)
    db_session.flush()
    assert db_session.scalar(sa.select(sa.func.count()).select_from(AuditRecord)) == before + 1
    nested.rollback()
    assert db_session.scalar(sa.select(sa.func.count()).select_from(AuditRecord)) == before


def test_deletes_are_audited_with_the_old_row(make, site, technician, db_session):
    lesion = make.lesion(case=make.case(participant=make.participant(site=site)), code="L-GONE")
    lesion_id = lesion.id
    db_session.delete(lesion)
    db_session.flush()
    record = db_session.scalars(
        sa.select(AuditRecord).where(AuditRecord.entity == "lesions", AuditRecord.action == "delete")
    ).one()
    assert record.entity_id == str(lesion_id)
    assert record.changes["code"] == "L-GONE"
    assert record.actor_name == "tech"


def test_custody_events_cannot_be_changed_or_deleted_through_the_orm(make, site, technician, db_session):
    specimen = make.specimen(participant=make.participant(site=site))
    event = record_custody_event(specimen, CustodyEventType.RECEIVED, actor=technician)
    db_session.commit()
    event.to_location = "somewhere else"
    with pytest.raises(RuntimeError, match="append-only"):
        db_session.flush()
    db_session.rollback()
    event = db_session.scalars(sa.select(CustodyEvent)).one()
    db_session.delete(event)
    with pytest.raises(RuntimeError, match="append-only"):
        db_session.flush()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_demo_starts_the_lims_with_demo_data(tmp_path):
    port = _free_port()
    env = os.environ | {"BIOBANK_INSTANCE_PATH": str(tmp_path / "instance")}
    env.pop("BIOBANK_DATABASE_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "biobank.cli", "serve", "--demo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode()
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.5)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/openapi.json") as r:
            assert b"Biobank LIMS" in r.read()
        # an RNA-Seq matrix ingested by the worker (scanpy's QC runs on OpenMP threads): the
        # demo was loaded in a process of its own, so the worker is not terminated
        token = (
            subprocess.run(
                [sys.executable, "-m", "biobank.cli", "create-token", "tech"],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        counts = "gene\tS1\tS2\n" + "".join(f"G{i}\t{i}\t{2 * i}\n" for i in range(50))
        boundary = "lims-test-boundary"
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="counts.tsv"\r\nContent-Type: text/plain\r\n\r\n{counts}\r\n'
            f"--{boundary}--\r\n"
        ).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/omics/files/?kind=rna_seq",
            data=body,
            headers={
                "Authorization": f"Bearer {token}",
                "Content-Type": f"multipart/form-data; boundary={boundary}",
            },
        )
        with urllib.request.urlopen(request, timeout=120) as r:
            file_id = json.loads(r.read())["id"]
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/omics/files/{file_id}",
            headers={"Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(request, timeout=30) as r:
            assert json.loads(r.read())["status"] == "ingested"
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0].decode()
    assert "participants" in out and "demo logins: admin/admin-demo-pw" in out
    assert "fork() called from a process already using GNU OpenMP" not in out, out
    assert out.count("Booting worker") == 1, out  # never restarted
