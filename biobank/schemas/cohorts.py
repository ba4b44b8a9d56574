"""Cohort, snapshot and manifest-export schemas."""

from __future__ import annotations

from marshmallow import fields, validate

from biobank.auth import current_actor
from biobank.schemas.base import BaseSchema, JsonObject, describe
from biobank.schemas.query import FILTERS_TEXT
from biobank.services.query import suppress

LEVELS = ["participants", "cases", "lesions", "specimens", "aliquots"]


class CohortCreateSchema(BaseSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=128))
    description = fields.String(allow_none=True, validate=validate.Length(max=10_000))
    level = fields.String(load_default="cases", validate=validate.OneOf(LEVELS))
    filters = fields.Raw(allow_none=True, metadata=describe(FILTERS_TEXT))


class CohortUpdateSchema(CohortCreateSchema):
    partial_by_default = True


class SnapshotSchema(BaseSchema):
    id = fields.Integer()
    cohort_id = fields.Integer()
    level = fields.String()
    filters = fields.Raw()
    data_release = fields.String(metadata=describe("Database state at the freeze"))
    member_count = fields.Method("_members")
    object_count = fields.Integer(metadata=describe("Data objects: omics sample columns, images"))
    members_sha256 = fields.String()
    manifest_sha256 = fields.String(
        metadata=describe(
            "HMAC-SHA256, under the custody key key_id names, of every data object and its "
            "manifest row as frozen"
        )
    )
    key_id = fields.String(allow_none=True)
    created_by = fields.String()
    created_at = fields.DateTime()

    def _members(self, snapshot):
        return suppress(snapshot.member_count, current_actor())


class CohortSchema(BaseSchema):
    id = fields.Integer()
    name = fields.String()
    description = fields.String(allow_none=True)
    level = fields.String()
    filters = fields.Raw(allow_none=True)
    owner_id = fields.Integer()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
    snapshots = fields.List(fields.Nested(SnapshotSchema))


class DiffSchema(BaseSchema):
    level = fields.String()
    from_snapshot = fields.Integer()
    to_snapshot = fields.Integer()
    added_count = fields.Raw()
    removed_count = fields.Raw()
    unchanged_count = fields.Raw()
    added = fields.List(fields.String())
    removed = fields.List(fields.String())


class VerifySchema(BaseSchema):
    members_ok = fields.Boolean()
    manifest_ok = fields.Boolean()
    key_id = fields.String(
        allow_none=True,
        metadata=describe("Custody key of the digests (null: plain SHA-256, a snapshot frozen before keys)"),
    )
    content_frozen = fields.Boolean(
        metadata=describe("Whether the snapshot keeps each object's manifest row as frozen")
    )
    problem = fields.String(metadata=describe("Why the digests cannot be checked"))


class ExclusionSchema(BaseSchema):
    participant = fields.String()
    object_kind = fields.String()
    modality = fields.String()
    name = fields.String()
    sha256 = fields.String()
    reason = fields.String()


class ExportSchema(BaseSchema):
    id = fields.Integer()
    snapshot_id = fields.Integer()
    format = fields.String()
    salt_family = fields.String()
    ratios = fields.Raw()
    stratify_by = fields.String(allow_none=True)
    pinned_to_test = fields.Integer()
    manifest_sha256 = fields.String(
        allow_none=True, metadata=describe("SHA-256 of exactly the bytes delivered")
    )
    exclusions = fields.List(
        fields.Nested(ExclusionSchema),
        metadata=describe("Frozen rows left out of this export, with the reason"),
    )
    created_by = fields.String()
    created_at = fields.DateTime()


class ManifestArgsSchema(BaseSchema):
    format = fields.String(load_default="tsv", validate=validate.OneOf(["tsv", "csv", "parquet", "jsonl"]))
    snapshot = fields.Integer(metadata=describe("Snapshot to export (default: the newest)"))
    salt = fields.String(
        required=True,
        validate=validate.Length(min=1, max=128),
        metadata=describe("Salt of the patient hash that decides the splits"),
    )
    salt_family = fields.String(
        validate=validate.Length(min=1, max=128),
        metadata=describe(
            "Exports of one family never move an earlier test patient out of test (default: the salt)"
        ),
    )
    ratios = JsonObject(
        metadata=describe(
            'Split ratios as JSON, e.g. {"train": 0.7, "val": 0.15, "test": 0.15}; '
            "must include train and test and add up to 1"
        )
    )
    stratify_by = fields.String(validate=validate.OneOf(["diagnosis"]))
    keep_test = fields.Boolean(
        load_default=True,
        metadata=describe("Keep earlier test patients in test (otherwise such an export is refused)"),
    )


class MuDataArgsSchema(BaseSchema):
    snapshot = fields.Integer(metadata=describe("Snapshot to export (default: the newest)"))
