"""Scans API: what barcode scanners send, recorded exactly once."""

from __future__ import annotations

from typing import Any

from flask import jsonify
from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy.exc import IntegrityError

from biobank.auth import STAFF, current_actor, roles_required
from biobank.db import transaction
from biobank.errors import BiobankError
from biobank.schemas.custody import CustodyEventSchema
from biobank.schemas.scans import (
    ScanBatchSchema,
    ScanCardSchema,
    ScanCreateSchema,
    ScanResultSchema,
)
from biobank.schemas.specimens import SpecimenSchema
from biobank.services import scans

blp = Blueprint("scans", __name__, description="Barcode scans from the bench: custody actions")

_specimen = SpecimenSchema()
_event = CustodyEventSchema()
# Given as instances, made once: given a class, the parser makes a schema (and its nested
# location schema) for every request, a twentieth of a scan's time. A marshmallow schema
# keeps nothing of a load, so one instance serves every request and thread.
_scan = ScanCreateSchema()
_batch = ScanBatchSchema()


def _answer(result: scans.ScanResult) -> dict[str, Any]:
    """What a recorded scan answers (stored with it, so that a retry gets it again)."""
    return {
        "client_event_id": result.scan.client_event_id,
        "action": result.scan.action.value,
        "warnings": result.warnings,
        "allowed_actions": scans.allowed_actions(result.specimen.status),
        "specimen": _specimen.dump(result.specimen),
        "event": _event.dump(result.scan.custody_event),
    }


@blp.route("/")
class ScanViews(MethodView):
    @roles_required(*STAFF)
    @blp.arguments(_scan)
    @blp.alt_response(201, schema=ScanResultSchema, description="The scan as recorded")
    @blp.alt_response(409, description="Illegal transition: `current_state`, `allowed_actions`")
    def post(self, data: dict[str, Any]) -> Any:
        """Record a scan

        The action is checked against the specimen's lifecycle. Sending the same
        `client_event_id` again returns the first answer (header `Idempotent-Replayed: true`)
        and records nothing.
        """
        try:
            with transaction():
                answer, replayed = scans.record(data, actor=current_actor(), answer=_answer)
        except (BiobankError, IntegrityError):
            # refused, unless a retry of this scan racing from another connection recorded it
            answer, replayed = scans.recorded_answer(data), True
            if answer is None:
                raise
        # The stored answer is returned verbatim, so a replay is byte-for-byte the first one.
        response = jsonify(answer)
        response.status_code = 201
        if replayed:
            response.headers["Idempotent-Replayed"] = "true"
        return response


@blp.route("/card/<path:barcode>")
class ScanCardViews(MethodView):
    @roles_required(*STAFF)
    @blp.alt_response(200, schema=ScanCardSchema, description="What the scan station shows")
    def get(self, barcode: str) -> Any:
        """What a scanned code names, and what may be done with it

        The same barcode checks as a scan (check characters, site), without recording
        anything: the scan station shows this card before the technician picks an action.
        """
        card = scans.scan_card(barcode, actor=current_actor())
        return jsonify(
            {
                "specimen": _specimen.dump(card.specimen),
                "allowed_actions": card.allowed_actions,
                "warnings": card.warnings,
            }
        )


@blp.route("/batch")
class ScanBatchViews(MethodView):
    @roles_required(*STAFF)
    @blp.arguments(_batch)
    @blp.alt_response(201, schema=ScanResultSchema(many=True), description="Every scan recorded")
    def post(self, data: dict[str, Any]) -> Any:
        """Record many scans, all or nothing

        If any scan is refused, none is recorded; the error names the scan by its index.
        """
        try:
            with transaction():
                answers = [self._record(index, scan) for index, scan in enumerate(data["scans"])]
        except (BiobankError, IntegrityError):
            # refused, unless a retry of this batch racing from another connection recorded it
            answers = []
            for scan in data["scans"]:
                if (answer := scans.recorded_answer(scan)) is None:
                    raise
                answers.append(answer)
        response = jsonify(answers)
        response.status_code = 201
        return response

    @staticmethod
    def _record(index: int, scan: dict[str, Any]) -> dict[str, Any]:
        try:
            return scans.record(scan, actor=current_actor(), answer=_answer)[0]
        except BiobankError as error:
            error.message = f"scan {index}: {error.message}"
            error.field = f"scans[{index}].{error.field}" if error.field else f"scans[{index}]"
            raise
