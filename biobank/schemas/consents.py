"""Consent response schemas."""

from __future__ import annotations

from marshmallow import fields

from biobank.models.vocab import ConsentDecision, ConsentScope
from biobank.schemas.base import AwareDateTime, BaseSchema, ListArgsSchema, describe, enum_field


class ConsentSchema(BaseSchema):
    id = fields.Integer(dump_only=True)
    participant_id = fields.Integer()
    tier_id = fields.Integer()
    tier_code = fields.Function(lambda c: c.tier.code)
    scope = fields.Function(
        lambda c: c.tier.scope.value,
        metadata=describe("Scope of the tier", enum=[s.value for s in ConsentScope]),
    )
    decision = enum_field(ConsentDecision, "Answer")
    signed_on = fields.Date()
    withdrawn_at = fields.DateTime(allow_none=True)
    granted = fields.Function(lambda c: c.is_granted)
    updated_at = fields.DateTime(dump_only=True)


class ConsentCreateSchema(BaseSchema):
    participant_id = fields.Integer(required=True)
    tier_id = fields.Integer(required=True)
    decision = enum_field(ConsentDecision, "Answer", required=True)
    signed_on = fields.Date(required=True)


class ConsentUpdateSchema(BaseSchema):
    partial_by_default = True

    decision = enum_field(ConsentDecision, "Answer")
    withdraw = fields.Boolean(metadata=describe("Withdraw this consent (final)"))
    withdrawn_at = AwareDateTime(metadata=describe("When it was withdrawn (default: now)"))


class ConsentQueryArgsSchema(ListArgsSchema):
    participant_id = fields.Integer()
