"""Scan throughput and latency through the HTTP API, rack-scan confirmation, ledger checks.

    python -m bench.bench_scans --backend postgresql        # what the targets are set on
    python -m bench.bench_scans --backend sqlite

* scans/s through `biobank serve` against the raw single-row INSERT rate of the same database
  measured in the same run (one committed INSERT per row over one connection);
* for scale, what the same server serves with no write (the sign-in page, a scan card) and,
  with `wrk` installed, what the same gunicorn workers give a bare WSGI callable and a
  one-route Flask app (``bench/stack_apps.py``): the floor under any request;
* p50/p99 latency of one scan at a steady 100 scans/s;
* confirming a 96-tube rack scan in which every tube moved;
* `biobank custody verify` over the benchmark database's whole ledger (events/s, and the
  time per 1,000,000 events).
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from typing import Any

import sqlalchemy as sa

from bench.bench_specimens import raw_insert_rate
from bench.common import (
    DATA,
    Client,
    ensure_database,
    free_port,
    live_server,
    percentiles,
    run_threads,
    scratch_copy,
    token_for,
    vacuum,
    wait_serving,
)


def _tubes(url: str, n: int) -> tuple[list[str], int]:
    """*n* fresh received tubes and an empty 10 × 10 box per 100 tubes, at site CTR."""
    from biobank import create_app
    from biobank.db import db, transaction
    from biobank.models import Participant, Site, Specimen, StorageContainer
    from biobank.models.vocab import ContainerKind, CustodyEventType, MaterialType, SpecimenStatus
    from biobank.services.custody import record_custody_events

    app = create_app({"DATABASE_URL": url})
    with app.app_context():
        with transaction():
            from biobank.services.users import system_actor

            system_actor()
            site = db.session.scalars(sa.select(Site).where(Site.code == "CTR")).one()
            participant = db.session.scalars(
                sa.select(Participant).where(Participant.site_id == site.id)
            ).first()
            rack = db.session.scalars(
                sa.select(StorageContainer).where(
                    StorageContainer.site_id == site.id, StorageContainer.kind == ContainerKind.RACK
                )
            ).first()
            run = uuid.uuid4().hex[:6].upper()
            first_box = None
            for b in range(n // 100 + 1):
                box = StorageContainer(
                    site=site,
                    parent=rack,
                    kind=ContainerKind.BOX,
                    name=f"Bench {run} {b}",
                    n_rows=10,
                    n_cols=10,
                )
                db.session.add(box)
                db.session.flush()
                first_box = first_box or box.id
            codes = [f"BS{run}{i:06d}" for i in range(n)]
            db.session.execute(
                sa.insert(Specimen),
                [
                    {
                        "barcode": c,
                        "participant_id": participant.id,
                        "site_id": site.id,
                        "lineage": "primary",
                        "material_type": MaterialType.SERUM,
                        "pathology_status": "not_specified",
                        "status": SpecimenStatus.RECEIVED,
                        "freeze_thaw_count": 0,
                        "custody_seq": 0,
                        "created_at": dt.datetime.now(dt.UTC),
                        "updated_at": dt.datetime.now(dt.UTC),
                    }
                    for c in codes
                ],
            )
            # each tube's chain starts with its receipt, as a registered tube's does
            tubes = db.session.scalars(sa.select(Specimen).where(Specimen.barcode.in_(codes))).all()
            record_custody_events(
                [(tube, CustodyEventType.RECEIVED, {}) for tube in tubes], actor=system_actor()
            )
        db.engine.dispose()
    return codes, first_box


def _scan(barcode: str, action: str, **more: object) -> dict:
    return {
        "barcode": barcode,
        "action": action,
        "client_event_id": uuid.uuid4().hex,
        "scanned_at": dt.datetime.now(dt.UTC).isoformat(),
        **more,
    }


def _rate(
    port: int, token: str, send: Any, *, seconds: float, threads: int, limit: int | None = None
) -> float:
    """Requests/s of ``send(client, n)`` for n = 0, 1, … (fewer than *limit*) from *threads*
    keep-alive clients during *seconds*."""
    counter = itertools.count()
    done = []
    stop = time.perf_counter() + seconds

    def worker() -> None:
        client = Client(port, token)
        while time.perf_counter() < stop:
            n = next(counter)
            if limit is not None and n >= limit:
                return
            send(client, n)
            done.append(n)

    started = time.perf_counter()
    run_threads(worker, threads)
    return len(done) / (time.perf_counter() - started)


def _expect(answer: tuple[int, Any], status: int) -> None:
    if answer[0] != status:
        raise RuntimeError(answer[1])


def throughput(port: int, token: str, codes: list[str], box: int, *, seconds: float, threads: int) -> float:
    """Store each tube into its own slot: every scan is a full lifecycle step with a move."""

    def send(client: Client, n: int) -> None:
        _expect(
            client.call(
                "POST",
                "/api/v1/scans/",
                _scan(
                    codes[n],
                    "store",
                    location={
                        "container_id": box + n // 100,
                        "pos_row": n % 100 // 10 + 1,
                        "pos_col": n % 10 + 1,
                    },
                ),
            ),
            201,
        )

    return _rate(port, token, send, seconds=seconds, threads=threads, limit=len(codes))


WRK_SCRIPT = r"""
local made = 0
local threads = {}
function setup(thread)
  thread:set("id", made)
  made = made + 1
  table.insert(threads, thread)
