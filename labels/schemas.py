"""Printer and print job schemas."""

from __future__ import annotations

import re

from marshmallow import ValidationError, fields, validate, validates_schema

from biobank.schemas.base import BaseSchema, describe, enum_field
from labels.models import PrinterKind, PrintJobStatus
from labels.render.zpl import PRINTER_FONT

_HOST = r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})"
_PORT = r"(?::(?:6553[0-5]|655[0-2]\d|65[0-4]\d{2}|6[0-4]\d{3}|[1-5]\d{4}|[1-9]\d{0,3}))?"
#: a ZPL printer on the network: host, optionally :port
TCP_ADDRESS = re.compile(_HOST + _PORT)
#: a CUPS queue: [zpl:]queue[@host[:port]]; nothing that ``lp`` could take for an option
CUPS_ADDRESS = re.compile(r"(?:zpl:)?[A-Za-z0-9_][A-Za-z0-9_.-]{0,126}(?:@" + _HOST + _PORT + ")?")


def _printer_font(value: str) -> None:
    if not PRINTER_FONT.fullmatch(value):
        raise ValidationError("give a font stored on the printer: drive and TrueType file, e.g. E:ANMDS.TTF")


class PrinterSchema(BaseSchema):
    id = fields.Integer(dump_only=True)
    name = fields.String()
    kind = enum_field(PrinterKind, "zpl_tcp, cups or pdf")
    address = fields.String(allow_none=True)
    dpi = fields.Integer()
    default_template = fields.String(allow_none=True)
    site_id = fields.Integer(allow_none=True)
    is_active = fields.Boolean()
    zpl_font = fields.String(allow_none=True)
    asks_status = fields.Boolean()
    last_status = fields.String(
        allow_none=True, metadata=describe("What the printer last reported (~HS): ready, or its faults")
    )
    last_status_at = fields.DateTime(allow_none=True)


class PrinterCreateSchema(BaseSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=64))
    kind = enum_field(PrinterKind, "zpl_tcp, cups or pdf", required=True)
    address = fields.String(
        allow_none=True,
        validate=validate.Length(max=128),
        metadata=describe(
            "host:port for zpl_tcp (port 9100 by default); the queue for cups (prefix `zpl:` for "
            "a raw ZPL queue; suffix `@host:port` for a CUPS server other than the local one)"
        ),
    )
    dpi = fields.Integer(load_default=203, validate=validate.OneOf([203, 300, 600]))
    default_template = fields.String(allow_none=True)
    site_id = fields.Integer(allow_none=True)
    zpl_font = fields.String(
        allow_none=True,
        validate=_printer_font,
        metadata=describe(
            "For ZPL printers: a TrueType font stored on the printer for text its built-in font "
            "cannot print (Chinese site names…), e.g. E:ANMDS.TTF; without it such text is "
            "refused"
        ),
    )
    asks_status = fields.Boolean(
        load_default=True,
        metadata=describe(
            "For zpl_tcp: ask the printer's status (~HS) with each job, so that paper out, "
            "ribbon out, an open head or a pause is the job's error"
        ),
    )

    @validates_schema
    def _address(self, data: dict, **_kwargs: object) -> None:
        kind, address = data["kind"], data.get("address")
        if kind is not PrinterKind.PDF and not address:
            raise ValidationError("a zpl_tcp or cups printer needs an address", "address")
        if kind is PrinterKind.ZPL_TCP and not TCP_ADDRESS.fullmatch(address):
            raise ValidationError("give host or host:port (port 1–65535), e.g. 10.2.0.15:9100", "address")
        if kind is PrinterKind.CUPS and not CUPS_ADDRESS.fullmatch(address):
            raise ValidationError(
                "give a CUPS queue: queue, zpl:queue for raw ZPL, optionally @host or "
                "@host:port of the CUPS server (letters, digits, '.', '_', '-'; not starting "
                "with '-')",
                "address",
            )


class PrintJobCreateSchema(BaseSchema):
    template = fields.String(required=True, metadata=describe("Template name, e.g. cryovial-2d"))
    printer_id = fields.Integer(allow_none=True, metadata=describe("Omit for a PDF to download"))
    specimen_ids = fields.List(fields.Integer(), metadata=describe("Label these specimens"))
    container_id = fields.Integer(metadata=describe("A box: its own label, or its contents"))
    box_contents = fields.Boolean(
        load_default=False, metadata=describe("With container_id: a label for every specimen in the box")
    )
    import_id = fields.Integer(
        metadata=describe("A bulk import that succeeded: a label for every specimen it created")
    )
    request_id = fields.Integer(
        metadata=describe(
            "A sample request: its allocated tubes' labels, or with the shipping-box template "
            "the parcel's label (destination, request code)"
        )
    )
    copies = fields.Integer(load_default=1, validate=validate.Range(min=1, max=20))
    reprint_reason = fields.String(allow_none=True, validate=validate.Length(max=500))

    @validates_schema
    def _what(self, data: dict, **_kwargs: object) -> None:
        given = [k for k in ("specimen_ids", "container_id", "import_id", "request_id") if data.get(k)]
        if len(given) != 1:
            raise ValidationError(
                "give one of specimen_ids, container_id, import_id or request_id", "specimen_ids"
            )


class PrintJobSchema(BaseSchema):
    id = fields.Integer()
    created_at = fields.DateTime()
    actor = fields.Function(lambda j: j.actor.username)
    printer_id = fields.Integer(allow_none=True)
    template = fields.String()
    format = fields.String()
    copies = fields.Integer()
    label_count = fields.Integer()
    barcodes = fields.Function(lambda j: j.barcodes["items"])
    reprint_reason = fields.String(allow_none=True)
    status = enum_field(PrintJobStatus, "pending, sent, failed or ready (PDF)")
    attempts = fields.Integer()
    last_error = fields.String(allow_none=True)
    sent_at = fields.DateTime(allow_none=True)
    device_job_id = fields.String(
        allow_none=True,
        metadata=describe("The job's id at the printer's spooler (CUPS request id), once handed over"),
    )
    payload_sha256 = fields.String()
    document_url = fields.Function(
        lambda j: f"/api/v1/print-jobs/{j.id}/document" if j.format == "pdf" else None
    )


class PrintJobQueryArgsSchema(BaseSchema):
    status = enum_field(PrintJobStatus, "Only jobs in this state")
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))


class PreviewArgsSchema(BaseSchema):
    template = fields.String(required=True)
    specimen_id = fields.Integer(required=True)
    format = fields.String(load_default="png", validate=validate.OneOf(["png", "svg"]))
