"""Collection and item views shared by the resource blueprints.

Each resource supplies its schemas and services; this module wires them to flask-smorest
``MethodView`` classes so every resource gets the same pagination, ETag and role handling.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema

from biobank.api.pagination import paginate
from biobank.auth import current_actor, roles_required
from biobank.db import transaction
from biobank.models.vocab import Role
from biobank.services.common import get_visible


@dataclass
class Resource:
    """What a blueprint needs to expose a model as a REST collection."""

    blp: Blueprint
    model: type
    noun: str
    schema: type[Schema]
    create_schema: type[Schema]
    update_schema: type[Schema]
    query_schema: type[Schema]
    list_query: Callable[..., Any]
    create: Callable[..., Any]
    update: Callable[..., Any]
    read_roles: tuple[Role, ...]
    write_roles: tuple[Role, ...]
    create_roles: tuple[Role, ...] | None = None
    #: serialise for the actor (e.g. drop PHI for researchers); default: the dump schema
    dump_for: Callable[[Any, Any], Any] | None = None


def register_crud(res: Resource) -> None:
    """Add ``/`` (list, create) and ``/<id>`` (get, update) routes for *res*."""
    blp = res.blp
    dump = res.dump_for or (lambda _actor, obj: obj)

    @blp.route("/")
    class CollectionViews(MethodView):
        @roles_required(*res.read_roles)
        @blp.etag
        @blp.arguments(res.query_schema, location="query")
        @blp.response(200, res.schema(many=True))
        def get(self, args: dict[str, Any]) -> Any:
            actor = current_actor()
            page = {k: args.pop(k, None) for k in ("limit", "after")}
            rows, headers = paginate(res.list_query(actor=actor, **args), res.model.id, page)
            return [dump(actor, row) for row in rows], headers

        get.__doc__ = f"List {res.noun}s\n\n{get.__doc__}"

        @roles_required(*(res.create_roles or res.write_roles))
        @blp.etag
        @blp.arguments(res.create_schema)
        @blp.response(201, res.schema)
        def post(self, data: dict[str, Any]) -> Any:
            actor = current_actor()
            with transaction():
                obj = res.create(actor=actor, **data)
            return dump(actor, obj)

        post.__doc__ = f"Create a {res.noun}\n\n{post.__doc__}"

    @blp.route("/<int:item_id>")
    class ItemViews(MethodView):
        @roles_required(*res.read_roles)
        @blp.etag
        @blp.response(200, res.schema)
        def get(self, item_id: int) -> Any:
            actor = current_actor()
            return dump(actor, get_visible(res.model, item_id, actor))

        get.__doc__ = f"Get one {res.noun}\n\n{get.__doc__}"

        @roles_required(*res.write_roles)
        @blp.etag
        @blp.arguments(res.update_schema)
        @blp.response(200, res.schema)
        def patch(self, data: dict[str, Any], item_id: int) -> Any:
            actor = current_actor()
            with transaction():
                obj = get_visible(res.model, item_id, actor)
                blp.check_etag(dump(actor, obj), res.schema)
                obj = res.update(obj, data, actor=actor)
            return dump(actor, obj)

        patch.__doc__ = (
            f"Update a {res.noun}\n\nSend the `ETag` of the last read in `If-Match`; a stale one "
            f"gets 412. Give the reason for the change in `X-Change-Reason`.\n\n{patch.__doc__}"
        )
