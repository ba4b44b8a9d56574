"""Sites and studies in a real browser: an administrator adds a hospital site, a manager a
study and its consent tiers; a wrong code is refused in words and nothing is saved."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from biobank.db import db
from biobank.models import Site, Study
from tests.browser import browser, login, module_server

pytestmark = pytest.mark.browser
__all__ = ["browser"]
server = module_server("network", demo_participants=2)


def _get(app, model, code):
    with app.app_context():
        try:
            found = db.session.scalar(sa.select(model).where(model.code == code))
            if found is None:
                return None
            tiers = [(t.code, t.scope.value) for t in getattr(found, "consent_tiers", [])]
            return found.name if model is Site else (found.title, tiers)
        finally:
            db.session.remove()


def test_a_site_a_study_and_its_consent_tiers(server, browser):
    base, app = server
    context = browser.new_context()
    page = context.new_page()
    login(page, base, "admin", "admin-demo-pw")
    page.goto(f"{base}/admin/network")
    page.fill("#new-site input[name=code]", "1XY")
    page.fill("#new-site input[name=name]", "Xiangya Hospital")
    page.click("#add-site")
    page.wait_for_selector(".flash.error")
    assert page.text_content(".flash.error").startswith("Not saved: code: ")
    assert _get(app, Site, "1XY") is None
    page.fill("#new-site input[name=code]", "XYH")
    page.fill("#new-site input[name=name]", "Xiangya Hospital")
    page.fill("#new-site input[name=country]", "CN")
    page.click("#add-site")
    page.wait_for_selector(".flash.ok")
    assert "its barcodes start with XYH" in page.text_content(".flash.ok")
    assert _get(app, Site, "XYH") == "Xiangya Hospital"
    context.close()

    context = browser.new_context()
    page = context.new_page()
    login(page, base, "manager", "manager-demo-pw")
    page.goto(f"{base}/admin/network")
    assert page.query_selector("#new-site") is None  # sites are the administrators'
    page.fill("#new-study input[name=code]", "ALOPECIA-2027")
    page.fill("#new-study input[name=title]", "Alopecia areata cohort")
    page.fill("#new-study input[name=ethics_reference]", "IRB-2026-411")
    page.click("#add-study")
    page.wait_for_selector("#study-ALOPECIA-2027")
    study = page.locator("#study-ALOPECIA-2027")
    assert "No consent tier yet" in study.text_content()
    study.locator("input[name=code]").fill("GEN")
    study.locator("select[name=scope]").select_option("genetic_research")
    study.locator("input[name=statement]").fill("My samples may be sequenced.")
    study.locator("button").click()
    page.wait_for_selector(".flash.ok")
    assert _get(app, Study, "ALOPECIA-2027") == ("Alopecia areata cohort", [("GEN", "genetic_research")])
    assert "Genetic research" in page.locator("#study-ALOPECIA-2027 .tiers").text_content()
    context.close()
