"""Cases API."""

from __future__ import annotations

from flask_smorest import Blueprint

from biobank.api.crud import Resource, register_crud
from biobank.auth import ALL_ROLES, STAFF
from biobank.models import Case
from biobank.schemas.cases import (
    CaseCreateSchema,
    CaseQueryArgsSchema,
    CaseSchema,
    CaseUpdateSchema,
)
from biobank.services import cases

blp = Blueprint("cases", __name__, description="Diagnoses: disease group, ICD-10, melanoma staging")

register_crud(
    Resource(
        blp=blp,
        model=Case,
        noun="case",
        schema=CaseSchema,
        create_schema=CaseCreateSchema,
        update_schema=CaseUpdateSchema,
        query_schema=CaseQueryArgsSchema,
        list_query=cases.list_cases,
        create=cases.open_case,
        update=cases.update_case,
        read_roles=ALL_ROLES,
        write_roles=STAFF,
    )
)
