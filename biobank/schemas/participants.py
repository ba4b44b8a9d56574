"""Participant schemas; PHI is a separate nested object shown only to roles that may see it."""

from __future__ import annotations

from marshmallow import fields, validate

from biobank.models.vocab import Sex
from biobank.schemas.base import BaseSchema, ListArgsSchema, code_field, describe, enum_field


class PHISchema(BaseSchema):
    given_name = fields.String(allow_none=True, validate=validate.Length(max=128))
    family_name = fields.String(allow_none=True, validate=validate.Length(max=128))
    medical_record_number = fields.String(allow_none=True, validate=validate.Length(max=64))
    birth_date = fields.Date(allow_none=True)
    contact = fields.String(allow_none=True)


class ParticipantSchema(BaseSchema):
    """Pseudonymous view, safe for every role."""

    id = fields.Integer(dump_only=True)
    code = fields.String(metadata=describe("Pseudonymous participant code"))
    study_id = fields.Integer()
    site_id = fields.Integer()
    sex = enum_field(Sex, "Sex")
    birth_year = fields.Integer(allow_none=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class ParticipantWithPHISchema(ParticipantSchema):
    """Adds the identifying record; never used for researchers."""

    phi = fields.Nested(PHISchema, allow_none=True)


class ParticipantCreateSchema(BaseSchema):
    code = code_field("Pseudonymous code; generated when omitted", required=False)
    study_id = fields.Integer(required=True)
    site_id = fields.Integer(required=True)
    sex = enum_field(Sex, "Sex", load_default=Sex.UNKNOWN)
    birth_year = fields.Integer(allow_none=True, validate=validate.Range(min=1900, max=2100))
    phi = fields.Nested(PHISchema, allow_none=True, metadata=describe("Identifying data"))


class ParticipantUpdateSchema(BaseSchema):
    partial_by_default = True

    site_id = fields.Integer()
    sex = enum_field(Sex, "Sex")
    birth_year = fields.Integer(allow_none=True, validate=validate.Range(min=1900, max=2100))
    phi = fields.Nested(PHISchema, allow_none=True)


class ParticipantQueryArgsSchema(ListArgsSchema):
    study_id = fields.Integer()
    site_id = fields.Integer()
