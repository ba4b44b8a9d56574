"""Server-rendered pages: they call the same services as the API."""

from __future__ import annotations

from flask import Flask

from biobank.http import security_headers
from biobank.models.vocab import display_name
from biobank.units import format_quantity
from biobank.web import (  # noqa: F401  (each adds its pages to pages.bp)
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


def init_app(app: Flask) -> None:
    app.register_blueprint(pages.bp)
    # On the app, not a blueprint: pages that other packages register are covered too.
    app.before_request(pages.check_form_csrf)
    app.after_request(security_headers)
    # ``{{ s.quantity|quantity(s.unit) }}`` → ``30 µL``: one way on every page
    app.add_template_filter(format_quantity, "quantity")
    # ``{{ s.material_type|display }}`` → ``Tissue, paraffin-embedded``: never the code
    app.add_template_filter(display_name, "display")
