"""Print jobs: render now (so every error is reported before anything is saved), send only
after the transaction that asked for them has committed, retry failures, lose nothing."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from biobank.auth import check_site
from biobank.db import after_commit, db, utcnow
from biobank.errors import InvalidInput, InvalidState, NotFound
from biobank.jobs import celery
from biobank.models import CustodyEvent, ImportJob, ImportStatus, Specimen, StorageContainer
from biobank.models.users import Actor, user_sites
from biobank.models.vocab import MaterialType, Role
from biobank.services.common import visible_site_ids
from biobank.services.requests import pick_list, visible_shipments
from biobank.units import format_quantity
from labels.models import Printer, PrinterKind, PrintJob, PrintJobItem, PrintJobStatus
from labels.printers import PrinterError, PrinterFault, query_status, send_cups, send_tcp
from labels.render import LabelError, load_template
from labels.render.pdf import render_pdf
from labels.render.templates import templates_fitting
from labels.render.zpl import render_zpl

MAX_LABELS = 10_000
#: the Celery task that sends a job (``labels.tasks.send_print_job``)
SEND_TASK = "labels.send_print_job"


def specimen_values(specimen: Specimen) -> dict[str, Any]:
    """What a specimen label may show (never identifying data)."""
    collected = specimen.collected_at
    volume = format_quantity(specimen.quantity, specimen.unit) if specimen.unit is not None else ""
    return {
        "barcode": specimen.barcode,
        "participant_code": specimen.participant.code,
        "material_type": specimen.material_type.value,
        "collection_date": collected.date().isoformat() if collected else "",
        "volume": volume,
        "sprec_code": specimen.sprec_code or "",
        "label": specimen.label or "",
        "site": specimen.site.name,
    }


#: what a specimen label and a container label can show: a template needing anything else
#: (a shipping destination, free text) cannot print them
SPECIMEN_FIELDS = frozenset(
    {
        "barcode",
        "participant_code",
        "material_type",
        "collection_date",
        "volume",
        "sprec_code",
        "label",
        "site",
    }
)
CONTAINER_FIELDS = frozenset({"barcode", "container", "site"})
#: the tube template a material takes when its site's printers name none
MATERIAL_TEMPLATES = {
    MaterialType.TISSUE_PARAFFIN_EMBEDDED: "ffpe-cassette",
    MaterialType.TISSUE_STAINED: "ffpe-cassette",
    MaterialType.FECES: "specimen-bag",
}


def specimen_templates() -> list[str]:
    return templates_fitting(SPECIMEN_FIELDS)


def container_templates() -> list[str]:
    return templates_fitting(CONTAINER_FIELDS)


def default_specimen_template(specimen: Specimen) -> str:
    """The template a specimen's label is printed with unless the user picks another: the
    default of one of its site's printers (when it prints specimens), else the one for its
    material, else the 2D cryovial label."""
    fitting = specimen_templates()
    chosen = db.session.scalars(
        sa.select(Printer.default_template)
        .where(Printer.site_id == specimen.site_id, Printer.is_active, Printer.default_template.is_not(None))
        .order_by(Printer.name)
    ).all()
    for name in chosen:
        if name in fitting:
            return name
    name = MATERIAL_TEMPLATES.get(specimen.material_type, "cryovial-2d")
    return name if name in fitting else fitting[0]


def label_refused(error: LabelError) -> InvalidInput:
    """A label that cannot be made, as a 422 naming the value at fault (the placeholder
    whose value it is), else the template."""
    return InvalidInput(str(error), field=error.field or "template")


def check_fits(template: str, fields: frozenset[str], what: str) -> None:
    """Refuse a template that needs values *what* does not have, naming them."""
    try:
        needed = load_template(template).fields
    except LabelError as error:
        raise InvalidInput(str(error), field="template") from None
    missing = needed - fields
    if missing:
        raise InvalidInput(
            f"template {template!r} cannot print {what}: it shows "
            f"{', '.join('{' + m + '}' for m in sorted(missing))}",
            field="template",
        )


def container_values(container: StorageContainer) -> dict[str, Any]:
    return {
        "barcode": container.barcode or f"BOX{container.id:08d}",
        "container": " › ".join(c.name for c in container.path()),
        "site": container.site.name,
    }


def get_printer(printer_id: int) -> Printer:
    printer = db.session.get(Printer, printer_id)
    if printer is None or not printer.is_active:
        raise InvalidInput(f"no active printer with id {printer_id}", field="printer_id")
    return printer


def create_print_job(
    records: Iterable[dict[str, Any]],
    *,
    template: str,
    actor: Actor,
    printer: Printer | None,
    source: str,
    copies: int = 1,
    reprint_reason: str | None = None,
    extra: dict[str, Any] | None = None,
) -> PrintJob:
    """Render labels and record the job; a printer job is sent once the caller commits.

    Without a printer the job renders a PDF to download. Labels printed before with the same
    template need a ``reprint_reason`` (the reprint history is part of the record).
    """
    rows = [dict(r, **(extra or {})) for r in records]
    if not rows:
        raise InvalidInput("nothing to print", field="specimen_ids")
    if len(rows) > MAX_LABELS:
        raise InvalidInput(f"at most {MAX_LABELS} labels per job", field="specimen_ids")
    try:
        layout = load_template(template)
    except LabelError as error:
        raise InvalidInput(str(error), field="template") from None
    barcodes = [r["barcode"] for r in rows]
    if _printed_before(barcodes, template) and not reprint_reason:
        raise InvalidInput("these labels were printed before: give a reprint_reason", field="reprint_reason")
    as_zpl = printer is not None and printer.takes_zpl
    try:
        if as_zpl:
            payload = render_zpl(layout, rows, dpi=printer.dpi, copies=copies, font=printer.zpl_font)
        else:
            payload = render_pdf(layout, [r for r in rows for _ in range(copies)])
    except LabelError as error:
        raise label_refused(error) from None
    job = PrintJob(
        actor_id=actor.id,
        printer=printer,
        template=template,
        format="zpl" if as_zpl else "pdf",
        copies=copies,
        label_count=len(rows),
        barcodes={"items": barcodes},
        reprint_reason=reprint_reason,
        status=PrintJobStatus.READY
        if printer is None or printer.kind is PrinterKind.PDF
        else PrintJobStatus.PENDING,
        payload=payload,
        payload_sha256=hashlib.sha256(payload).hexdigest(),
        source=source,
    )
    db.session.add(job)
    db.session.flush()
    db.session.execute(
        sa.insert(PrintJobItem),
        [{"job_id": job.id, "barcode": code, "template": template} for code in barcodes],
    )
    if job.status is PrintJobStatus.PENDING:
        job_id = job.id
        # Only a committed job reaches the printer: a rolled-back aliquot gets no label.
        after_commit(lambda: dispatch_print_job(job_id))
    return job


def _printed_before(barcodes: list[str], template: str) -> bool:
    """Whether any of *barcodes* had a label of *template* printed (or downloaded) before."""
    for start in range(0, len(barcodes), 500):
        hit = db.session.scalar(
            sa.select(PrintJobItem.id)
            .join(PrintJob, PrintJob.id == PrintJobItem.job_id)
            .where(
                PrintJobItem.template == template,
                PrintJobItem.barcode.in_(barcodes[start : start + 500]),
                PrintJob.status != PrintJobStatus.FAILED,
            )
            .limit(1)
        )
        if hit is not None:
            return True
    return False


def print_specimens(specimens: list[Specimen], **options: Any) -> PrintJob:
    actor = options["actor"]
    for s in specimens:
        check_site(actor, s.site_id, field="specimen_ids")
    check_fits(options["template"], SPECIMEN_FIELDS, "a specimen")
    return create_print_job((specimen_values(s) for s in specimens), **options)


#: most labels one job of an import prints (a bigger import prints box by box)
MAX_IMPORT_LABELS = 20_000


def print_import(import_id: int, **options: Any) -> PrintJob:
    """Labels for every specimen a succeeded bulk import created, in barcode order."""
    job = db.session.get(ImportJob, import_id)
    actor = options["actor"]
    if job is None or (not actor.is_admin and job.created_by_id != actor.id):
        raise InvalidInput(f"no import {import_id} of yours", field="import_id")
    if job.status is not ImportStatus.SUCCEEDED:
        raise InvalidState(
            f"import {import_id} is {job.status.value}: only a succeeded import has specimens to label",
            field="import_id",
        )
    created = sa.select(CustodyEvent.specimen_id).where(
        CustodyEvent.seq == 1, CustodyEvent.details["import"].as_integer() == import_id
    )
    specimens = list(
        db.session.scalars(
            sa.select(Specimen)
            .where(Specimen.id.in_(created))
            .order_by(Specimen.barcode)
            .limit(MAX_IMPORT_LABELS + 1)
        )
    )
    if len(specimens) > MAX_IMPORT_LABELS:
        raise InvalidInput(
            f"import {import_id} created more than {MAX_IMPORT_LABELS:,} specimens: print them box by box",
            field="import_id",
        )
    if not specimens:
        raise InvalidInput(f"import {import_id} created no specimen", field="import_id")
    return print_specimens(specimens, **options)


SHIPPING_TEMPLATE = "shipping-box"


def print_request(request: Any, **options: Any) -> PrintJob:
    """A request's allocated tubes in pick-list order, or its parcel's shipping label."""
    if options["template"] == SHIPPING_TEMPLATE:
        # The label of the parcel leaving from the actor's site: its destination and count.

        parcels = visible_shipments(request, options["actor"])
        if len(parcels) == 1:
            [shipment] = parcels
            destination, tubes = shipment.destination, len(shipment.allocations)
            origin = f" from {shipment.site.code}"
        else:
            destination = f"{request.requester.full_name}"
            tubes, origin = len(pick_list(request, options["actor"])), ""
        record = {
            "barcode": request.code,
            "destination": destination,
            "text": f"{request.title} — {tubes} tubes{origin}",
        }
        return create_print_job([record], **options)
    barcodes = [item["barcode"] for item in pick_list(request, options["actor"])]
    if not barcodes:
        raise InvalidInput(f"{request.code} has no allocated tube to label", field="request_id")
    tubes = {
        s.barcode: s for s in db.session.scalars(sa.select(Specimen).where(Specimen.barcode.in_(barcodes)))
    }
    return print_specimens([tubes[b] for b in barcodes], **options)


def print_box(box: StorageContainer, *, contents: bool, **options: Any) -> PrintJob:
    """The box's own label, or a label for every specimen in it (in position order)."""
    check_site(options["actor"], box.site_id, field="container_id")
    if not contents:
        check_fits(options["template"], CONTAINER_FIELDS, "a box")
        return create_print_job([container_values(box)], **options)
    specimens = db.session.scalars(
        sa.select(Specimen)
        .where(Specimen.container_id == box.id)
        .order_by(Specimen.pos_row, Specimen.pos_col)
    ).all()
    if not specimens:
        raise InvalidInput(f"{box.name} holds no specimens", field="container_id")
    return print_specimens(list(specimens), **options)


