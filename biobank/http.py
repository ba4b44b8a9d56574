"""What the API and the pages share about answering: which paths are the API's (they answer
errors as JSON and need no form token), the error page, and the headers of every answer."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, render_template, request


def register_api_paths(app: Flask, *prefixes: str) -> None:
    """Paths outside ``/api/`` that answer as the API does (errors as JSON, no form token):
    the GA4GH services a domain package adds."""
    app.extensions.setdefault("biobank_api_paths", ["/api/"]).extend(prefixes)


def is_api_request() -> bool:
    return request.path.startswith(tuple(current_app.extensions.get("biobank_api_paths", ["/api/"])))


def render_error(status: int, message: str) -> Any:
    return render_template("error.html", status=status, message=message), status


#: scripts and styles come from the LIMS itself; no inline script runs (inline style
#: attributes draw the lineage tree), no page may frame ours
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)


def security_headers(response: Any) -> Any:
    """Headers every page and API answer carries."""
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    if current_app.config.get("SESSION_COOKIE_SECURE"):
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response
