"""Participants API. Researchers receive the pseudonymous view only."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from biobank.api.crud import Resource, register_crud
from biobank.auth import ALL_ROLES, STAFF
from biobank.models import Participant
from biobank.models.users import Actor
from biobank.schemas.participants import (
    ParticipantCreateSchema,
    ParticipantQueryArgsSchema,
    ParticipantUpdateSchema,
    ParticipantWithPHISchema,
)
from biobank.services import participants

blp = Blueprint(
    "participants", __name__, description="Pseudonymous participants; identifying data for staff only"
)


class PseudonymousView:
    """A participant without its identifying record: serialising it omits ``phi``."""

    def __init__(self, participant: Participant) -> None:
        self._participant = participant

    def __getattr__(self, name: str) -> Any:
        if name == "phi":
            raise AttributeError(name)
        return getattr(self._participant, name)


def dump_participant(actor: Actor, participant: Participant) -> Any:
    """The one place that decides whether PHI leaves the server."""
    return participant if actor.may_see_phi() else PseudonymousView(participant)


register_crud(
    Resource(
        blp=blp,
        model=Participant,
        noun="participant",
        schema=ParticipantWithPHISchema,
        create_schema=ParticipantCreateSchema,
        update_schema=ParticipantUpdateSchema,
        query_schema=ParticipantQueryArgsSchema,
        list_query=participants.list_participants,
        create=participants.register_participant,
        update=participants.update_participant,
        read_roles=ALL_ROLES,
        write_roles=STAFF,
        dump_for=dump_participant,
    )
)
