"""A master-specimen import of N rows (default 1,000,000): rows/s and peak memory.

    python -m bench.bench_imports --backend both [--rows 1000000]

Each run starts from a fresh database (`bench_import`: a SQLite file in bench/data, or a
PostgreSQL database) holding the demo's study and sites and enough 9 × 9 boxes for every
stored tube. The file is written by `biobank.demo.write_master_csv` (six tubes per
participant: frozen tissue, a consumed blood draw and its plasma, two plasma aliquots and a
serum tube whose barcode the importer issues; five of six are placed in boxes). The import
runs as a user runs it, `biobank import FILE`, in its own process; its peak RSS is read
from that process. The baseline, in the same run, is PostgreSQL `COPY` of the same file
into the same tables: the rows the import wrote are dumped, deleted and loaded again with
`COPY` (indexes, constraints and foreign keys included), so the ratio is what checking every
row, issuing barcodes, hashing custody chains and auditing costs over the bare database
load. For scale, the file is also copied into a single table of text columns (no indexes,
no types), the lowest a load of that file can cost.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from bench.common import DATA, PG_BASE, empty_database

NAME = "bench_import"
RSS_WRAPPER = """
import runpy, sys
sys.argv = ["biobank", *sys.argv[1:]]
try:
    runpy.run_module("biobank.cli", run_name="__main__")
finally:
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across exec
    peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
    print(f"PEAK_RSS_KB={peak}", file=sys.stderr)
