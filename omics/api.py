"""Omics API: register and ingest files, list them by aliquot or case, variant carriers."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from flask import request
from flask.views import MethodView
from flask_smorest import Blueprint

from biobank.api.parsing import MultipartParser
from biobank.auth import ALL_ROLES, STAFF, current_actor, roles_required
from biobank.db import after_commit, db, transaction
from biobank.errors import InvalidInput
from omics import services
from omics.models import FileStatus
from omics.schemas import (
    CarrierQuerySchema,
    CarrierSchema,
    FeatureValuesSchema,
    GeneModelFileSchema,
    GeneModelQuerySchema,
    GeneModelSchema,
    OmicsFileFormSchema,
    OmicsFileQuerySchema,
    OmicsFileSchema,
    OmicsUploadSchema,
    QcQuerySchema,
    QcRowSchema,
)
from omics.tasks import ingest

blp = Blueprint("omics", __name__, description="Omics files linked to aliquots; variant carriers")
blp.ARGUMENTS_PARSER = MultipartParser()  # form fields of a multipart body, beside its files


@blp.route("/files/")
class OmicsFileViews(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.arguments(OmicsFileQuerySchema, location="query")
    @blp.response(200, OmicsFileSchema(many=True))
    def get(self, args: dict[str, Any]) -> Any:
        """Omics files, newest first; filter by the aliquot, participant or case they measure"""
        return services.list_files(actor=current_actor(), **args)

    @roles_required(*STAFF)
    @blp.arguments(OmicsUploadSchema, location="query")
    @blp.arguments(OmicsFileFormSchema, location="files")
    @blp.response(201, OmicsFileSchema)
    def post(self, form: dict[str, Any], files: dict[str, Any]) -> Any:
        """Upload and register a file (VCF/BCF now), linking its sample columns to aliquots

        The file is stored by its SHA-256 under the omics storage root (the same content
        again answers 200 with the existing file; if that file failed or was never
        ingested, its samples are linked again with this `sample_map` and it is ingested
        again); sample names that match no aliquot are listed in `unmatched_samples`. A VCF
        is checked against the specification first: one that breaks it is refused with
        the line, column and rule of its first problems, or with `lenient` kept with them
        as `warnings`. With `ingest` (default), its variant calls are read into the
        database by a background task once the registration is saved.
        """
        upload = files.pop("file")
        for key in ("sample_map", "sample_roles"):
            if key in files:
                if key in form:
                    raise InvalidInput(f"give {key} in the body or the query string, not both", field=key)
                form[key] = files.pop(key)
        ingest = form.pop("ingest")
        name = Path(upload.filename or "upload").name or "upload"
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name  # single-sample formats take the sample from the name
            upload.save(path)
            upload.close()  # a large upload is spooled to a temporary file: let it go now
            with transaction():
                record, created = services.register_file(
                    actor=current_actor(), path=path, filename=name, **form
                )
                if ingest and record.status is FileStatus.REGISTERED:
                    file_id = record.id
                    after_commit(lambda: _dispatch(file_id))
        return services.get_file(record.id), 201 if created else 200


def _dispatch(file_id: int) -> None:
    ingest.delay(file_id)


@blp.route("/files/<int:file_id>")
class OmicsFileByIdViews(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.response(200, OmicsFileSchema)
    def get(self, file_id: int) -> Any:
        """One omics file: status, counts, sample links"""
        db.session.expire_all()
        return services.get_file(file_id, current_actor())


@blp.route("/files/<int:file_id>/features/<path:feature>")
class FeatureViews(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.response(200, FeatureValuesSchema)
    def get(self, file_id: int, feature: str) -> Any:
        """One gene, probe, protein or metabolite across every sample of an ingested matrix

        By feature id or gene symbol; read from the stored `.h5ad` in backed mode, so the
        matrix is never loaded whole. `value` is null where the file had no value.
        """
        return services.feature_values(services.get_file(file_id, current_actor()), feature)


@blp.route("/qc")
class QcViews(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.arguments(QcQuerySchema, location="query")
    @blp.response(200, QcRowSchema(many=True))
    def get(self, args: dict[str, Any]) -> Any:
        """Per-sample QC of ingested files, one row per file and sample

        RNA-Seq: total counts, genes detected, mitochondrial share; other matrices: the share
        of features detected; alignments: mapped and unmapped reads. Filter by `kind` or
        `file_id`; researchers see aliquots of their sites only.
        """
        return services.qc_table(actor=current_actor(), **args)


@blp.route("/variants/carriers")
class CarrierViews(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.arguments(CarrierQuerySchema, location="query")
    @blp.response(200, CarrierSchema(many=True))
    def get(self, args: dict[str, Any]) -> Any:
        """Aliquots, participants and cases carrying a variant

        By gene (`BRAF`), gene and protein change (`BRAF` + `p.V600E`) or region
        (`7:140453000-140454000`); calls are non-reference calls with genotype, depth and
        allele fraction. In genomic order, a page at a time: `X-Total-Count` counts every
        matching call, and a page that is not the last gives `X-Next-Cursor` and a `Link`
        to the next.
        """
        page = services.carriers(actor=current_actor(), **args)
        headers = {"X-Total-Count": str(page.total)}
        if page.next_cursor:
            query = {k: v for k, v in request.args.items() if k != "after"}
            query["after"] = page.next_cursor
            headers["X-Next-Cursor"] = page.next_cursor
            headers["Link"] = f'<{request.path}?{urlencode(query)}>; rel="next"'
        return page.rows, headers


@blp.route("/gene-models/")
class GeneModelViews(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.response(200, GeneModelSchema(many=True))
    def get(self) -> Any:
        """The gene model of each genome build"""
        return services.gene_models()

    @roles_required(*STAFF)
    @blp.arguments(GeneModelQuerySchema, location="query")
    @blp.arguments(GeneModelFileSchema, location="files")
    @blp.response(201, GeneModelSchema)
    def post(self, args: dict[str, Any], files: dict[str, Any]) -> Any:
        """Register the gene model (GTF or GFF3) of a genome build

        Replaces the build's previous model. Variants of that build's files that have no
        gene from VEP `CSQ` or SnpEff `ANN` get the gene they overlap (a protein-coding gene
        first, then the shortest), now and at each later ingestion, so `carriers?gene=`
        finds raw caller output; `annotated_variants` says how many got one now.
        """
        upload = files["file"]
        name = Path(upload.filename or "genes.gtf").name or "genes.gtf"
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            upload.save(path)
            upload.close()
            with transaction():
                model, annotated = services.register_gene_model(
                    actor=current_actor(), path=path, filename=name, **args
                )
                model.annotated_variants = annotated
        return model
