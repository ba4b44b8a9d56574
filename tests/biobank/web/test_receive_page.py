"""Receiving a parcel in a real browser: the tubes a hospital's FHIR Bundle registered are
expected, a keyboard-wedge scanner ticks them off, unexpected and missing tubes show as
they happen, and the receipt is recorded at once."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from biobank.db import db, transaction
from biobank.models import Specimen, Study, User
from biobank.models.vocab import SpecimenStatus
from tests.biobank.api.test_fhir import mii_bundle
from tests.browser import browser, login, module_server

pytestmark = pytest.mark.browser
__all__ = ["browser"]
server = module_server("receive", demo_participants=5)
PARCEL = ["12345", "12345-PL", "12345-BC", "12345-BC-1", "12345-BC-2", "12345-DNA-1", "6789", "6789-ORG-1"]


def wedge(page, text):
    page.keyboard.type(text)
    page.keyboard.press("Enter")


def _statuses(app):
    with app.app_context():
        try:
            return dict(
                db.session.execute(
                    sa.select(Specimen.barcode, Specimen.status).where(Specimen.barcode.in_(PARCEL))
                ).all()
            )
        finally:
            db.session.remove()


def test_a_hospitals_parcel_is_received_by_scanning(server, browser, tmp_path):
    base, app = server
    _register(app, mii_bundle())
    assert set(_statuses(app).values()) == {SpecimenStatus.EXPECTED}

    context = browser.new_context()
    page = context.new_page()
    login(page, base, "tech", "tech-demo-pw")
    page.goto(f"{base}/receive")
    manifest = tmp_path / "parcel.csv"
    manifest.write_text("specimen_barcode,material\n" + "".join(f"{b},x\n" for b in PARCEL))
    page.set_input_files("#manifest", str(manifest))
    page.wait_for_selector("#missing li")
    assert page.text_content("#counter") == "0 of 8"
    page.focus("#receive-field")
    for code in PARCEL[:3]:
        wedge(page, code)
    assert page.text_content("#counter") == "3 of 8"
    page.select_option("#condition", "thawed")
    page.focus("#receive-field")
    wedge(page, PARCEL[3])
    assert "thawed" in page.text_content("#receive-feedback")
    assert page.input_value("#condition") == "acceptable"  # a condition is for one tube
    wedge(page, "NOT-OURS-1")
    assert "not expected" in page.text_content("#receive-feedback")
    wedge(page, PARCEL[0])
    assert "scanned already" in page.text_content("#receive-feedback")
    for code in PARCEL[4:6]:
        wedge(page, code)
    assert page.text_content("#counter") == "6 of 8"
    assert page.text_content("#unexpected") == "NOT-OURS-1"
    assert [li.text_content() for li in page.query_selector_all("#missing li")] == PARCEL[6:]
    page.click("#record")
    page.wait_for_selector("#result.ok")
    assert page.text_content("#result") == (
        "Received 6 tubes, 1 quarantined; 2 expected tubes did not come; 1 unexpected set aside."
    )
    statuses = _statuses(app)
    assert [statuses[b] for b in PARCEL] == [SpecimenStatus.RECEIVED] * 3 + [SpecimenStatus.QUARANTINED] + [
        SpecimenStatus.RECEIVED
    ] * 2 + [SpecimenStatus.EXPECTED] * 2
    context.close()


def _register(app, bundle):
    with app.app_context():
        from biobank.services.fhir import intake_bundle

        tech = db.session.scalars(sa.select(User).where(User.username == "tech")).one()
        study = db.session.scalars(sa.select(Study).order_by(Study.id)).first()
        with transaction():
            intake_bundle(bundle, actor=tech, study_code=study.code, site_code="CTR")
        db.session.remove()


def test_a_refused_receipt_records_nothing(server, browser):
    base, app = server
    tube = {
        "resourceType": "Specimen",
        "subject": {"reference": "Patient/p"},
        "type": {"coding": [{"system": "http://snomed.info/sct", "code": "119364003"}]},
        "collection": {"collectedDateTime": "2026-12-01T08:00:00Z"},
    }
    _register(
        app,
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "resource": {
                        "resourceType": "Patient",
                        "id": "p",
                        "identifier": [{"value": "H-REFUSED-1"}],
                    }
                },
                {"resource": tube | {"identifier": [{"value": "REFUSE-A"}]}},
                {"resource": tube | {"identifier": [{"value": "REFUSE-B"}]}},
            ],
        },
    )
    context = browser.new_context()
    page = context.new_page()
    login(page, base, "tech", "tech-demo-pw")
    page.goto(f"{base}/receive")
    page.wait_for_selector("#missing li")
    # one of them is disposed of elsewhere meanwhile: the receipt is refused whole
    with app.app_context():
        with transaction():
            db.session.execute(
                sa.update(Specimen)
                .where(Specimen.barcode == "REFUSE-B")
                .values(status=SpecimenStatus.DISPOSED)
            )
        db.session.remove()
    page.focus("#receive-field")
    for code in ("REFUSE-A", "REFUSE-B"):
        wedge(page, code)
    page.click("#record")
    page.wait_for_selector("#result.error")
    assert page.text_content("#result").startswith("Nothing was recorded: scan 1:")
    with app.app_context():
        status = db.session.scalar(sa.select(Specimen.status).where(Specimen.barcode == "REFUSE-A"))
        db.session.remove()
    assert status is SpecimenStatus.EXPECTED
    context.close()
