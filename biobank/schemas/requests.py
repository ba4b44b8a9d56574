"""Sample request schemas."""

from __future__ import annotations

from marshmallow import fields, validate

from biobank.schemas.base import BaseSchema, DecimalNumber, describe
from biobank.schemas.specimens import PrintRequestSchema

REQUIREMENTS_TEXT = (
    "Per case: material_type (MIABIS), min_quantity with its unit, "
    "aliquots_per_case (default 1), pathology_status, max_freeze_thaw"
)


class _Target(BaseSchema):
    cohort_id = fields.Integer(required=True, metadata=describe("A cohort of cases or lesions"))
    snapshot_id = fields.Integer(
        allow_none=True,
        metadata=describe("A frozen snapshot of it (default: the cohort's filter as it answers now)"),
    )
    requirements = fields.Dict(required=True, metadata=describe(REQUIREMENTS_TEXT))
    consent_scopes = fields.List(
        fields.String(),
        load_default=list,
        metadata=describe("Scopes every participant must have consented to, e.g. genetic_research"),
    )


class FeasibilityArgsSchema(_Target):
    pass


class RequestCreateSchema(_Target):
    title = fields.String(required=True, validate=validate.Length(min=3, max=255))
    purpose = fields.String(required=True, validate=validate.Length(min=10, max=20_000))
    ethics_reference = fields.String(
        required=True,
        validate=validate.Length(min=2, max=64),
        metadata=describe("Ethics committee approval number"),
    )


class DecisionSchema(BaseSchema):
    decision = fields.String(required=True, validate=validate.OneOf(["approve", "reject"]))
    password = fields.String(
        required=True,
        load_only=True,
        metadata=describe("The manager's password, re-entered: the decision is an electronic signature"),
    )
    reason = fields.String(
        allow_none=True, validate=validate.Length(max=5000), metadata=describe("Required to reject")
    )


class FeasibilitySchema(BaseSchema):
    cases = fields.Raw()
    servable = fields.Raw(metadata=describe('Cases that can be served now ("<5" for researchers)'))
    not_servable = fields.Dict(
        keys=fields.String(), values=fields.Raw(), metadata=describe("Cases that cannot, by reason")
    )
    checked_at = fields.String()


class SignatureSchema(BaseSchema):
    signer = fields.String(attribute="signer_name", metadata=describe("Printed name"))
    meaning = fields.String()
    reason = fields.String(allow_none=True)
    signed_at = fields.DateTime()
    content_sha256 = fields.String()


class RequestSchema(BaseSchema):
    id = fields.Integer()
    code = fields.String()
    title = fields.String()
    purpose = fields.String()
    ethics_reference = fields.String()
    requester = fields.Function(lambda r: r.requester.username)
    cohort_id = fields.Integer()
    snapshot_id = fields.Integer(allow_none=True)
    requirements = fields.Dict()
    consent_scopes = fields.List(fields.String())
    feasibility = fields.Nested(FeasibilitySchema)
    status = fields.Function(lambda r: r.status.value)
    decision_reason = fields.String(allow_none=True)
    signatures = fields.List(fields.Nested(SignatureSchema))
    created_at = fields.DateTime()


class RequestQuerySchema(BaseSchema):
    status = fields.String(
        validate=validate.OneOf(
            ["submitted", "approved", "rejected", "withdrawn", "allocated", "shipped", "received"]
        )
    )


class AllocationResultSchema(BaseSchema):
    request = fields.String()
    cases_served = fields.Integer()
    tubes = fields.Integer()
    processing_tasks = fields.Integer(metadata=describe("Primaries an aliquot is to be made of"))
    cases_not_served = fields.Dict(keys=fields.String(), values=fields.Integer())


