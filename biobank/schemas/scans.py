"""Scan schemas."""

from __future__ import annotations

from marshmallow import fields, validate

from biobank.models import ScanAction
from biobank.schemas.base import AwareDateTime, BaseSchema, describe, enum_field, not_in_future
from biobank.schemas.custody import CustodyEventSchema
from biobank.schemas.specimens import SpecimenSchema


class LocationSchema(BaseSchema):
    container_id = fields.Integer(metadata=describe("Box (or bag) id"))
    container_barcode = fields.String(
        validate=validate.Length(max=32), metadata=describe("Or the box's barcode, as scanned")
    )
    position = fields.String(validate=validate.Length(max=8), metadata=describe("Position label such as B3"))
    pos_row = fields.Integer(validate=validate.Range(min=1, max=100))
    pos_col = fields.Integer(validate=validate.Range(min=1, max=100))


class ScanCreateSchema(BaseSchema):
    barcode = fields.String(
        required=True,
        validate=validate.Length(min=1, max=64),
        metadata=describe("Code as read by the scanner"),
    )
    action = enum_field(ScanAction, "What is being done with the tube", required=True)
    client_event_id = fields.String(
        required=True,
        validate=validate.Length(min=8, max=64),
        metadata=describe("Unique id made by the scanner client; a retry sends the same id"),
    )
    scanned_at = AwareDateTime(
        required=True, validate=not_in_future, metadata=describe("Scanner clock, with timezone")
    )
    location = fields.Nested(LocationSchema, metadata=describe("For store, move, check in"))
    condition = fields.String(
        validate=validate.Length(max=32),
        metadata=describe("For receive: acceptable, damaged, leaking, thawed, unlabelled, insufficient"),
    )
    destination_site_id = fields.Integer(metadata=describe("For ship"))
    note = fields.String(validate=validate.Length(max=1000))


class ScanBatchSchema(BaseSchema):
    scans = fields.List(
        fields.Nested(ScanCreateSchema), required=True, validate=validate.Length(min=1, max=1000)
    )


class ScanResultSchema(BaseSchema):
    scan_id = fields.Integer()
    client_event_id = fields.String()
    action = fields.String()
    warnings = fields.List(fields.String())
    allowed_actions = fields.List(fields.String(), metadata=describe("What may follow"))
    specimen = fields.Nested(SpecimenSchema)
    event = fields.Nested(CustodyEventSchema)


class ScanCardSchema(BaseSchema):
    specimen = fields.Nested(SpecimenSchema)
    allowed_actions = fields.List(fields.String())
    warnings = fields.List(fields.String())
