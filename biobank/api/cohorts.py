"""Cohorts: saved filters, frozen snapshots, diffs and manifests with patient-grouped splits."""

from __future__ import annotations

import json
from typing import Any

from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint

from biobank.auth import ALL_ROLES, current_actor, roles_required
from biobank.db import transaction
from biobank.schemas.cohorts import (
    CohortCreateSchema,
    CohortSchema,
    CohortUpdateSchema,
    DiffSchema,
    ExportSchema,
    ManifestArgsSchema,
    SnapshotSchema,
    VerifySchema,
)
from biobank.services import cohorts

blp = Blueprint(
    "cohorts", __name__, description="Saved cohorts, frozen snapshots, manifests for image and AI pipelines"
)

MIMETYPES = {
    "tsv": "text/tab-separated-values",
    "csv": "text/csv",
    "jsonl": "application/jsonl",
    "parquet": "application/vnd.apache.parquet",
}


@blp.route("/")
class CohortsView(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.response(200, CohortSchema(many=True))
    def get(self) -> Any:
        """Cohorts: one's own; managers see every cohort"""
        return cohorts.list_cohorts(current_actor())

    @roles_required(*ALL_ROLES)
    @blp.arguments(CohortCreateSchema)
    @blp.response(201, CohortSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Save a filter as a cohort (its answer follows the data until frozen)"""
        with transaction():
            cohort = cohorts.create_cohort(actor=current_actor(), **data)
        return cohort


@blp.route("/<int:cohort_id>")
class CohortView(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.response(200, CohortSchema)
    def get(self, cohort_id: int) -> Any:
        """A cohort and its snapshots"""
        return cohorts.get_cohort(cohort_id, current_actor())

    @roles_required(*ALL_ROLES)
    @blp.arguments(CohortUpdateSchema)
    @blp.response(200, CohortSchema)
    def patch(self, data: dict[str, Any], cohort_id: int) -> Any:
        """Rename a cohort or change its filter (snapshots stay as they were)"""
        actor = current_actor()
        with transaction():
            cohort = cohorts.update_cohort(cohorts.get_cohort(cohort_id, actor), actor=actor, **data)
        return cohort


@blp.route("/<int:cohort_id>/snapshots")
class SnapshotsView(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.response(201, SnapshotSchema)
    def post(self, cohort_id: int) -> Any:
        """Freeze the cohort: its members and data objects now, with their SHA-256"""
        actor = current_actor()
        with transaction():
            snapshot = cohorts.freeze(cohorts.get_cohort(cohort_id, actor), actor=actor)
        return snapshot


@blp.route("/snapshots/<int:snapshot_id>")
class SnapshotView(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.response(200, SnapshotSchema)
    def get(self, snapshot_id: int) -> Any:
        """One frozen snapshot"""
        return cohorts.get_snapshot(snapshot_id, current_actor())


@blp.route("/snapshots/<int:snapshot_id>/verify")
class VerifyView(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.response(200, VerifySchema)
    def get(self, snapshot_id: int) -> Any:
        """Recompute the snapshot's member and manifest digests and compare"""
        return cohorts.verify(cohorts.get_snapshot(snapshot_id, current_actor()))


@blp.route("/snapshots/<int:snapshot_id>/diff/<int:other_id>")
class DiffView(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.response(200, DiffSchema)
    def get(self, snapshot_id: int, other_id: int) -> Any:
        """Members added and removed from one snapshot to another"""
        actor = current_actor()
        return cohorts.diff(
            cohorts.get_snapshot(snapshot_id, actor), cohorts.get_snapshot(other_id, actor), actor=actor
        )


@blp.route("/<int:cohort_id>/manifest")
class ManifestView(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.arguments(ManifestArgsSchema, location="query")
    @blp.response(200, {"type": "string", "format": "binary"}, content_type="text/plain")
    def get(self, args: dict[str, Any], cohort_id: int) -> Any:
        """A frozen snapshot's data objects with pseudonymous ids, DRS URIs and a split

        One row per omics sample column or image: patient, case, lesion, specimen and aliquot
        ids (pseudonymous), modality, DRS URI, size, SHA-256, diagnosis labels and `split`.
        The split is decided per patient from a salted hash (optionally stratified by
        diagnosis) and stored with the export; `X-Split-Checks` reports that no patient is
        in two splits and no earlier test or validation patient of the salt family moved.
        Rows are the snapshot's content as frozen: later edits of the records do not change
        them. Rows whose patient no longer consents are left out (`excluded_by_consent`),
        each listed with its reason at `GET /api/v1/cohorts/exports/<X-Export-Id>`.
        `X-Manifest-SHA256` is the SHA-256 of exactly the bytes delivered;
        `X-Snapshot-Manifest-Digest` the snapshot's keyed digest (`…/verify`). A cohort that
        was never frozen answers 409.
        """
        actor = current_actor()
        cohort = cohorts.get_cohort(cohort_id, actor)
        snapshot = cohorts.snapshot_of(cohort, args.pop("snapshot", None), actor)
        fmt = args.pop("format")
        with transaction():
            result = cohorts.export(snapshot, actor=actor, fmt=fmt, drs_host=request.host, **args)
            body = cohorts.deliver(result, snapshot)
        headers = {
            "Content-Disposition": f'attachment; filename="cohort-{cohort.id}-snapshot-{snapshot.id}.{fmt}"',
            "X-Export-Id": str(result.record.id),
            "X-Manifest-SHA256": result.record.manifest_sha256,
            "X-Snapshot-Manifest-Digest": snapshot.manifest_sha256,
            "X-Split-Checks": json.dumps(result.checks),
        }
        return Response(body, mimetype=MIMETYPES[fmt], headers=headers)


@blp.route("/exports/<int:export_id>")
class ExportView(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.response(200, ExportSchema)
    def get(self, export_id: int) -> Any:
        """One manifest export: its parameters, the SHA-256 of the bytes delivered, and
        every frozen row it left out with the reason"""
        return cohorts.get_export(export_id, current_actor())
