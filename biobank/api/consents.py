"""Consent responses API."""

from __future__ import annotations

from flask_smorest import Blueprint

from biobank.api.crud import Resource, register_crud
from biobank.auth import ALL_ROLES, STAFF
from biobank.models import ConsentResponse
from biobank.schemas.consents import (
    ConsentCreateSchema,
    ConsentQueryArgsSchema,
    ConsentSchema,
    ConsentUpdateSchema,
)
from biobank.services import consents

blp = Blueprint("consents", __name__, description="Participants' answers to consent tiers")

register_crud(
    Resource(
        blp=blp,
        model=ConsentResponse,
        noun="consent",
        schema=ConsentSchema,
        create_schema=ConsentCreateSchema,
        update_schema=ConsentUpdateSchema,
        query_schema=ConsentQueryArgsSchema,
        list_query=consents.list_consents,
        create=consents.record_consent,
        update=consents.update_consent,
        read_roles=ALL_ROLES,
        write_roles=STAFF,
    )
)
