"""Storage containers API."""

from __future__ import annotations

from flask_smorest import Blueprint

from biobank.api.crud import Resource, register_crud
from biobank.auth import ALL_ROLES, STAFF
from biobank.models import StorageContainer
from biobank.schemas.storage import (
    ContainerCreateSchema,
    ContainerQueryArgsSchema,
    ContainerSchema,
    ContainerUpdateSchema,
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
