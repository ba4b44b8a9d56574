"""Server-rendered pages: they call the same services as the API."""

from __future__ import annotations

from typing import Any

from flask import Flask, render_template


def render_error(status: int, message: str) -> Any:
    return render_template("error.html", status=status, message=message), status


def init_app(app: Flask) -> None:
    from biobank.web import (  # noqa: F401  (they add pages to pages.bp)
        accessions,
        account,
        cohorts,
        imports,
        network,
        pages,
        requests,
        specimens,
        storage,
        users,
    )

    app.register_blueprint(pages.bp)
    # On the app, not a blueprint: pages that other packages register are covered too.
    app.before_request(pages.check_form_csrf)
    app.after_request(security_headers)
    from biobank.units import format_quantity

    # ``{{ s.quantity|quantity(s.unit) }}`` → ``30 µL``: one way on every page
    app.add_template_filter(format_quantity, "quantity")
    from biobank.models.vocab import display_name

    # ``{{ s.material_type|display }}`` → ``Tissue, paraffin-embedded``: never the code
    app.add_template_filter(display_name, "display")


#: scripts and styles come from the LIMS itself; no inline script runs (inline style
#: attributes draw the lineage tree), no page may frame ours
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)


def security_headers(response: Any) -> Any:
    """Headers every page and API answer carries."""
    from flask import current_app

    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    if current_app.config.get("SESSION_COOKIE_SECURE"):
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response