"""


def fresh_database(backend: str, rows: int) -> tuple[str, list[str]]:
    """A new database with the demo's reference data and boxes for the file's tubes."""
    url = empty_database(backend, NAME)
    from biobank import create_app
    from biobank.db import db
    from biobank.models import Site, StorageContainer
    from biobank.models.vocab import ContainerKind, StorageTemperature

    app = create_app({"DATABASE_URL": url})
    boxes = [f"BX{n:06d}" for n in range(1, rows * 5 // 6 // 81 + 2)]
    with app.app_context():
        from biobank import migrate
        from biobank.demo import load_demo

        migrate.upgrade()
        load_demo(participants=2)
        site_id = db.session.scalar(sa.select(Site.id).where(Site.code == "CTR"))
        now = sa.func.now()
        freezer = db.session.execute(
            sa.insert(StorageContainer)
            .values(
                site_id=site_id,
                kind=ContainerKind.FREEZER,
                name="Import freezer",
                temperature=StorageTemperature.MINUS_60_85,
                created_at=now,
                updated_at=now,
            )
            .returning(StorageContainer.id)
        ).scalar_one()
        racks = []
        for r in range(len(boxes) // 100 + 1):
            racks.append(
                db.session.execute(
                    sa.insert(StorageContainer)
                    .values(
                        site_id=site_id,
                        parent_id=freezer,
                        kind=ContainerKind.RACK,
                        name=f"Rack {r}",
                        created_at=now,
                        updated_at=now,
                    )
                    .returning(StorageContainer.id)
                ).scalar_one()
            )
        db.session.execute(
            sa.insert(StorageContainer),
            [
                {
                    "site_id": site_id,
                    "parent_id": racks[i // 100],
                    "kind": ContainerKind.BOX,
                    "name": code,
                    "barcode": code,
                    "n_rows": 9,
                    "n_cols": 9,
                }
                for i, code in enumerate(boxes)
            ],
        )
        db.session.commit()
        db.engine.dispose()
    return url, boxes


def copy_baseline(path: Path, columns: list[str]) -> float:
    """Seconds PostgreSQL takes to COPY the file into a table of text columns."""
    import psycopg

    with psycopg.connect(f"{PG_BASE.replace('postgresql+psycopg', 'postgresql')}/{NAME}") as conn:
        conn.execute("DROP TABLE IF EXISTS copy_baseline")
        conn.execute("CREATE TABLE copy_baseline (" + ", ".join(f'"{c}" text' for c in columns) + ")")
        started = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy("COPY copy_baseline FROM STDIN WITH (FORMAT csv, HEADER true)") as copy,
            path.open("rb") as f,
        ):
            while chunk := f.read(1 << 20):
                copy.write(chunk)
        conn.commit()
        took = time.perf_counter() - started
        conn.execute("DROP TABLE copy_baseline")
        conn.commit()
    return took


#: the rows the import wrote, table by table in foreign-key order
IMPORTED_ROWS = [
    ("participants", "code LIKE 'BENCH-%'"),
    ("participant_phi", "participant_id IN (SELECT id FROM participants WHERE code LIKE 'BENCH-%')"),
    ("cases", "code LIKE 'BENCHC-%'"),
    ("collection_events", "participant_id IN (SELECT id FROM participants WHERE code LIKE 'BENCH-%')"),
    ("specimens", "participant_id IN (SELECT id FROM participants WHERE code LIKE 'BENCH-%')"),
    (
        "custody_events",
        "specimen_id IN (SELECT s.id FROM specimens s JOIN participants p ON "
        "p.id = s.participant_id WHERE p.code LIKE 'BENCH-%')",
    ),
    ("audit_records", "reason LIKE 'import %'"),
]


def copy_same_rows_baseline() -> tuple[float, int]:
    """Seconds PostgreSQL takes to COPY exactly the rows the import wrote into the same tables
    (with their indexes, constraints and foreign keys): the import's rows are dumped, deleted
    and loaded again with COPY in one transaction. Returns (seconds, rows)."""
    import tempfile

    import psycopg

    dumps = []
    total = 0
    url = f"{PG_BASE.replace('postgresql+psycopg', 'postgresql')}/{NAME}"
    with psycopg.connect(url) as conn, tempfile.TemporaryDirectory() as tmp:
        for table, where in IMPORTED_ROWS:
            path = Path(tmp) / f"{table}.copy"
            with (
                conn.cursor() as cur,
                cur.copy(f"COPY (SELECT * FROM {table} WHERE {where}) TO STDOUT") as copy,
                path.open("wb") as out,
            ):
                for block in copy:
                    out.write(block)
            total += conn.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0]
            dumps.append((table, where, path))
        conn.execute("ALTER TABLE custody_events DISABLE TRIGGER USER")  # append-only guard
        for table, where, _path in reversed(dumps):
            conn.execute(f"DELETE FROM {table} WHERE {where}")
        conn.execute("ALTER TABLE custody_events ENABLE TRIGGER USER")
        started = time.perf_counter()
        for table, _where, path in dumps:
            with conn.cursor() as cur, cur.copy(f"COPY {table} FROM STDIN") as copy, path.open("rb") as f:
                while chunk := f.read(1 << 20):
                    copy.write(chunk)
        conn.commit()
        took = time.perf_counter() - started
    return took, total


def run_import(url: str, path: Path) -> tuple[float, int, str]:
    env = os.environ | {"BIOBANK_DATABASE_URL": url, "BIOBANK_INSTANCE_PATH": str(DATA / "instance")}
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", RSS_WRAPPER, "import", str(path)], env=env, capture_output=True, text=True
    )
    took = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"import failed:\n{result.stderr[-3000:]}")
    peak = int(result.stderr.rsplit("PEAK_RSS_KB=", 1)[1].split()[0])
    return took, peak * 1024, result.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    from biobank.demo import MASTER_COLUMNS, write_master_csv

    DATA.mkdir(exist_ok=True)
    path = DATA / f"master-{args.rows}.csv"
    print(f"master import of {args.rows:,} rows")
    for backend in backends:
        url, boxes = fresh_database(backend, args.rows)
        if not path.exists():
            write_master_csv(path, rows=args.rows, boxes=boxes, prefix="BENCH")
        size = path.stat().st_size / 1e6
        took, peak, summary = run_import(url, path)
        rate = args.rows / took
        print(
            f"  {backend}: {took:.1f} s, {rate:,.0f} rows/s, peak RSS {peak / 2**20:.0f} MB "
            f"({size:.0f} MB file)"
        )
        print(f"    {summary}")
        if backend == "postgresql":
            same_s, same_rows = copy_same_rows_baseline()
            print(
                f"  PostgreSQL COPY of the rows the import wrote ({same_rows:,} rows in 7 "
                f"tables, with their indexes and keys): {same_s:.1f} s, "
                f"{args.rows / same_s:,.0f} file rows/s"
            )
            print(f"  import / COPY of the same rows: {same_s / took:.0%}  (target ≥ 25%)")
            copy_s = copy_baseline(path, MASTER_COLUMNS)
            copy_rate = args.rows / copy_s
            print(
                f"  PostgreSQL COPY of the file into one table of text columns: {copy_s:.1f} s, "
                f"{copy_rate:,.0f} rows/s; import / that: {rate / copy_rate:.1%}"
            )
        print(f"  peak RSS {peak / 2**20:.0f} MB  (target < 1024 MB)")


if __name__ == "__main__":
    main()
