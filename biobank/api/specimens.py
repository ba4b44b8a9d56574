"""Specimens API."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields

from biobank.api.crud import Resource, register_crud
from biobank.auth import ALL_ROLES, MANAGERS, STAFF, current_actor, roles_required
from biobank.db import transaction
from biobank.errors import NotFound
from biobank.models import Specimen
from biobank.schemas.base import BaseSchema
from biobank.schemas.custody import CorrectionCreateSchema, CustodyEventSchema, TimelineSchema
from biobank.schemas.specimens import (
    AliquotCreateSchema,
    SpecimenCreateSchema,
    SpecimenQueryArgsSchema,
    SpecimenSchema,
    SpecimenUpdateSchema,
    SprecSchema,
)
from biobank.services import custody, specimens
from biobank.services.common import get_visible
from biobank.services.timeline import specimen_timeline

blp = Blueprint("specimens", __name__, description="Specimens, aliquots and derivatives")

register_crud(
    Resource(
        blp=blp,
        model=Specimen,
        noun="specimen",
        schema=SpecimenSchema,
        create_schema=SpecimenCreateSchema,
        update_schema=SpecimenUpdateSchema,
        query_schema=SpecimenQueryArgsSchema,
        list_query=specimens.list_specimens,
        create=specimens.register_specimen,
        update=specimens.update_specimen,
        read_roles=ALL_ROLES,
        write_roles=STAFF,
    )
)


class LineageEntrySchema(BaseSchema):
    depth = fields.Integer()
    specimen = fields.Nested(SpecimenSchema)


class LineageSchema(BaseSchema):
    ancestors = fields.List(fields.Nested(SpecimenSchema))
    descendants = fields.List(fields.Nested(LineageEntrySchema))


@blp.route("/by-barcode/<barcode>")
class SpecimenByBarcodeViews(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.response(200, SpecimenSchema)
    def get(self, barcode: str) -> Any:
        """Find a specimen by its barcode"""
        return specimens.get_specimen_by_barcode(barcode, actor=current_actor())


@blp.route("/<int:item_id>/lineage")
class SpecimenLineageViews(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.response(200, LineageSchema)
    def get(self, item_id: int) -> Any:
        """Ancestors and descendants of a specimen"""
        specimen = get_visible(Specimen, item_id, current_actor())
        ancestors, descendants = specimens.lineage_of(specimen)
        return {"ancestors": ancestors, "descendants": [{"depth": d, "specimen": s} for d, s in descendants]}


@blp.route("/<int:item_id>/aliquots")
class SpecimenAliquotViews(MethodView):
    @roles_required(*STAFF)
    @blp.arguments(AliquotCreateSchema)
    @blp.response(201, SpecimenSchema(many=True))
    def post(self, data: dict[str, Any], item_id: int) -> Any:
        """Split a specimen into aliquots or derivatives

        Quantities are taken from the parent (never more than it holds); the new specimens
        are placed in fill order in `container_id`, and with `print` their labels are
        printed once everything is saved.
        """
        actor = current_actor()
        with transaction():
            parent = get_visible(Specimen, item_id, actor, lock=True)
            return specimens.create_aliquots(parent, actor=actor, **data)


@blp.route("/<int:item_id>/sprec")
class SpecimenSprecViews(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.response(200, SprecSchema)
    def get(self, item_id: int) -> Any:
        """SPREC code derived from the specimen's recorded history, element by element

        Each element says what it was derived from (collection time and procedure, the
        processing recorded with each derivative, freezing time) or why it is unknown (`X`);
        `differs` names the elements where the stored code contradicts the records. 404 for
        materials SPREC does not code (DNA, RNA and other extracts).
        """
        specimen = get_visible(Specimen, item_id, current_actor())
        result = specimens.sprec_of(specimen)
        if result is None:
            raise NotFound(f"SPREC does not code {specimen.material_type.value}")
        return result


@blp.route("/<int:item_id>/custody")
class SpecimenCustodyViews(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.response(200, CustodyEventSchema(many=True))
    def get(self, item_id: int) -> Any:
        """Custody events of a specimen, oldest first"""
        specimen = get_visible(Specimen, item_id, current_actor())
        return custody.list_custody_events(specimen)


@blp.route("/<int:item_id>/custody/corrections")
class SpecimenCustodyCorrectionViews(MethodView):
    @roles_required(*MANAGERS)
    @blp.arguments(CorrectionCreateSchema)
    @blp.response(201, CustodyEventSchema)
    def post(self, data: dict[str, Any], item_id: int) -> Any:
        """Correct a custody event recorded by mistake

        Appends a `corrected` event that names the mistaken one and gives the specimen back
        the status, quantity, site and position it had before it; the ledger itself is
        never edited. Corrections go newest first: 409 while a later event is in force, or
        when the position it goes back to is taken.
        """
        actor = current_actor()
        with transaction():
            specimen = get_visible(Specimen, item_id, actor, lock=True)
            return specimens.correct_custody_event(
                specimen, data["event_id"], actor=actor, reason=data["reason"]
            )


@blp.route("/<barcode>/timeline")
class SpecimenTimelineViews(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.response(200, TimelineSchema)
    def get(self, barcode: str) -> Any:
        """A specimen's history: custody, locations, consent and record changes

        Sorted by time, with the verification status of the specimen's custody chain.
        """
        return specimen_timeline(specimens.get_specimen_by_barcode(barcode, actor=current_actor()))
