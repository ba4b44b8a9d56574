"""Importing a master file in a real browser: the template downloads, a file with a bad row
shows its problem as a table and writes nothing, a dry run passes, then the same file is
imported for real."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from biobank.db import db, transaction
from biobank.models import Participant, Site, Specimen, User
from biobank.models.storage import FillOrder, PositionScheme
from biobank.models.vocab import ContainerKind, StorageTemperature
from tests.biobank.services.test_imports import FIXTURES, MASTER
from tests.browser import browser, login, module_server

pytestmark = pytest.mark.browser
__all__ = ["browser"]
server = module_server("imports", demo_participants=3)


def _prepare(app):
    """The boxes the fixture files place their tubes in, at the central site."""
    from biobank.services.storage import create_container

    with app.app_context():
        with transaction():
            actor = db.session.scalar(sa.select(User).where(User.username == "admin"))
            site = db.session.scalar(sa.select(Site.id).where(Site.code == "CTR"))
            freezer = create_container(
                actor=actor,
                site_id=site,
                kind=ContainerKind.FREEZER,
                name="Import freezer",
                temperature=StorageTemperature.MINUS_60_85,
            )
            create_container(
                actor=actor,
                parent_id=freezer.id,
                kind=ContainerKind.BOX,
                name="Import box",
                n_rows=9,
                n_cols=9,
                barcode="IMPBOX-01",
            )
            cabinet = create_container(
                actor=actor,
                site_id=site,
                kind=ContainerKind.CABINET,
                name="Import cabinet",
                temperature=StorageTemperature.RT,
            )
            create_container(
                actor=actor,
                parent_id=cabinet.id,
                kind=ContainerKind.DRAWER,
                name="Import drawer",
                n_rows=10,
                n_cols=12,
                barcode="IMPDRW-01",
                position_scheme=PositionScheme.NUMBER,
                fill_order=FillOrder.COLUMN_MAJOR,
            )
        db.session.remove()


def _imported(app):
    """Specimens of the fixture's participants (one of its rows has its barcode issued)."""
    with app.app_context():
        try:
            return db.session.scalar(
                sa.select(sa.func.count())
                .select_from(Specimen)
                .join(Participant)
                .where(Participant.code.like("IMP-%"))
            )
        finally:
            db.session.remove()


def _state(page):
    page.wait_for_function(
        "['Imported.', 'Dry run passed: nothing was written.', "
        "'Not imported: nothing was written.', 'Not imported:']"
        ".includes(document.getElementById('job-state').textContent)"
    )
    return page.text_content("#job-state"), page.text_content("#job-detail")


def test_dry_run_problems_then_the_import(server, browser):
    base, app = server
    _prepare(app)
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()
    login(page, base, "manager", "manager-demo-pw")
    page.goto(f"{base}/imports")
    template = page.request.get(base + page.get_attribute("#templates a.template-csv >> nth=3", "href"))
    assert template.ok and template.text().startswith("participant_code,")

    page.set_input_files("#import-file", str(FIXTURES / "master-one-bad-row.csv"))
    page.click("#import-submit")
    assert _state(page)[0] == "Not imported: nothing was written."
    page.wait_for_selector("#problems-card:not([hidden])")
    [row] = page.query_selector_all("#problems tbody tr")
    cells = [td.text_content() for td in row.query_selector_all("td")]
    assert cells[:2] == ["12", "material_type"] and cells[2]
    report = page.request.get(base + page.get_attribute("#problems-csv", "href"))
    assert report.ok and "material_type" in report.text()
    assert not page.is_visible("#run-now")
    assert _imported(app) == 0

    page.set_input_files("#import-file", str(MASTER))
    page.click("#import-submit")
    assert _state(page)[0] == "Dry run passed: nothing was written."
    assert page.is_hidden("#problems-card") and _imported(app) == 0
    page.click("#run-now")
    state, detail = _state(page)
    assert state == "Imported." and detail.startswith("10 rows read;")
    assert "10 specimens" in detail
    assert _imported(app) == 10

    page.click("#import-submit")  # the same file again, dry run: checked, refused for real
    assert _state(page)[0] in ("Dry run passed: nothing was written.", "Not imported: nothing was written.")
    page.uncheck("#dry-run")
    page.click("#import-submit")
    state, detail = _state(page)
    assert state == "Not imported:" and "already imported" in detail
    page.reload()
    statuses = page.locator("#jobs tbody tr td:nth-child(4)").all_text_contents()
    assert statuses[-3:] == ["Succeeded", "Validated (dry run)", "Failed (dry run)"]
    assert _imported(app) == 10
    context.close()
