"""The scan station in a real browser, driven like a keyboard-wedge scanner."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from biobank.barcodes import make_barcode
from biobank.db import db, transaction
from biobank.models import CustodyEvent, Participant, Site, Specimen, StorageContainer
from biobank.models.vocab import ContainerKind, MaterialType, QuantityUnit, SpecimenStatus
from tests.browser import browser, focused_id, live_server, login
from tests.conftest import separate_database

pytestmark = pytest.mark.browser
__all__ = ["browser"]
N_TUBES = 100
ACTION_KEYS = "rsmoitpacdx"
TUBE_A = make_barcode("AAA", MaterialType.PLASMA, 1)
TUBES_B = {
    key: make_barcode(key.upper() + "BB", MaterialType.PLASMA, n)
    for n, key in enumerate(ACTION_KEYS, start=1)
}
SPARE_TUBES = [make_barcode("CSP", MaterialType.PLASMA, n) for n in range(1, 5)]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    url = separate_database(tmp_path_factory.mktemp("scan"), "scan")
    with live_server(url, demo_participants=10) as (base, app):
        with app.app_context(), transaction():
            from biobank.services.barcodes import issue_barcode
            from biobank.services.users import system_actor

            system_actor()
            site = db.session.scalars(sa.select(Site).where(Site.code == "CTR")).one()
            participant = db.session.scalars(
                sa.select(Participant).where(Participant.site_id == site.id)
            ).first()
            rack = db.session.scalars(
                sa.select(StorageContainer).where(
                    StorageContainer.site_id == site.id, StorageContainer.kind == ContainerKind.RACK
                )
            ).first()
            box = StorageContainer(
                site=site,
                parent=rack,
                kind=ContainerKind.BOX,
                name="Scan box",
                barcode="SCANBOX1",
                n_rows=9,
                n_cols=9,
            )
            db.session.add(box)
            # Tube A, stored with 30 µL, and one tube B per action key, whose code starts
            # with that key's letter.
            db.session.add(
                Specimen(
                    barcode=TUBE_A,
                    participant=participant,
                    site_id=site.id,
                    material_type=MaterialType.PLASMA,
                    status=SpecimenStatus.IN_STORAGE,
                    quantity=Decimal("30"),
                    initial_quantity=Decimal("30"),
                    unit=QuantityUnit.UL,
                    container=box,
                    pos_row=9,
                    pos_col=9,
                )
            )
            for code in [*TUBES_B.values(), *SPARE_TUBES]:
                db.session.add(
                    Specimen(
                        barcode=code,
                        participant=participant,
                        site_id=site.id,
                        material_type=MaterialType.PLASMA,
                        status=SpecimenStatus.IN_STORAGE,
                        quantity=Decimal("20"),
                        initial_quantity=Decimal("20"),
                        unit=QuantityUnit.UL,
                    )
                )
            for _ in range(N_TUBES + 2):
                db.session.add(
                    Specimen(
                        barcode=issue_barcode(site, MaterialType.SERUM),
                        participant=participant,
                        site_id=site.id,
                        material_type=MaterialType.SERUM,
                        status=SpecimenStatus.COLLECTED,
                    )
                )
        with app.app_context():
            codes = db.session.scalars(
                sa.select(Specimen.barcode)
                .where(
                    Specimen.status == SpecimenStatus.COLLECTED, Specimen.material_type == MaterialType.SERUM
                )
                .order_by(Specimen.id.desc())
                .limit(N_TUBES + 2)
            ).all()
            db.session.remove()
        yield base, app, list(codes)


@pytest.fixture
def station(server, browser):
    base, app, codes = server
    context = browser.new_context()
    page = context.new_page()
    login(page, base, "tech", "tech-demo-pw")
    page.goto(f"{base}/scan")
    page.focus("#scan-field")  # (autofocus may come after the first keys on a busy machine)
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
    assert focused_id(page, "scan-field") == "scan-field"


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
    batch = codes[2 : 2 + N_TUBES - 2]
    page.check("#repeat-action")
    page.focus("#scan-field")
    wedge(page, batch[0])
    page.wait_for_function("document.querySelector('#scan-prompt').textContent.startsWith('Action')")
    page.keyboard.press("r")
    page.wait_for_function("document.querySelector('#scan-count').textContent === '1 recorded'")
    for n, code in enumerate(batch[1:], start=2):
        wedge(page, code)
        page.wait_for_function(f"document.querySelector('#scan-count').textContent === '{n} recorded'")
    assert page.locator("#log li").count() == 50
    with app.app_context():
        received = db.session.scalar(
            sa.select(sa.func.count()).where(
                Specimen.barcode.in_(batch), Specimen.status == SpecimenStatus.RECEIVED
            )
        )
        db.session.remove()
    assert received == len(batch)


def _state(app, barcode):
    """Status, quantity, position and number of custody events of a tube."""
    with app.app_context():
        try:
            s = db.session.scalars(sa.select(Specimen).where(Specimen.barcode == barcode)).one()
            events = db.session.scalar(sa.select(sa.func.count()).where(CustodyEvent.specimen_id == s.id))
            return s.status, s.quantity, s.position_label, events
        finally:
            db.session.remove()


def _show_card(page, code):
    wedge(page, code)
    page.wait_for_function(
        f"document.querySelector('#card-barcode').textContent === '{code}' && "
        "document.querySelector('#scan-prompt').textContent.startsWith('Action')"
    )


def test_scanning_the_next_tube_never_acts_on_the_one_on_the_card(station):
    page, app, _codes = station
    before = _state(app, TUBE_A)
    page.wait_for_function("document.activeElement.id === 'scan-field'")
    for key, code in TUBES_B.items():
        _show_card(page, TUBE_A)
        assert code.startswith(key.upper())
        _show_card(page, code)
        assert page.text_content("#card-barcode") == code
        assert "error" not in (page.get_attribute("#feedback", "class") or "")
        assert _state(app, TUBE_A) == before, f"scanning {code} acted on {TUBE_A}"
        assert _state(app, code)[3] == 0
    assert page.text_content("#scan-count") == "0 recorded"


def _press_on_card(page, code, key, prompt):
    """Show *code*'s card, press the action *key* alone, wait for the prompt that follows."""
    page.wait_for_function("document.activeElement.id === 'scan-field'")
    _show_card(page, code)
    page.keyboard.press(key)
    page.wait_for_function(f"document.querySelector('#scan-prompt').textContent.startsWith('{prompt}')")


