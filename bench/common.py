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
            if backend == "postgresql":
                with db.engine.connect() as conn:
                    conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
            else:
                from biobank.db import refresh_statistics

                refresh_statistics()
        db.engine.dispose()
    return url


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
