"""The REST API under /api/v1 (flask-smorest), its error mapping and blueprint registry."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, request, send_from_directory
from flask_smorest import Api
from sqlalchemy.exc import DBAPIError, IntegrityError
from werkzeug.exceptions import HTTPException

from biobank.api import errors
from biobank.db import db
from biobank.errors import BiobankError

API_PREFIX = "/api/v1"


class BiobankApi(Api):
    """flask-smorest's Api with problem-details errors."""

    def handle_http_exception(self, error: HTTPException) -> Response:  # type: ignore[override]
        return errors.from_http_exception(error)


api = BiobankApi()


def _is_api_request() -> bool:
    return request.path.startswith("/api/") or request.path.startswith("/ga4gh/")


def _register_docs_assets(app: Flask) -> None:
    """Serve Swagger UI's files from the installed swagger-ui-bundle package."""
    from swagger_ui_bundle import swagger_ui_path

    @app.get("/api/docs/assets/<path:filename>")
    def swagger_ui_asset(filename: str) -> Response:
        return send_from_directory(swagger_ui_path, filename, max_age=24 * 3600)


def register_api(app: Flask) -> None:
    from biobank.api import (
        cases,
        cohorts,
        collection_events,
        consents,
        containers,
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
    )

    api.init_app(app)
    _register_docs_assets(app)

    @app.before_request
    def _refuse_long_query_strings() -> Any:
        limit = app.config["MAX_QUERY_STRING_BYTES"]
        if _is_api_request() and len(request.query_string) > limit:
            return errors.problem(
                400, "Bad Request", f"the query string is longer than {limit:,} bytes: send "
                "long filters in the body of a POST",
                errors=[{"field": "query", "message": "too long"}])
        return None
    for module in (sites, studies, participants, consents, cases, lesions, collection_events,
                   specimens, containers, scans, rack_scans, imports, query,
                   cohorts, images, requests):
        api.register_blueprint(module.blp, url_prefix=f"{API_PREFIX}/{module.blp.name}")

    @app.errorhandler(BiobankError)
    def _domain_error(error: BiobankError) -> Any:
        db.session.rollback()
        if _is_api_request():
            return errors.from_domain_error(error)
        from biobank.web import render_error

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
        if _is_api_request():
            return errors.from_http_exception(error)
        from biobank.web import render_error

        return render_error(error.code or 500, error.description or error.name)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Any:
        db.session.rollback()
        app.logger.exception("unhandled error")
        return errors.problem(500, "Internal Server Error", "an unexpected error occurred")
