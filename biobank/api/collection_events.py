"""Collection events API."""

from __future__ import annotations

from flask_smorest import Blueprint

from biobank.api.crud import Resource, register_crud
from biobank.auth import ALL_ROLES, STAFF
from biobank.models import CollectionEvent
from biobank.schemas.collection_events import (
    CollectionEventCreateSchema,
    CollectionEventQueryArgsSchema,
    CollectionEventSchema,
    CollectionEventUpdateSchema,
)
from biobank.services import collection_events

blp = Blueprint("collection-events", __name__, description="Visits at which specimens are taken")

register_crud(
    Resource(
        blp=blp,
        model=CollectionEvent,
        noun="collection event",
        schema=CollectionEventSchema,
        create_schema=CollectionEventCreateSchema,
        update_schema=CollectionEventUpdateSchema,
        query_schema=CollectionEventQueryArgsSchema,
        list_query=collection_events.list_collection_events,
        create=collection_events.record_collection,
        update=collection_events.update_collection_event,
        read_roles=ALL_ROLES,
        write_roles=STAFF,
    )
)
