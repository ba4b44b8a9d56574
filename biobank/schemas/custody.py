"""Custody event schemas."""

from __future__ import annotations

from marshmallow import fields

from biobank.models.vocab import CustodyEventType
from biobank.schemas.base import BaseSchema, enum_field


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
