"""VCF ingestion keeps its plan on SQLite whatever statistics the database holds.

Statistics gathered while ``variants`` held a handful of rows (the demo load gathers them)
once let SQLite put ``variants`` outside the chunk's rows: every chunk scanned the whole
table once per variant, and a 100,000-record file never finished ingesting."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from biobank.db import db
from omics import services
from omics.formats import open_reader
from omics.formats.genes import canonical_chrom
from omics.models import Variant, VariantCall
from tests.conftest import is_postgres
from tests.factories import Builder
from tests.omics.test_ingestion_threads import registered_cohort
from tests.omics.test_vcf import COHORT

pytestmark = pytest.mark.skipif(is_postgres(), reason="SQLite's planner; PostgreSQL stages chunks in tables")


def _plan(sql: str) -> list[str]:
    connection = db.session.connection()
    return [row[-1] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, ("[]", "", 0, "[]"))]


def _outer(plan: list[str]) -> str:
    """Which of the chunk's rows (``s``) and the variants table (``v``) the plan reads first."""
    return next(
        step.split()[1]
        for step in plan
        if step.split()[:2] in (["SCAN", "s"], ["SEARCH", "v"], ["SCAN", "v"])
    )


def test_calls_find_their_variants_by_key_after_statistics_of_a_small_table(app):
    with app.app_context():
        record = registered_cohort(Builder(db.session), "PLAN")
        services.ingest_file(record)
        assert record.variant_count
        # the statistics of a small table, gathered inside this test's transaction
        db.session.execute(sa.text("ANALYZE"))
        try:
            plan = _plan(services.SQLITE_CALLS_INSERT)
            # the chunk's rows outside, each finding its variant through the whole key
            assert _outer(plan) == "s", plan
            assert any(step.startswith("SEARCH v USING") and "chrom=?" in step for step in plan), plan
            # the same statement left to the planner puts the table outside: the test can tell
            free = _plan(services.SQLITE_CALLS_INSERT.replace("CROSS JOIN variants", "JOIN variants"))
            assert _outer(free) == "v", free
        finally:
            db.session.rollback()


def _cohort_file(path: Path, records: list[list[str]]) -> Path:
    header = [line for line in COHORT.read_text().splitlines() if line.startswith("#")]
    path.write_text("\n".join([*header, *("\t".join(r) for r in records)]) + "\n")
    return path


def _stored(record: services.OmicsFile) -> list[tuple]:
    return db.session.execute(
        sa.select(
            Variant.chrom, Variant.pos, Variant.ref, Variant.alt, VariantCall.specimen_id, VariantCall.depth
        )
        .join(Variant, Variant.id == VariantCall.variant_id)
        .where(VariantCall.file_id == record.id)
        .order_by(Variant.pos, Variant.alt, VariantCall.specimen_id)
    ).all()


def _expected(record: services.OmicsFile, path: Path) -> list[tuple]:
    linked = {s.sample_name: s.specimen_id for s in record.samples if s.specimen_id}
    with open_reader(path) as reader:
        rows = [
            (canonical_chrom(v.chrom), v.pos, v.ref, v.alt, linked[c.sample], c.depth)
            for v in reader.carriers()
            for c in v.calls
            if c.sample in linked
        ]
    return sorted(rows, key=lambda row: (row[1], row[3], row[4]))


def test_calls_of_new_variants_take_their_ids_by_number_and_of_known_ones_by_key(
    db_session, make, monkeypatch, tmp_path
):
    # chunks of two records. The first file's variants are all new: each chunk's calls
    # take the ids its variants were given, in order. The second file follows each of
    # those records with a new one carried by the same samples, so each chunk holds a known
    # variant: each call's variant is found by its key. Both store what their file says.
    monkeypatch.setattr(services, "BATCH", 2)
    cohort = [line.split("\t") for line in COHORT.read_text().splitlines() if not line.startswith("#")]
    shift = 10_001  # variants no other test's file holds
    moved = [[r[0], str(int(r[1]) + shift), *r[2:]] for r in cohort]
    first = _cohort_file(tmp_path / "first.vcf", moved)
    mixed = _cohort_file(
        tmp_path / "mixed.vcf",
        [row for r in moved for row in (r, [r[0], str(int(r[1]) + 1), *r[2:]])],
    )
    statements: list[str] = []
    raw = db_session.connection().connection.driver_connection
    raw.set_trace_callback(statements.append)
    try:
        record = registered_cohort(make, "NUM1", first)
        services.ingest_file(record)
        by_number = [s for s in statements if s.startswith("INSERT INTO variant_calls")]
        statements.clear()
        other = registered_cohort(make, "NUM2", mixed)
        services.ingest_file(other)
        by_key = [s for s in statements if s.startswith("WITH ids AS")]
        by_number_again = [s for s in statements if s.startswith("INSERT INTO variant_calls")]
    finally:
        raw.set_trace_callback(None)
    assert 0 < record.call_count < other.call_count
    assert _stored(record) == _expected(record, first)
    assert _stored(other) == _expected(other, mixed)
    assert len(by_number) >= 2 and not any("ids" in statement for statement in by_number)
    assert len(by_key) >= 2 and not by_number_again
