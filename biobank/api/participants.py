"""Participants API. Researchers receive the pseudonymous view only."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from biobank.api.crud import Resource, register_crud
from biobank.auth import ALL_ROLES, STAFF
from biobank.models import Participant, User
from biobank.schemas.participants import (
    ParticipantCreateSchema,
    ParticipantQueryArgsSchema,
    ParticipantSchema,
    ParticipantUpdateSchema,
    ParticipantWithPHISchema,
)
from biobank.services import participants

blp = Blueprint("participants", __name__,
                description="Pseudonymous participants; identifying data for staff only")

_public = ParticipantSchema()
_with_phi = ParticipantWithPHISchema()


def dump_participant(actor: User, participant: Participant) -> dict[str, Any]:
    """The one place that decides whether PHI leaves the server."""
    return (_with_phi if actor.may_see_phi() else _public).dump(participant)


register_crud(Resource(
    blp=blp, model=Participant, noun="participant", schema=ParticipantWithPHISchema,
    create_schema=ParticipantCreateSchema, update_schema=ParticipantUpdateSchema,
    query_schema=ParticipantQueryArgsSchema, list_query=participants.list_participants,
    create=participants.register_participant, update=participants.update_participant,
    read_roles=ALL_ROLES, write_roles=STAFF, dump_for=dump_participant,
))
