"""Cohorts: saved filters, frozen snapshots, diffs and manifests with patient-grouped splits."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Response, request
from flask.views import MethodView
from flask_smorest import Blueprint

from biobank.auth import ALL_ROLES, MANAGERS, current_actor, has_role, roles_required
from biobank.db import db, transaction
from biobank.errors import Conflict, PermissionDenied
from biobank.models import CohortSnapshot
from biobank.schemas.cohorts import (
    CohortCreateSchema,
    CohortSchema,
    CohortUpdateSchema,
    DiffSchema,
    ExportSchema,
    ManifestArgsSchema,
    MuDataArgsSchema,
    SnapshotSchema,
    VerifySchema,
)
from biobank.services import cohorts

blp = Blueprint("cohorts", __name__, description="Saved cohorts, frozen snapshots, manifests "
                "for image and AI pipelines")

MIMETYPES = {"tsv": "text/tab-separated-values", "csv": "text/csv",
             "jsonl": "application/jsonl", "parquet": "application/vnd.apache.parquet"}


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
            cohort = cohorts.update_cohort(cohorts.get_cohort(cohort_id, actor), actor=actor,
                                           **data)
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
        return cohorts.diff(cohorts.get_snapshot(snapshot_id, actor),
                            cohorts.get_snapshot(other_id, actor), actor=actor)


def _snapshot_of(cohort: Any, snapshot_id: int | None, actor: Any) -> CohortSnapshot:
    """The cohort's snapshot *snapshot_id*, or its newest; 409 if it was never frozen."""
    if snapshot_id is None:
        snapshot_id = db.session.scalar(sa.select(sa.func.max(CohortSnapshot.id)).where(
            CohortSnapshot.cohort_id == cohort.id))
        if snapshot_id is None:
            raise Conflict("this cohort has no frozen snapshot: freeze it first "
                           f"(POST /api/v1/cohorts/{cohort.id}/snapshots)", field="snapshot")
    snapshot = cohorts.get_snapshot(snapshot_id, actor)
    if snapshot.cohort_id != cohort.id:
        raise Conflict(f"snapshot {snapshot.id} belongs to another cohort", field="snapshot")
    return snapshot


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
        snapshot = _snapshot_of(cohort, args.pop("snapshot", None), actor)
        fmt = args.pop("format")
        with transaction():
            result = cohorts.export(snapshot, actor=actor, fmt=fmt, drs_host=request.host,
                                    **args)
            body = cohorts.deliver(result, snapshot)
        headers = {
            "Content-Disposition":
                f'attachment; filename="cohort-{cohort.id}-snapshot-{snapshot.id}.{fmt}"',
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


@blp.route("/<int:cohort_id>/mudata")
class MuDataView(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.arguments(MuDataArgsSchema, location="query")
    @blp.response(200, {"type": "string", "format": "binary"},
                  content_type="application/x-hdf5")
    def get(self, args: dict[str, Any], cohort_id: int) -> Any:
        """A frozen snapshot's omics matrices as MuData (`.h5mu`), managers only

        One modality per omics kind; observations are the snapshot's aliquots by barcode
        with pseudonymous participant, case, lesion and diagnosis.
        """
        actor = current_actor()
        if not has_role(actor, MANAGERS):
            raise PermissionDenied("omics matrices are exported by biobank managers")
        snapshot = _snapshot_of(cohorts.get_cohort(cohort_id, actor), args.get("snapshot"),
                                actor)
        cohorts.check_export_sites(snapshot, actor)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "cohort.h5mu"
            cohorts.write_mudata(snapshot, path)
            body = path.read_bytes()
        return Response(body, mimetype="application/x-hdf5", headers={
            "Content-Disposition":
                f'attachment; filename="cohort-{cohort_id}-snapshot-{snapshot.id}.h5mu"'})
