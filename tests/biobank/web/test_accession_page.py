"""Accessioning at the desk in a real browser: a visit of six pre-barcoded tubes of three
materials for a known participant, keyboard and scanner only, within the keystroke budget;
a new participant with consent and a tube whose barcode is issued; labels printed from the
confirmation in one action; a refused visit writes nothing and keeps what was typed."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from biobank.db import db
from biobank.models import ConsentResponse, Participant, Specimen
from biobank.models.vocab import ConsentDecision, SpecimenStatus
from tests.biobank.web.test_aliquot_page import Keys
from tests.biobank.web.test_receive_page import wedge
from tests.browser import browser, focused_id, login, module_server

pytestmark = pytest.mark.browser
__all__ = ["browser"]
server = module_server("accession", demo_participants=4)
TUBES = ["ACC-EDTA-01", "ACC-EDTA-02", "ACC-EDTA-03", "ACC-SST-01", "ACC-SST-02", "ACC-URN-01"]


def _query(app, fn):
    with app.app_context():
        try:
            return fn()
        finally:
            db.session.remove()


def _tubes(app, barcodes):
    return _query(
        app,
        lambda: {
            s.barcode: (
                s.material_type.name,
                s.quantity,
                s.unit.name,
                s.sprec_code,
                s.status,
                s.participant.code,
            )
            for s in db.session.scalars(sa.select(Specimen).where(Specimen.barcode.in_(barcodes)))
        },
    )


def test_six_tubes_for_a_known_participant_within_sixty_keystrokes(server, browser):
    base, app = server
    code = _query(
        app,
        lambda: db.session.scalar(
            sa.select(Participant.code)
            .join(Participant.site)
            .where(sa.text("sites.code = 'CTR'"))
            .order_by(Participant.id)
        ),
    )
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()
    login(page, base, "tech", "tech-demo-pw")
    page.goto(f"{base}/accession")
    page.focus("#participant-field")
    wedge(page, code)
    page.wait_for_selector("#accession-form")
    assert page.text_content("#participant-code") == code
    keys = Keys(page)
    assert focused_id(page, "next-material") == "next-material"
    # whole blood, 4 mL (the first unit), potassium EDTA
    keys.type("w"), keys.press("Tab"), keys.type("4"), keys.press("Tab")
    keys.press("Tab"), keys.type("ped"), keys.press("Tab")
    for barcode in TUBES[:3]:
        wedge(page, barcode)
    # serum, same quantity, serum separator tube
    for _ in range(4):
        keys.press("Shift+Tab")
    keys.type("se"), keys.press("Tab"), keys.press("Tab"), keys.press("Tab"), keys.type("sst")
    keys.press("Tab")
    for barcode in TUBES[3:5]:
        wedge(page, barcode)
    # urine, 10 mL, sterile polypropylene
    for _ in range(4):
        keys.press("Shift+Tab")
    keys.type("u"), keys.press("Tab"), keys.press("Control+a"), keys.type("10")
    keys.press("Tab"), keys.press("Tab"), keys.type("pps"), keys.press("Tab")
    wedge(page, TUBES[5])
    wedge(page, TUBES[5])
    assert "scanned already" in page.text_content("#tube-feedback")
    assert page.text_content("#tube-count") == "6"
    keys.press("Tab"), keys.press("Tab"), keys.press("Enter")
    page.wait_for_selector("#visit-tubes")
    assert keys.count <= 60, keys.count
    tubes = _tubes(app, TUBES)
    assert {b: t[:4] for b, t in tubes.items()} == {
        **dict.fromkeys(TUBES[:3], ("WHOLE_BLOOD", 4, "ML", "BLD-PED-X-X-X-X-X")),
        **dict.fromkeys(TUBES[3:5], ("SERUM", 4, "ML", "SER-SST-X-X-X-X-X")),
        TUBES[5]: ("URINE", 10, "ML", "URN-PPS-X-X-X-X-X"),
    }
    assert {t[4] for t in tubes.values()} == {SpecimenStatus.RECEIVED}
    assert {t[5] for t in tubes.values()} == {code}
    # the labels in one action: a PDF of the six
    with page.expect_response(lambda r: r.url.endswith("/document")) as answer:
        page.click("#print-all")
    assert answer.value.ok and answer.value.headers["content-type"] == "application/pdf"
    pdf = page.request.get(answer.value.url)
    assert pdf.body().startswith(b"%PDF")
    context.close()


def test_a_new_participant_with_consent_and_an_issued_barcode(server, browser):
    base, app = server
    context = browser.new_context()
    page = context.new_page()
    login(page, base, "tech", "tech-demo-pw")
    page.goto(f"{base}/accession")
    page.click("#find-participant")
    page.wait_for_selector("#new-participant")
    page.fill("input[name=birth_year]", "1970")
    page.select_option("select[name=sex]", "female")
    page.fill("input[name=medical_record_number]", "MRN-ACC-77")
    consent = page.locator("#consent select")
    assert consent.count() > 0
    for i in range(consent.count()):
        consent.nth(i).select_option("yes")
    page.select_option("select[name=procedure]", "PUNCH_BIOPSY")
    page.select_option("#next-material", "TISSUE_FROZEN")
    page.fill("#next-quantity", "12")
    page.select_option("#next-unit", "MG")
    page.click("#add-unbarcoded")
    # a refused visit: a collection time in the future; nothing written, the tube kept
    page.fill("input[name=collected_at]", "2999-01-01T10:00")
    page.click("#record-visit")
    page.wait_for_selector(".flash.error")
    assert "the collection time is in the future" in page.text_content(".flash.error")
    assert page.text_content("#tube-count") == "1"
    assert (
        _query(
            app,
            lambda: db.session.scalar(
                sa.select(sa.func.count()).select_from(Participant).where(Participant.birth_year == 1970)
            ),
        )
        == 0
    )
    page.fill("input[name=collected_at]", "2026-12-01T09:30")
    page.click("#record-visit")
    page.wait_for_selector("#visit-tubes")
    assert "registered" in page.text_content(".flash.ok")
    new_code = page.text_content("#participant-code")
    barcode = page.text_content("#visit-tubes code")
    tube = _tubes(app, [barcode])[barcode]
    assert tube[:4] == ("TISSUE_FROZEN", 12, "MG", "TIS-XXX-X-X-X-X-X")
    assert tube[5] == new_code
    decisions = _query(
        app,
        lambda: db.session.scalars(
            sa.select(ConsentResponse.decision).join(Participant).where(Participant.code == new_code)
        ).all(),
    )
    assert decisions and set(decisions) == {ConsentDecision.YES}
    assert (
        _query(
            app,
            lambda: (
                db.session.scalar(
                    sa.select(Participant).where(Participant.code == new_code)
                ).phi.medical_record_number
            ),
        )
        == "MRN-ACC-77"
    )
    context.close()
