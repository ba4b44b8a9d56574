"""Specimen creation through the HTTP API and specimen list/search latency on a large biobank.

Runs against `biobank serve` (gunicorn) on a database of about 1,000,000 specimens, on SQLite
and PostgreSQL. The creation rate is compared with the raw single-row INSERT rate of the same
database measured in the same run (one committed INSERT per row, no HTTP, no validation).

    python bench/bench_specimens.py --backend both
    python bench/bench_specimens.py --backend sqlite --participants 2000   # quick run
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import time
import uuid

import sqlalchemy as sa

from bench.common import Client, ensure_database, live_server, percentiles, run_threads, token_for


def create_rate(
    port: int, token: str, participants: list[int], *, seconds: float, threads: int
) -> tuple[float, int]:
    run = uuid.uuid4().hex[:6].upper()
    counter = itertools.count()
    done = []
    errors = []
    stop = time.perf_counter() + seconds

    def worker() -> None:
        client = Client(port, token)
        while time.perf_counter() < stop:
            n = next(counter)
            status, _ = client.call(
                "POST",
                "/api/v1/specimens/",
                {
                    "barcode": f"BENCH{run}{n:07d}",
                    "participant_id": participants[n % len(participants)],
                    "material_type": "PLASMA",
                    "quantity": "0.5",
                    "unit": "mL",
                },
            )
            (done if status == 201 else errors).append(status)

    started = time.perf_counter()
    run_threads(worker, threads)
    elapsed = time.perf_counter() - started
    if errors:
        print(f"  ! {len(errors)} failed creations: {sorted(set(errors))}")
    return len(done) / elapsed, len(done)


def raw_insert_rate(url: str, *, seconds: float) -> float:
    """Single-row INSERT ... COMMIT of a specimen row straight into the database."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, site_id FROM participants ORDER BY id LIMIT 1000")).all()
    participants = [r.id for r in rows]
    site_of = {r.id: r.site_id for r in rows}
    specimens = sa.table(
        "specimens",
        *[
            sa.column(c)
            for c in (
                "barcode",
                "participant_id",
                "site_id",
                "lineage",
                "material_type",
                "pathology_status",
                "status",
                "quantity",
                "initial_quantity",
                "unit",
                "freeze_thaw_count",
                "custody_seq",
                "created_at",
                "updated_at",
            )
        ],
    )
    run = uuid.uuid4().hex[:6].upper()
    n = 0
    now = dt.datetime.now(dt.UTC)
    if engine.dialect.name == "sqlite":
        now = now.replace(tzinfo=None)
    stop = time.perf_counter() + seconds
    started = time.perf_counter()
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            conn.exec_driver_sql("PRAGMA synchronous=NORMAL")
        while time.perf_counter() < stop:
            conn.execute(
                sa.insert(specimens).values(
                    barcode=f"RAW{run}{n:07d}",
                    participant_id=participants[n % len(participants)],
                    site_id=site_of[participants[n % len(participants)]],
                    lineage="primary",
                    material_type="PLASMA",
                    pathology_status="not_specified",
                    status="collected",
                    quantity=0.5,
                    initial_quantity=0.5,
                    unit="mL",
                    freeze_thaw_count=0,
                    custody_seq=0,
                    created_at=now,
                    updated_at=now,
                )
            )
            conn.commit()
            n += 1
        rate = n / (time.perf_counter() - started)
        # the baseline's rows go: they have no custody chain, which verification would report
        conn.execute(sa.text("DELETE FROM specimens WHERE barcode LIKE :run"), {"run": f"RAW{run}%"})
        conn.commit()
    engine.dispose()
    return rate


