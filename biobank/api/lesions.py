"""Lesions API."""

from __future__ import annotations

from flask_smorest import Blueprint

from biobank.api.crud import Resource, register_crud
from biobank.auth import ALL_ROLES, STAFF
from biobank.models import Lesion
from biobank.schemas.cases import (
    LesionCreateSchema,
    LesionQueryArgsSchema,
    LesionSchema,
    LesionUpdateSchema,
)
from biobank.services import cases

blp = Blueprint("lesions", __name__, description="Skin lesions of a case")

register_crud(
    Resource(
        blp=blp,
        model=Lesion,
        noun="lesion",
        schema=LesionSchema,
        create_schema=LesionCreateSchema,
        update_schema=LesionUpdateSchema,
        query_schema=LesionQueryArgsSchema,
        list_query=cases.list_lesions,
        create=cases.add_lesion,
        update=cases.update_lesion,
        read_roles=ALL_ROLES,
        write_roles=STAFF,
    )
)
