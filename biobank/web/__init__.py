"""Server-rendered pages: they call the same services as the API."""

from __future__ import annotations

from typing import Any

from flask import Flask, render_template


def render_error(status: int, message: str) -> Any:
    return render_template("error.html", status=status, message=message), status


def init_app(app: Flask) -> None:
    from biobank.web import cohorts, pages, requests  # noqa: F401  (they add pages to pages.bp)

    app.register_blueprint(pages.bp)
    # On the app, not a blueprint: pages that other packages register are covered too.
    app.before_request(pages.check_form_csrf)
    from biobank.units import format_quantity

    # ``{{ s.quantity|quantity(s.unit) }}`` → ``30 µL``: one way on every page
    app.add_template_filter(format_quantity, "quantity")
