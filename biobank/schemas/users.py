"""User account schemas: administrators manage accounts; everyone changes their own password."""

from __future__ import annotations

from marshmallow import fields, validate

from biobank.models.vocab import Role
from biobank.schemas.base import BaseSchema, describe, enum_field


class UserSchema(BaseSchema):
    id = fields.Integer()
    username = fields.String()
    full_name = fields.String()
    email = fields.String(allow_none=True)
    role = fields.Function(lambda u: u.role.value)
    sites = fields.Function(
        lambda u: sorted(s.code for s in u.sites),
        metadata=describe("Codes of the sites whose data the user works on"),
    )
    is_active = fields.Boolean(metadata=describe("False while the account is locked"))
    locked_until = fields.DateTime(
        allow_none=True, metadata=describe("Set while sign-ins are refused after too many wrong passwords")
    )
    last_login_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()


class UserUpdateSchema(BaseSchema):
    role = enum_field(Role, "admin, manager, technician or researcher")
    full_name = fields.String(validate=validate.Length(min=1, max=128))
    email = fields.Email(allow_none=True, validate=validate.Length(max=255))
    sites = fields.List(
        fields.String(validate=validate.Length(min=1, max=16)),
        attribute="site_codes",
        validate=validate.Length(max=500),
        metadata=describe("Site codes; replaces the user's sites"),
    )


class UserCreateSchema(UserUpdateSchema):
    username = fields.String(
        required=True,
        validate=[
            validate.Length(min=2, max=64),
            validate.Regexp(
                r"^[a-z][a-z0-9._-]*$", error="lower-case letters, digits, '.', '_' and '-', from a letter"
            ),
        ],
    )
    role = enum_field(Role, "admin, manager, technician or researcher", required=True)
    full_name = fields.String(required=True, validate=validate.Length(min=1, max=128))


class UserCreatedSchema(UserSchema):
    temporary_password = fields.String(
        metadata=describe("Shown in this answer only: the owner signs in with it and chooses their own")
    )


class LockSchema(BaseSchema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=1000))


class PasswordResetSchema(BaseSchema):
    temporary_password = fields.String(
        metadata=describe("Shown in this answer only; the account's browsers were signed out")
    )


class PasswordChangeSchema(BaseSchema):
    current_password = fields.String(required=True, validate=validate.Length(max=1024))
    password = fields.String(
        required=True,
        validate=validate.Length(min=8, max=1024),
        metadata=describe("The new password: at least 8 characters"),
    )
