"""Accessioning through the service: all or nothing, each refusal naming the tube at fault,
consent recorded only for tiers not answered before, tubes received through the scan path."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa

from biobank.errors import Conflict, InvalidInput
from biobank.models import ConsentResponse, CustodyEvent, Participant, Specimen
from biobank.models.vocab import (
    CollectionProcedure,
    ConsentDecision,
    CustodyEventType,
    MaterialType,
    QuantityUnit,
    SpecimenStatus,
)
from biobank.services.accessions import Tube, accession

AT = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)


def _visit(actor, code, tubes, **kw):
    return accession(
        actor=actor,
        participant_code=code,
        new_participant=kw.pop("new", {}),
        consents=kw.pop("consents", {}),
        procedure=CollectionProcedure.VENIPUNCTURE,
        collected_at=AT,
        collector="Dr. Lin",
        tubes=tubes,
        **kw,
    )


def _count(db_session, model):
    return db_session.scalar(sa.select(sa.func.count()).select_from(model))


def test_a_known_participant_gets_a_visit_and_received_tubes(db_session, make, site, technician):
    person = make.participant(site=site)
    done = _visit(
        technician,
        person.code,
        [
            Tube("ACS-0001", MaterialType.WHOLE_BLOOD, Decimal("4"), QuantityUnit.ML, "PED"),
            Tube(None, MaterialType.URINE, Decimal("10"), QuantityUnit.ML, None),
        ],
    )
    assert not done.registered and done.participant.id == person.id
    blood, urine = done.specimens
    assert blood.barcode == "ACS-0001" and urine.barcode.startswith(site.code)
    assert (blood.sprec_code, urine.sprec_code) == ("BLD-PED-X-X-X-X-X", "URN-XXX-X-X-X-X-X")
    assert {s.status for s in done.specimens} == {SpecimenStatus.RECEIVED}
    events = db_session.scalars(
        sa.select(CustodyEvent.event_type)
        .where(CustodyEvent.specimen_id == blood.id)
        .order_by(CustodyEvent.seq)
    ).all()
    assert events == [CustodyEventType.COLLECTED, CustodyEventType.RECEIVED]
    assert done.visit.collected_at == AT and done.visit.collector == "Dr. Lin"


def test_a_new_participant_and_consent_only_for_open_tiers(db_session, make, site, technician):
    study = make.study()
    tiers = study.consent_tiers
    done = _visit(
        technician,
        None,
        [Tube("ACS-0002", MaterialType.SERUM)],
        new={
            "study_id": study.id,
            "site_id": site.id,
            "birth_year": 1980,
            "phi": {"medical_record_number": "MRN-1"},
        },
        consents={tiers[0].id: ConsentDecision.YES, tiers[1].id: ConsentDecision.NO},
    )
    assert done.registered and done.participant.code.startswith("P-")
    assert done.participant.phi.medical_record_number == "MRN-1"
    assert sorted(c.decision.value for c in done.participant.consents) == ["no", "yes"]
    again = _visit(
        technician,
        done.participant.code,
        [Tube("ACS-0003", MaterialType.SERUM)],
        consents={tiers[0].id: ConsentDecision.NO, tiers[2].id: ConsentDecision.YES},
    )
    answers = {
        c.tier_id: c.decision
        for c in db_session.scalars(
            sa.select(ConsentResponse).where(ConsentResponse.participant_id == again.participant.id)
        )
    }
    assert answers[tiers[0].id] is ConsentDecision.YES  # answered before: kept
    assert answers[tiers[2].id] is ConsentDecision.YES


@pytest.mark.parametrize(
    ("tubes", "error", "field", "words"),
    [
        ([], InvalidInput, "tubes", "at least one tube"),
        (
            [Tube("ACS-X", MaterialType.SERUM), Tube("ACS-X", MaterialType.SERUM)],
            InvalidInput,
            "tubes[2].barcode",
            "ACS-X is tube 1 too",
        ),
        (
            [Tube("ACS-Y", MaterialType.SERUM, Decimal("-1"), QuantityUnit.ML)],
            InvalidInput,
            "tubes[1].quantity",
            "more than 0",
        ),
        (
            [Tube("ACS-Z", MaterialType.SERUM), Tube("TAKEN-1", MaterialType.SERUM)],
            Conflict,
            "tubes[2].barcode",
            "tube 2:",
        ),
    ],
)
def test_a_refused_visit_writes_nothing_and_names_the_tube(
    db_session, make, site, technician, tubes, error, field, words
):
    person = make.participant(site=site)
    make.specimen(participant=person, barcode="TAKEN-1")
    before = (_count(db_session, Specimen), _count(db_session, Participant))
    savepoint = db_session.begin_nested()
    with pytest.raises(error) as refused:
        _visit(technician, person.code, tubes)
    savepoint.rollback()
    assert refused.value.field == field and words in refused.value.message
    assert (_count(db_session, Specimen), _count(db_session, Participant)) == before


def test_another_sites_participant_is_not_found_by_code(db_session, make, other_site, technician):
    stranger = make.participant(site=other_site)
    with pytest.raises(Conflict):  # taken as a new participant whose code exists: refused
        _visit(
            technician,
            stranger.code,
            [Tube("ACS-0009", MaterialType.SERUM)],
            new={"study_id": stranger.study_id, "site_id": technician.sites[0].id},
        )
