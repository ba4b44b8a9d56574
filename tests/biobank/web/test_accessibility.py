"""Every page, checked by axe-core (Deque's engine, as npm publishes it; injected by
Playwright) for serious and critical accessibility violations, as each role sees it; and at
1280×720 (a bench computer's screen) every page fits the width and shows its first control
without scrolling."""

from __future__ import annotations

from importlib import resources

import pytest
import sqlalchemy as sa

from biobank.db import db
from biobank.models import (
    Case,
    CollectionEvent,
    Lesion,
    Participant,
    SampleRequest,
    Specimen,
    StorageContainer,
)
from biobank.models.vocab import ContainerKind
from tests.browser import browser, login, module_server

pytestmark = pytest.mark.browser
__all__ = ["browser"]
server = module_server("a11y", demo_participants=6)
#: what a page must not have: the impacts axe calls serious and critical
BLOCKING = {"serious", "critical"}


def _axe_source() -> str:
    return resources.files("axe_playwright_python").joinpath("axe.min.js").read_text()


def _pages(app):
    with app.app_context():
        try:
            one = lambda model, *where: db.session.scalars(  # noqa: E731
                sa.select(model).where(*where).order_by(model.id)
            ).first()
            tube = one(Specimen, Specimen.pos_row.is_not(None), Specimen.quantity > 0)
            box = one(StorageContainer, StorageContainer.kind == ContainerKind.BOX)
            freezer = one(StorageContainer, StorageContainer.kind == ContainerKind.FREEZER)
            request = one(SampleRequest)
            return {
                "tech": [
                    "/",
                    "/specimens",
                    f"/specimens/{tube.barcode}",
                    "/storage",
                    f"/containers/{box.id}",
                    f"/containers/{freezer.id}",
                    f"/containers/{freezer.id}/evacuation",
                    "/scan",
                    "/receive",
                    "/aliquot",
                    f"/specimens/{tube.barcode}/aliquot?count=2&quantity=0.1",
                    "/accession",
                    f"/accession/visit?participant={tube.participant.code}",
                    f"/accession/visits/{one(CollectionEvent).id}",
                    f"/participants/{one(Participant).code}",
                    f"/cases/{one(Case).code}",
                    f"/lesions/{one(Lesion).code}",
                    "/account",
                    "/labels/printers",
                ],
                "manager": ["/imports", "/admin/network", "/requests", "/cohorts", "/cohorts/new"]
                + ([f"/requests/{request.id}"] if request else []),
                "admin": ["/admin/users", "/admin/users/1", "/accession/visit"],
                "researcher": ["/", "/cohorts", "/requests", "/requests/new", "/account"],
            }
        finally:
            db.session.remove()


#: where a page's work starts: its first field or button (the menu and the account's
#: "Log out" excepted)
FIRST_CONTROL = """() => {
  const main = document.querySelector('main') || document.body;
  const c = [...main.querySelectorAll('input:not([type=hidden]), select, textarea, button, a.button')]
    .find(e => e.offsetParent !== null);
  return c ? c.getBoundingClientRect().top : 0;
}"""


def test_no_page_has_serious_or_critical_violations(server, browser):
    base, app = server
    axe = _axe_source()
    found = {}
    unfit = {}
    for user, paths in _pages(app).items():
        context = browser.new_context(viewport={"width": 1280, "height": 720})
        page = context.new_page()
        login(page, base, user, f"{user}-demo-pw")
        for path in paths:
            response = page.goto(base + path)
            assert response.status < 500, (path, response.status)  # (a 409 page explains)
            page.wait_for_load_state("networkidle")
            page.add_script_tag(content=axe)
            result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
            bad = [
                (v["id"], v["impact"], len(v["nodes"]), v["nodes"][0]["target"])
                for v in result["violations"]
                if v["impact"] in BLOCKING
            ]
            if bad:
                found[f"{user} {path}"] = bad
            wide = page.evaluate("document.documentElement.scrollWidth")
            first = page.evaluate(FIRST_CONTROL)
            if wide > 1280 or first > 720:
                unfit[f"{user} {path}"] = {"width": wide, "first control at": first}
        context.close()
    assert found == {}
    assert unfit == {}
