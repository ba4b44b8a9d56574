"""Omics API schemas."""

from __future__ import annotations

import json
from typing import Any

from marshmallow import ValidationError, fields, validate

from biobank.schemas.base import BaseSchema, describe, enum_field
from omics.models import OmicsKind


class SampleMapField(fields.String):
    """A JSON object in a form field: sample name → a string (an aliquot barcode, a role)."""

    def __init__(
        self, *, example: str = '{"TUMOR": "CTRTF0000012AB"}', what: str = "barcode", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.example, self.what = example, what

    def _deserialize(self, value, attr, data, **kwargs):  # type: ignore[no-untyped-def]
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            mapping = json.loads(text)
        except ValueError:
            raise ValidationError(f"not JSON: give an object such as {self.example}") from None
        if not isinstance(mapping, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()
        ):
            raise ValidationError(f"give an object of sample name → {self.what} strings")
        return mapping


def _roles_field() -> SampleMapField:
    return SampleMapField(
        example='{"TUMOR": "tumour", "NORMAL": "normal"}',
        what="role",
        metadata=describe(
            "JSON object: sample column → tumour, normal or rna_tumour "
            "(default: from the caller's header, else the column's name)"
        ),
    )


class OmicsUploadSchema(BaseSchema):
    kind = enum_field(OmicsKind, "exome, rna_seq, methylation, proteomics or metabolomics", required=True)
    reference_genome = fields.String(
        validate=validate.Length(max=32), metadata=describe("e.g. GRCh38 (default: from the header)")
    )
    platform = fields.String(validate=validate.Length(max=64))
    pipeline = fields.String(validate=validate.Length(max=128))
    sample_map = SampleMapField(
        metadata=describe(
            "JSON object: sample column → aliquot barcode (default: the column names are barcodes)"
        )
    )
    ingest = fields.Boolean(load_default=True, metadata=describe("Ingest after registering"))
    sample_roles = _roles_field()
    lenient = fields.Boolean(
        load_default=False,
        metadata=describe(
            "Keep a VCF that breaks the specification, its problems recorded as warnings "
            "(default: refuse it, naming them)"
        ),
    )


class OmicsFileFormSchema(BaseSchema):
    """The multipart body: the file, and a sample map of any size (also accepted in the
    query string, where a long one meets URL limits)."""

    file = fields.Raw(required=True, metadata={"type": "string", "format": "binary"})
    sample_map = SampleMapField(
        metadata=describe(
            "JSON object: sample column → aliquot barcode (default: the column names are barcodes)"
        )
    )
    sample_roles = _roles_field()


class OmicsSampleSchema(BaseSchema):
    sample_name = fields.String()
    specimen_id = fields.Integer(allow_none=True)
    barcode = fields.Function(lambda s: s.specimen.barcode if s.specimen else None)
    matched = fields.Function(lambda s: s.specimen_id is not None)
    role = fields.Function(
        lambda s: s.role.value if s.role else None,
        metadata=describe("tumour, normal, rna_tumour, or null when not known"),
    )
    qc = fields.Dict(metadata=describe("Per-sample QC once a matrix is ingested"))


class OmicsFileSchema(BaseSchema):
    id = fields.Integer()
    kind = fields.Function(lambda f: f.kind.value)
    format = fields.String()
    filename = fields.String()
    size_bytes = fields.Integer()
    sha256 = fields.String()
    reference_genome = fields.String(
        allow_none=True,
        metadata=describe("The genome build: as given, else recognised in the file's reference"),
    )
    reference = fields.String(
        allow_none=True, metadata=describe("The reference the file names (VCF ##reference), as written")
    )
    platform = fields.String(allow_none=True)
    pipeline = fields.String(allow_none=True)
    status = fields.Function(
        lambda f: f.status.value,
        metadata=describe("registered, ingested or failed (nothing of the file in the database)"),
    )
    error = fields.String(allow_none=True)
    warnings = fields.List(
        fields.String(),
        metadata=describe("What a lenient registration found wrong with the file (line, column, rule)"),
    )
    variant_count = fields.Integer()
    call_count = fields.Integer()
    feature_count = fields.Integer()
    created_by = fields.String()
    created_at = fields.DateTime()
    ingested_at = fields.DateTime(allow_none=True)
    samples = fields.List(fields.Nested(OmicsSampleSchema))
    unmatched_samples = fields.Function(lambda f: [s.sample_name for s in f.samples if s.specimen_id is None])


class OmicsFileQuerySchema(BaseSchema):
    specimen_id = fields.Integer()
    participant_id = fields.Integer()
    case_id = fields.Integer()


class CarrierQuerySchema(BaseSchema):
    gene = fields.String(validate=validate.Length(min=1, max=32), metadata=describe("e.g. BRAF"))
    protein_change = fields.String(
        validate=validate.Length(min=1, max=64), metadata=describe("e.g. p.V600E (with a gene)")
    )
    region = fields.String(
        validate=validate.Length(min=1, max=64), metadata=describe("e.g. 7:140453000-140454000 (chr7 is 7)")
    )
    reference_genome = fields.String(
        validate=validate.Length(min=1, max=32),
        metadata=describe(
            "The build of a region (GRCh37, GRCh38; hg19 is GRCh37): needed when the region "
            "matches variants of several builds"
        ),
    )
    limit = fields.Integer(
        load_default=1000,
        validate=validate.Range(min=1, max=1000),
        metadata=describe("Page size (1–1000, default 1000)"),
    )
    after = fields.String(
        validate=validate.Length(min=1, max=128),
        metadata=describe(
            "Cursor: the rows after this one (from `X-Next-Cursor`); `X-Total-Count` counts all"
        ),
    )
    all_calls = fields.Boolean(
        load_default=False,
        metadata=describe(
            "Every non-reference call, matched normals and germline calls included (default: "
            "somatic tumour carriers: calls of normal samples and calls the caller says are "
            "germline or LOH are left out)"
        ),
    )


class CarrierSchema(BaseSchema):
    barcode = fields.String(metadata=describe("The aliquot"))
    participant_code = fields.String()
    case_code = fields.String(allow_none=True)
    disease_group = fields.String(allow_none=True)
    reference_genome = fields.Function(
        lambda c: c["variant"].reference_genome or None, metadata=describe("The variant's genome build")
    )
    chrom = fields.Function(lambda c: c["variant"].chrom)
    pos = fields.Function(lambda c: c["variant"].pos)
    ref = fields.Function(lambda c: c["variant"].ref)
    alt = fields.Function(lambda c: c["variant"].alt)
    gene = fields.Function(lambda c: c["variant"].gene)
    consequence = fields.Function(lambda c: c["variant"].consequence)
    protein_change = fields.Function(lambda c: c["variant"].protein_change)
    genotype = fields.Function(lambda c: c["call"].genotype)
    depth = fields.Function(lambda c: c["call"].depth)
    alt_depth = fields.Function(lambda c: c["call"].alt_depth)
    allele_fraction = fields.Function(lambda c: c["call"].allele_fraction)
    file_id = fields.Function(lambda c: c["call"].file_id)
    role = fields.String(allow_none=True, metadata=describe("The sample's role in its file"))
    somatic = fields.Function(
        lambda c: c["call"].somatic,
        metadata=describe("The caller's somatic status: true, false (germline, LOH) or null (not said)"),
    )


class FeatureSampleSchema(BaseSchema):
    sample_name = fields.String()
    barcode = fields.String(allow_none=True)
    value = fields.Float(allow_none=True)


class FeatureValuesSchema(BaseSchema):
    feature = fields.String()
    samples = fields.List(fields.Nested(FeatureSampleSchema))


class QcQuerySchema(BaseSchema):
    kind = enum_field(OmicsKind, "Only files of this kind")
    file_id = fields.Integer()


class QcRowSchema(BaseSchema):
    file_id = fields.Integer()
    filename = fields.String()
    kind = fields.String()
    sample_name = fields.String()
    barcode = fields.String(allow_none=True)
    qc = fields.Dict()


class GeneModelQuerySchema(BaseSchema):
    reference_genome = fields.String(
        required=True,
        validate=validate.Length(min=1, max=32),
        metadata=describe("The build the file describes, e.g. GRCh37"),
    )


class GeneModelFileSchema(BaseSchema):
    file = fields.Raw(
        required=True,
        metadata={
            "type": "string",
            "format": "binary",
            "description": "GTF (GENCODE, Ensembl) or GFF3, optionally gzipped",
        },
    )


class GeneModelSchema(BaseSchema):
    id = fields.Integer()
    reference_genome = fields.String()
    filename = fields.String()
    sha256 = fields.String()
    gene_count = fields.Integer()
    created_by = fields.String()
    created_at = fields.DateTime()
    annotated_variants = fields.Integer(
        metadata=describe("Variants without a gene that this registration placed in one (when registering)")
    )
