"""Accessioning a collection: a participant found or registered, their consent per scope, a
visit and its primary tubes (scanned pre-barcoded ones, or barcodes issued), received at
once. One call, so a desk form and a script record the same things the same way."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from biobank.db import db, utcnow
from biobank.errors import BiobankError, InvalidInput
from biobank.models import CollectionEvent, ConsentTier, Participant, Specimen
from biobank.models.scans import ScanAction
from biobank.models.users import Actor
from biobank.models.vocab import CollectionProcedure, ConsentDecision, MaterialType, QuantityUnit
from biobank.services.collection_events import record_collection
from biobank.services.common import get_by, visible
from biobank.services.consents import record_consent
from biobank.services.participants import register_participant
from biobank.services.scans import apply_scan, request_hash
from biobank.services.specimens import register_specimen
from biobank.sprec import initial_code

#: most tubes one visit's form takes
MOST_TUBES = 48


@dataclass(frozen=True)
class Tube:
    """One primary tube of a visit: its scanned barcode (``None``: issue one), material,
    quantity and unit, and SPREC primary container."""

    barcode: str | None
    material: MaterialType
    quantity: Decimal | None = None
    unit: QuantityUnit | None = None
    container: str | None = None


@dataclass(frozen=True)
class Accession:
    participant: Participant
    visit: CollectionEvent
    specimens: list[Specimen]
    registered: bool


def find_participant(code: str, *, actor: Actor) -> Participant | None:
    """The participant with this code at the actor's sites, if any."""
    return db.session.scalar(
        visible(sa.select(Participant).where(Participant.code == code.strip()), Participant, actor)
    )


def open_tiers(participant: Participant | None, study_id: int) -> list[ConsentTier]:
    """The consent tiers of a study the participant has not answered yet, in order."""
    answered = {c.tier_id for c in participant.consents} if participant else set()
    return [
        t
        for t in db.session.scalars(
            sa.select(ConsentTier)
            .where(ConsentTier.study_id == study_id)
            .order_by(ConsentTier.position, ConsentTier.id)
        )
        if t.id not in answered
    ]


def accession(
    *,
    actor: Actor,
    participant_code: str | None,
    new_participant: dict[str, Any],
    consents: dict[int, ConsentDecision],
    procedure: CollectionProcedure,
    collected_at: dt.datetime,
    collector: str | None,
    tubes: list[Tube],
    received: bool = True,
) -> Accession:
    """Record a collection. *participant_code* names a participant of the actor's sites; a
    code nobody has (or none) registers one from *new_participant* (``study_id``,
    ``site_id``, ``sex``, ``birth_year``, ``phi`` for roles that may see identifying data).
    *consents* answers the study's tiers not answered before; the tubes are registered in
    order, received now when *received*. Flushes; refuses with the field and row at fault."""
    if not tubes:
        raise InvalidInput("scan or add at least one tube", field="tubes")
    if len(tubes) > MOST_TUBES:
        raise InvalidInput(f"at most {MOST_TUBES} tubes in one visit", field="tubes")
    seen: dict[str, int] = {}
    for n, tube in enumerate(tubes, start=1):
        if tube.barcode:
            if tube.barcode in seen:
                raise InvalidInput(
                    f"tube {n}: {tube.barcode} is tube {seen[tube.barcode]} too", field=f"tubes[{n}].barcode"
                )
            seen[tube.barcode] = n
        if tube.quantity is not None and tube.quantity <= 0:
            raise InvalidInput(f"tube {n}: the quantity must be more than 0", field=f"tubes[{n}].quantity")
    if collected_at > utcnow() + dt.timedelta(minutes=5):
        raise InvalidInput("the collection time is in the future", field="collected_at")

    participant = find_participant(participant_code, actor=actor) if participant_code else None
    registered = participant is None
    if participant is None:
        fields = dict(new_participant)
        if not actor.may_see_phi():
            fields.pop("phi", None)
        participant = register_participant(actor=actor, code=participant_code or None, **fields)
    tiers = {t.id: t for t in open_tiers(participant, participant.study_id)}
    for tier_id, decision in consents.items():
        if tier_id in tiers:
            record_consent(
                actor=actor,
                participant_id=participant.id,
                tier_id=tier_id,
                decision=decision,
                signed_on=collected_at.date(),
            )
    visit = record_collection(
        actor=actor,
        participant_id=participant.id,
        site_id=participant.site_id,
        collected_at=collected_at,
        procedure=procedure,
        collector=collector or None,
    )
    specimens = []
    for n, tube in enumerate(tubes, start=1):
        try:
            specimen = register_specimen(
                actor=actor,
                participant_id=participant.id,
                collection_event_id=visit.id,
                barcode=tube.barcode or None,
                material_type=tube.material,
                quantity=tube.quantity,
                unit=tube.unit if tube.quantity is not None else None,
                sprec_code=initial_code(
                    material=tube.material.value, container=tube.container, procedure=procedure.value
                ),
            )
        except BiobankError as error:
            raise type(error)(
                f"tube {n}: {error.message}", field=f"tubes[{n}].{error.field or 'barcode'}", **error.extra
            ) from None
        specimens.append(specimen)
    if received:
        now = max(utcnow(), collected_at)
        for specimen in specimens:
            scan = {"barcode": specimen.barcode, "action": "receive", "at": now.isoformat()}
            apply_scan(
                actor=actor,
                fingerprint=request_hash(scan),
                barcode=specimen.barcode,
                action=ScanAction.RECEIVE,
                client_event_id=uuid.uuid4().hex,
                scanned_at=now,
                condition="acceptable",
            )
    return Accession(participant, visit, specimens, registered)


def visit_tubes(visit_id: int, *, actor: Actor) -> tuple[CollectionEvent, list[Specimen]]:
    """A visit of the actor's sites and its primary tubes, in registration order."""
    visit = get_by(CollectionEvent, CollectionEvent.id, visit_id, actor)
    tubes = db.session.scalars(
        sa.select(Specimen)
        .where(Specimen.collection_event_id == visit.id, Specimen.parent_id.is_(None))
        .order_by(Specimen.id)
    ).all()
    return visit, list(tubes)
