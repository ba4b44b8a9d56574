"""Collection event schemas."""

from __future__ import annotations

from marshmallow import fields, validate

from biobank.models.vocab import CollectionProcedure
from biobank.schemas.base import (
    AwareDateTime,
    BaseSchema,
    ListArgsSchema,
    enum_field,
    not_in_future,
)


class CollectionEventSchema(BaseSchema):
    id = fields.Integer(dump_only=True)
    participant_id = fields.Integer()
    case_id = fields.Integer(allow_none=True)
    lesion_id = fields.Integer(allow_none=True)
    site_id = fields.Integer()
    collected_at = fields.DateTime()
    collector = fields.String(allow_none=True)
    procedure = enum_field(CollectionProcedure, "Collection procedure")
    notes = fields.String(allow_none=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class CollectionEventCreateSchema(BaseSchema):
    participant_id = fields.Integer(required=True)
    case_id = fields.Integer(allow_none=True)
    lesion_id = fields.Integer(allow_none=True)
    site_id = fields.Integer(required=True)
    collected_at = AwareDateTime(required=True, validate=not_in_future)
    collector = fields.String(allow_none=True, validate=validate.Length(max=128))
    procedure = enum_field(CollectionProcedure, "Collection procedure", required=True)
    notes = fields.String(allow_none=True)


class CollectionEventUpdateSchema(CollectionEventCreateSchema):
    partial_by_default = True

    class Meta(CollectionEventCreateSchema.Meta):
        exclude = ("participant_id",)


class CollectionEventQueryArgsSchema(ListArgsSchema):
    participant_id = fields.Integer()
