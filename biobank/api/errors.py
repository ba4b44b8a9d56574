"""Turn domain errors, HTTP errors and database conflicts into RFC 9457 problem details."""

from __future__ import annotations

import re
from typing import Any

from flask import Response, current_app, jsonify, request
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from werkzeug.exceptions import HTTPException

from biobank.errors import BiobankError

PROBLEM_MIME = "application/problem+json"

#: constraint name → (field, message) for conflicts the database detects
CONSTRAINT_FIELDS = {
    "uq_specimens_position": ("pos_row", "that position is already occupied"),
    "uq_specimens_barcode": ("barcode", "a specimen with this barcode already exists"),
    "uq_specimens_manufacturer_barcode": (
        "manufacturer_barcode",
        "a specimen with this manufacturer barcode already exists",
    ),
    "uq_sites_code": ("code", "a site with this code already exists"),
    "uq_studies_code": ("code", "a study with this code already exists"),
    "uq_participants_code": ("code", "a participant with this code already exists"),
    "uq_cases_code": ("code", "a case with this code already exists"),
    "uq_lesions_code": ("code", "a lesion with this code already exists"),
    "uq_users_username": ("username", "this username is taken"),
    "uq_consent_tiers_study_id_code": ("code", "this study already has a tier with this code"),
    "uq_consent_responses_participant_id_tier_id": (
        "tier_id",
        "this participant already answered this consent tier",
    ),
    "uq_storage_containers_barcode": ("barcode", "a container with this barcode already exists"),
    "uq_storage_containers_parent_id_name": (
        "name",
        "the parent container already holds a container with this name",
    ),
    "uq_custody_events_client_event_id": ("client_event_id", "this client event id was used"),
}


def problem(
    status: int, title: str, detail: str, *, errors: list[dict[str, Any]] | None = None, **extra: Any
) -> Response:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.path,
    }
    if errors:
        body["errors"] = errors
    if request.path.startswith("/ga4gh/"):  # GA4GH APIs name their error fields so
        body["msg"], body["status_code"] = detail, status
    body.update({k: v for k, v in extra.items() if v is not None})
    response = jsonify(body)
    response.status_code = status
    response.mimetype = PROBLEM_MIME
    return response


def from_domain_error(error: BiobankError) -> Response:
    errors = [{"field": error.field, "message": error.message}] if error.field else None
    response = problem(error.status, error.title, error.message, errors=errors, **error.extra)
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="biobank"'
    return response


def _flatten(messages: Any, location: str, prefix: str = "") -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(key, int) and prefix:
                path = f"{prefix}[{key}]"
            out.extend(_flatten(value, location, path))
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        for message in messages:
            out.append({"location": location, "field": prefix or None, "message": message})
    elif isinstance(messages, list):
        for i, value in enumerate(messages):
            out.extend(_flatten(value, location, f"{prefix}[{i}]"))
    else:
        out.append({"location": location, "field": prefix or None, "message": str(messages)})
    return out


def from_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    messages = data.get("messages")
    if messages:
        errors: list[dict[str, Any]] = []
        for location, by_field in messages.items():
            errors.extend(_flatten(by_field, location))
        first = errors[0]
        where = f"{first['field']}: " if first.get("field") else ""
        detail = f"{where}{first['message']}"
        if len(errors) > 1:
            detail += f" (and {len(errors) - 1} more)"
        return problem(status, "Invalid input", detail, errors=errors)
    detail = data.get("message") or error.description or error.name
    response = problem(status, error.name, detail)
    if status == 405 and error.get_response().headers.get("Allow"):
        response.headers["Allow"] = error.get_response().headers["Allow"]
    return response


def from_integrity_error(error: IntegrityError) -> Response:
    text = str(error.orig)
    for name, (field, message) in CONSTRAINT_FIELDS.items():
        if name in text:
            return problem(409, "Conflict", message, errors=[{"field": field, "message": message}])
    sqlite_unique = re.search(r"UNIQUE constraint failed: ([\w.]+(?:, [\w.]+)*)", text)
    if sqlite_unique:
        columns = sqlite_unique.group(1)
        if columns == "specimens.container_id, specimens.pos_row, specimens.pos_col":
            field, message = CONSTRAINT_FIELDS["uq_specimens_position"]
        else:
            field = columns.split(", ")[-1].split(".")[-1]
            message = f"{columns} must be unique"
        return problem(409, "Conflict", message, errors=[{"field": field, "message": message}])
    current_app.logger.warning("integrity error: %s", text)
    return problem(409, "Conflict", "the change conflicts with existing data")


def from_database_error(error: DBAPIError) -> Response:
    if isinstance(error, DataError):
        # A value the column cannot hold (overflow, bad encoding) that validation let through.
        return problem(422, "Invalid input", f"a value does not fit its column: {error.orig}")
    if error.connection_invalidated:
        # The server dropped the connection (a restart): the pool replaces it, and the whole
        # transaction was undone, so the request may simply be sent again.
        current_app.logger.warning("database connection lost: %s", error.orig)
        response = problem(
            503, "Service Unavailable", "the connection to the database was lost; retry the request"
        )
        response.headers["Retry-After"] = "1"
        return response
    current_app.logger.exception("database error")
    if "could not serialize" in str(error.orig) or "deadlock" in str(error.orig):
        return problem(409, "Conflict", "a concurrent change won; retry the request")
    return problem(500, "Internal Server Error", "a database error occurred")
