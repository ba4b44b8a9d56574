"""Participants and their identifying record."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

import sqlalchemy as sa

from biobank.auth import check_site
from biobank.db import db
from biobank.models import Case, CollectionEvent, Participant, ParticipantPHI, Specimen, Study
from biobank.models.users import Actor
from biobank.models.vocab import Sex
from biobank.services.common import apply_changes, ensure_unique, get_by, get_visible, visible
from biobank.services.storage import with_locations

# Pseudonyms avoid letters and digits that are easy to confuse when read aloud or typed.
_PSEUDONYM_ALPHABET = "ACDEFGHJKLMNPQRTUVWXY34679"


def new_pseudonym(prefix: str = "P") -> str:
    """A random pseudonymous code such as ``P-7KQ3MXA4``: it carries no information."""
    return f"{prefix}-" + "".join(secrets.choice(_PSEUDONYM_ALPHABET) for _ in range(8))


def age_at(birth_year: int | None, when: dt.date | None) -> int | None:
    """A participant's age in whole years at *when*, as far as the year of birth (all the
    biobank keeps outside the identifying record) tells it; ``None`` if it cannot."""
    if birth_year is None or when is None or when.year < birth_year:
        return None
    return when.year - birth_year


def list_participants(*, actor: Actor, study_id: int | None = None, site_id: int | None = None) -> sa.Select:
    """Participants at the actor's sites, optionally by study or site."""
    stmt = visible(sa.select(Participant), Participant, actor)
    if study_id is not None:
        stmt = stmt.where(Participant.study_id == study_id)
    if site_id is not None:
        stmt = stmt.where(Participant.site_id == site_id)
    return stmt


def register_participant(
    *,
    actor: Actor,
    study_id: int,
    site_id: int,
    phi: dict[str, Any] | None = None,
    code: str | None = None,
    sex: Sex = Sex.UNKNOWN,
    birth_year: int | None = None,
) -> Participant:
    """Register a participant in a study at a site, with an optional PHI record."""
    study = get_visible(Study, study_id, actor, field="study_id")
    check_site(actor, site_id)
    if code is None:
        code = new_pseudonym()
        while db.session.scalar(sa.select(Participant.id).where(Participant.code == code)):
            code = new_pseudonym()
    else:
        ensure_unique(Participant, Participant.code, code, field="code")
    participant = Participant(code=code, study=study, site_id=site_id, sex=sex, birth_year=birth_year)
    if phi:
        participant.phi = ParticipantPHI(**phi)
    db.session.add(participant)
    db.session.flush()
    return participant


def update_participant(participant: Participant, changes: dict[str, Any], *, actor: Actor) -> Participant:
    """Change a participant; PHI changes update or create the separate PHI record."""
    phi = changes.pop("phi", None)
    if "site_id" in changes:
        check_site(actor, changes["site_id"])
    apply_changes(participant, changes)
    if phi is not None:
        if participant.phi is None:
            participant.phi = ParticipantPHI(**phi)
        else:
            apply_changes(participant.phi, phi)
    db.session.flush()
    return participant


def participant_record(code: str, *, actor: Actor) -> dict[str, Any]:
    """A participant of the actor's sites with their cases, visits (in time order) and
    specimens (in registration order, with their places): what the participant page shows."""
    participant = get_by(Participant, Participant.code, code, actor)
    return {
        "participant": participant,
        "cases": db.session.scalars(
            sa.select(Case).where(Case.participant_id == participant.id).order_by(Case.id)
        ).all(),
        "visits": db.session.scalars(
            sa.select(CollectionEvent)
            .where(CollectionEvent.participant_id == participant.id)
            .order_by(CollectionEvent.collected_at)
        ).all(),
        "specimens": with_locations(
            list(
                db.session.scalars(
                    sa.select(Specimen).where(Specimen.participant_id == participant.id).order_by(Specimen.id)
                )
            )
        ),
    }
