"""Case and lesion schemas."""

from __future__ import annotations

from marshmallow import fields, validate

from biobank.models.vocab import AjccStage, BodySite, DiseaseGroup, Laterality
from biobank.schemas.base import (
    BaseSchema,
    DecimalNumber,
    ListArgsSchema,
    code_field,
    decimal_field,
    describe,
    enum_field,
)


class CaseSchema(BaseSchema):
    id = fields.Integer(dump_only=True)
    code = fields.String()
    participant_id = fields.Integer()
    disease_group = enum_field(DiseaseGroup, "Disease group")
    icd10_code = fields.String()
    diagnosis_date = fields.Date(allow_none=True)
    breslow_mm = DecimalNumber(allow_none=True)
    ulceration = fields.Boolean(allow_none=True)
    ajcc_stage = enum_field(AjccStage, "AJCC 8th edition stage", allow_none=True)
    icdo3_morphology = fields.String(allow_none=True)
    icdo3_topography = fields.String(allow_none=True)
    notes = fields.String(allow_none=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class CaseCreateSchema(BaseSchema):
    code = code_field("Case code")
    participant_id = fields.Integer(required=True)
    disease_group = enum_field(DiseaseGroup, "Disease group", required=True)
    icd10_code = fields.String(
        required=True, validate=validate.Length(max=16), metadata=describe("ICD-10 code, e.g. C43.5")
    )
    diagnosis_date = fields.Date(allow_none=True)
    breslow_mm = decimal_field(
        "Breslow thickness (mm), melanoma only", places=2, maximum=100, allow_none=True
    )
    ulceration = fields.Boolean(allow_none=True, metadata=describe("Melanoma only"))
    ajcc_stage = enum_field(AjccStage, "AJCC 8th edition stage, melanoma only", allow_none=True)
    icdo3_morphology = fields.String(
        allow_none=True,
        validate=validate.Length(max=16),
        metadata=describe("ICD-O-3 morphology and behaviour of a tumour, e.g. 8720/3"),
    )
    icdo3_topography = fields.String(
        allow_none=True,
        validate=validate.Length(max=16),
        metadata=describe("ICD-O-3 topography of a tumour, e.g. C44.5 (skin of trunk)"),
    )
    notes = fields.String(allow_none=True)


class CaseUpdateSchema(CaseCreateSchema):
    partial_by_default = True

    class Meta(CaseCreateSchema.Meta):
        exclude = ("participant_id",)


class CaseQueryArgsSchema(ListArgsSchema):
    participant_id = fields.Integer()
    disease_group = enum_field(DiseaseGroup, "Disease group")


class LesionSchema(BaseSchema):
    id = fields.Integer(dump_only=True)
    code = fields.String()
    case_id = fields.Integer()
    body_site = enum_field(BodySite, "Anatomical site")
    laterality = enum_field(Laterality, "Laterality")
    diameter_mm = DecimalNumber(allow_none=True)
    description = fields.String(allow_none=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class LesionCreateSchema(BaseSchema):
    code = code_field("Lesion code")
    case_id = fields.Integer(required=True)
    body_site = enum_field(BodySite, "Anatomical site", required=True)
    laterality = enum_field(Laterality, "Laterality", load_default=Laterality.NOT_APPLICABLE)
    diameter_mm = decimal_field("Largest diameter (mm)", places=1, maximum=10000, allow_none=True)
    description = fields.String(allow_none=True)


class LesionUpdateSchema(LesionCreateSchema):
    partial_by_default = True

    class Meta(LesionCreateSchema.Meta):
        exclude = ("case_id",)


class LesionQueryArgsSchema(ListArgsSchema):
    case_id = fields.Integer()