def cleanup(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # The custody ledger is append-only; removing benchmark rows bypasses its trigger.
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        ids = (
            sa.select(sa.column("id"))
            .select_from(sa.table("specimens"))
            .where(sa.or_(sa.column("barcode").like("BENCH%"), sa.column("barcode").like("RAW%")))
        )
        conn.execute(
            sa.text(
                "DELETE FROM custody_events WHERE specimen_id IN "
                "(SELECT id FROM specimens WHERE barcode LIKE 'BENCH%')"
            )
        )
        conn.execute(
            sa.text(
                "DELETE FROM audit_records WHERE entity = 'specimens' AND "
                "entity_id IN (SELECT CAST(id AS VARCHAR) FROM specimens "
                "WHERE barcode LIKE 'BENCH%')"
            )
        )
        conn.execute(sa.delete(sa.table("specimens")).where(sa.column("id").in_(ids)))
    engine.dispose()


def latencies(port: int, token: str, url: str, *, repeats: int) -> dict[str, dict[str, float]]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        total = conn.execute(sa.text("SELECT MAX(id) FROM specimens")).scalar()
        barcode = conn.execute(
            sa.text("SELECT barcode FROM specimens WHERE id = :i"), {"i": total // 2}
        ).scalar()
        participant = conn.execute(
            sa.text("SELECT participant_id FROM specimens WHERE id = :i"), {"i": total // 3}
        ).scalar()
    engine.dispose()
    queries = {
        "first page (100)": "/api/v1/specimens/?limit=100",
        "material+status filter": "/api/v1/specimens/?material_type=PLASMA&status=in_storage&limit=100",
        "deep keyset page": f"/api/v1/specimens/?after={total // 2}&limit=100",
        "by participant": f"/api/v1/specimens/?participant_id={participant}",
        "barcode lookup": f"/api/v1/specimens/by-barcode/{barcode}",
        "barcode prefix search": f"/api/v1/specimens/?q={barcode[:-4]}&limit=50",
    }
    client = Client(port, token)
    out = {}
    for name, path in queries.items():
        client.call("GET", path)
        samples = []
        for _ in range(repeats):
            started = time.perf_counter()
            status, _ = client.call("GET", path)
            samples.append(time.perf_counter() - started)
            assert status == 200, (path, status)
        out[name] = percentiles(samples)
    return out


def run(backend: str, participants: int, seconds: float, threads: int, repeats: int) -> None:
    name = f"bench_{participants}"
    url = ensure_database(backend, name, participants=participants)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        n_specimens = conn.execute(sa.text("SELECT COUNT(*) FROM specimens")).scalar()
        ids = list(conn.execute(sa.text("SELECT id FROM participants ORDER BY id LIMIT 5000")).scalars())
    engine.dispose()
    token = token_for(url, "admin")
    workers = 1 if backend == "sqlite" else 2
    print(
        f"\n== {backend}: {n_specimens:,} specimens, gunicorn {workers} worker(s) × 4 threads, "
        f"{threads} client threads"
    )
    try:
        with live_server(url, workers=workers) as port:
            rate, created = create_rate(port, token, ids, seconds=seconds, threads=threads)
            lat = latencies(port, token, url, repeats=repeats)
        raw = raw_insert_rate(url, seconds=seconds)
    finally:
        cleanup(url)
    print(f"  specimen creation via API: {rate:8.1f} req/s ({created} created)")
    print(
        f"  raw single-row INSERT:     {raw:8.1f} rows/s  → API at {100 * rate / raw:.0f}% "
        "(each API call also validates, writes custody and audit rows)"
    )
    print(f"  {'query':28s} {'p50 ms':>8s} {'p95 ms':>8s} {'p99 ms':>8s}")
    for query, p in lat.items():
        print(f"  {query:28s} {p['p50']:8.1f} {p['p95']:8.1f} {p['p99']:8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument(
        "--participants",
        type=int,
        default=88_000,
        help="demo participants (about 11.4 specimens each; 88,000 ≈ 1,000,000)",
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    for backend in backends:
        run(backend, args.participants, args.seconds, args.threads, args.repeats)


if __name__ == "__main__":
    main()
