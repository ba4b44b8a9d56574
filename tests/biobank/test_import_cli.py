"""`biobank import` as a user runs it: a separate process, a real file, killed halfway."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import sqlalchemy as sa

from biobank import create_app
from biobank.db import db
from biobank.demo import write_master_csv
from tests.conftest import separate_database

ROWS = 20_000


def _biobank(env, *args, check=True):
    result = subprocess.run(
        [sys.executable, "-m", "biobank.cli", *args], env=env, capture_output=True, text=True, timeout=300
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def _counts(url):
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        counts = {
            t: conn.scalar(sa.text(f"SELECT count(*) FROM {t}"))
            for t in ("participants", "specimens", "custody_events", "audit_records", "import_jobs")
        }
    engine.dispose()
    return counts


def test_killed_import_leaves_the_database_as_it_was_then_imports_once(tmp_path):
    url = separate_database(tmp_path, "import")
    env = os.environ | {"BIOBANK_DATABASE_URL": url, "BIOBANK_INSTANCE_PATH": str(tmp_path / "instance")}
    _biobank(env, "db", "upgrade")
    _biobank(env, "demo", "--participants", "3")
    path = tmp_path / "legacy.csv"
    assert write_master_csv(path, rows=ROWS, prefix="KILL") == ROWS
    before = _counts(url)

    proc = subprocess.Popen(
        [sys.executable, "-m", "biobank.cli", "import", str(path)],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    seen = threading.Event()

    def watch() -> None:
        text = b""
        while chunk := proc.stderr.read1(4096):
            text += chunk
            counts = [
                int(n.replace(",", ""))
                for n in re.findall(rb"([\d,]+) rows checked", text)
                for n in [n.decode()]
            ]
            if counts and max(counts) >= 8000:
                seen.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert seen.wait(120), "the import never got going"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    watcher.join(10)
    proc.stderr.close()
    after_kill = _counts(url)
    # rows were written (8,000 checked) but never committed: only the job record remains
    assert {k: v for k, v in after_kill.items() if k != "import_jobs"} == {
        k: v for k, v in before.items() if k != "import_jobs"
    }

    # the job the dead process held is not left 'running' for ever: a server or worker that
    # starts marks it failed
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        job_id, status, runner = conn.execute(
            sa.text("SELECT id, status, runner FROM import_jobs ORDER BY id DESC")
        ).first()
    assert status == "running" and runner.endswith(f":{proc.pid}")
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "x"})
    with app.app_context():
        from biobank.tasks import recover_jobs

        assert recover_jobs() == [job_id]
        assert recover_jobs() == []
        db.session.remove()
    with engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT status FROM import_jobs WHERE id = :i"), {"i": job_id}) == "failed"
        assert "interrupted" in conn.scalar(
            sa.text("SELECT message FROM import_problems WHERE job_id = :i"), {"i": job_id}
        )
    engine.dispose()
    with app.app_context():
        db.engine.dispose()

    started = time.monotonic()
    result = _biobank(env, "import", str(path))
    assert f"{ROWS:,} rows" in result.stdout, result.stdout
    done = _counts(url)
    assert done["specimens"] == before["specimens"] + ROWS
    assert done["participants"] > before["participants"]
    result = _biobank(env, "import", str(path), check=False)
    assert result.returncode == 1 and "already imported" in result.stderr
    assert _counts(url)["specimens"] == done["specimens"]
    assert "custody ledger intact" in _biobank(env, "custody", "verify").stdout
    assert time.monotonic() - started < 120
