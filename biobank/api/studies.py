"""Studies API, with consent tiers."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from biobank.api.crud import Resource, register_crud
from biobank.auth import ALL_ROLES, MANAGERS, current_actor, roles_required
from biobank.db import transaction
from biobank.models import Study
from biobank.schemas.studies import (
    ConsentTierCreateSchema,
    ConsentTierSchema,
    StudyCreateSchema,
    StudyQueryArgsSchema,
    StudySchema,
    StudyUpdateSchema,
)
from biobank.services import studies
from biobank.services.common import get_visible

blp = Blueprint("studies", __name__, description="Studies (collection protocols) and consent tiers")

register_crud(
    Resource(
        blp=blp,
        model=Study,
        noun="study",
        schema=StudySchema,
        create_schema=StudyCreateSchema,
        update_schema=StudyUpdateSchema,
        query_schema=StudyQueryArgsSchema,
        list_query=studies.list_studies,
        create=studies.create_study,
        update=studies.update_study,
        read_roles=ALL_ROLES,
        write_roles=MANAGERS,
    )
)


@blp.route("/<int:item_id>/consent-tiers")
class ConsentTierViews(MethodView):
    @roles_required(*MANAGERS)
    @blp.arguments(ConsentTierCreateSchema)
    @blp.response(201, ConsentTierSchema)
    def post(self, data: dict[str, Any], item_id: int) -> Any:
        """Add a consent tier to a study"""
        actor = current_actor()
        with transaction():
            study = get_visible(Study, item_id, actor)
            return studies.add_consent_tier(study, actor=actor, **data)
