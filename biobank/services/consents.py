"""Consent responses: what each participant agreed to, and withdrawals."""

from __future__ import annotations

import datetime as dt
import functools
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from biobank.db import db, utcnow
from biobank.errors import Conflict, InvalidInput, InvalidState
from biobank.models import ConsentResponse, ConsentTier, Participant
from biobank.models.users import Actor
from biobank.models.vocab import ConsentDecision, ConsentScope
from biobank.services.common import get_visible, visible


def list_consents(*, actor: Actor, participant_id: int | None = None) -> sa.Select:
    stmt = visible(sa.select(ConsentResponse), ConsentResponse, actor)
    if participant_id is not None:
        stmt = stmt.where(ConsentResponse.participant_id == participant_id)
    return stmt


def record_consent(
    *, actor: Actor, participant_id: int, tier_id: int, decision: ConsentDecision, signed_on: dt.date
) -> ConsentResponse:
    """Record a participant's answer to one consent tier of their study."""
    participant = get_visible(Participant, participant_id, actor, field="participant_id")
    tier = db.session.get(ConsentTier, tier_id)
    if tier is None:
        raise InvalidInput(f"no consent tier with id {tier_id}", field="tier_id")
    if tier.study_id != participant.study_id:
        raise InvalidInput(
            f"tier {tier.code} belongs to another study than participant {participant.code}",
            field="tier_id",
        )
    if any(c.tier_id == tier_id for c in participant.consents):
        raise Conflict("this participant already answered this tier; update it instead", field="tier_id")
    response = ConsentResponse(participant=participant, tier=tier, decision=decision, signed_on=signed_on)
    db.session.add(response)
    db.session.flush()
    return response


def update_consent(response: ConsentResponse, changes: dict[str, Any], *, actor: Actor) -> ConsentResponse:
    """Change an answer or withdraw it. A withdrawal is final: it cannot be undone."""
    if response.withdrawn_at is not None:
        raise InvalidState("consent was withdrawn; record a new consent form instead")
    if changes.pop("withdraw", False):
        changes["withdrawn_at"] = changes.get("withdrawn_at") or utcnow()
    for key, value in changes.items():
        setattr(response, key, value)
    db.session.flush()
    return response


def granted_scopes(participant: Participant, *, at: dt.datetime | None = None) -> set[ConsentScope]:
    """Scopes the participant has consented to and not withdrawn."""
    return {c.tier.scope for c in participant.consents if c.is_granted}


def granted_scopes_by_participant(participant_ids: Iterable[int]) -> dict[int, set[ConsentScope]]:
    """``granted_scopes`` of many participants in one query (those with none are absent)."""
    rows = db.session.execute(
        sa.select(ConsentResponse.participant_id, ConsentTier.scope)
        .join(ConsentTier, ConsentTier.id == ConsentResponse.tier_id)
        .where(
            ConsentResponse.participant_id.in_(set(participant_ids)),
            ConsentResponse.decision == ConsentDecision.YES,
            ConsentResponse.withdrawn_at.is_(None),
        )
    )
    scopes: dict[int, set[ConsentScope]] = defaultdict(set)
    for participant, scope in rows:
        scopes[participant].add(scope)
    return dict(scopes)


def has_withdrawn(participant: Participant) -> bool:
    """Whether the participant withdrew any consent (asked by a query unless the consents
    are already loaded: the scan path needs the answer, not the records)."""
    if "consents" not in sa.inspect(participant).unloaded:
        return any(c.withdrawn_at is not None for c in participant.consents)
    return bool(
        db.session.connection().execute(_withdrawn_statement(), {"participant": participant.id}).scalar()
    )


@functools.cache
def _withdrawn_statement() -> sa.Select:
    """Whether a participant withdrew any consent (built once: every scan asks)."""
    return sa.select(withdrawn(sa.bindparam("participant")))


def withdrawn(participant_id: Any) -> sa.Exists:
    """Whether the participant *participant_id* (a column or a parameter) withdrew any
    consent, as a clause."""
    return sa.exists().where(
        ConsentResponse.participant_id == participant_id, ConsentResponse.withdrawn_at.is_not(None)
    )
