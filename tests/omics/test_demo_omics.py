"""The demo biobank comes with omics linked to its aliquots."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from biobank.demo import load_demo
from biobank.importfiles import sha256_of
from biobank.models import Specimen
from biobank.models.vocab import DiseaseGroup, MaterialType
from omics import services
from omics.models import FileStatus, OmicsFile, OmicsKind

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def test_demo_omics_are_ingested_and_tied_to_melanoma_aliquots(db_session, admin):
    counts = load_demo(seed=7, participants=120)
    assert counts["omics_files"] == 5
    files = {f.kind: f for f in db_session.scalars(sa.select(OmicsFile))}
    assert set(files) == set(OmicsKind)
    assert all(f.status is FileStatus.INGESTED for f in files.values())
    assert all(s.specimen_id for f in files.values() for s in f.samples)  # all linked
    exome = files[OmicsKind.EXOME]
    assert exome.reference_genome == "GRCh38" and exome.variant_count == 7
    carriers = services.carriers(actor=admin, gene="BRAF", protein_change="p.V600E").rows
    assert carriers
    for hit in carriers:
        assert hit["disease_group"] == DiseaseGroup.MELANOMA.value
        specimen = db_session.scalar(sa.select(Specimen).where(Specimen.barcode == hit["barcode"]))
        assert specimen.material_type is MaterialType.DNA
    rna = services.feature_values(files[OmicsKind.RNA_SEQ], "BRAF")
    assert len(rna["samples"]) == len(files[OmicsKind.RNA_SEQ].samples)
    qc = files[OmicsKind.RNA_SEQ].samples[0].qc
    assert qc["total_counts"] > 0 and 0 < qc["pct_counts_mt"] < 100


def test_demo_omics_files_are_written_again_byte_for_byte(db_session, tmp_path):
    """The generator behind the demo and behind fixtures/omics/make_demo_omics.py writes, for
    the demo's aliquots and seed, exactly the files the demo registered."""
    from biobank.db import transaction
    from omics.demo import demo_samples, write_demo_omics

    load_demo(seed=7, participants=120)
    registered = {f.filename: f.sha256 for f in db_session.scalars(sa.select(OmicsFile))}
    with transaction():
        samples = demo_samples()
    written = {
        path.name: sha256_of(path) for path, _kind, _pipeline in write_demo_omics(tmp_path, samples, seed=7)
    }
    assert written == registered and len(written) == 5


def test_shipped_demo_omics_fixtures_are_what_the_script_writes(tmp_path):
    shipped = FIXTURES / "omics" / "demo"
    subprocess.run(
        [sys.executable, str(FIXTURES / "omics" / "make_demo_omics.py"), str(tmp_path)],
        check=True,
        capture_output=True,
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in shipped.iterdir())

    def content(path):
        # bgzip and its index compress with whichever zlib pysam was built on: compare what
        # they hold, not how it was deflated.
        data = path.read_bytes()
        return gzip.decompress(data) if path.suffix in (".gz", ".tbi") else data

    for path in shipped.iterdir():
        assert content(tmp_path / path.name) == content(path), path.name
