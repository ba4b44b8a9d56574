"""The problem document (RFC 9457) every API error answers with, for the OpenAPI document."""

from __future__ import annotations

from marshmallow import INCLUDE, Schema, fields


class ProblemFieldSchema(Schema):
    class Meta:
        unknown = INCLUDE

    field = fields.String(
        metadata={"description": "Where: a field, a path such as `filters.content[1].value`, or a header"}
    )
    message = fields.String()
    location = fields.String(metadata={"description": "json, query, files, headers…"})


class ProblemSchema(Schema):
    """An RFC 9457 problem; some errors add members such as `current_state`,
    `allowed_actions` or `allowed`."""

    class Meta:
        unknown = INCLUDE

    type = fields.String(metadata={"example": "about:blank"})
    title = fields.String(metadata={"example": "Unprocessable Entity"})
    status = fields.Integer(metadata={"example": 422})
    detail = fields.String(metadata={"description": "What is wrong, in words"})
    instance = fields.String(metadata={"description": "The request path"})
    errors = fields.List(fields.Nested(ProblemFieldSchema))
