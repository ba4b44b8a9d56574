"""What VCF ingestion changes in the process while its writer thread runs, and that it puts
everything back: the interpreter's switch interval (prompt handoffs between the reading
thread and the writer) and, on SQLite, the connection's page cache."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from biobank.db import db
from omics import services
from omics.formats import FormatError
from omics.models import OmicsKind
from tests.conftest import is_postgres
from tests.factories import Builder
from tests.omics.test_vcf import COHORT


def registered_cohort(make: Builder, code: str, path: Path = COHORT) -> services.OmicsFile:
    """*path* (the melanoma cohort VCF) registered at a new site *code*, its two tumour
    columns linked to new aliquots."""
    site = make.site(code=code)
    admin = make.user(f"threads-{code}", role="admin", sites=[site])
    person = make.participant(site=site)
    record, _ = services.register_file(
        actor=admin,
        path=path,
        filename=path.name,
        kind=OmicsKind.EXOME,
        sample_map={name: make.specimen(participant=person).barcode for name in ("MEL-A1", "MEL-A2")},
        lenient=True,
    )
    return record


def test_the_writer_runs_with_prompt_handoffs_and_ingestion_puts_the_settings_back(app, monkeypatch):
    seen: list[tuple[str, float]] = []
    store = "_store_postgresql" if is_postgres() else "_store_sqlite"
    original = getattr(services._ChunkWriter, store)

    def watched(self, *payload):
        seen.append((threading.current_thread().name, sys.getswitchinterval()))
        return original(self, *payload)

    monkeypatch.setattr(services._ChunkWriter, store, watched)
    before = sys.getswitchinterval()
    with app.app_context():
        record = registered_cohort(Builder(db.session), "THR1")
        raw = db.session.connection().connection.driver_connection
        cache = None if is_postgres() else raw.execute("PRAGMA cache_size").fetchone()[0]
        services.ingest_file(record)
        assert record.call_count > 0
        if cache is not None:
            assert raw.execute("PRAGMA cache_size").fetchone()[0] == cache
        db.session.rollback()
    assert seen, "no chunk was stored"
    assert all(name.startswith("vcf-writer") for name, _ in seen)
    prompt = pytest.approx(min(before, services._PROMPT_HANDOFFS.seconds))
    assert all(interval == prompt for _, interval in seen)
    assert sys.getswitchinterval() == before


def test_a_failing_ingestion_puts_the_settings_back_too(app, tmp_path):
    broken = tmp_path / "broken.vcf"
    lines = COHORT.read_text().splitlines()
    header = [line for line in lines if line.startswith("#")]
    records = [line for line in lines if not line.startswith("#")]
    # the last record repeats the first one: its calls are refused as duplicates
    broken.write_text("\n".join([*header, *records, records[0]]) + "\n")
    before = sys.getswitchinterval()
    with app.app_context():
        record = registered_cohort(Builder(db.session), "THR2", broken)
        raw = db.session.connection().connection.driver_connection
        cache = None if is_postgres() else raw.execute("PRAGMA cache_size").fetchone()[0]
        with pytest.raises(FormatError, match="duplicate records"):
            services.ingest_file(record)
        if cache is not None:
            assert raw.execute("PRAGMA cache_size").fetchone()[0] == cache
        db.session.rollback()
    assert sys.getswitchinterval() == before


def test_nested_blocks_restore_the_interval_only_when_the_last_leaves():
    before = sys.getswitchinterval()
    handoffs = services._SwitchInterval(before / 10)
    short = pytest.approx(before / 10)
    with handoffs:
        assert sys.getswitchinterval() == short
        with handoffs:
            assert sys.getswitchinterval() == short
        assert sys.getswitchinterval() == short
    assert sys.getswitchinterval() == before
    # never longer than the process already had
    with services._SwitchInterval(before * 10):
        assert sys.getswitchinterval() == pytest.approx(before)