end
function init(args)
  step, prefix, box, limit = tonumber(args[1]), args[2], tonumber(args[3]), tonumber(args[4])
  token, at = args[5], args[6]
  n, ok, bad = id, 0, 0
end
function request()
  local i = n
  n = n + step
  if i >= limit then i = limit - 1 end  -- out of tubes: refused, and counted as such
  local body = string.format(
    '{"barcode":"%s%06d","action":"store","client_event_id":"%s-%d","scanned_at":"%s",' ..
    '"location":{"container_id":%d,"pos_row":%d,"pos_col":%d}}',
    prefix, i, prefix, i, at, box + math.floor(i / 100), math.floor((i % 100) / 10) + 1,
    i % 10 + 1)
  return wrk.format("POST", "/api/v1/scans/", {["Content-Type"] = "application/json",
                    ["Authorization"] = "Bearer " .. token}, body)
end
function response(status)
  if status == 201 then ok = ok + 1 else bad = bad + 1 end
end
function done(summary)
  local good, refused = 0, 0
  for _, t in ipairs(threads) do
    good = good + t:get("ok")
    refused = refused + t:get("bad")
  end
  io.write(string.format("RESULT %d %d %d\n", good, refused, summary.duration))
end
"""


def _wrk(
    url: str,
    *,
    seconds: float,
    connections: int,
    options: tuple[str, ...] = (),
    script_args: tuple[str, ...] = (),
) -> str | None:
    """wrk's report (two threads), or None when wrk is not installed."""
    if shutil.which("wrk") is None:
        return None
    return subprocess.run(
        [
            "wrk",
            "-t",
            "2",
            "-c",
            str(connections),
            "-d",
            f"{max(1, round(seconds))}s",
            *options,
            url,
            *(("--", *script_args) if script_args else ()),
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def throughput_wrk(
    port: int, token: str, codes: list[str], box: int, *, seconds: float, connections: int
) -> float | None:
    """The same scans sent by wrk (a load generator in C): the server gets the CPU that
    Python client threads would spend. None when wrk is not installed."""
    at = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)).isoformat()
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SCRIPT)
        script.flush()
        out = _wrk(
            f"http://127.0.0.1:{port}",
            seconds=seconds,
            connections=connections,
            options=("-s", script.name),
            script_args=("2", codes[0][:-6], str(box), str(len(codes)), token, at),
        )
    if out is None:
        return None
    good, refused, micros = (int(x) for x in out.split("RESULT")[1].split())
    if refused:
        raise RuntimeError(f"{refused} scans refused under wrk: too few tubes for the rate")
    return good / (micros / 1e6)


def wrk_get(
    port: int, path: str, *, seconds: float, connections: int, token: str | None = None
) -> float | None:
    """Requests/s of one GET sent by wrk, or None when wrk is not installed."""
    out = _wrk(
        f"http://127.0.0.1:{port}{path}",
        seconds=seconds,
        connections=connections,
        options=("-H", f"Authorization: Bearer {token}") if token else (),
    )
    if out is None:
        return None
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None or "Non-2xx" in out:
        raise RuntimeError(f"wrk GET {path}: {out}")
    return float(found.group(1))


