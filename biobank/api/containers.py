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
    ContainerMoveResultSchema,
    ContainerMoveSchema,
    ContainerQueryArgsSchema,
    ContainerSchema,
    ContainerUpdateSchema,
    EvacuateSchema,
    EvacuationPlanSchema,
    FreeSpaceArgsSchema,
    FreeSpaceSchema,
    HoldCreateSchema,
    HoldSchema,
)
from biobank.services import storage
from biobank.services.common import get_visible

blp = Blueprint("containers", __name__, description="Freezers, racks, boxes and other containers")

register_crud(
    Resource(
        blp=blp,
        model=StorageContainer,
        noun="container",
        schema=ContainerSchema,
        create_schema=ContainerCreateSchema,
        update_schema=ContainerUpdateSchema,
        query_schema=ContainerQueryArgsSchema,
        list_query=storage.list_containers,
        create=storage.create_container,
        update=storage.update_container,
        read_roles=ALL_ROLES,
        write_roles=STAFF,
    )
)


@blp.route("/from-template")
class ContainerTemplateViews(MethodView):
    @roles_required(*MANAGERS)
    @blp.arguments(ContainerFromTemplateSchema)
    @blp.response(201, ContainerSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Create a whole freezer, tank or cabinet, with its racks and boxes, in one call"""
        with transaction():
            return storage.create_from_template(data.pop("template"), actor=current_actor(), **data)


@blp.route("/free-space")
class FreeSpaceViews(MethodView):
    @roles_required(*STAFF)
    @blp.arguments(FreeSpaceArgsSchema, location="query")
    @blp.response(200, FreeSpaceSchema(many=True))
    def get(self, args: dict[str, Any]) -> Any:
        """Find free positions close together, e.g. 12 at −80 °C"""
        return storage.find_free_space(actor=current_actor(), **args)


@blp.route("/<int:item_id>/holds")
class HoldViews(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.response(200, HoldSchema(many=True))
    def get(self, item_id: int) -> Any:
        """Reserved and blocked positions of a box"""
        container = get_visible(StorageContainer, item_id, current_actor())
        return storage.list_holds(container)

    @roles_required(*STAFF)
    @blp.arguments(HoldCreateSchema)
    @blp.response(201, HoldSchema)
    def post(self, data: dict[str, Any], item_id: int) -> Any:
        """Reserve or block a free position"""
        actor = current_actor()
        with transaction():
            container = get_visible(StorageContainer, item_id, actor)
            return storage.hold_position(
                container,
                data["pos_row"],
                data["pos_col"],
                kind=data["kind"],
                reason=data.get("reason"),
                actor=actor,
            )


@blp.route("/<int:item_id>/holds/<int:hold_id>")
class HoldByIdViews(MethodView):
    @roles_required(*STAFF)
    @blp.response(204)
    def delete(self, item_id: int, hold_id: int) -> Any:
        """Release a reserved or blocked position"""
        actor = current_actor()
        with transaction():
            get_visible(StorageContainer, item_id, actor)
            hold = storage.get_hold(item_id, hold_id)
            storage.release_hold(hold, actor=actor)


@blp.route("/<int:item_id>/move")
class ContainerMoveViews(MethodView):
    @roles_required(*STAFF)
    @blp.arguments(ContainerMoveSchema)
    @blp.response(200, ContainerMoveResultSchema)
    def post(self, data: dict[str, Any], item_id: int) -> Any:
        """Move a box or rack with everything in it; one custody event per specimen"""
        actor = current_actor()
        with transaction():
            container = get_visible(StorageContainer, item_id, actor)
            moved = storage.move_container(container, parent_id=data["parent_id"], actor=actor)
            return {"container": container, "specimens_moved": moved}


@blp.route("/<int:item_id>/evacuation-plan")
class EvacuationPlanViews(MethodView):
    @roles_required(*STAFF)
    @blp.response(200, EvacuationPlanSchema)
    def get(self, item_id: int) -> Any:
        """Plan to empty a failing freezer: every specimen to a free position of the same
        temperature elsewhere at the site (reservations respected)"""
        actor = current_actor()
        return storage.evacuation_plan(get_visible(StorageContainer, item_id, actor), actor=actor)


@blp.route("/<int:item_id>/evacuate")
class EvacuateViews(MethodView):
    @roles_required(*MANAGERS)
    @blp.arguments(EvacuateSchema)
    @blp.response(200, EvacuationPlanSchema)
    def post(self, data: dict[str, Any], item_id: int) -> Any:
        """Carry out a reviewed evacuation plan in one transaction"""
        actor = current_actor()
        with transaction():
            container = get_visible(StorageContainer, item_id, actor)
            return storage.evacuate(container, plan_sha256=data["plan_sha256"], actor=actor)
