"""Sample requests: feasibility at once, submission, e-signed decision, withdrawal."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint

from biobank.auth import ALL_ROLES, MANAGERS, STAFF, current_actor, note_failure, roles_required
from biobank.db import transaction
from biobank.errors import PermissionDenied
from biobank.schemas.requests import (
    AllocationResultSchema,
    DecisionSchema,
    EveryAliquotResultSchema,
    EveryAliquotSchema,
    FeasibilityArgsSchema,
    FeasibilitySchema,
    PickItemSchema,
    PickResultSchema,
    PickSchema,
    ProcessingTaskSchema,
    ReceiptSchema,
    RequestCreateSchema,
    RequestQuerySchema,
    RequestSchema,
    ReturnResultSchema,
    ReturnSchema,
    ShipmentSchema,
    ShipSchema,
)
from biobank.services import requests

blp = Blueprint("requests", __name__, description="Researchers' sample requests and their e-signed decisions")


@blp.route("/")
class RequestsView(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.arguments(RequestQuerySchema, location="query")
    @blp.response(200, RequestSchema(many=True))
    def get(self, args: dict[str, Any]) -> Any:
        """Requests: one's own; managers see every request"""
        return requests.list_requests(current_actor(), args.get("status"))

    @roles_required(*ALL_ROLES)
    @blp.arguments(RequestCreateSchema)
    @blp.response(201, RequestSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Request material from the cases of a cohort; feasibility is computed at once"""
        with transaction():
            request = requests.submit(actor=current_actor(), **data)
        return request


@blp.route("/feasibility")
class FeasibilityView(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.arguments(FeasibilityArgsSchema)
    @blp.response(200, FeasibilitySchema)
    def post(self, data: dict[str, Any]) -> Any:
        """How many cases could be served now, and why the others could not (nothing saved)"""
        return requests.preview(actor=current_actor(), **data)


@blp.route("/<int:request_id>")
class RequestView(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.response(200, RequestSchema)
    def get(self, request_id: int) -> Any:
        """One request with its signatures"""
        return requests.get_request(request_id, current_actor())


@blp.route("/<int:request_id>/decision")
class DecisionView(MethodView):
    @roles_required(*MANAGERS)
    @blp.arguments(DecisionSchema)
    @blp.response(200, RequestSchema)
    def post(self, data: dict[str, Any], request_id: int) -> Any:
        """Approve or reject: an electronic signature (password re-entered; name, time and
        meaning recorded). Nobody decides their own request; a rejection needs a reason."""
        actor = current_actor()
        try:
            with transaction():
                request = requests.decide(
                    requests.get_request(request_id, actor),
                    actor=actor,
                    approve=data["decision"] == "approve",
                    password=data["password"],
                    reason=data.get("reason"),
                )
        except PermissionDenied as error:
            if error.field == "password":  # a wrong password counts, like a failed login
                with transaction():
                    note_failure(requests.signature_key(actor))
            raise
        return request


@blp.route("/<int:request_id>/withdraw")
class WithdrawView(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.response(200, RequestSchema)
    def post(self, request_id: int) -> Any:
        """Withdraw one's own request before it is decided"""
        actor = current_actor()
        with transaction():
            request = requests.withdraw(requests.get_request(request_id, actor), actor=actor)
        return request


@blp.route("/<int:request_id>/allocation")
class AllocationView(MethodView):
    @roles_required(*MANAGERS)
    @blp.response(200, AllocationResultSchema)
    def post(self, request_id: int) -> Any:
        """Reserve tubes for an approved request: per case all of its tubes or none; existing
        aliquots first; a primary to be aliquoted becomes a processing task"""
        actor = current_actor()
        with transaction():
            return requests.allocate(requests.get_request(request_id, actor), actor=actor)


@blp.route("/<int:request_id>/pick-list")
class PickListView(MethodView):
    @roles_required(*STAFF)
    @blp.response(200, PickItemSchema(many=True))
    def get(self, request_id: int) -> Any:
        """The allocated tubes in walking order: site, freezer, rack, box, position"""
        actor = current_actor()
        return requests.pick_list(requests.get_request(request_id, actor), actor)


@blp.route("/<int:request_id>/pick-list.pdf")
class PickListPdfView(MethodView):
    @roles_required(*STAFF)
    @blp.response(200, {"type": "string", "format": "binary"}, content_type="application/pdf")
    def get(self, request_id: int) -> Any:
        """The pick list as PDF, with the approval signature printed on it"""
        actor = current_actor()
        request = requests.get_request(request_id, actor)
        return Response(
            requests.pick_list_pdf(request, actor),
            mimetype="application/pdf",
            headers={"Content-Disposition": f'inline; filename="pick-list-{request.code}.pdf"'},
        )


@blp.route("/<int:request_id>/picks")
class PickView(MethodView):
    @roles_required(*STAFF)
    @blp.arguments(PickSchema)
    @blp.response(200, PickResultSchema)
    def post(self, data: dict[str, Any], request_id: int) -> Any:
        """Scan a tube taken from the freezer: a tube not on the list is refused (409)"""
        actor = current_actor()
        with transaction():
            return requests.pick(requests.get_request(request_id, actor), data["barcode"], actor=actor)


@blp.route("/<int:request_id>/shipment")
class ShipmentView(MethodView):
    @roles_required(*STAFF)
    @blp.arguments(ShipSchema)
    @blp.response(201, ShipmentSchema)
    def post(self, data: dict[str, Any], request_id: int) -> Any:
        """Ship your site's picked tubes (courier, temperature, destination): each site of a
        request sends its own parcel once every one of its tubes is picked; the request is
        shipped when the last site has sent its parcel"""
        actor = current_actor()
        with transaction():
            return requests.ship(requests.get_request(request_id, actor), actor=actor, **data)


@blp.route("/<int:request_id>/receipt")
class ReceiptView(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.arguments(ReceiptSchema)
    @blp.response(200, ShipmentSchema)
    def post(self, data: dict[str, Any], request_id: int) -> Any:
        """The receiving lab scans what arrived in a parcel: missing, damaged and extra tubes
        reported"""
        actor = current_actor()
        with transaction():
            return requests.receive(
                requests.get_request(request_id, actor),
                actor=actor,
                scans=data["scans"],
                shipment_id=data.get("shipment_id"),
            )


@blp.route("/<int:request_id>/distribution-report")
class DistributionReportView(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.response(200)
    def get(self, request_id: int) -> Any:
        """What was sent, to whom, when, under which approval and consent"""
        actor = current_actor()
        return requests.distribution_report(requests.get_request(request_id, actor), actor)


@blp.route("/<int:request_id>/returns")
class ReturnView(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.arguments(ReturnSchema)
    @blp.response(200, ReturnResultSchema)
    def post(self, data: dict[str, Any], request_id: int) -> Any:
        """Send unused tubes back; the biobank scans them in (receive at destination, store)"""
        actor = current_actor()
        with transaction():
            return requests.return_unused(
                requests.get_request(request_id, actor), data["barcodes"], actor=actor
            )


@blp.route("/<int:request_id>/shipments")
class ShipmentsView(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.response(200, ShipmentSchema(many=True))
    def get(self, request_id: int) -> Any:
        """The request's parcels, one per site it was sent from (staff see their sites')"""
        actor = current_actor()
        return requests.visible_shipments(requests.get_request(request_id, actor), actor)


def _manifest(request_id: int, fmt: str, shipment_id: int | None = None) -> Response:
    actor = current_actor()
    request = requests.get_request(request_id, actor)
    name = f"shipment-{request.code}" + (f"-{shipment_id}" if shipment_id else "")
    if fmt == "csv":
        return Response(
            requests.shipment_manifest_csv(request, actor, shipment_id),
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    return Response(
        requests.shipment_manifest_pdf(request, actor, shipment_id),
        mimetype="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{name}.pdf"'},
    )


@blp.route("/<int:request_id>/shipment/manifest.<any(csv, pdf):fmt>")
class ShipmentManifestView(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.response(200, {"type": "string", "format": "binary"}, content_type="text/csv")
    def get(self, request_id: int, fmt: str) -> Any:
        """Every parcel's content you follow, one tube per row (CSV or PDF with the approval
        signature)"""
        return _manifest(request_id, fmt)


@blp.route("/<int:request_id>/shipments/<int:shipment_id>/manifest.<any(csv, pdf):fmt>")
class ParcelManifestView(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.response(200, {"type": "string", "format": "binary"}, content_type="text/csv")
    def get(self, request_id: int, shipment_id: int, fmt: str) -> Any:
        """One parcel's content, one tube per row (CSV or PDF with the approval signature)"""
        return _manifest(request_id, fmt, shipment_id)


@blp.route("/<int:request_id>/processing")
class EveryProcessingView(MethodView):
    @roles_required(*STAFF)
    @blp.arguments(EveryAliquotSchema)
    @blp.response(201, EveryAliquotResultSchema)
    def post(self, data: dict[str, Any], request_id: int) -> Any:
        """Make every aliquot: do all processing tasks of your sites at once, each aliquot
        placed in free positions at its primary's temperature and allocated in its place,
        their labels printed as one job; all or nothing"""
        actor = current_actor()
        with transaction():
            request = requests.get_request(request_id, actor)
            return requests.make_every_aliquot(request, actor=actor, **data), 201


@blp.route("/<int:request_id>/allocations/<int:allocation_id>/aliquot")
class ProcessingView(MethodView):
    @roles_required(*STAFF)
    @blp.arguments(ProcessingTaskSchema)
    @blp.response(201, PickItemSchema)
    def post(self, data: dict[str, Any], request_id: int, allocation_id: int) -> Any:
        """Do a processing task: aliquot an allocated primary; the aliquot takes its place"""
        actor = current_actor()
        with transaction():
            request = requests.get_request(request_id, actor)
            replacement = requests.make_aliquot(request, allocation_id, actor=actor, **data)
            barcode = replacement.specimen.barcode
        return next(i for i in requests.pick_list(request, actor) if i["barcode"] == barcode), 201
