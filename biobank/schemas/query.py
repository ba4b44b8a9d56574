"""Cohort query schemas: GET takes the filter as JSON text, POST as a JSON object."""

from __future__ import annotations

from marshmallow import fields, validate

from biobank.schemas.base import BaseSchema, describe

FILTERS_TEXT = (
    'A GDC filter: {"op": "and", "content": [{"op": "=", "content": '
    '{"field": "cases.disease_group", "value": "melanoma"}}]}. '
    "GET /api/v1/query/_mapping lists the fields."
)


class _Paging(BaseSchema):
    size = fields.Integer(
        load_default=100,
        validate=validate.Range(min=0, max=1000),
        metadata=describe("Rows per page (0: counts and facets only)"),
    )
    after = fields.Integer(
        validate=validate.Range(min=0),
        metadata=describe("Keyset cursor: the `next_cursor` of the previous page"),
    )
    format = fields.String(
        load_default="json",
        validate=validate.OneOf(["json", "tsv"]),
        metadata=describe("json: one page; tsv: every matching row, streamed"),
    )


class QueryArgsSchema(_Paging):
    filters = fields.String(metadata=describe(FILTERS_TEXT))
    facets = fields.String(metadata=describe("Comma-separated fields to count values of"))


class QueryBodySchema(_Paging):
    filters = fields.Raw(allow_none=True, metadata=describe(FILTERS_TEXT))
    facets = fields.List(fields.String(), load_default=list, metadata=describe("Fields to count values of"))


class BucketSchema(BaseSchema):
    key = fields.Raw()
    doc_count = fields.Raw(
        metadata=describe(
            'A count; for researchers "<5", a count rounded to 5, or "suppressed" (a second '
            "bucket hidden so that the total does not reveal a hidden one)"
        )
    )


class FacetSchema(BaseSchema):
    buckets = fields.List(fields.Nested(BucketSchema))


class QueryResultSchema(BaseSchema):
    level = fields.String()
    total = fields.Raw(metadata=describe('Matching rows; "<5" for researchers when 1 to 4'))
    hits = fields.List(fields.Dict(), metadata=describe("Pseudonymous rows of this page"))
    facets = fields.Dict(
        keys=fields.String(),
        values=fields.Nested(FacetSchema),
        metadata=describe(
            "Per field, the count of matching rows per value; a field's facet ignores the filter "
            "on that field"
        ),
    )
    next_cursor = fields.Integer(allow_none=True)
    hits_withheld = fields.String(allow_none=True)


class MappingFieldSchema(BaseSchema):
    field = fields.String()
    label = fields.String(metadata=describe("What people read for the field"))
    value_labels = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        allow_none=True,
        metadata=describe("What people read for each allowed value"),
    )
    type = fields.String()
    description = fields.String()
    entity = fields.String()
    values = fields.List(fields.String(), allow_none=True)
    unit = fields.String(allow_none=True)
    facet = fields.Boolean()
    package = fields.String()


class MappingSchema(BaseSchema):
    levels = fields.List(fields.Dict())
    operators = fields.Dict()
    fields = fields.List(fields.Nested(MappingFieldSchema))


class CompletenessArgsSchema(BaseSchema):
    filters = fields.String(metadata=describe(FILTERS_TEXT))


class CombinationSchema(BaseSchema):
    modalities = fields.List(fields.String())
    count = fields.Raw()


class CompletenessSchema(BaseSchema):
    level = fields.String()
    modalities = fields.List(fields.String())
    total = fields.Raw()
    per_modality = fields.Dict(keys=fields.String(), values=fields.Raw())
    combinations = fields.List(fields.Nested(CombinationSchema))
