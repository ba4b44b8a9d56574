"""Site schemas."""

from __future__ import annotations

from marshmallow import fields, validate

from biobank.barcodes import SITE_CODE_RULE
from biobank.schemas.base import BaseSchema, ListArgsSchema, describe


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
    code = fields.String(
        required=True,
        validate=[
            validate.Length(min=2, max=8),
            validate.Regexp(r"^[A-Za-z][A-Za-z0-9]*$", error=SITE_CODE_RULE),
        ],
        metadata=describe(
            "Site code that starts every barcode issued there: 2 to 8 letters "
            "and digits, starting with a letter (stored in upper case)"
        ),
    )
    name = fields.String(required=True, validate=validate.Length(min=1, max=255))
    city = fields.String(allow_none=True, validate=validate.Length(max=128))
    country = fields.String(
        allow_none=True,
        validate=validate.Regexp(r"^[A-Z]{2}$", error="use an ISO 3166-1 alpha-2 code such as FR"),
        metadata=describe("ISO 3166-1 alpha-2 country code"),
    )
    is_central = fields.Boolean(load_default=False)


class SiteUpdateSchema(SiteCreateSchema):
    partial_by_default = True


class SiteQueryArgsSchema(ListArgsSchema):
    pass
