"""Storage containers API."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from biobank.api.crud import Resource, register_crud
from biobank.auth import ALL_ROLES, MANAGERS, STAFF, current_actor, roles_required
from biobank.db import transaction
from biobank.models import StorageContainer
from biobank.schemas.storage import (
    ContainerCreateSchema,
    ContainerFromTemplateSchema,
    ContainerQueryArgsSchema,
    ContainerSchema,
    ContainerUpdateSchema,
    FreeSpaceArgsSchema,
    FreeSpaceSchema,
)
from biobank.services import storage

blp = Blueprint("containers", __name__, description="Freezers, racks, boxes and other containers")

register_crud(Resource(
    blp=blp, model=StorageContainer, noun="container", schema=ContainerSchema,
    create_schema=ContainerCreateSchema, update_schema=ContainerUpdateSchema,
    query_schema=ContainerQueryArgsSchema, list_query=storage.list_containers,
    create=storage.create_container, update=storage.update_container,
    read_roles=ALL_ROLES, write_roles=STAFF,
))


@blp.route("/from-template")
class ContainerTemplateViews(MethodView):
    @roles_required(*MANAGERS)
    @blp.arguments(ContainerFromTemplateSchema)
    @blp.response(201, ContainerSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Create a whole freezer, tank or cabinet, with its racks and boxes, in one call"""
        with transaction():
            return storage.create_from_template(data.pop("template"), actor=current_actor(),
                                                **data)


@blp.route("/free-space")
class FreeSpaceViews(MethodView):
    @roles_required(*STAFF)
    @blp.arguments(FreeSpaceArgsSchema, location="query")
    @blp.response(200, FreeSpaceSchema(many=True))
    def get(self, args: dict[str, Any]) -> Any:
        """Find free positions close together, e.g. 12 at −80 °C"""
        return storage.find_free_space(actor=current_actor(), **args)
