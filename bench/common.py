"""Shared helpers for the benchmarks: databases built once, a live gunicorn server, timing."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
PG_BASE = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432")
# One custody key for every process of a benchmark (the apps made here and the servers
# started from here): events digested by one are verified by another.
os.environ.setdefault("BIOBANK_CUSTODY_KEY", "bench")


def database_url(backend: str, name: str) -> str:
    if backend == "sqlite":
        DATA.mkdir(exist_ok=True)
        return f"sqlite:///{DATA / (name + '.db')}"
    return f"{PG_BASE}/{name}"


def create_if_missing(backend: str, name: str) -> str:
    """The URL of database *name*, created empty if there is none yet."""
    import sqlalchemy as sa

    url = database_url(backend, name)
    if backend == "postgresql":
        admin = sa.create_engine(f"{PG_BASE}/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            exists = conn.exec_driver_sql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'").scalar()
            if not exists:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        admin.dispose()
    return url


def ensure_database(backend: str, name: str, *, participants: int) -> str:
    """Create and fill the benchmark database once; later runs reuse it."""
    url = create_if_missing(backend, name)
    from biobank import create_app
    from biobank.db import db

    app = create_app({"DATABASE_URL": url})
    with app.app_context():
        from biobank import migrate
        from biobank.demo import database_is_empty, load_demo

        migrate.upgrade()
        if database_is_empty():
            started = time.perf_counter()
            print(f"  building {backend} database {name} ({participants} participants)…", flush=True)
            # checkpoints kept outside an earlier database of this name belong to it
            shutil.rmtree(DATA / f"custody-{name}", ignore_errors=True)
            counts = load_demo(
                seed=1,
                participants=participants,
                progress=lambda n: print(f"    {n} participants", flush=True) if n % 20000 == 0 else None,
            )
            print(f"  built in {time.perf_counter() - started:.0f} s: {counts}", flush=True)
            if backend != "postgresql":
                from biobank.db import refresh_statistics

                refresh_statistics()
        engine = db.engine
    engine.dispose()  # once the session has given its connection back
    vacuum(url)
    return url


def vacuum(url: str) -> bool:
    """On PostgreSQL, ``VACUUM ANALYZE`` what earlier writes left behind, as autovacuum
    does on a production server, and write the pages this dirtied out (``CHECKPOINT``).
    Without it, on a server whose autovacuum is off, a run measured the dead rows its own
    setup left. Answers whether the server's autovacuum is off (the figures then depend on
    these calls)."""
    if not url.startswith("postgresql"):
        return False
    import sqlalchemy as sa

    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
            # the pages the setup and the vacuum dirtied are written now, not during the
            # next measured phase (where a checkpoint's writes would stall its commits)
            try:
                conn.exec_driver_sql("CHECKPOINT")
            except sa.exc.DBAPIError as error:  # only a superuser or pg_checkpoint may
                print(f"  (no CHECKPOINT between phases: {error.orig})", flush=True)
            return conn.exec_driver_sql("SHOW autovacuum").scalar() == "off"
    finally:
        engine.dispose()


@contextlib.contextmanager
def scratch_copy(backend: str, name: str) -> Iterator[tuple[str, str]]:
    """A copy of benchmark database *name* (and of the custody checkpoints kept outside
    it) for one run that writes, dropped afterwards: yields ``(url, copy's name)``.

    A run of ``bench_scans`` adds 12,000 tubes with their scans and custody events. Written
    into the database that later runs reuse, "the small database" grew with every run and
    each run measured a larger one than the last (a scan in process took 9.2 ms on a fresh
    copy of the 2,000-participant database against 11.4 ms after a few runs): every run
    now starts from the same database."""
    import sqlalchemy as sa

    copy = f"{name}_run"
    source_dir, copy_dir = DATA / f"custody-{name}", DATA / f"custody-{copy}"
    shutil.rmtree(copy_dir, ignore_errors=True)
    if source_dir.exists():
        shutil.copytree(source_dir, copy_dir)
    if backend == "postgresql":
        admin = sa.create_engine(f"{PG_BASE}/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{copy}"')
            # copied file by file, between two checkpoints, rather than through the WAL:
            # the measured phases then do not meet the copy's writes on their way to disk
            conn.exec_driver_sql(f'CREATE DATABASE "{copy}" TEMPLATE "{name}" STRATEGY FILE_COPY')
    else:
        import sqlite3

        target = DATA / f"{copy}.db"
        for leftover in (target, Path(f"{target}-wal"), Path(f"{target}-shm")):
            leftover.unlink(missing_ok=True)
        with (
            contextlib.closing(sqlite3.connect(DATA / f"{name}.db")) as source,
            contextlib.closing(sqlite3.connect(target)) as dest,
        ):
            source.backup(dest)
    try:
        yield database_url(backend, copy), copy
    finally:
        shutil.rmtree(copy_dir, ignore_errors=True)
        if backend == "postgresql":
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)')
            admin.dispose()
        else:
            for leftover in (target, Path(f"{target}-wal"), Path(f"{target}-shm")):
                leftover.unlink(missing_ok=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_serving(port: int, path: str, *, seconds: float = 60) -> None:
    """Return once a GET of *path* on localhost:*port* is answered."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            conn.getresponse().read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start") from None
            time.sleep(0.3)


@contextlib.contextmanager
def live_server(url: str, *, workers: int = 2, threads: int = 4) -> Iterator[int]:
    """`biobank serve` (gunicorn) on a free port, as in production."""
    port = free_port()
    env = os.environ | {"BIOBANK_DATABASE_URL": url, "BIOBANK_INSTANCE_PATH": str(DATA / "instance")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "biobank.cli",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--threads",
            str(threads),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_serving(port, "/login")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def token_for(url: str, username: str) -> str:
    from biobank import create_app
    from biobank.db import db, transaction
    from biobank.services.users import create_token, get_user

    app = create_app({"DATABASE_URL": url})
    with app.app_context():
        with transaction():
            secret = create_token(get_user(username), name="bench")
        db.engine.dispose()
    return secret


class Client:
    """A keep-alive HTTP client for one thread."""

    def __init__(self, port: int, token: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        self.conn.request(
            method, path, body=json.dumps(body) if body is not None else None, headers=self.headers
        )
        response = self.conn.getresponse()
        data = response.read()
        return response.status, data


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {
        "p50": pick(0.50) * 1000,
        "p95": pick(0.95) * 1000,
        "p99": pick(0.99) * 1000,
        "mean": statistics.fmean(ordered) * 1000,
        "max": ordered[-1] * 1000,
    }


def run_threads(worker: Any, count: int) -> None:
    """Run *worker* in *count* threads and wait for all of them."""
    import threading

    pool = [threading.Thread(target=worker) for _ in range(count)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


def empty_database(backend: str, name: str) -> str:
    """Drop and recreate database *name* (a file in bench/data for SQLite); return its URL."""
    import sqlalchemy as sa

    url = database_url(backend, name)
    if backend == "postgresql":
        admin = sa.create_engine(f"{PG_BASE}/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        admin.dispose()
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{DATA / name}.db{suffix}").unlink(missing_ok=True)
    return url


def timed(func: Any, repeats: int) -> tuple[float, float]:
    """p50 and p95 in milliseconds of *repeats* calls after one warm-up call."""
    func()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        func()
        samples.append(time.perf_counter() - started)
    samples.sort()
    return statistics.median(samples) * 1000, samples[int(0.95 * len(samples))] * 1000
