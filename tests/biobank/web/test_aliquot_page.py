"""Making aliquots at the bench in a real browser: the parent tube is scanned, the split typed,
positions suggested by the free-space search and changed on the box grid, labels printed,
everything recorded at once; and a refused split writes nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from biobank.db import db
from biobank.models import Site, Specimen, User
from biobank.models.vocab import MaterialType, SpecimenStatus
from tests.biobank.web.test_receive_page import wedge
from tests.browser import browser, focused_id, focused_name, login, module_server

pytestmark = pytest.mark.browser
__all__ = ["browser"]
server = module_server("aliquot", demo_participants=6)


def _parent(app):
    """A DNA tube in a box at one of the technician's sites, with plenty left."""
    with app.app_context():
        try:
            tech = db.session.scalar(sa.select(User).where(User.username == "tech"))
            sites = [s.id for s in tech.sites] if tech.sites else list(db.session.scalars(sa.select(Site.id)))
            tube = db.session.scalars(
                sa.select(Specimen)
                .where(
                    Specimen.material_type == MaterialType.DNA,
                    Specimen.status == SpecimenStatus.IN_STORAGE,
                    Specimen.site_id.in_(sites),
                    Specimen.pos_row.is_not(None),
                    Specimen.quantity >= Decimal("40"),
                )
                .order_by(Specimen.id)
            ).first()
            return tube.barcode, tube.quantity
        finally:
            db.session.remove()


def _tube(app, barcode):
    with app.app_context():
        try:
            s = db.session.scalar(sa.select(Specimen).where(Specimen.barcode == barcode))
            return {
                "quantity": s.quantity,
                "parent": s.parent.barcode if s.parent else None,
                "place": (s.container_id, s.pos_row, s.pos_col),
                "status": s.status,
            }
        finally:
            db.session.remove()


class Keys:
    """The keys typed besides scans, counted as the issue asks (a scan is the wedge's)."""

    def __init__(self, page):
        self.page, self.count = page, 0

    def type(self, text):
        self.page.keyboard.type(text)
        self.count += len(text)

    def press(self, key):
        self.page.keyboard.press(key)
        self.count += 1


def test_three_aliquots_placed_on_the_grid_and_labelled_at_once(server, browser):
    base, app = server
    barcode, before = _parent(app)
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()
    login(page, base, "tech", "tech-demo-pw")
    page.goto(f"{base}/aliquot")
    assert focused_id(page, "parent-field") == "parent-field"
    wedge(page, barcode)
    page.wait_for_selector("#plan-form")
    keys = Keys(page)
    assert focused_name(page, "count") == "count"
    keys.type("3")
    keys.press("Tab")
    keys.type("5")
    keys.press("Enter")
    page.wait_for_selector("#make-form")
    suggested = [
        box.get_attribute("value") for box in page.query_selector_all("#make-form input[name=pos]:checked")
    ]
    assert len(suggested) == 3
    assert focused_id(page, "make") == "make"
    assert page.text_content("#make") == "Make 3 tubes"
    assert page.locator("#make").is_visible() and page.locator("#make").bounding_box()["y"] < 720
    # the technician moves one tube to another free position on the grid
    other = page.query_selector("#make-form input[name=pos]:not(:checked)").get_attribute("value")
    page.uncheck(f"input[value='{suggested[0]}']")
    page.check(f"input[value='{other}']")
    chosen = sorted([*suggested[1:], other])
    page.focus("#make")
    keys.press("Enter")
    page.wait_for_selector("#made")
    rows = page.query_selector_all("#made tbody tr")
    assert len(rows) == 3
    made = [r.query_selector("code").text_content() for r in rows]
    places = sorted("{}:{}:{}".format(*_tube(app, b)["place"]) for b in made)
    assert places == chosen
    assert all(_tube(app, b)["parent"] == barcode for b in made)
    assert all(_tube(app, b)["quantity"] == Decimal("5") for b in made)
    assert _tube(app, barcode)["quantity"] == before - Decimal("15")
    # the labels were printed in the same action: the PDF opens from the confirmation
    href = page.get_attribute("#labels-pdf", "href")
    pdf = page.request.get(f"{base}{href}")
    assert pdf.ok and pdf.body().startswith(b"%PDF")
    assert keys.count <= 8, keys.count
    context.close()


def test_a_refused_split_says_why_and_writes_nothing(server, browser):
    base, app = server
    barcode, before = _parent(app)
    context = browser.new_context()
    page = context.new_page()
    login(page, base, "tech", "tech-demo-pw")
    page.goto(f"{base}/specimens/{barcode}/aliquot?count=2&quantity=lots")
    assert "quantity of each: 'lots' is not a number" in page.text_content("#plan-problem")
    assert page.query_selector("#make-form") is None
    page.goto(f"{base}/specimens/{barcode}/aliquot?count=2&quantity=999")
    page.click("#make")
    page.wait_for_selector(".flash.error")
    assert "Nothing was made" in page.text_content(".flash.error")
    assert f"{barcode} holds" in page.text_content(".flash.error")
    assert _tube(app, barcode)["quantity"] == before
    context.close()
