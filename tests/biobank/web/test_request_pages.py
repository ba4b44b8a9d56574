"""A request end to end in a real browser: request → approve → allocate → pick → ship → receive."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from biobank.db import db, transaction
from biobank.models import User
from tests.browser import browser, focused_id, live_server, login
from tests.conftest import separate_database

pytestmark = pytest.mark.browser
__all__ = ["browser"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    url = separate_database(tmp_path_factory.mktemp("requests"), "requests")
    with live_server(url, demo_participants=40) as (base, app):
        with app.app_context(), transaction():
            from biobank.services import cohorts

            researcher = db.session.scalar(sa.select(User).where(User.username == "researcher"))
            cohort = cohorts.create_cohort(
                actor=researcher,
                name="Melanoma plasma",
                level="cases",
                filters={"op": "=", "content": {"field": "cases.disease_group", "value": "melanoma"}},
            )
        with app.app_context():
            db.session.remove()
        yield base, cohort.id, app


def page_for(browser, base, user, password):
    context = browser.new_context()
    page = context.new_page()
    login(page, base, user, password)
    return context, page


def test_request_to_receipt_through_the_pages(server, browser):
    base, cohort_id, _app = server
    context, page = page_for(browser, base, "researcher", "researcher-demo-pw")
    page.goto(f"{base}/cohorts/{cohort_id}")
    page.click("#request-samples")
    page.wait_for_url(re.compile(r".*/requests/new\?cohort=\d+"))
    page.fill("input[name=title]", "Plasma cytokines in melanoma")
    page.fill("textarea[name=purpose]", "Multiplex cytokine panel on pre-treatment plasma")
    page.fill("input[name=ethics_reference]", "IRB-2026-201")
    page.select_option("select[name=material_type]", "PLASMA")
    page.wait_for_function("document.getElementById('servable').textContent !== '…'")
    page.click("#submit-request")
    page.wait_for_url(re.compile(r".*/requests/\d+$"))
    request_url = page.url
    assert page.text_content("#request-status") == "Submitted"
    context.close()

    context, page = page_for(browser, base, "manager", "manager-demo-pw")
    page.goto(request_url)
    page.fill("input[name=password]", "not my password")
    page.click("#approve")
    page.wait_for_selector("#message:not([hidden])")
    assert "nothing was signed" in page.text_content("#message")
    page.fill("input[name=password]", "manager-demo-pw")
    page.click("#approve")
    page.wait_for_selector("#allocate")
    assert "meaning: approved" in page.text_content("#signature")
    page.click("#allocate")
    page.wait_for_selector("#pick-list")
    barcodes = page.locator("#pick-list tr[data-barcode]").evaluate_all(
        "rows => rows.map(r => r.dataset.barcode)"
    )
    assert barcodes
    context.close()

    context, page = page_for(browser, base, "tech", "tech-demo-pw")
    page.goto(request_url)
    assert focused_id(page, "pick-field") == "pick-field"
    assert page.text_content("#pick-counter") == f"0 of {len(barcodes)}"
    field = page.locator("#pick-field")
    field.fill("NOT-ON-THE-LIST")
    field.press("Enter")
    page.wait_for_function("document.getElementById('message').textContent.includes('WRONG TUBE')")
    for barcode in barcodes:
        field.fill(barcode)
        field.press("Enter")
        page.wait_for_function(
            "b => document.getElementById('message').textContent.startsWith(b + ' picked')", arg=barcode
        )
    assert page.locator("#pick-list tr.picked").count() == len(barcodes)
    assert page.text_content("#pick-counter") == f"{len(barcodes)} of {len(barcodes)}"
    page.fill("input[name=courier]", "ColdChain")
    page.click("#ship-button")
    page.wait_for_function("document.getElementById('request-status').textContent === 'Shipped'")
    context.close()

    context, page = page_for(browser, base, "researcher", "researcher-demo-pw")
    page.goto(request_url)
    field = page.locator("#receive-field")
    arrived = barcodes[:-1] if len(barcodes) > 1 else barcodes
    for i, barcode in enumerate(arrived):
        if i == 0:
            page.check("#damaged")
        field.fill(barcode)
        field.press("Enter")
    page.click("#reconcile")
    page.wait_for_selector("#parcels .reconciliation")
    text = page.text_content("#parcels .reconciliation")
    assert f"{len(arrived)} received" in text and f"damaged: {arrived[0]}" in text
    if len(barcodes) > 1:
        assert f"missing: {barcodes[-1]}" in text
    page.click("#report-link")
    page.wait_for_selector("#report-tubes")
    assert "still matches what was signed" in page.text_content("#approval")
    assert page.locator("#report-tubes tbody tr").count() == len(barcodes)
    context.close()


def test_make_every_aliquot_in_one_action(server, browser):
    """An approved request whose cases have only primaries left: the technician makes every
    aliquot at once, each placed and allocated, their labels one PDF."""
    from biobank.services import requests as request_service

    base, cohort_id, app = server
    with app.app_context():
        with transaction():
            researcher, manager = (
                db.session.scalar(sa.select(User).where(User.username == name))
                for name in ("researcher", "manager")
            )
            item = request_service.submit(
                actor=researcher,
                title="Frozen tumour for exomes",
                purpose="Exome sequencing",
                ethics_reference="IRB-2026-305",
                cohort_id=cohort_id,
                consent_scopes=[],
                requirements={
                    "material_type": "TISSUE_FROZEN",
                    "aliquots_per_case": 2,
                    "min_quantity": 5,
                    "unit": "mg",
                },
            )
            request_service.decide(item, actor=manager, approve=True, password="manager-demo-pw")
            allocated = request_service.allocate(item, actor=manager)
            request_id = item.id
        db.session.remove()
    tasks = allocated["processing_tasks"]
    assert tasks > 0, allocated

    context, page = page_for(browser, base, "tech", "tech-demo-pw")
    page.goto(f"{base}/requests/{request_id}")
    assert page.locator("#pick-list .make-aliquot").count() == tasks
    assert page.text_content("#make-every-button") == f"Make every aliquot ({tasks})"
    page.focus("input[name=quantity]")
    page.keyboard.type("5")
    page.keyboard.press("Enter")
    page.wait_for_selector("#every-done")
    assert page.text_content("#every-done").startswith(
        f"{tasks} {'aliquot' if tasks == 1 else 'aliquots'} made, placed and allocated."
    )
    assert page.locator("#pick-list .make-aliquot").count() == 0
    assert page.query_selector("#make-every") is None
    positions = page.locator("#pick-list tbody tr").evaluate_all(
        "rows => rows.map(r => r.cells[7].textContent.trim())"
    )
    assert all(positions), positions  # every tube, the new aliquots too, has its place
    pdf = page.request.get(base + page.get_attribute("#every-labels", "href"))
    assert pdf.ok and pdf.body().startswith(b"%PDF")
    context.close()