def stack_floor(*, workers: int, threads: int, seconds: float, connections: int) -> dict[str, float] | None:
    """Requests/s that gunicorn, with the LIMS's workers, gives a bare WSGI callable and a
    one-route Flask app (``bench/stack_apps.py``), sent by wrk: no application work at all.
    None when wrk is not installed."""
    if shutil.which("wrk") is None:
        return None
    rates = {}
    for label, target in (
        ("bare WSGI", "bench.stack_apps:bare"),
        ("one-route Flask", "bench.stack_apps:flask_app"),
    ):
        port = free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--workers",
                str(workers),
                "--threads",
                str(threads),
                "--bind",
                f"127.0.0.1:{port}",
                "--log-level",
                "warning",
                target,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_serving(port, "/")
            rates[label] = wrk_get(port, "/", seconds=seconds, connections=connections)
        finally:
            server.terminate()
            server.wait(timeout=30)
    return rates


def read_rate(port: int, token: str, paths: list[str], *, seconds: float, threads: int) -> float:
    """Requests/s of GETs through the same server and clients: what the stack serves
    without writing anything (the ceiling any scan rate sits under)."""
    return _rate(
        port,
        token,
        lambda client, n: _expect(client.call("GET", paths[n % len(paths)]), 200),
        seconds=seconds,
        threads=threads,
    )


def paced_latency(
    port: int, token: str, codes: list[str], *, rate: float, seconds: float
) -> dict[str, float]:
    """Check tubes out at a steady *rate* from several clients; latency of each scan."""
    samples: list[float] = []
    total = min(int(rate * seconds), len(codes))
    start = time.perf_counter() + 0.2
    lock = threading.Lock()
    counter = itertools.count()

    def worker() -> None:
        client = Client(port, token)
        while True:
            n = next(counter)
            if n >= total:
                return
            due = start + n / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            began = time.perf_counter()
            status, body = client.call("POST", "/api/v1/scans/", _scan(codes[n], "check_out"))
            elapsed = time.perf_counter() - began
            if status != 201:
                raise RuntimeError(body)
            with lock:
                samples.append(elapsed)

    run_threads(worker, 8)
    return percentiles(samples)


def rack_confirm(url: str) -> tuple[float, float]:
    """Upload and confirm a 96-tube rack in which every tube moved (worst case)."""
    from biobank import create_app
    from biobank.db import db, transaction
    from biobank.models import Participant, Site, Specimen, StorageContainer
    from biobank.models.vocab import ContainerKind, CustodyEventType, MaterialType, SpecimenStatus
    from biobank.services.custody import record_custody_events
    from biobank.services.rack_scans import confirm_rack_scan, upload_rack_scan
    from biobank.services.users import system_actor

    app = create_app({"DATABASE_URL": url})
    with app.app_context():
        with transaction():
            actor = system_actor()
            site = db.session.scalars(sa.select(Site).where(Site.code == "CTR")).one()
            participant = db.session.scalars(sa.select(Participant)).first()
            rack = db.session.scalars(
                sa.select(StorageContainer).where(
                    StorageContainer.kind == ContainerKind.RACK, StorageContainer.site_id == site.id
                )
            ).first()
            box = StorageContainer(
                site=site,
                parent=rack,
                kind=ContainerKind.BOX,
                name=f"Rack bench {uuid.uuid4().hex[:6]}",
                n_rows=8,
                n_cols=12,
            )
            db.session.add(box)
            db.session.flush()
            run = uuid.uuid4().hex[:6].upper()
            tubes = []
            for i in range(96):
                s = Specimen(
                    barcode=f"RB{run}{i:03d}",
                    participant=participant,
                    site=site,
                    material_type=MaterialType.PLASMA,
                    status=SpecimenStatus.IN_STORAGE,
                    container=box,
                    pos_row=i // 12 + 1,
                    pos_col=i % 12 + 1,
                )
                db.session.add(s)
                tubes.append(s)
            db.session.flush()
            # each chain starts as a stored tube's does
            record_custody_events([(s, CustodyEventType.STORED, {}) for s in tubes], actor=system_actor())
        shuffled = tubes[:]
        random.Random(1).shuffle(shuffled)
        lines = [f"{chr(65 + i // 12)}{i % 12 + 1:02d},{s.barcode}" for i, s in enumerate(shuffled)]
        data = ("\n".join(lines) + "\n").encode()
        started = time.perf_counter()
        with transaction():
            scan = upload_rack_scan(db.session.get(StorageContainer, box.id), data, actor=actor)
        upload = time.perf_counter() - started
        started = time.perf_counter()
        with transaction():
            result = confirm_rack_scan(scan, actor=system_actor())
        confirm = time.perf_counter() - started
        assert result["moved"] >= 90, result
        db.engine.dispose()
    return upload, confirm


