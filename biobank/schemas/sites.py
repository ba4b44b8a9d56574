"""Site schemas."""

from __future__ import annotations

from marshmallow import fields, validate

from biobank.schemas.base import BaseSchema, ListArgsSchema, code_field, describe


class SiteSchema(BaseSchema):
    id = fields.Integer(dump_only=True)
    code = fields.String()
    name = fields.String()
    city = fields.String(allow_none=True)
    country = fields.String(allow_none=True)
    is_central = fields.Boolean()
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class SiteCreateSchema(BaseSchema):
    code = code_field("Short site code used in identifiers", max_len=16)
    name = fields.String(required=True, validate=validate.Length(min=1, max=255))
    city = fields.String(allow_none=True, validate=validate.Length(max=128))
    country = fields.String(allow_none=True, validate=validate.Regexp(
        r"^[A-Z]{2}$", error="use an ISO 3166-1 alpha-2 code such as FR"),
        metadata=describe("ISO 3166-1 alpha-2 country code"))
    is_central = fields.Boolean(load_default=False)


class SiteUpdateSchema(SiteCreateSchema):
    partial_by_default = True


class SiteQueryArgsSchema(ListArgsSchema):
    pass
