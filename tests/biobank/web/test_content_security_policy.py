"""The pages run under their Content-Security-Policy: no violation, and their scripts work."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from biobank.db import db
from biobank.models import Specimen, StorageContainer
from biobank.models.vocab import ContainerKind
from tests.browser import browser, login, module_server

pytestmark = pytest.mark.browser
__all__ = ["browser"]
server = module_server("csp", demo_participants=10)


def test_every_kind_of_page_runs_with_the_policy_enforced(server, browser):
    base, app = server
    with app.app_context():
        barcode = db.session.scalars(sa.select(Specimen.barcode).order_by(Specimen.id)).first()
        box = db.session.scalars(
            sa.select(StorageContainer.id).where(StorageContainer.kind == ContainerKind.BOX)
        ).first()
        db.session.remove()
    context = browser.new_context(bypass_csp=False)
    page = context.new_page()
    violations = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    login(page, base, "manager", "manager-demo-pw")
    # each page with the element its own script fills in
    for path, ready in (
        ("/", "#total-specimens"),
        ("/specimens", "#results"),
        (f"/specimens/{barcode}", "#custody"),
        ("/storage", "main"),
        (f"/containers/{box}", "#boxmap"),
        (f"/specimens/{barcode}/aliquot?count=2&quantity=0.1", "#make-form"),
        ("/cohorts/new", "#completeness .combo-row"),
        ("/requests", "main"),
        ("/requests/new", "main"),
        ("/imports", "#jobs"),
        ("/api/docs", ".opblock-summary-path"),
    ):
        response = page.goto(base + path)
        assert "script-src 'self'" in response.headers["content-security-policy"], path
        page.wait_for_selector(ready, timeout=15000)
    page.goto(f"{base}/scan")
    page.focus("#scan-field")  # (autofocus may come after the first keys on a busy machine)
    page.keyboard.type(barcode)
    page.keyboard.press("Enter")
    page.wait_for_selector("#card:not([hidden])")
    assert page.text_content("#card-barcode") == barcode
    page.goto(f"{base}/receive")  # its script counts the expected tubes
    page.wait_for_selector("#counter")
    assert re.fullmatch(r"0 of \d+", page.text_content("#counter"))
    assert violations == []
    context.close()
