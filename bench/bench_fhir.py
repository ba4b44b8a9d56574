"""FHIR R4 bulk export (``biobank export fhir``: Patient, Condition, BodyStructure, Consent
and Specimen) of the million-specimen database, against reading the same rows through the
database driver and writing each as a JSON array (no ORM, no FHIR mapping) in the same run;
resident memory is sampled after every batch, so a flat line shows the export streams.

    python -m bench.bench_fhir --backend both [--participants 88000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time

from bench.common import DATA, ensure_database

TARGET = 5000  # resources/s


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def _raw(engine, out) -> tuple[int, float]:
    """Every row of the exported tables through the driver, one JSON array per line."""
    started, rows = time.perf_counter(), 0
    with engine.connect() as conn, out.open("w") as f:
        for table in ("participants", "cases", "lesions", "consent_responses", "specimens"):
            result = conn.execution_options(yield_per=5000).exec_driver_sql(
                f"SELECT * FROM {table} ORDER BY id"
            )
            for row in result:
                f.write(json.dumps(list(row), default=str) + "\n")
                rows += 1
    return rows, time.perf_counter() - started


def run(backend: str, participants: int) -> None:
    from biobank import create_app
    from biobank.db import db, read_only
    from biobank.services.fhir import export_ndjson

    url = ensure_database(backend, f"bench_{participants}", participants=participants)
    app = create_app({"DATABASE_URL": url})
    out = DATA / f"fhir-export-{backend}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    with app.app_context():
        raw_rows, raw_seconds = _raw(db.engine, out / "raw.jsonl")
        samples: list[tuple[int, float]] = []
        done: dict[str, int] = {}

        def sample(kind: str, n: int) -> None:
            done[kind] = n
            samples.append((sum(done.values()), _rss_mb()))

        before = _rss_mb()
        started = time.perf_counter()
        with read_only():
            counts = export_ndjson(out, batch=5000, progress=sample)
        seconds = time.perf_counter() - started
        db.session.rollback()
    total = sum(counts.values())
    size = sum((out / f"{k}.ndjson").stat().st_size for k in counts) / 1e6
    rate, raw_rate = total / seconds, raw_rows / raw_seconds
    tenth = samples[len(samples) // 10][1]
    print(
        f"\n== FHIR bulk export ({backend}): "
        + ", ".join(f"{n:,} {kind}" for kind, n in counts.items())
        + f"; {size:,.0f} MB of NDJSON"
    )
    print(f"  rows through the driver as JSON arrays: {raw_rate:,.0f} rows/s ({raw_seconds:.1f} s)")
    print(
        f"  export_ndjson: {rate:,.0f} resources/s ({seconds:.1f} s) = "
        f"{rate / raw_rate:.0%} of the driver's rate (target ≥ {TARGET:,} resources/s)"
    )
    print(
        f"  resident memory: {before:.0f} MB before, {tenth:.0f} MB at a tenth, "
        f"{samples[-1][1]:.0f} MB at the end, peak {max(m for _, m in samples):.0f} MB"
    )
    shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--participants", type=int, default=88000)
    args = parser.parse_args()
    for backend in ("sqlite", "postgresql") if args.backend == "both" else (args.backend,):
        run(backend, args.participants)


if __name__ == "__main__":
    main()