class PickItemSchema(BaseSchema):
    allocation_id = fields.Integer()
    barcode = fields.String()
    case = fields.String()
    material_type = fields.String()
    quantity = fields.String(allow_none=True)
    unit = fields.String(allow_none=True)
    site = fields.String()
    freezer = fields.String(allow_none=True)
    rack = fields.String(allow_none=True)
    box = fields.String(allow_none=True)
    position = fields.String(allow_none=True)
    needs_processing = fields.Boolean()
    picked_at = fields.String(allow_none=True)
    picked_by = fields.String(allow_none=True)


class PickSchema(BaseSchema):
    barcode = fields.String(required=True, validate=validate.Length(min=1, max=64))


class PickResultSchema(BaseSchema):
    barcode = fields.String()
    picked = fields.Boolean()
    remaining = fields.Integer(metadata=describe("Tubes of the list still to pick at your sites"))


class ShipSchema(BaseSchema):
    destination = fields.String(required=True, validate=validate.Length(min=3, max=255))
    courier = fields.String(required=True, validate=validate.Length(min=2, max=128))
    tracking_number = fields.String(allow_none=True, validate=validate.Length(max=64))
    temperature = fields.String(
        required=True, validate=validate.OneOf(["ambient", "2-8C", "dry_ice", "liquid_nitrogen"])
    )
    site = fields.String(
        validate=validate.Length(min=2, max=8),
        metadata=describe(
            "Code of the site the parcel leaves from: needed only when you work at several "
            "sites that hold tubes of the request"
        ),
    )


class ReceivedScanSchema(BaseSchema):
    barcode = fields.String(required=True, validate=validate.Length(min=1, max=64))
    condition = fields.String(
        load_default="acceptable", validate=validate.OneOf(["acceptable", "damaged", "thawed", "leaking"])
    )


class ReceiptSchema(BaseSchema):
    scans = fields.List(
        fields.Nested(ReceivedScanSchema), required=True, validate=validate.Length(max=10_000)
    )
    shipment_id = fields.Integer(
        metadata=describe(
            "The parcel unpacked: needed only when several parcels of the request are on their way"
        )
    )


class ShipmentSchema(BaseSchema):
    id = fields.Integer()
    site = fields.Function(lambda s: s.site.code, metadata=describe("Code of the site it left from"))
    tubes = fields.Function(lambda s: len(s.allocations), metadata=describe("Tubes in it"))
    destination = fields.String()
    courier = fields.String()
    tracking_number = fields.String(allow_none=True)
    temperature = fields.String()
    shipped_by = fields.String()
    shipped_at = fields.DateTime()
    received_by = fields.String(allow_none=True)
    received_at = fields.DateTime(allow_none=True)
    reconciliation = fields.Dict()


class ReturnSchema(BaseSchema):
    barcodes = fields.List(
        fields.String(validate=validate.Length(min=1, max=64)),
        required=True,
        validate=validate.Length(min=1, max=10_000),
    )


class ReturnResultSchema(BaseSchema):
    request = fields.String()
    returned = fields.Integer()


class EveryAliquotSchema(BaseSchema):
    quantity = DecimalNumber(
        metadata=describe("Of each aliquot, more than 0 (default: the request's minimum)")
    )
    print = fields.Nested(
        PrintRequestSchema,
        data_key="print",
        attribute="print_request",
        metadata=describe("Print the new tubes' labels, as one job"),
    )


class EveryAliquotResultSchema(BaseSchema):
    request = fields.String()
    made = fields.Integer(metadata=describe("Aliquots made and allocated"))
    aliquots = fields.List(fields.String(), metadata=describe("Their barcodes"))
    print_job_id = fields.Integer(
        allow_none=True,
        metadata=describe("The labels' print job (its PDF at /api/v1/print-jobs/{id}/document)"),
    )


class ProcessingTaskSchema(BaseSchema):
    quantity = DecimalNumber(
        metadata=describe("Of the aliquot, more than 0 (default: the request's minimum)")
    )
    container_id = fields.Integer(metadata=describe("Box to place it in (fill order)"))