def verify_speed(url: str, name: str) -> dict[str, float]:
    """`biobank custody verify` over the whole ledger, against a baseline in the same
    process: reading every event row and computing the plain SHA-256 of its canonical
    content (what any verifier must at least do, keyless)."""
    from biobank import create_app
    from biobank.db import db, read_only, transaction
    from biobank.models import CustodyEvent
    from biobank.services.custody import content_hash
    from biobank.services.ledger import create_checkpoint, verify_ledger

    app = create_app({"DATABASE_URL": url, "CUSTODY_CHECKPOINT_DIR": str(DATA / f"custody-{name}")})
    with app.app_context():
        with transaction():
            create_checkpoint()
        started = time.perf_counter()
        with read_only():
            report = verify_ledger(workers=os.cpu_count() or 1)
        elapsed = time.perf_counter() - started
        db.session.rollback()
        assert report.ok, report.findings[:3]
        one_started = time.perf_counter()
        with read_only():
            single = verify_ledger(workers=1)
        one = time.perf_counter() - one_started
        db.session.rollback()
        assert single.ok
        started = time.perf_counter()
        with read_only():
            for row in db.session.connection().execute(
                sa.select(*CustodyEvent.__table__.c).order_by(CustodyEvent.specimen_id, CustodyEvent.seq)
            ):
                content_hash(
                    barcode="",
                    seq=row.seq,
                    event_type=row.event_type,
                    occurred_at=row.occurred_at,
                    recorded_at=row.recorded_at,
                    actor_name=row.actor_name,
                    from_location=row.from_location,
                    to_location=row.to_location,
                    details=row.details,
                    client_event_id=row.client_event_id,
                    prev_hash=row.prev_hash,
                )
        baseline = time.perf_counter() - started
        db.session.rollback()
        db.engine.dispose()
    return {"events": report.events, "parallel": elapsed, "one": one, "baseline": baseline}


def report_verify(url: str, name: str) -> None:
    v = verify_speed(url, name)
    per = 1_000_000 / v["events"]
    print(
        f"  custody verify (keyed digests, seal, checkpoints inside and outside the "
        f"database): {v['events']:,} events in {v['parallel']:.1f} s with "
        f"{os.cpu_count()} processes → {v['parallel'] * per:.1f} s per 1,000,000 (target "
        f"< 60 s); one process {v['one'] * per:.1f} s per 1,000,000"
    )
    print(
        f"  baseline, same process: read every event and plain SHA-256 it: "
        f"{v['baseline'] * per:.1f} s per 1,000,000 → verify in one process takes "
        f"{v['one'] / v['baseline']:.2f}× the baseline"
    )


def run(
    backend: str,
    participants: int,
    seconds: float,
    threads: int,
    *,
    workers: int | None = None,
    server_threads: int | None = None,
) -> None:
    name = f"bench_{participants}"
    ensure_database(backend, name, participants=participants)
    with scratch_copy(backend, name) as (url, copy):
        _run(backend, url, copy, seconds, threads, workers=workers, server_threads=server_threads)


