"""The print panel on specimen and box pages."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from flask import Blueprint, flash, redirect, render_template, request, url_for

from biobank.auth import STAFF, current_actor, has_role, roles_required
from biobank.db import db, transaction
from biobank.errors import BiobankError, InvalidInput, PermissionDenied
from biobank.models import Specimen, StorageContainer
from biobank.services.common import get_by, get_visible, visible
from labels import services
from labels.models import Printer, PrintJob, PrintJobStatus

bp = Blueprint("label_pages", __name__, template_folder="web_templates")


def _staff() -> Any:
    """The actor, if biobank staff: researchers do not print labels."""
    actor = current_actor()
    if not has_role(actor, STAFF):
        raise PermissionDenied("printing labels is for biobank staff")
    return actor


def _with_choices(back: str, panel: str, **choices: str) -> str:
    """*back* with the user's choices in its query, so the panel shows them again after an
    error instead of resetting."""
    choices |= {
        "printer_id": request.form.get("printer_id", ""),
        "reprint_reason": request.form.get("reprint_reason", ""),
    }
    kept = {k: v for k, v in choices.items() if v}
    return f"{back}?{urlencode(kept)}#{panel}" if kept else f"{back}#{panel}"


def _finish(job_id: int, back: str) -> Any:
    """Send the browser to the PDF, or back to the page with the outcome."""
    job = db.session.get(PrintJob, job_id)
    db.session.refresh(job)
    if job.status is PrintJobStatus.READY:
        return redirect(f"/api/v1/print-jobs/{job_id}/document")
    if job.status is PrintJobStatus.FAILED:
        flash(
            f"Print job {job_id} failed: {job.last_error}. It is kept; retry it from the "
            "API or the print jobs list.",
            "error",
        )
    else:
        spooled = f" (CUPS request {job.device_job_id})" if job.device_job_id else ""
        flash(f"Print job {job_id}: {job.status.value}{spooled}.", "ok")
    return redirect(back)


@bp.post("/labels/print-box")
@roles_required(*STAFF)
def print_box_from_page() -> Any:
    """Print a box's label, or labels for every tube in it, from the box page."""
    container_id = request.form.get("container_id", type=int) or 0
    back = url_for("pages.container_detail", container_id=container_id)
    # "box:<template>" or "tubes:<template>"; older forms sent contents and template apart
    what, _, template = request.form.get("label", "").partition(":")
    if not template:
        what = request.form.get("contents", "box")
        template = request.form.get("template", "")
    try:
        with transaction():
            actor = _staff()
            box = get_visible(StorageContainer, container_id, actor)
            printer_id = request.form.get("printer_id", type=int)
            job = services.print_box(
                box,
                contents=what == "tubes",
                template=template,
                actor=actor,
                printer=services.get_printer(printer_id) if printer_id else None,
                reprint_reason=request.form.get("reprint_reason") or None,
                source="box page",
            )
            job_id = job.id
    except BiobankError as error:
        flash(f"Not printed: {error.message}", "error")
        return redirect(_with_choices(back, "box-print-panel", label=f"{what}:{template}"))
    return _finish(job_id, back)


@bp.post("/labels/print")
@roles_required(*STAFF)
def print_from_page() -> Any:
    """Print the specimen's label from its page; the outcome is shown on the page."""
    barcode = request.form.get("barcode", "")
    back = url_for("pages.specimen_detail", barcode=barcode)
    try:
        with transaction():
            actor = _staff()
            specimen = get_by(Specimen, Specimen.barcode, barcode, actor)
            printer_id = request.form.get("printer_id", type=int)
            copies = request.form.get("copies", default=1, type=int)
            if not 1 <= copies <= 20:
                raise InvalidInput("copies must be between 1 and 20", field="copies")
            job = services.print_specimens(
                [specimen],
                template=request.form.get("template", ""),
                actor=actor,
                printer=services.get_printer(printer_id) if printer_id else None,
                copies=copies,
                reprint_reason=request.form.get("reprint_reason") or None,
                source="specimen page",
            )
            job_id = job.id
    except BiobankError as error:
        flash(f"Not printed: {error.message}", "error")
        return redirect(
            _with_choices(
                back,
                "print-panel",
                template=request.form.get("template", ""),
                copies=request.form.get("copies", ""),
            )
        )
    return _finish(job_id, back)


@bp.post("/labels/print-many")
@roles_required(*STAFF)
def print_many() -> Any:
    """Print the labels of tubes a page just made (an accessioned visit), in one job."""
    back = request.form.get("back", "")
    if not back.startswith("/") or back.startswith("//"):
        back = url_for("pages.dashboard")  # only back to a page of this site
    barcodes = request.form.getlist("barcode")
    try:
        with transaction():
            actor = _staff()
            if not barcodes or len(barcodes) > 500:
                raise InvalidInput("give between 1 and 500 barcodes", field="barcode")
            found = {
                s.barcode: s
                for s in db.session.scalars(
                    visible(sa.select(Specimen).where(Specimen.barcode.in_(barcodes)), Specimen, actor)
                )
            }
            missing = [b for b in barcodes if b not in found]
            if missing:
                raise InvalidInput(f"no specimen {missing[0]} at your sites", field="barcode")
            printer_id = request.form.get("printer_id", type=int)
            job = services.print_specimens(
                [found[b] for b in barcodes],
                template=request.form.get("template", ""),
                actor=actor,
                printer=services.get_printer(printer_id) if printer_id else None,
                source="new tubes page",
            )
            job_id = job.id
    except BiobankError as error:
        flash(f"Not printed: {error.message}", "error")
        return redirect(back)
    return _finish(job_id, back)


@bp.get("/labels/printers")
@roles_required(*STAFF)
def printer_list() -> Any:
    """Every printer with what it last reported, and the jobs that failed on it."""
    printers = db.session.scalars(sa.select(Printer).order_by(Printer.name)).all()
    failed = db.session.execute(
        sa.select(PrintJob.printer_id, sa.func.count())
        .where(PrintJob.status == PrintJobStatus.FAILED, services.job_clause(current_actor()))
        .group_by(PrintJob.printer_id)
    ).all()
    return render_template("labels/printers.html", printers=printers, failed=dict(failed))


@bp.post("/labels/printers/<int:printer_id>/test-print")
@roles_required(*STAFF)
def test_print_from_page(printer_id: int) -> Any:
    """A test label from the printers page: the PDF opens, or the job's outcome shows."""
    back = url_for("label_pages.printer_list")
    try:
        with transaction():
            job = services.test_print(
                services.visible_printer(printer_id, current_actor()), actor=current_actor()
            )
            job_id = job.id
    except BiobankError as error:
        flash(f"No test label: {error.message}", "error")
        return redirect(back)
    return _finish(job_id, back)


@bp.post("/labels/printers/<int:printer_id>/status")
@roles_required(*STAFF)
def check_printer_from_page(printer_id: int) -> Any:
    """Ask a printer for its status now; the answer is shown on the printers page."""
    try:
        with transaction():
            printer = services.visible_printer(printer_id, current_actor())
            services.check_printer(printer)
            name, status = printer.name, printer.last_status
        flash(f"{name}: {status}.", "ok" if status == "ready" else "error")
    except BiobankError as error:
        flash(f"Not checked: {error.message}", "error")
    return redirect(url_for("label_pages.printer_list"))
