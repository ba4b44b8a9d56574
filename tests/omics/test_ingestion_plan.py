"""VCF ingestion keeps its plan on SQLite whatever statistics the database holds.

Statistics gathered while ``variants`` held a handful of rows (the demo load gathers them)
once let SQLite put ``variants`` outside the chunk's rows: every chunk scanned the whole
table once per variant, and a 100,000-record file never finished ingesting."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from biobank.db import db
from omics import services
from tests.conftest import is_postgres
from tests.factories import Builder
from tests.omics.test_ingestion_threads import registered_cohort

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