def _run(
    backend: str,
    url: str,
    name: str,
    seconds: float,
    threads: int,
    *,
    workers: int | None,
    server_threads: int | None,
) -> None:
    token = token_for(url, "admin")
    # SQLite has one writer at a time. On PostgreSQL single-threaded processes do better
    # than threads sharing one interpreter lock (112 against 65–86 scans/s on two cores),
    # and eight, each half the time waiting on the database, answer faster than four.
    workers = workers or (1 if backend == "sqlite" else 8)
    server_threads = server_threads or (4 if backend == "sqlite" else 1)
    print(
        f"\n== {backend}: gunicorn {workers} worker(s) × {server_threads} threads, {threads} client threads"
    )
    codes, box = _tubes(url, 3000)
    wrk_codes, wrk_box = _tubes(url, 9000)
    if vacuum(url):
        print("  (this server's autovacuum is off: the benchmark vacuums between its phases instead)")
    with live_server(url, workers=workers, threads=server_threads) as port:
        rate = throughput(port, token, codes, box, seconds=seconds, threads=threads)
        stored = codes[: int(rate * seconds) - 50]
        vacuum(url)
        lat = paced_latency(port, token, stored, rate=100, seconds=min(15, len(stored) / 100))
        by_wrk = throughput_wrk(port, token, wrk_codes, wrk_box, seconds=seconds / 2, connections=threads)
        page = read_rate(port, token, ["/login"], seconds=seconds / 2, threads=threads)
        card = read_rate(
            port, token, [f"/api/v1/scans/card/{c}" for c in stored], seconds=seconds / 2, threads=threads
        )
        page_wrk = wrk_get(port, "/login", seconds=seconds / 2, connections=threads)
        card_wrk = wrk_get(
            port, f"/api/v1/scans/card/{stored[0]}", seconds=seconds / 2, connections=threads, token=token
        )
    floor = stack_floor(workers=workers, threads=server_threads, seconds=seconds / 2, connections=threads)
    raw = raw_insert_rate(url, seconds=seconds)
    upload, confirm = rack_confirm(url)
    print(f"  scans via API (store, {threads} clients): {rate:8.1f} scans/s")
    print(
        f"  raw single-row INSERT, same database:   {raw:8.1f} rows/s  → API at "
        f"{100 * rate / raw:.0f}% (target ≥ 50% on PostgreSQL)"
    )
    if by_wrk is not None:
        print(
            f"  the same scans sent by wrk ({threads} connections, no Python client): "
            f"{by_wrk:8.1f} scans/s → {100 * by_wrk / raw:.0f}% of raw INSERT"
        )
    print(
        f"  for scale, through the same server and clients: the sign-in page (no database) "
        f"{page:.0f} req/s ({100 * page / raw:.0f}% of raw INSERT), a scan card (the "
        f"scan's reads, no write) {card:.0f} req/s ({100 * card / raw:.0f}%)"
    )
    if page_wrk is not None and card_wrk is not None:
        print(
            f"  the same two sent by wrk: the sign-in page {page_wrk:.0f} req/s "
            f"({100 * page_wrk / raw:.0f}%), a scan card {card_wrk:.0f} req/s "
            f"({100 * card_wrk / raw:.0f}%)"
        )
    if floor is not None:
        print(
            "  and with no application at all, the same gunicorn workers and wrk: "
            + ", ".join(
                f"{label} {rate:.0f} req/s ({100 * rate / raw:.0f}% of raw INSERT)"
                for label, rate in floor.items()
            )
        )
    print(
        f"  one scan at a steady 100 scans/s: p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f} ms,"
        f" p99 {lat['p99']:.1f} ms (target p99 < 25 ms), slowest {lat['max']:.0f} ms"
    )
    print(
        f"  96-tube rack, every tube moved: upload {upload * 1000:.0f} ms, confirm "
        f"{confirm * 1000:.0f} ms (target confirm < 300 ms)"
    )
    report_verify(url, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--participants", type=int, default=88_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=8, help="client threads")
    parser.add_argument("--workers", type=int, help="server processes (default 8; SQLite 1)")
    parser.add_argument("--server-threads", type=int, help="threads per server process (default 1; SQLite 4)")
    parser.add_argument(
        "--verify-only", action="store_true", help="only `custody verify` against its baseline"
    )
    args = parser.parse_args()
    for backend in ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]:
        if args.verify_only:
            name = f"bench_{args.participants}"
            print(f"\n== {backend}")
            report_verify(ensure_database(backend, name, participants=args.participants), name)
            continue
        run(
            backend,
            args.participants,
            args.seconds,
            args.threads,
            workers=args.workers,
            server_threads=args.server_threads,
        )


if __name__ == "__main__":
    main()
