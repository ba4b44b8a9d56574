"""Rack scan schemas."""

from __future__ import annotations

from marshmallow import fields, validate

from biobank.schemas.base import BaseSchema, describe


class RackScanUploadSchema(BaseSchema):
    container_id = fields.Integer(required=True, metadata=describe("The box that was scanned"))


class RackScanFileSchema(BaseSchema):
    file = fields.Raw(
        required=True,
        metadata={"type": "string", "format": "binary", "description": "The scanner's CSV export"},
    )


class RackScanSchema(BaseSchema):
    id = fields.Integer()
    container_id = fields.Integer()
    file_format = fields.String(metadata=describe("fluidx, visionmate or ziath-datapaq"))
    file_sha256 = fields.String()
    rack_barcode = fields.String(allow_none=True)
    status = fields.Function(lambda s: s.status.value)
    created_at = fields.DateTime()
    confirmed_at = fields.DateTime(allow_none=True)
    diff = fields.Dict(
        metadata=describe(
            "orientation, summary counts and, per category (matched, moved, unexpected, unknown, "
            "missing, checked_out, empty, unreadable), the positions and barcodes"
        )
    )


class RackScanConfirmSchema(BaseSchema):
    orientation = fields.String(
        validate=validate.OneOf(["as_scanned", "rotated_180"]),
        metadata=describe("Needed when the rack looks rotated 180°"),
    )


class RackScanResultSchema(BaseSchema):
    moved = fields.Integer()
    marked_missing = fields.Integer()
    orientation = fields.String()
