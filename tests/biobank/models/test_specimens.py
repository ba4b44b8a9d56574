"""A specimen's case is kept in step with its lesion and visit, however it was written."""

from __future__ import annotations

import sqlalchemy as sa

from biobank.models import CollectionEvent, Lesion, Specimen


def stale_case_ids(session) -> list[str]:
    """Barcodes whose stored case differs from their lesion's, else their visit's."""
    expected = sa.func.coalesce(
        sa.select(Lesion.case_id).where(Lesion.id == Specimen.lesion_id).scalar_subquery(),
        sa.select(CollectionEvent.case_id)
        .where(CollectionEvent.id == Specimen.collection_event_id)
        .scalar_subquery(),
    )
    return list(
        session.scalars(
            sa.select(Specimen.barcode).where(
                sa.or_(
                    Specimen.case_id != expected,
                    sa.and_(Specimen.case_id.is_(None), expected.is_not(None)),
                    sa.and_(Specimen.case_id.is_not(None), expected.is_(None)),
                )
            )
        )
    )


def test_case_follows_lesion_visit_and_their_changes(make, site, db_session):
    person = make.participant(site=site)
    first, second = make.case(participant=person), make.case(participant=person)
    lesion = make.lesion(case=first)
    visit = make.visit(participant=person, case=second)
    blood = make.specimen(participant=person, collection_event=visit)
    tissue = make.specimen(participant=person, collection_event=visit, lesion=lesion)
    aliquot = make.specimen(participant=person, parent=tissue, collection_event=visit, lesion=lesion)
    assert (blood.case_id, tissue.case_id, aliquot.case_id) == (second.id, first.id, first.id)

    visit.case = first  # the visit was recorded against the wrong case
    db_session.commit()
    db_session.expire_all()
    assert blood.case_id == first.id
    lesion.case = second
    db_session.commit()
    db_session.expire_all()
    assert (tissue.case_id, aliquot.case_id) == (second.id, second.id)
    tissue.lesion = None  # now only its visit says which case
    db_session.commit()
    db_session.expire_all()
    assert tissue.case_id == first.id
    assert stale_case_ids(db_session) == []
