"""Study and consent tier schemas."""

from __future__ import annotations

from marshmallow import fields, validate

from biobank.models.vocab import ConsentScope
from biobank.schemas.base import BaseSchema, ListArgsSchema, code_field, enum_field


class ConsentTierSchema(BaseSchema):
    id = fields.Integer(dump_only=True)
    code = fields.String()
    scope = enum_field(ConsentScope, "Coded consent scope")
    duo_code = fields.Function(lambda t: t.scope.duo, dump_only=True)
    statement = fields.String()
    position = fields.Integer(dump_only=True)


class ConsentTierCreateSchema(BaseSchema):
    code = code_field("Tier code, unique within the study")
    scope = enum_field(ConsentScope, "Coded consent scope", required=True)
    statement = fields.String(required=True, validate=validate.Length(min=1))


class StudySchema(BaseSchema):
    id = fields.Integer(dump_only=True)
    code = fields.String()
    title = fields.String()
    description = fields.String(allow_none=True)
    principal_investigator = fields.String(allow_none=True)
    ethics_reference = fields.String(allow_none=True)
    consent_tiers = fields.List(fields.Nested(ConsentTierSchema), dump_only=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class StudyCreateSchema(BaseSchema):
    code = code_field("Study code")
    title = fields.String(required=True, validate=validate.Length(min=1, max=255))
    description = fields.String(allow_none=True)
    principal_investigator = fields.String(allow_none=True, validate=validate.Length(max=255))
    ethics_reference = fields.String(allow_none=True, validate=validate.Length(max=64))
    consent_tiers = fields.List(fields.Nested(ConsentTierCreateSchema), load_default=list)


class StudyUpdateSchema(BaseSchema):
    partial_by_default = True

    title = fields.String(validate=validate.Length(min=1, max=255))
    description = fields.String(allow_none=True)
    principal_investigator = fields.String(allow_none=True, validate=validate.Length(max=255))
    ethics_reference = fields.String(allow_none=True, validate=validate.Length(max=64))


class StudyQueryArgsSchema(ListArgsSchema):
    pass