def test_consume_asks_why_and_for_confirmation_and_says_what_will_happen(station):
    page, app, _codes = station
    code = SPARE_TUBES[0]
    _press_on_card(page, code, "c", "Why")
    page.keyboard.press("Escape")  # cancelled: nothing recorded
    page.wait_for_function("document.querySelector('#scan-prompt').textContent.startsWith('Action')")
    assert _state(app, code)[3] == 0
    page.keyboard.press("c")
    page.wait_for_function("document.querySelector('#scan-prompt').textContent.startsWith('Why')")
    page.keyboard.type("cytokine panel, plate 3", delay=60)
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#scan-prompt').textContent.startsWith('Confirm')")
    text = page.text_content("#confirm-text")
    assert "20 µL" in text and "used up" in text and "cytokine panel, plate 3" in text
    assert _state(app, code)[0] is SpecimenStatus.IN_STORAGE
    page.keyboard.press("c")
    page.wait_for_selector("#feedback.ok")
    assert "consume recorded" in page.text_content("#feedback")
    assert _state(app, code) == (SpecimenStatus.CONSUMED, 0, None, 1)


def test_dispose_asks_why_then_for_confirmation(station):
    page, app, _codes = station
    code = SPARE_TUBES[1]
    _press_on_card(page, code, "d", "Why")
    page.keyboard.type("tube cracked", delay=60)  # a person typing
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#scan-prompt').textContent.startsWith('Confirm')")
    assert "destroyed" in page.text_content("#confirm-text")
    assert "tube cracked" in page.text_content("#confirm-text")
    page.keyboard.press("Enter")
    page.wait_for_selector("#feedback.ok")
    assert _state(app, code)[0] is SpecimenStatus.DISPOSED
    with app.app_context():
        note = (
            db.session.scalars(sa.select(CustodyEvent).join(Specimen).where(Specimen.barcode == code))
            .one()
            .details["note"]
        )
        db.session.remove()
    assert note == "tube cracked"


def test_a_scan_while_a_confirmation_is_asked_cancels_it(station):
    page, app, _codes = station
    code = SPARE_TUBES[2]
    _press_on_card(page, code, "x", "Why")
    _show_card(page, TUBES_B["x"])  # the scanner, not a reason
    assert _state(app, code)[3] == 0
    page.keyboard.press("c")
    page.wait_for_function("document.querySelector('#scan-prompt').textContent.startsWith('Why')")
    page.keyboard.type("plate 4", delay=60)
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#scan-prompt').textContent.startsWith('Confirm')")
    _show_card(page, code)
    assert _state(app, TUBES_B["x"])[3] == 0


def test_a_manager_corrects_a_mistaken_consume_from_the_specimen_page(station, server, browser):
    page, app, _codes = station
    base = server[0]
    code = SPARE_TUBES[3]
    before = _state(app, code)
    _press_on_card(page, code, "c", "Why")
    page.keyboard.type("used for RNA extraction", delay=60)
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#scan-prompt').textContent.startsWith('Confirm')")
    page.keyboard.press("Enter")
    page.wait_for_selector("#feedback.ok")
    assert _state(app, code)[0] is SpecimenStatus.CONSUMED

    context = browser.new_context()
    manager = context.new_page()
    login(manager, base, "manager", "manager-demo-pw")
    manager.goto(f"{base}/specimens/{code}")
    assert "consumed" in manager.text_content("#correct-form")
    manager.fill("#correct-form input[name=reason]", "scanned instead of the tube next to it")
    manager.click("#correct-form button[type=submit]")
    manager.wait_for_selector("p.flash.ok")
    assert "in storage again" in manager.text_content("p.flash.ok")
    status, quantity, position, events = _state(app, code)
    assert (status, quantity, position) == before[:3] and events == 2
    assert manager.locator("#correct-form").count() == 0  # the ledger is back where it began
    context.close()


def test_the_card_and_its_actions_fit_a_1280_by_720_station(station):
    """The scan station's screen: a tube's card with every action it allows stays in view
    without scrolling (Playwright's window is 1280×720)."""
    page, _app, codes = station
    assert page.viewport_size == {"width": 1280, "height": 720}
    _show_card(page, codes[-1])
    buttons = page.locator("#actions button")
    assert buttons.count() > 0
    for i in range(buttons.count()):
        box = buttons.nth(i).bounding_box()
        assert box and box["y"] >= 0 and box["y"] + box["height"] <= 720, (buttons.nth(i).text_content(), box)
    assert page.evaluate("window.scrollY") == 0