def dispatch_print_job(job_id: int) -> None:
    """Queue the send (a Celery task; in-process on the embedded default), by the name
    ``labels.tasks`` registers it under: the task module depends on this one, not the
    reverse."""
    celery.tasks[SEND_TASK].delay(job_id)


def send_job(job: PrintJob) -> bool:
    """Send a job's stored payload to its printer and record the outcome on the job.

    Returns whether the printer took it and reports no fault. A failure is not raised: it is
    recorded (status ``failed``, attempts, last error) so that the caller can commit it and
    retry. A Zebra asked for its status (``~HS``) that reports paper out, ribbon out, an open
    head or a pause fails the job: before sending, the job is kept back; after, the printer
    holds it (``sent_at`` is set) and a retry only asks again, so that nothing prints twice.
    """
    if job.status is PrintJobStatus.SENT:
        return True
    printer = job.printer
    if printer is None or printer.kind is PrinterKind.PDF:
        raise InvalidState("this job is a PDF to download, not a printer job")
    job.attempts += 1
    try:
        if printer.kind is PrinterKind.ZPL_TCP:
            ask = printer.asks_status
            if job.sent_at is not None and ask:  # delivered before: held at the printer
                status = query_status(printer.address or "")
            else:
                status = send_tcp(printer.address or "", job.payload, ask_status=ask)
            if status is not None:
                _record_status(printer, status.summary)
        else:
            job.device_job_id = send_cups(
                printer.cups_queue,
                job.payload,
                raw=job.format == "zpl",
                server=printer.cups_server,
                title=f"print job {job.id}",
            )
    except PrinterFault as fault:
        _record_status(printer, fault.summary)
        if fault.delivered and job.sent_at is None:
            job.sent_at = utcnow()
        return _failed(job, str(fault))
    except PrinterError as error:
        if printer.kind is PrinterKind.ZPL_TCP:
            _record_status(printer, "not reachable")
        return _failed(job, str(error))
    job.status = PrintJobStatus.SENT
    job.sent_at = job.sent_at or utcnow()
    job.last_error = None
    db.session.flush()
    return True


