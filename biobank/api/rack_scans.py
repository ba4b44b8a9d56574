"""Rack scans API: upload a scanner export for a box, review the difference, confirm."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from biobank.auth import STAFF, current_actor, roles_required
from biobank.db import transaction
from biobank.errors import InvalidInput
from biobank.models import RackScan, StorageContainer
from biobank.schemas.rack_scans import (
    RackScanConfirmSchema,
    RackScanFileSchema,
    RackScanResultSchema,
    RackScanSchema,
    RackScanUploadSchema,
)
from biobank.services import rack_scans
from biobank.services.common import get_visible

blp = Blueprint(
    "rack-scans", __name__, description="Whole-box scans from rack scanners (FluidX, VisionMate, Ziath)"
)

MAX_FILE_BYTES = 2 * 1024 * 1024


@blp.route("/")
class RackScanViews(MethodView):
    @roles_required(*STAFF)
    @blp.arguments(RackScanUploadSchema, location="query")
    @blp.arguments(RackScanFileSchema, location="files")
    @blp.response(201, RackScanSchema)
    def post(self, form: dict[str, Any], files: dict[str, Any]) -> Any:
        """Upload a rack-scanner export for a box

        Nothing moves yet: the answer lists what matches the records, what moved within
        the box, what belongs elsewhere, unknown and missing tubes, and whether the rack
        looks rotated 180°.
        """
        data = files["file"].read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise InvalidInput("the file is larger than 2 MB: not a rack export", field="file")
        actor = current_actor()
        with transaction():
            box = get_visible(StorageContainer, form["container_id"], actor, field="container_id")
            return rack_scans.upload_rack_scan(box, data, actor=actor)


@blp.route("/<int:item_id>")
class RackScanByIdViews(MethodView):
    @roles_required(*STAFF)
    @blp.response(200, RackScanSchema)
    def get(self, item_id: int) -> Any:
        """Get an uploaded rack scan and its difference with the records"""
        scan = get_visible(RackScan, item_id, current_actor())
        get_visible(StorageContainer, scan.container_id, current_actor())
        return scan


@blp.route("/<int:item_id>/confirm")
class RackScanConfirmViews(MethodView):
    @roles_required(*STAFF)
    @blp.arguments(RackScanConfirmSchema)
    @blp.response(200, RackScanResultSchema)
    def post(self, data: dict[str, Any], item_id: int) -> Any:
        """Record every move the rack scan shows, in one transaction"""
        actor = current_actor()
        with transaction():
            scan = get_visible(RackScan, item_id, actor)
            get_visible(StorageContainer, scan.container_id, actor)
            return rack_scans.confirm_rack_scan(scan, actor=actor, **data)
