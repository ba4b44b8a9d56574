"""Image schemas."""

from __future__ import annotations

from marshmallow import fields, validate

from biobank.models.images import QUALITY_FLAGS, ImageModality
from biobank.schemas.base import BaseSchema, JsonObject, describe
from biobank.services.images import CLINICAL_KEYS, DERMOSCOPIC_TYPES


class ImageSchema(BaseSchema):
    id = fields.Integer()
    case_id = fields.Integer()
    case = fields.Function(lambda i: i.case.code)
    lesion_id = fields.Integer(allow_none=True)
    lesion = fields.Function(lambda i: i.lesion.code if i.lesion else None)
    specimen_id = fields.Integer(allow_none=True)
    modality = fields.Function(lambda i: i.modality.value)
    filename = fields.String()
    mime_type = fields.String()
    size_bytes = fields.Integer()
    sha256 = fields.String()
    width = fields.Integer(allow_none=True)
    height = fields.Integer(allow_none=True)
    acquisition_day = fields.Integer(
        allow_none=True, metadata=describe("Days from diagnosis to acquisition (negative: before)")
    )
    dicom = fields.Dict(metadata=describe("SOP class, DICOM modality, dermoscopic image type"))
    clinical = fields.Dict(metadata=describe("ISIC-style clinical metadata"))
    quality_flags = fields.List(fields.String())
    drs_id = fields.Function(lambda i: i.sha256, metadata=describe("DRS object id"))
    created_at = fields.DateTime()


class ImageQuerySchema(BaseSchema):
    case_id = fields.Integer()
    lesion_id = fields.Integer()
    specimen_id = fields.Integer()
    modality = fields.String(validate=validate.OneOf([m.value for m in ImageModality]))


class ImageFormSchema(BaseSchema):
    modality = fields.String(required=True, validate=validate.OneOf([m.value for m in ImageModality]))
    case = fields.String(metadata=describe("Case code"))
    lesion = fields.String(metadata=describe("Lesion code"))
    specimen = fields.String(metadata=describe("Barcode of the specimen (a slide's block)"))
    acquisition_day = fields.Integer(metadata=describe("Days from diagnosis to acquisition"))
    dermoscopic_image_type = fields.String(validate=validate.OneOf(DERMOSCOPIC_TYPES))
    device = fields.String(validate=validate.Length(max=128))
    quality_flags = fields.String(metadata=describe("Semicolon-separated: " + ", ".join(QUALITY_FLAGS)))
    clinical = JsonObject(
        metadata=describe("ISIC clinical metadata as a JSON object; keys: " + ", ".join(CLINICAL_KEYS))
    )


class ImageFileSchema(BaseSchema):
    file = fields.Raw(
        required=True, metadata={"type": "string", "format": "binary", "description": "JPEG, PNG or TIFF"}
    )


class ImageBulkFileSchema(BaseSchema):
    metadata = fields.Raw(required=True, metadata={"type": "string", "format": "binary"})
