"""The REST API under /api/v1 (flask-smorest), its error mapping and blueprint registry."""

from __future__ import annotations

from typing import Any

from apispec import BasePlugin
from flask import Flask, Response, current_app, request, send_from_directory
from flask_smorest import Api
from sqlalchemy.exc import DBAPIError, IntegrityError
from swagger_ui_bundle import swagger_ui_path
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from biobank.api import (
    cases,
    cohorts,
    collection_events,
    consents,
    containers,
    errors,
    fhir,
    images,
    imports,
    lesions,
    participants,
    query,
    rack_scans,
    requests,
    scans,
    sites,
    specimens,
    studies,
    tokens,
    users,
    witnesses,
)
from biobank.db import db
from biobank.errors import BiobankError
from biobank.http import is_api_request, register_api_paths, render_error
from biobank.schemas.problems import ProblemSchema

API_PREFIX = "/api/v1"


class ProblemResponses(BasePlugin):
    """Every operation documents its errors as `application/problem+json`: responses given
    with a status and a description only get the problem schema, and every operation has
    the problem as its default response."""

    def operation_helper(
        self,
        path: str | None = None,  # type: ignore[override]
        operations: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        for operation in (operations or {}).values():
            responses = operation.setdefault("responses", {})
            for code, response in responses.items():
                if (
                    str(code).startswith(("4", "5"))
                    and isinstance(response, dict)
                    and "$ref" not in response
                    and "content" not in response
                ):
                    response["content"] = {
                        errors.PROBLEM_MIME: {"schema": {"$ref": "#/components/schemas/Problem"}}
                    }
            responses.setdefault("default", {"$ref": "#/components/responses/DEFAULT_ERROR"})


class BiobankApi(Api):
    """flask-smorest's Api with problem-details errors."""

    ERROR_SCHEMA = ProblemSchema

    def handle_http_exception(self, error: HTTPException) -> Response:  # type: ignore[override]
        return errors.from_http_exception(error)

    def _register_responses(self) -> None:
        # flask-smorest's own error responses, as the problem documents they are
        saved = self.DEFAULT_RESPONSE_CONTENT_TYPE
        self.DEFAULT_RESPONSE_CONTENT_TYPE = errors.PROBLEM_MIME
        try:
            super()._register_responses()
        finally:
            self.DEFAULT_RESPONSE_CONTENT_TYPE = saved


api = BiobankApi(spec_kwargs={"extra_plugins": [ProblemResponses()]})


class IdConverter(IntegerConverter):
    """``<int:…>`` path segments: a number beyond the databases' 64-bit integers names no
    row, so it is a 404 instead of an overflow in the query."""

    def __init__(
        self,
        url_map: Any,
        fixed_digits: int = 0,
        min: int | None = None,
        max: int | None = None,
        signed: bool = False,
    ) -> None:
        super().__init__(
            url_map, fixed_digits=fixed_digits, min=min, max=MAX_ID if max is None else max, signed=signed
        )


#: largest id a path may carry (PostgreSQL BIGINT, SQLite INTEGER)
MAX_ID = 2**63 - 1


def _register_docs_assets(app: Flask) -> None:
    """Serve Swagger UI's files from the installed swagger-ui-bundle package."""

    @app.get("/api/docs/assets/<path:filename>")
    def swagger_ui_asset(filename: str) -> Response:
        return send_from_directory(swagger_ui_path, filename, max_age=24 * 3600)


def _takes_json(endpoint: str | None) -> bool:
    """Whether the API operation *endpoint* reads a JSON body (from its flask-smorest
    arguments)."""

    view = current_app.view_functions.get(endpoint or "")
    view_class = getattr(view, "view_class", None)
    handler = getattr(view_class, request.method.lower(), None) if view_class else view
    doc = getattr(handler, "_apidoc", {}).get("arguments", {})
    return any(p.get("in") == "json" for p in doc.get("parameters", []))


def register_api(app: Flask) -> None:

    # Before any route exists: rules pick their converters when they are added.
    app.url_map.converters["int"] = IdConverter
    api.register_converter(IdConverter, lambda c: {"type": "integer", "minimum": 0, "maximum": c.max})
    api.init_app(app)
    _register_docs_assets(app)

    @app.before_request
    def _body_limit() -> None:
        # Uploads may be as large as their setting allows; every other body is small.
        setting = app.config["UPLOAD_LIMITS"].get(request.endpoint or "")
        if setting:
            request.max_content_length = app.config[setting] + 1024**2  # multipart framing

    @app.before_request
    def _refuse_bodies_that_are_not_json() -> Any:
        if request.method not in ("POST", "PUT", "PATCH") or not _takes_json(request.endpoint):
            return None
        if request.mimetype == "application/json" or request.mimetype.endswith("+json"):
            return None
        sent = request.mimetype or "no Content-Type"
        return errors.problem(
            415,
            "Unsupported Media Type",
            f"send the body as application/json, not {sent}",
            errors=[{"field": "Content-Type", "message": "must be application/json"}],
        )

    @app.before_request
    def _refuse_long_query_strings() -> Any:
        limit = app.config["MAX_QUERY_STRING_BYTES"]
        if is_api_request() and len(request.query_string) > limit:
            return errors.problem(
                400,
                "Bad Request",
                f"the query string is longer than {limit:,} bytes: send long filters in the body of a POST",
                errors=[{"field": "query", "message": "too long"}],
            )
        return None

    for module in (
        sites,
        studies,
        participants,
        consents,
        cases,
        lesions,
        collection_events,
        specimens,
        containers,
        scans,
        rack_scans,
        imports,
        query,
        cohorts,
        images,
        requests,
        tokens,
        users,
        witnesses,
    ):
        api.register_blueprint(module.blp, url_prefix=f"{API_PREFIX}/{module.blp.name}")
    register_api_paths(app, fhir.blp.url_prefix + "/")
    api.register_blueprint(fhir.blp)

    @app.errorhandler(BiobankError)
    def _domain_error(error: BiobankError) -> Any:
        db.session.rollback()
        if is_api_request():
            return errors.from_domain_error(error)

        return render_error(error.status, error.message)

    @app.errorhandler(IntegrityError)
    def _integrity_error(error: IntegrityError) -> Any:
        db.session.rollback()
        return errors.from_integrity_error(error)

    @app.errorhandler(DBAPIError)
    def _db_error(error: DBAPIError) -> Any:
        db.session.rollback()
        return errors.from_database_error(error)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Any:
        if is_api_request():
            return errors.from_http_exception(error)

        return render_error(error.code or 500, error.description or error.name)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Any:
        db.session.rollback()
        app.logger.exception("unhandled error")
        return errors.problem(500, "Internal Server Error", "an unexpected error occurred")
