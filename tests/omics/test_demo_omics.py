"""The demo biobank comes with omics linked to its aliquots."""

from __future__ import annotations

import sqlalchemy as sa

from biobank.demo import load_demo
from biobank.models import Specimen
from biobank.models.vocab import DiseaseGroup, MaterialType
from omics import services
from omics.models import FileStatus, OmicsFile, OmicsKind


def test_demo_omics_are_ingested_and_tied_to_melanoma_aliquots(db_session, admin):
    counts = load_demo(seed=7, participants=120)
    assert counts["omics_files"] == 5
    files = {f.kind: f for f in db_session.scalars(sa.select(OmicsFile))}
    assert set(files) == set(OmicsKind)
    assert all(f.status is FileStatus.INGESTED for f in files.values())
    assert all(s.specimen_id for f in files.values() for s in f.samples)  # all linked
    exome = files[OmicsKind.EXOME]
    assert exome.reference_genome == "GRCh38" and exome.variant_count == 7
    carriers = services.carriers(actor=admin, gene="BRAF", protein_change="p.V600E")
    assert carriers
    for hit in carriers:
        assert hit["disease_group"] == DiseaseGroup.MELANOMA.value
        specimen = db_session.scalar(sa.select(Specimen).where(
            Specimen.barcode == hit["barcode"]))
        assert specimen.material_type is MaterialType.DNA
    rna = services.feature_values(files[OmicsKind.RNA_SEQ], "BRAF")
    assert len(rna["samples"]) == len(files[OmicsKind.RNA_SEQ].samples)
    qc = files[OmicsKind.RNA_SEQ].samples[0].qc
    assert qc["total_counts"] > 0 and 0 < qc["pct_counts_mt"] < 100
