"""The scan station in a real browser, driven like a keyboard-wedge scanner."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from biobank.db import db, transaction
from biobank.models import Participant, Site, Specimen, StorageContainer
from biobank.models.vocab import ContainerKind, MaterialType, SpecimenStatus
from tests.browser import browser, live_server, login
from tests.conftest import separate_database

pytestmark = pytest.mark.browser
__all__ = ["browser"]
N_TUBES = 100


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    url = separate_database(tmp_path_factory.mktemp("scan"), "scan")
    with live_server(url, demo_participants=10) as (base, app):
        with app.app_context(), transaction():
            from biobank.cli import system_actor
            from biobank.services.barcodes import issue_barcode

            system_actor()
            site = db.session.scalars(sa.select(Site).where(Site.code == "CTR")).one()
            participant = db.session.scalars(
                sa.select(Participant).where(Participant.site_id == site.id)).first()
            rack = db.session.scalars(sa.select(StorageContainer).where(
                StorageContainer.site_id == site.id,
                StorageContainer.kind == ContainerKind.RACK)).first()
            db.session.add(StorageContainer(site=site, parent=rack, kind=ContainerKind.BOX,
                                            name="Scan box", barcode="SCANBOX1", n_rows=9,
                                            n_cols=9))
            for _ in range(N_TUBES + 2):
                db.session.add(Specimen(
                    barcode=issue_barcode(site, MaterialType.SERUM), participant=participant,
                    site_id=site.id, material_type=MaterialType.SERUM,
                    status=SpecimenStatus.COLLECTED))
        with app.app_context():
            codes = db.session.scalars(sa.select(Specimen.barcode).where(
                Specimen.status == SpecimenStatus.COLLECTED,
                Specimen.material_type == MaterialType.SERUM).order_by(Specimen.id.desc())
                .limit(N_TUBES + 2)).all()
            db.session.remove()
        yield base, app, list(codes)


@pytest.fixture
def station(server, browser):
    base, app, codes = server
    context = browser.new_context()
    page = context.new_page()
    login(page, base, "tech", "tech-demo-pw")
    page.goto(f"{base}/scan")
    yield page, app, codes
    context.close()


def wedge(page, text):
    """What a keyboard-wedge scanner does: type the characters, then Enter."""
    page.keyboard.type(text)
    page.keyboard.press("Enter")


def _specimen(app, barcode):
    with app.app_context():
        try:
            s = db.session.scalars(sa.select(Specimen).where(Specimen.barcode == barcode)).one()
            return s.status, s.position_label
        finally:
            db.session.remove()


def test_scan_receive_then_store_with_single_keys(station):
    page, app, codes = station
    code = codes[0]
    page.wait_for_function("document.activeElement.id === 'scan-field'")
    wedge(page, code)
    page.wait_for_function("document.querySelector('#scan-prompt').textContent.startsWith('Action')")
    assert page.text_content("#card-barcode") == code
    assert page.text_content("#card-status") == "collected"
    page.keyboard.press("r")
    page.wait_for_selector("#feedback.ok")
    assert "receive recorded" in page.text_content("#feedback")
    assert _specimen(app, code) == (SpecimenStatus.RECEIVED, None)

    wedge(page, code)
    page.wait_for_function("document.querySelector('#scan-prompt').textContent.startsWith('Action')")
    page.keyboard.press("s")
    page.wait_for_function("document.querySelector('#scan-prompt').textContent === 'Scan the box'")
    wedge(page, "SCANBOX1")
    wedge(page, "B3")
    page.wait_for_function("document.querySelector('#feedback').textContent.includes('store')")
    assert "ok" in page.get_attribute("#feedback", "class")
    assert _specimen(app, code) == (SpecimenStatus.IN_STORAGE, "B3")
    assert page.evaluate("document.activeElement.id") == "scan-field"


def test_misread_code_and_illegal_action_are_shown_as_errors(station):
    page, app, codes = station
    code = codes[1]
    misread = code[:-3] + ("0" if code[-3] != "0" else "1") + code[-2:]
    page.wait_for_function("document.activeElement.id === 'scan-field'")
    wedge(page, misread)
    page.wait_for_selector("#feedback.error")
    assert "check characters do not match" in page.text_content("#feedback")
    wedge(page, code)
    page.wait_for_function("document.querySelector('#scan-prompt').textContent.startsWith('Action')")
    page.keyboard.press("i")  # check in: not allowed for a collected tube
    page.wait_for_selector("#feedback.error")
    assert "not allowed" in page.text_content("#feedback")
    assert _specimen(app, code)[0] is SpecimenStatus.COLLECTED


def test_a_hundred_scans_in_a_row_without_reload(station):
    page, app, codes = station
    batch = codes[2:2 + N_TUBES - 2]
    page.check("#repeat-action")
    page.focus("#scan-field")
    wedge(page, batch[0])
    page.wait_for_function("document.querySelector('#scan-prompt').textContent.startsWith('Action')")
    page.keyboard.press("r")
    page.wait_for_function("document.querySelector('#scan-count').textContent === '1 recorded'")
    for n, code in enumerate(batch[1:], start=2):
        wedge(page, code)
        page.wait_for_function(
            f"document.querySelector('#scan-count').textContent === '{n} recorded'")
    assert page.locator("#log li").count() == 50
    with app.app_context():
        received = db.session.scalar(sa.select(sa.func.count()).where(
            Specimen.barcode.in_(batch), Specimen.status == SpecimenStatus.RECEIVED))
        db.session.remove()
    assert received == len(batch)
