"""Storage container schemas."""

from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates_schema

from biobank.models import FillOrder, PositionHoldKind, PositionScheme
from biobank.models.vocab import ContainerKind, StorageTemperature
from biobank.schemas.base import BaseSchema, ListArgsSchema, describe, enum_field


class ContainerSchema(BaseSchema):
    id = fields.Integer(dump_only=True)
    site_id = fields.Integer()
    parent_id = fields.Integer(allow_none=True)
    kind = enum_field(ContainerKind, "Kind of container")
    name = fields.String()
    barcode = fields.String(allow_none=True)
    n_rows = fields.Integer(allow_none=True)
    n_cols = fields.Integer(allow_none=True)
    capacity = fields.Integer(allow_none=True, dump_only=True)
    position_scheme = enum_field(PositionScheme, "How positions are named: A1, 1 or 1/1")
    fill_order = enum_field(FillOrder, "Order in which positions are filled")
    position_range = fields.Function(lambda c: c.position_range() if c.has_grid else None)
    temperature = enum_field(StorageTemperature, "MIABIS storage temperature", allow_none=True)
    effective_temperature = fields.Function(lambda c: t.value if (t := c.effective_temperature()) else None)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class ContainerCreateSchema(BaseSchema):
    site_id = fields.Integer(metadata=describe("Site, for a top-level container"))
    parent_id = fields.Integer(allow_none=True)
    kind = enum_field(ContainerKind, "Kind of container", required=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=128))
    barcode = fields.String(allow_none=True, validate=validate.Length(min=1, max=32))
    n_rows = fields.Integer(allow_none=True, validate=validate.Range(min=1, max=100))
    n_cols = fields.Integer(allow_none=True, validate=validate.Range(min=1, max=100))
    temperature = enum_field(StorageTemperature, "MIABIS storage temperature", allow_none=True)
    position_scheme = enum_field(
        PositionScheme,
        "How positions are named: A1 (default), 1 (numbered in fill order) or 1/1 (row/column)",
    )
    fill_order = enum_field(FillOrder, "row_major (default) or column_major")

    @validates_schema
    def _grid(self, data: dict, **_kwargs: object) -> None:
        if ("n_rows" in data) != ("n_cols" in data) or (
            (data.get("n_rows") is None) != (data.get("n_cols") is None)
        ):
            raise ValidationError("give both n_rows and n_cols, or neither", "n_rows")


class ContainerUpdateSchema(ContainerCreateSchema):
    partial_by_default = True

    class Meta(ContainerCreateSchema.Meta):
        exclude = ("site_id", "parent_id", "kind")


class ContainerQueryArgsSchema(ListArgsSchema):
    parent_id = fields.Integer()
    site_id = fields.Integer()
    kind = enum_field(ContainerKind, "Kind")
    top_level = fields.Boolean(load_default=False)


class ContainerFromTemplateSchema(BaseSchema):
    template = fields.String(
        required=True,
        metadata=describe("upright-freezer-80, ln2-tank, ffpe-cabinet, box-9x9, box-10x10 or bag"),
    )
    name = fields.String(required=True, validate=validate.Length(min=1, max=128))
    site_id = fields.Integer(metadata=describe("Site, for a top-level container"))
    parent_id = fields.Integer(allow_none=True)


class FreeSpaceArgsSchema(BaseSchema):
    count = fields.Integer(required=True, validate=validate.Range(min=1, max=1000))
    temperature = enum_field(StorageTemperature, "Storage temperature range")
    site_id = fields.Integer()


class FreeSpaceSchema(BaseSchema):
    container = fields.Nested(ContainerSchema)
    positions = fields.Function(
        lambda e: [
            {"pos_row": r, "pos_col": c, "label": e["container"].position_label(r, c)}
            for r, c in e["positions"]
        ]
    )


class HoldSchema(BaseSchema):
    id = fields.Integer()
    container_id = fields.Integer()
    pos_row = fields.Integer()
    pos_col = fields.Integer()
    position = fields.Function(lambda h: h.container.position_label(h.pos_row, h.pos_col))
    kind = enum_field(PositionHoldKind, "reserved or blocked")
    reason = fields.String(allow_none=True)
    created_by = fields.String()
    created_at = fields.DateTime()


class HoldCreateSchema(BaseSchema):
    pos_row = fields.Integer(required=True, validate=validate.Range(min=1, max=100))
    pos_col = fields.Integer(required=True, validate=validate.Range(min=1, max=100))
    kind = enum_field(PositionHoldKind, "reserved or blocked", required=True)
    reason = fields.String(allow_none=True, validate=validate.Length(max=500))


class ContainerMoveSchema(BaseSchema):
    parent_id = fields.Integer(required=True, metadata=describe("Where the container goes"))


class ContainerMoveResultSchema(BaseSchema):
    container = fields.Nested(ContainerSchema)
    specimens_moved = fields.Integer()


class EvacuationMoveSchema(BaseSchema):
    specimen_id = fields.Integer()
    barcode = fields.String()
    to_container_id = fields.Integer(attribute="container_id")
    pos_row = fields.Integer()
    pos_col = fields.Integer()
    from_location = fields.String(attribute="from", data_key="from")
    to_location = fields.String(attribute="to", data_key="to")


class EvacuationPlanSchema(BaseSchema):
    container_id = fields.Integer()
    temperature = fields.String(allow_none=True)
    count = fields.Integer()
    plan_sha256 = fields.String(metadata=describe("Send back to execute exactly this plan"))
    moves = fields.List(fields.Nested(EvacuationMoveSchema))


class EvacuateSchema(BaseSchema):
    plan_sha256 = fields.String(required=True, validate=validate.Length(equal=64))
