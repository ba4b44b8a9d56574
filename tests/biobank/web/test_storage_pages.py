"""Setting up storage in a real browser: a manager creates a liquid-nitrogen tank from its
template, then a box inside one of its canisters, and sees the empty grid with its legend;
a technician cannot."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from biobank.db import db
from biobank.models import Specimen, StorageContainer
from tests.browser import browser, login, module_server

pytestmark = pytest.mark.browser
__all__ = ["browser"]
server = module_server("storage", demo_participants=3)


def _units(app, name):
    """(id, path of names) of the containers called *name*."""
    with app.app_context():
        try:
            return [
                (c.id, [p.name for p in c.path()])
                for c in db.session.scalars(sa.select(StorageContainer).where(StorageContainer.name == name))
            ]
        finally:
            db.session.remove()


def test_a_tank_and_a_box_from_templates(server, browser):
    base, app = server
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()
    login(page, base, "manager", "manager-demo-pw")
    page.goto(f"{base}/storage")
    page.fill("#storage-setup input[name=name]", "  ")
    page.select_option("#storage-setup select[name=template]", "ln2-tank")
    page.click("#create-storage")
    page.wait_for_selector(".flash.error")
    assert "give the new storage unit a name" in page.text_content(".flash.error")
    assert _units(app, "") == []

    page.select_option("#storage-setup select[name=template]", "ln2-tank")
    page.fill("#storage-setup input[name=name]", "Tank B")
    page.press("#storage-setup input[name=name]", "Enter")
    page.wait_for_selector(".flash.ok")
    assert page.text_content(".flash.ok") == (
        "Tank B created: LN2 tank: 6 canisters × 12 boxes of 10 × 10, 7,200 positions."
    )
    assert "Liquid nitrogen" in page.text_content("h1")
    assert page.locator("#children tbody tr").count() == 6
    page.click("#children a:text('Canister 1')")
    page.wait_for_selector("#storage-setup")
    assert page.text_content("#storage-setup h2") == "Add inside Canister 1"
    offered = page.locator("#storage-setup select[name=template] option").evaluate_all(
        "options => options.map(o => o.value)"
    )
    assert set(offered) == {"box-9x9", "box-10x10", "bag"}  # what a canister can hold
    page.select_option("#storage-setup select[name=template]", "box-9x9")
    page.fill("#storage-setup input[name=name]", "Overflow box")
    page.click("#create-storage")
    page.wait_for_selector("#boxmap")
    assert page.locator("#boxmap td.cell.free").count() == 81
    assert "Liquid nitrogen" in page.text_content("h1")  # the tank's temperature
    legend = page.text_content("#box-legend")
    assert "quarantined" in legend and "reserved or checked out" in legend
    [(box, path)] = _units(app, "Overflow box")
    [(tank, _)] = _units(app, "Tank B")
    assert path == ["Tank B", "Canister 1", "Overflow box"]
    with app.app_context():
        assert (
            db.session.scalar(
                sa.select(sa.func.count()).select_from(Specimen).where(Specimen.container_id == box)
            )
            == 0
        )
        db.session.remove()
    context.close()

    context = browser.new_context()
    page = context.new_page()
    login(page, base, "tech", "tech-demo-pw")
    page.goto(f"{base}/containers/{tank}")
    assert page.query_selector("#storage-setup") is None
    csrf = page.get_attribute("meta[name=csrf-token]", "content")
    r = page.request.post(
        f"{base}/storage/new",
        form={"csrf": csrf, "template": "box-9x9", "name": "Not mine", "parent_id": str(tank)},
    )
    assert r.status == 403
    assert _units(app, "Not mine") == []
    context.close()
