"""The printers page in Chromium: a technician finds it from the menu and checks a Zebra."""

from __future__ import annotations

import pytest

from biobank.db import db, transaction
from labels.models import Printer, PrinterKind
from tests.browser import browser, live_server, login
from tests.labels.test_printing import ZebraListener, _wait_for

__all__ = ["browser"]
pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def zebra_site(tmp_path_factory):
    from tests.conftest import separate_database

    zebra = ZebraListener()
    url = separate_database(tmp_path_factory.mktemp("printers"), "printers_page")
    with live_server(url, demo_participants=5) as (base, app):
        with app.app_context(), transaction():
            db.session.add(
                Printer(
                    name="Bench Zebra",
                    kind=PrinterKind.ZPL_TCP,
                    address=f"127.0.0.1:{zebra.port}",
                    zpl_font="E:ANMDS.TTF",
                )
            )
        yield base, zebra
    zebra.close()


def test_a_technician_checks_a_zebra_from_the_printers_page(zebra_site, browser):
    base, zebra = zebra_site
    context = browser.new_context()
    page = context.new_page()
    login(page, base, "tech", "tech-demo-pw")
    page.click("nav >> text=Printers")
    row = page.locator("#printers tr", has_text="Bench Zebra")
    assert "not asked yet" in row.locator("td.status").inner_text()
    assert "E:ANMDS.TTF" in row.inner_text()
    zebra.flags["paper_out"] = True
    row.get_by_role("button", name="Check now").click()
    page.wait_for_url(f"{base}/labels/printers")
    assert "Bench Zebra: paper out." in page.locator(".flash").inner_text()
    status = page.locator("#printers tr", has_text="Bench Zebra").locator("td.status strong")
    assert status.inner_text() == "paper out" and status.get_attribute("class") == "error"
    zebra.flags["paper_out"] = False
    page.locator("#printers tr", has_text="Bench Zebra").get_by_role("button", name="Check now").click()
    page.wait_for_url(f"{base}/labels/printers")
    assert page.locator("#printers td.status strong").inner_text() == "ready"
    assert zebra.status_queries == 2 and zebra.jobs == []
    context.close()


def test_a_test_label_from_the_printers_page(zebra_site, browser):
    base, zebra = zebra_site
    context = browser.new_context()
    page = context.new_page()
    login(page, base, "tech", "tech-demo-pw")
    page.goto(f"{base}/labels/printers")
    before = len(zebra.jobs)
    page.locator("#printers tr", has_text="Bench Zebra").get_by_role("button", name="Test print").click()
    page.wait_for_url(f"{base}/labels/printers")
    assert "Print job" in page.locator(".flash").inner_text()
    _wait_for(zebra, before + 1)
    assert "TEST LABEL" in zebra.jobs[-1].decode()
    context.close()
