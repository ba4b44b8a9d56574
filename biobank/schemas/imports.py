"""Bulk import schemas."""

from __future__ import annotations

from marshmallow import fields, validate

from biobank.schemas.base import BaseSchema, describe


class ImportUploadSchema(BaseSchema):
    template = fields.String(
        load_default="master",
        validate=validate.OneOf(["master", "participants", "cases", "specimens", "openspecimen"]),
        metadata=describe("Which template the file follows (openspecimen: an OpenSpecimen query export)"),
    )
    study_code = fields.String(
        validate=validate.Length(min=1, max=32),
        metadata=describe("openspecimen: the study the specimens join"),
    )
    site_code = fields.String(
        validate=validate.Length(min=1, max=16),
        metadata=describe("openspecimen: the site of its participants (default: the exported site)"),
    )
    dry_run = fields.Boolean(
        load_default=False, metadata=describe("Check every row and report, write nothing")
    )
    delimiter = fields.String(
        load_default=",", validate=validate.Length(equal=1), metadata=describe("CSV column separator")
    )


class ImportFileSchema(BaseSchema):
    file = fields.Raw(
        required=True,
        metadata={"type": "string", "format": "binary", "description": "CSV (UTF-8) or XLSX file"},
    )


class ImportJobSchema(BaseSchema):
    id = fields.Integer()
    template = fields.String()
    filename = fields.String()
    sha256 = fields.String()
    size_bytes = fields.Integer()
    dry_run = fields.Boolean()
    status = fields.Function(
        lambda j: j.status.value,
        metadata=describe(
            "queued, running, succeeded, failed (nothing written) or validated (dry run passed)"
        ),
    )
    rows_read = fields.Integer()
    error_count = fields.Integer()
    created = fields.Dict(metadata=describe("Rows written per table"))
    progress = fields.Dict(
        allow_none=True, metadata=describe("While a worker runs the job: rows checked so far")
    )
    created_by = fields.String(attribute="created_by_name")
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)
    problems_url = fields.String(metadata=describe("Every problem as CSV: line, column, message"))


class ImportProblemSchema(BaseSchema):
    line = fields.Integer(metadata=describe("Line (CSV) or row (XLSX); 0 for the whole file"))
    column = fields.String(allow_none=True)
    message = fields.String()


class ImportColumnSchema(BaseSchema):
    name = fields.String()
    required = fields.Boolean()
    description = fields.String(attribute="help")
    allowed = fields.Function(lambda c: [m.value for m in c.enum] if c.enum else None)


class ImportTemplateSchema(BaseSchema):
    name = fields.String()
    title = fields.String()
    columns = fields.List(fields.Nested(ImportColumnSchema))
    csv_url = fields.String()
    xlsx_url = fields.String()
