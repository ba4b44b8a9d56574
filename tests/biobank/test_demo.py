"""The demo biobank: realistic, deterministic, and internally consistent."""

from __future__ import annotations

import sqlalchemy as sa

from biobank import create_app
from biobank.db import db
from biobank.demo import load_demo
from biobank.models import Case, CustodyEvent, Participant, Site, Specimen, StorageContainer
from biobank.models.vocab import DiseaseGroup, Lineage, MaterialType
from biobank.services.custody import event_hash
from tests.biobank.models.test_specimens import stale_case_ids


def test_demo_biobank_is_realistic_and_consistent(db_session):
    counts = load_demo(seed=7, participants=300)
    assert counts["participants"] == 300
    assert stale_case_ids(db_session) == []
    assert 2500 <= counts["specimens"] <= 4500

    groups = dict(
        db_session.execute(sa.select(Case.disease_group, sa.func.count()).group_by(Case.disease_group)).all()
    )
    assert set(groups) == set(DiseaseGroup)
    assert groups[DiseaseGroup.MELANOMA] >= 60

    materials = set(db_session.scalars(sa.select(Specimen.material_type).distinct()))
    assert {
        MaterialType.TISSUE_FROZEN,
        MaterialType.WHOLE_BLOOD,
        MaterialType.URINE,
        MaterialType.FECES,
        MaterialType.PLASMA,
        MaterialType.SERUM,
        MaterialType.BUFFY_COAT,
        MaterialType.DNA,
        MaterialType.RNA,
    } <= materials
    assert db_session.scalar(sa.select(sa.func.count()).where(Specimen.lineage == Lineage.ALIQUOT)) > 300

    sites_with_boxes = db_session.scalars(
        sa.select(Site.code).join(StorageContainer, StorageContainer.site_id == Site.id).distinct()
    ).all()
    assert sorted(sites_with_boxes) == ["CTR", "NRT"]

    # Children belong to their parent's participant.
    parent = sa.orm.aliased(Specimen)
    mismatched = db_session.scalar(
        sa.select(sa.func.count())
        .select_from(Specimen)
        .join(parent, Specimen.parent_id == parent.id)
        .where(Specimen.participant_id != parent.participant_id)
    )
    assert mismatched == 0

    # Every custody chain links and hashes correctly, and specimens point at their head.
    specimens = {s.id: s for s in db_session.scalars(sa.select(Specimen))}
    prev: dict[int, str | None] = {}
    for event in db_session.scalars(
        sa.select(CustodyEvent).order_by(CustodyEvent.specimen_id, CustodyEvent.seq)
    ):
        specimen = specimens[event.specimen_id]
        assert event.prev_hash == prev.get(event.specimen_id)
        assert event.hash == event_hash(event, barcode=specimen.barcode)
        prev[event.specimen_id] = event.hash
    assert all(s.custody_head == prev[s.id] for s in specimens.values())


def _barcodes(tmp_path, name):
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / name}"})
    with app.app_context():
        from biobank import migrate

        migrate.upgrade()
        load_demo(seed=42, participants=15)
        rows = db.session.execute(
            sa.select(Participant.code, Specimen.barcode, Specimen.quantity)
            .join(Participant)
            .order_by(Specimen.id)
        ).all()
        db.engine.dispose()
    return rows


def test_demo_is_deterministic_for_a_seed(tmp_path):
    assert _barcodes(tmp_path, "a.db") == _barcodes(tmp_path, "b.db")