def _failed(job: PrintJob, error: str) -> bool:
    job.status = PrintJobStatus.FAILED
    job.last_error = error
    db.session.flush()
    return False


def _record_status(printer: Printer, summary: str) -> None:
    printer.last_status = summary[:128]
    printer.last_status_at = utcnow()


def visible_printer(printer_id: int, actor: Actor) -> Printer:
    """A printer of one of *actor*'s sites, or shared by all (no site); another site's
    printer is not found."""
    printer = db.session.get(Printer, printer_id)
    sites = visible_site_ids(actor)
    if printer is None or (
        sites is not None and printer.site_id is not None and printer.site_id not in sites
    ):
        raise NotFound(f"no printer {printer_id}")
    return printer


def test_print(printer: Printer, *, actor: Actor) -> PrintJob:
    """One test label on *printer* with its default template (else the 2D cryovial), made
    of sample values that name no specimen, under a barcode of its own each time: what a
    technician prints to check the ribbon, the alignment and the scanner."""
    if not printer.is_active:
        raise InvalidState(f"{printer.name} is inactive", field="printer_id")
    now = utcnow()
    sample = {
        "barcode": f"TEST{printer.id}-{secrets.token_hex(3).upper()}",
        "participant_code": "TEST",
        "material_type": "TEST LABEL",
        "collection_date": now.date().isoformat(),
        "volume": "1 mL",
        "sprec_code": "",
        "label": printer.name[:24],
        "site": "test print",
    }
    return create_print_job(
        [sample],
        template=printer.default_template or "cryovial-2d",
        actor=actor,
        printer=printer,
        source="test print",
    )


