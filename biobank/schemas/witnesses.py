"""Witness schemas: custody checkpoints kept for other instances of the network."""

from __future__ import annotations

from marshmallow import fields, validate

from biobank.schemas.base import INT64_MAX, BaseSchema, describe

_HEX64 = validate.Regexp(r"^[0-9a-f]{64}$", error="64 lower-case hexadecimal digits")
_HEX16 = validate.Regexp(r"^[0-9a-f]{16}$", error="16 lower-case hexadecimal digits")
_COUNT = validate.Range(min=0, max=INT64_MAX)


class CheckpointRecordSchema(BaseSchema):
    """A custody checkpoint as its instance signed it (its heads summary, not the chains)."""

    id = fields.Integer(required=True, validate=validate.Range(min=1, max=INT64_MAX))
    kind = fields.String(required=True, validate=validate.OneOf(["checkpoint", "seal"]))
    created_at = fields.String(required=True, validate=validate.Length(min=10, max=64))
    max_event_id = fields.Integer(required=True, validate=_COUNT)
    specimen_count = fields.Integer(required=True, validate=_COUNT)
    event_count = fields.Integer(required=True, validate=_COUNT)
    root = fields.String(allow_none=True, load_default=None, validate=_HEX64)
    prev_hash = fields.String(allow_none=True, load_default=None, validate=_HEX64)
    key_id = fields.String(allow_none=True, load_default=None, validate=_HEX16)
    hash = fields.String(
        required=True, validate=_HEX64, metadata=describe("The instance's signature of the checkpoint")
    )


class WitnessRequestSchema(BaseSchema):
    instance = fields.String(
        required=True,
        validate=validate.Length(min=1, max=128),
        metadata=describe("Name of the instance sending its checkpoint"),
    )
    checkpoint = fields.Nested(CheckpointRecordSchema, required=True)


class WitnessArgsSchema(BaseSchema):
    instance = fields.String(required=True, validate=validate.Length(min=1, max=128))


class WitnessReceiptSchema(BaseSchema):
    instance = fields.String()
    checkpoint = fields.Nested(CheckpointRecordSchema)
    witness = fields.String(metadata=describe("This instance's name"))
    received_at = fields.String()
    countersignature = fields.String(
        metadata=describe(
            "HMAC-SHA256 under this instance's custody key of the checkpoint, the sender's name "
            "and the time received"
        )
    )
    key_id = fields.String(metadata=describe("Id of this instance's custody key"))
    countersignature_ok = fields.Boolean(
        metadata=describe("Whether the countersignature still holds (a row edited here does not)")
    )
