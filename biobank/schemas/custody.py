"""Custody event schemas."""

from __future__ import annotations

from marshmallow import fields, validate

from biobank.models.vocab import CustodyEventType
from biobank.schemas.base import BaseSchema, describe, enum_field


class CustodyEventSchema(BaseSchema):
    id = fields.Integer()
    seq = fields.Integer()
    event_type = enum_field(CustodyEventType, "What happened")
    occurred_at = fields.DateTime()
    recorded_at = fields.DateTime()
    actor = fields.String(attribute="actor_name")
    from_location = fields.String(allow_none=True)
    to_location = fields.String(allow_none=True)
    details = fields.Dict()
    client_event_id = fields.String(allow_none=True)
    prev_hash = fields.String(allow_none=True)
    hash = fields.String()


class TimelineEntrySchema(BaseSchema):
    at = fields.DateTime()
    kind = fields.String(
        metadata={
            "description": "custody, location, consent or audit",
            "enum": ["custody", "location", "consent", "audit"],
        }
    )
    actor = fields.String()
    summary = fields.String()
    details = fields.Dict()


class ChainStatusSchema(BaseSchema):
    intact = fields.Boolean()
    events = fields.Integer()
    problem = fields.String(allow_none=True)


class TimelineSchema(BaseSchema):
    barcode = fields.String()
    chain = fields.Nested(ChainStatusSchema)
    entries = fields.List(fields.Nested(TimelineEntrySchema))


class CorrectionCreateSchema(BaseSchema):
    event_id = fields.Integer(
        required=True,
        metadata=describe("The custody event recorded by mistake (the latest one still in force)"),
    )
    reason = fields.String(
        required=True,
        validate=validate.Length(min=1, max=1000),
        metadata=describe("Why it is corrected; kept on the ledger"),
    )