def check_printer(printer: Printer) -> Printer:
    """Ask a ZPL printer on the network for its status now and record it."""
    if printer.kind is not PrinterKind.ZPL_TCP:
        raise InvalidState(
            f"{printer.name} is a {printer.kind.value} printer: only a ZPL "
            "printer on the network answers a status query",
            field="printer_id",
        )
    try:
        _record_status(printer, query_status(printer.address or "").summary)
    except PrinterFault as fault:
        _record_status(printer, fault.summary)
    except PrinterError:
        _record_status(printer, "not reachable")
    db.session.flush()
    return printer


def job_clause(actor: Actor) -> Any:
    """The print jobs *actor* may see: their own; for a manager also those made at their
    sites that label nothing of another site's; everything for administrators."""
    if actor.is_admin:
        return sa.true()
    own = PrintJob.actor_id == actor.id
    if actor.role is not Role.MANAGER:
        return own
    sites = sorted(actor.site_ids) or [-1]
    foreign_tube = (
        sa.select(PrintJobItem.id)
        .join(Specimen, Specimen.barcode == PrintJobItem.barcode)
        .where(PrintJobItem.job_id == PrintJob.id, Specimen.site_id.not_in(sites))
    )
    foreign_box = (
        sa.select(PrintJobItem.id)
        .join(StorageContainer, StorageContainer.barcode == PrintJobItem.barcode)
        .where(PrintJobItem.job_id == PrintJob.id, StorageContainer.site_id.not_in(sites))
    )
    made_here = PrintJob.actor_id.in_(sa.select(user_sites.c.user_id).where(user_sites.c.site_id.in_(sites)))
    return sa.or_(own, sa.and_(made_here, ~sa.exists(foreign_tube), ~sa.exists(foreign_box)))


def get_job(job_id: int, *, actor: Actor) -> PrintJob:
    job = db.session.scalar(sa.select(PrintJob).where(PrintJob.id == job_id, job_clause(actor)))
    if job is None:
        raise NotFound(f"no print job {job_id}")
    return job


def list_jobs(*, actor: Actor, status: PrintJobStatus | None = None, limit: int = 50) -> list[PrintJob]:
    stmt = sa.select(PrintJob).where(job_clause(actor)).order_by(PrintJob.id.desc()).limit(limit)
    if status is not None:
        stmt = stmt.where(PrintJob.status == status)
    return list(db.session.scalars(stmt))
