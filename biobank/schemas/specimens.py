"""Specimen schemas."""

from __future__ import annotations

from marshmallow import ValidationError, fields, validate, validates, validates_schema

from biobank.barcodes import LABEL_BARCODE
from biobank.models.vocab import (
    BodySite,
    Lineage,
    MaterialType,
    PathologyStatus,
    QuantityUnit,
    SpecimenStatus,
)
from biobank.schemas.base import (
    AwareDateTime,
    BaseSchema,
    DecimalNumber,
    ListArgsSchema,
    decimal_field,
    describe,
    enum_field,
    not_in_future,
)
from biobank.sprec import validate_sprec

BARCODE = validate.Regexp(LABEL_BARCODE, error="a barcode is 3–32 letters, digits, '.', '_' or '-'")


class SpecimenSchema(BaseSchema):
    id = fields.Integer(dump_only=True)
    barcode = fields.String()
    label = fields.String(allow_none=True)
    manufacturer_barcode = fields.String(allow_none=True)
    participant_id = fields.Integer()
    participant_code = fields.Function(lambda s: s.participant.code)
    collection_event_id = fields.Integer(allow_none=True)
    lesion_id = fields.Integer(allow_none=True)
    site_id = fields.Integer()
    parent_id = fields.Integer(allow_none=True)
    lineage = enum_field(Lineage, "primary, aliquot or derivative")
    material_type = enum_field(MaterialType, "MIABIS material type")
    pathology_status = enum_field(PathologyStatus, "Pathology status")
    anatomical_site = enum_field(BodySite, "Anatomical site", allow_none=True)
    status = enum_field(SpecimenStatus, "Lifecycle status")
    initial_quantity = DecimalNumber(allow_none=True)
    quantity = DecimalNumber(allow_none=True)
    unit = enum_field(QuantityUnit, "Unit of quantity", allow_none=True)
    concentration_ng_ul = DecimalNumber(allow_none=True)
    freeze_thaw_count = fields.Integer()
    sprec_code = fields.String(allow_none=True)
    received_at = fields.DateTime(allow_none=True)
    processed_at = fields.DateTime(allow_none=True)
    frozen_at = fields.DateTime(allow_none=True)
    container_id = fields.Integer(allow_none=True)
    pos_row = fields.Integer(allow_none=True)
    pos_col = fields.Integer(allow_none=True)
    position = fields.String(attribute="position_label", allow_none=True, dump_only=True)
    location = fields.String(attribute="location_text", allow_none=True, dump_only=True)
    custody_head = fields.String(allow_none=True, dump_only=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class _SpecimenFields(BaseSchema):
    label = fields.String(allow_none=True, validate=validate.Length(max=64))
    pathology_status = enum_field(PathologyStatus, "Pathology status")
    anatomical_site = enum_field(BodySite, "Anatomical site", allow_none=True)
    quantity = decimal_field("Quantity available, in `unit`", places=3, maximum=10**8, allow_none=True)
    unit = enum_field(QuantityUnit, "Unit of quantity", allow_none=True)
    concentration_ng_ul = decimal_field("Concentration in ng/µL", places=3, maximum=10**6, allow_none=True)
    freeze_thaw_count = fields.Integer(validate=validate.Range(min=0, max=1000))
    sprec_code = fields.String(allow_none=True, metadata=describe("SPREC v3 code"))
    received_at = AwareDateTime(allow_none=True, validate=not_in_future)
    processed_at = AwareDateTime(allow_none=True, validate=not_in_future)
    frozen_at = AwareDateTime(allow_none=True, validate=not_in_future)
    container_id = fields.Integer(allow_none=True, metadata=describe("Box or bag to store it in"))
    pos_row = fields.Integer(allow_none=True, validate=validate.Range(min=1))
    pos_col = fields.Integer(allow_none=True, validate=validate.Range(min=1))

    @validates("sprec_code")
    def _check_sprec(self, value: str | None, **_kwargs: object) -> None:
        if value is not None and (error := validate_sprec(value)):
            raise ValidationError(error)


class SpecimenCreateSchema(_SpecimenFields):
    barcode = fields.String(
        validate=BARCODE,
        metadata=describe(
            "Label barcode; omitted, one is issued: site + material + number + 2 check characters"
        ),
    )
    manufacturer_barcode = fields.String(allow_none=True, validate=BARCODE)
    participant_id = fields.Integer(required=True)
    collection_event_id = fields.Integer(allow_none=True)
    lesion_id = fields.Integer(allow_none=True)
    site_id = fields.Integer(metadata=describe("Holding site (default: the participant's)"))
    parent_id = fields.Integer(allow_none=True)
    lineage = enum_field(Lineage, "primary (default), aliquot or derivative")
    material_type = enum_field(MaterialType, "MIABIS material type", required=True)
    status = enum_field(
        SpecimenStatus,
        "Initial status (default collected)",
        validate=validate.OneOf([SpecimenStatus.EXPECTED, SpecimenStatus.COLLECTED, SpecimenStatus.RECEIVED]),
    )


class SpecimenUpdateSchema(_SpecimenFields):
    partial_by_default = True


class SpecimenQueryArgsSchema(ListArgsSchema):
    barcode = fields.String()
    q = fields.String(metadata=describe("Prefix of a barcode, label or participant code"))
    participant_id = fields.Integer()
    collection_event_id = fields.Integer()
    lesion_id = fields.Integer()
    parent_id = fields.Integer()
    container_id = fields.Integer()
    site_id = fields.Integer()
    material_type = fields.List(enum_field(MaterialType, "Material type"))
    status = fields.List(enum_field(SpecimenStatus, "Status"))
    lineage = fields.List(enum_field(Lineage, "Lineage"))
    pathology_status = fields.List(enum_field(PathologyStatus, "Pathology status"))


class PrintRequestSchema(BaseSchema):
    template = fields.String(required=True)
    printer_id = fields.Integer(allow_none=True, metadata=describe("Omit for a PDF to download"))
    copies = fields.Integer(load_default=1, validate=validate.Range(min=1, max=20))


class ProcessingSchema(BaseSchema):
    scanned_gs1 = frozenset({"kit_barcode"})

    method = fields.String(
        required=True,
        validate=validate.Length(min=1, max=128),
        metadata=describe(
            "e.g. 'centrifugation 2,000 g 10 min 4 °C', "
            "'column extraction (QIAamp DNA Mini)', "
            "'FFPE sectioning 4 µm'"
        ),
    )
    started_at = AwareDateTime(validate=not_in_future)
    ended_at = AwareDateTime(validate=not_in_future)
    temperature = fields.String(validate=validate.Length(max=32), metadata=describe("e.g. 'RT', '4 °C'"))
    kit_lot = fields.String(validate=validate.Length(max=64))
    kit_barcode = fields.String(
        validate=validate.Length(min=1, max=200),
        metadata=describe(
            "The kit's GS1-128 or GS1 DataMatrix label as scanned (with its ]C1/]d2 prefix and "
            "GS separators) or typed in human-readable form, (01)GTIN(17)YYMMDD(10)LOT: its "
            "GTIN, lot and expiry are recorded with the step; an expired kit is refused"
        ),
    )
    notes = fields.String(validate=validate.Length(max=2000))

    @validates_schema
    def _order(self, data: dict, **_kwargs: object) -> None:
        if data.get("started_at") and data.get("ended_at") and data["ended_at"] < data["started_at"]:
            raise ValidationError("ends before it starts", "ended_at")


class PlacementSchema(BaseSchema):
    container_id = fields.Integer(required=True)
    pos_row = fields.Integer(required=True, validate=validate.Range(min=1))
    pos_col = fields.Integer(required=True, validate=validate.Range(min=1))


class AliquotCreateSchema(BaseSchema):
    count = fields.Integer(required=True, validate=validate.Range(min=1, max=96))
    quantity = decimal_field(
        "Quantity of each: in the parent's unit for aliquots, in `unit` for derivatives",
        places=3,
        maximum=10**6,
        required=True,
    )
    material_type = enum_field(
        MaterialType, "For derivatives: the new material (default: the parent's, making aliquots)"
    )
    unit = enum_field(QuantityUnit, "For derivatives: the unit of the new material (default: the parent's)")
    concentration_ng_ul = decimal_field("For DNA or RNA: concentration in ng/µL", places=3, maximum=10**6)
    quantity_used = decimal_field(
        "For derivatives: how much of the parent the processing used, in the parent's unit",
        places=3,
        maximum=10**6,
    )
    processing = fields.Nested(
        ProcessingSchema,
        metadata=describe("How the derivative was made: method, start and end, temperature, kit lot"),
    )
    container_id = fields.Integer(metadata=describe("Box to place them in, in fill order"))
    placements = fields.List(
        fields.Nested(PlacementSchema),
        validate=validate.Length(max=96),
        metadata=describe("Or one position per new specimen, in order (as chosen on a box grid)"),
    )
    print = fields.Nested(
        PrintRequestSchema,
        data_key="print",
        attribute="print_request",
        metadata=describe("Print labels for the new specimens"),
    )


class SprecElementSchema(BaseSchema):
    name = fields.String()
    computed = fields.String()
    recorded = fields.String(allow_none=True)
    basis = fields.String(metadata=describe("What the code was derived from, or why it is unknown (X)"))
    differs = fields.Boolean()


class SprecSchema(BaseSchema):
    recorded = fields.String(allow_none=True, metadata=describe("The code stored on the specimen"))
    computed = fields.String(metadata=describe("The code derived from recorded events"))
    elements = fields.List(fields.Nested(SprecElementSchema))
    differs = fields.List(
        fields.String(), metadata=describe("Elements where the stored code contradicts the records")
    )
