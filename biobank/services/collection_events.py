"""Collection events (visits)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from biobank.auth import check_site
from biobank.db import db
from biobank.errors import InvalidInput
from biobank.models import Case, CollectionEvent, Lesion, Participant
from biobank.models.users import Actor
from biobank.models.vocab import CollectionProcedure
from biobank.services.common import apply_changes, get_visible, visible


def list_collection_events(*, actor: Actor, participant_id: int | None = None) -> sa.Select:
    stmt = visible(sa.select(CollectionEvent), CollectionEvent, actor)
    if participant_id is not None:
        stmt = stmt.where(CollectionEvent.participant_id == participant_id)
    return stmt


def _check_links(participant: Participant, case_id: int | None, lesion_id: int | None) -> None:
    if case_id is not None:
        case = db.session.get(Case, case_id)
        if case is None or case.participant_id != participant.id:
            raise InvalidInput(
                f"case {case_id} is not a case of participant {participant.code}", field="case_id"
            )
    if lesion_id is not None:
        lesion = db.session.get(Lesion, lesion_id)
        if lesion is None or lesion.case.participant_id != participant.id:
            raise InvalidInput(
                f"lesion {lesion_id} is not a lesion of participant {participant.code}",
                field="lesion_id",
            )
        if case_id is not None and lesion.case_id != case_id:
            raise InvalidInput(f"lesion {lesion_id} belongs to another case", field="lesion_id")


def record_collection(
    *,
    actor: Actor,
    participant_id: int,
    site_id: int,
    collected_at: dt.datetime,
    procedure: CollectionProcedure,
    case_id: int | None = None,
    lesion_id: int | None = None,
    collector: str | None = None,
    notes: str | None = None,
) -> CollectionEvent:
    """Record a visit at which specimens were collected."""
    participant = get_visible(Participant, participant_id, actor, field="participant_id")
    check_site(actor, site_id)
    _check_links(participant, case_id, lesion_id)
    event = CollectionEvent(
        participant=participant,
        site_id=site_id,
        collected_at=collected_at,
        procedure=procedure,
        case_id=case_id,
        lesion_id=lesion_id,
        collector=collector,
        notes=notes,
    )
    db.session.add(event)
    db.session.flush()
    return event


def update_collection_event(
    event: CollectionEvent, changes: dict[str, Any], *, actor: Actor
) -> CollectionEvent:
    _check_links(
        event.participant, changes.get("case_id", event.case_id), changes.get("lesion_id", event.lesion_id)
    )
    if "site_id" in changes:
        check_site(actor, changes["site_id"])
    apply_changes(event, changes)
    db.session.flush()
    return event
