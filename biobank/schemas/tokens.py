"""API token schemas: a token's secret appears once, in the answer that creates it."""

from __future__ import annotations

from marshmallow import fields, validate

from biobank.schemas.base import BaseSchema, describe


class TokenSchema(BaseSchema):
    id = fields.Integer()
    name = fields.String()
    prefix = fields.String(metadata=describe("First characters of the secret, to tell it apart"))
    created_at = fields.DateTime()
    expires_at = fields.DateTime(allow_none=True)
    last_used_at = fields.DateTime(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)


class TokenCreateSchema(BaseSchema):
    name = fields.String(
        required=True,
        validate=validate.Length(min=1, max=64),
        metadata=describe("What will use it, e.g. 'rack scanner bench 2'"),
    )
    days = fields.Integer(
        load_default=None,
        validate=validate.Range(min=1, max=3650),
        metadata=describe("Expire after this many days; none: no expiry"),
    )


class TokenCreatedSchema(TokenSchema):
    secret = fields.String(metadata=describe("The bearer token: shown only in this answer"))
