"""Printers and print jobs API."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask.views import MethodView
from flask_smorest import Blueprint

from biobank.auth import ALL_ROLES, MANAGERS, STAFF, current_actor, roles_required
from biobank.db import db, transaction
from biobank.models import Specimen, StorageContainer
from biobank.services.common import get_visible
from biobank.services.requests import get_request
from labels import services
from labels.models import Printer, PrintJob
from labels.render import LabelError, load_template, template_names
from labels.render.preview import render_png, render_svg
from labels.schemas import (
    PreviewArgsSchema,
    PrinterCreateSchema,
    PrinterSchema,
    PrintJobCreateSchema,
    PrintJobQueryArgsSchema,
    PrintJobSchema,
)

printers_blp = Blueprint("printers", __name__, description="Label printers")
jobs_blp = Blueprint("print-jobs", __name__, description="Printing labels; every job recorded")


@printers_blp.route("/")
class PrinterViews(MethodView):
    @roles_required(*ALL_ROLES)
    @printers_blp.response(200, PrinterSchema(many=True))
    def get(self) -> Any:
        """List printers"""
        return db.session.scalars(db.select(Printer).order_by(Printer.name)).all()

    @roles_required(*MANAGERS)
    @printers_blp.arguments(PrinterCreateSchema)
    @printers_blp.response(201, PrinterSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Register a printer"""
        with transaction():
            printer = Printer(**data)
            db.session.add(printer)
            db.session.flush()
            return printer


@printers_blp.route("/<int:item_id>/test-print")
class PrinterTestPrintViews(MethodView):
    @roles_required(*STAFF)
    @printers_blp.response(201, PrintJobSchema)
    def post(self, item_id: int) -> Any:
        """Print one test label (sample values, its own barcode) with the printer's default
        template: to check ribbon, alignment and scanning"""
        with transaction():
            return services.test_print(
                services.visible_printer(item_id, current_actor()), actor=current_actor()
            )


@printers_blp.route("/<int:item_id>/status")
class PrinterStatusViews(MethodView):
    @roles_required(*STAFF)
    @printers_blp.response(200, PrinterSchema)
    def post(self, item_id: int) -> Any:
        """Ask a ZPL printer for its status now (~HS) and record it

        `last_status` is `ready`, the printer's faults (paper out, ribbon out, head open,
        paused…), `no answer to ~HS` or `not reachable`.
        """
        with transaction():
            return services.check_printer(services.visible_printer(item_id, current_actor()))


@printers_blp.route("/templates")
class TemplateViews(MethodView):
    @roles_required(*ALL_ROLES)
    @printers_blp.response(200)
    def get(self) -> Any:
        """Names of the label templates"""
        return template_names()


def start_job(data: dict[str, Any], *, source: str) -> PrintJob:
    """Create a job from the API's arguments (the caller owns the transaction)."""
    actor = current_actor()
    printer = services.get_printer(data["printer_id"]) if data.get("printer_id") else None
    options = {
        "template": data["template"],
        "actor": actor,
        "printer": printer,
        "copies": data["copies"],
        "reprint_reason": data.get("reprint_reason"),
        "source": source,
    }
    if "container_id" in data:
        box = get_visible(StorageContainer, data["container_id"], actor, field="container_id")
        return services.print_box(box, contents=data["box_contents"], **options)
    if "import_id" in data:
        return services.print_import(data["import_id"], **options)
    if "request_id" in data:
        return services.print_request(get_request(data["request_id"], actor), **options)
    specimens = [get_visible(Specimen, sid, actor, field="specimen_ids") for sid in data["specimen_ids"]]
    return services.print_specimens(specimens, **options)


@jobs_blp.route("/")
class PrintJobViews(MethodView):
    @roles_required(*STAFF)
    @jobs_blp.arguments(PrintJobQueryArgsSchema, location="query")
    @jobs_blp.response(200, PrintJobSchema(many=True))
    def get(self, args: dict[str, Any]) -> Any:
        """Recent print jobs (yours; managers see everyone's), newest first"""
        return services.list_jobs(actor=current_actor(), **args)

    @roles_required(*STAFF)
    @jobs_blp.arguments(PrintJobCreateSchema)
    @jobs_blp.response(201, PrintJobSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Print labels

        The labels are rendered at once (a template or value problem is a 422 and nothing is
        recorded); a printer job is sent after it is saved, a PDF job is downloaded from
        `document_url`. Labels printed before need a `reprint_reason`.
        """
        with transaction():
            job = start_job(data, source="api")
        return job


@jobs_blp.route("/preview")
class PrintPreviewViews(MethodView):
    @roles_required(*ALL_ROLES)
    @jobs_blp.arguments(PreviewArgsSchema, location="query")
    @jobs_blp.response(200, description="PNG or SVG image of one label")
    def get(self, args: dict[str, Any]) -> Any:
        """Preview a specimen's label (PNG or SVG), without printing or recording anything"""
        specimen = get_visible(Specimen, args["specimen_id"], current_actor(), field="specimen_id")
        try:
            template = load_template(args["template"])
            record = services.specimen_values(specimen)
            if args["format"] == "svg":
                return Response(render_svg(template, record), mimetype="image/svg+xml")
            return Response(render_png(template, record), mimetype="image/png")
        except LabelError as error:
            raise services.label_refused(error) from None


@jobs_blp.route("/<int:item_id>")
class PrintJobByIdViews(MethodView):
    @roles_required(*STAFF)
    @jobs_blp.response(200, PrintJobSchema)
    def get(self, item_id: int) -> Any:
        """A print job and whether it reached the printer"""
        return services.get_job(item_id, actor=current_actor())


@jobs_blp.route("/<int:item_id>/retry")
class PrintJobRetryViews(MethodView):
    @roles_required(*STAFF)
    @jobs_blp.response(200, PrintJobSchema)
    def post(self, item_id: int) -> Any:
        """Send a failed job again"""
        with transaction():
            job = services.get_job(item_id, actor=current_actor())
            services.send_job(job)
        return job


@jobs_blp.route("/<int:item_id>/document")
class PrintJobDocumentViews(MethodView):
    @roles_required(*STAFF)
    @jobs_blp.response(200, description="The PDF")
    def get(self, item_id: int) -> Any:
        """Download a PDF print job"""
        job = services.get_job(item_id, actor=current_actor())
        mimetype = "application/pdf" if job.format == "pdf" else "text/plain"
        return Response(
            job.payload,
            mimetype=mimetype,
            headers={"Content-Disposition": f'attachment; filename="labels-{job.id}.{job.format}"'},
        )
