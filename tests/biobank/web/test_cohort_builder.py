"""The cohort builder in a real browser: live counts, facets, completeness, save, freeze, export."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from biobank.db import db
from biobank.models import User
from biobank.services import query
from tests.browser import browser, login, module_server

pytestmark = pytest.mark.browser
__all__ = ["browser"]
server = module_server("cohorts", demo_participants=60)


def expected(app, username, filters, level="cases"):
    with app.app_context():
        actor = db.session.scalar(sa.select(User).where(User.username == username))
        total = query.run_query(actor=actor, level=level, filters=filters, size=0).total
        db.session.remove()
        return str(total)


def wait_total(page, value):
    page.wait_for_function("v => document.getElementById('total').textContent === v", arg=value)


def test_build_save_freeze_and_export(server, browser):
    base, app = server
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    login(page, base, "manager", "manager-demo-pw")
    page.goto(f"{base}/cohorts/new")
    wait_total(page, expected(app, "manager", None))
    page.wait_for_selector("#completeness .combo-row")

    # facets and fields read as people write them, not as codes
    bucket = "tr[data-facet='cases.disease_group'][data-key='melanoma']"
    assert page.text_content(f"{bucket} th") == "Melanoma"
    assert "Cases · disease group" in page.text_content("#facets")
    # a facet bucket becomes a condition
    page.click(bucket)
    melanoma = {
        "op": "and",
        "content": [{"op": "in", "content": {"field": "cases.disease_group", "value": ["melanoma"]}}],
    }
    wait_total(page, expected(app, "manager", melanoma))
    # a condition picked in the editor
    page.click("#add-clause")
    row = page.locator(".clause").nth(1)
    row.locator("select[aria-label=field]").select_option("images.quality_flag")
    # values are a searchable list of checkboxes, not a Ctrl-click list box
    row.locator(".picker input[type=search]").fill("hai")
    shown = row.locator(".picker label:not([hidden])").all_text_contents()
    assert [text.strip() for text in shown] == ["Hairy"]
    row.locator(".picker input[value=hairy]").check()
    with_derm = {
        "op": "and",
        "content": melanoma["content"]
        + [{"op": "in", "content": {"field": "images.quality_flag", "value": ["hairy"]}}],
    }
    total = expected(app, "manager", with_derm)
    assert total not in ("0", expected(app, "manager", melanoma))
    wait_total(page, total)
    # every combination counted adds up to the matching cases
    page.wait_for_function(
        """t => [...document.querySelectorAll('#completeness .combo-row td.num')]
        .reduce((s, td) => s + Number(td.textContent), 0) === Number(t)""",
        arg=total,
    )
    assert page.locator("#hits tr").count() > 1

    page.fill("#cohort-name", "Hairy melanoma images")
    page.click("#save")
    page.wait_for_url(re.compile(r".*/cohorts/\d+$"))
    wait_total(page, total)
    assert page.locator(".clause").count() == 2
    page.click("#freeze")
    page.wait_for_selector("tr.snapshot")
    assert page.locator("tr.snapshot td.num").first.text_content() == total
    with page.expect_download() as info:
        page.click("#export button[type=submit]")
    with open(info.value.path(), encoding="utf-8") as f:
        text = f.read()
    header, *rows = text.splitlines()
    assert header.startswith("participant\tcase\tlesion\tspecimen\taliquot\tmodality")
    assert rows and all(row.split("\t")[-1] in ("train", "val", "test") for row in rows)
    assert {row.split("\t")[5] for row in rows} >= {"dermoscopy"}
    context.close()


def test_bad_json_filter_is_explained_and_researchers_see_counts(server, browser):
    base, app = server
    context = browser.new_context()
    page = context.new_page()
    login(page, base, "researcher", "researcher-demo-pw")
    page.goto(f"{base}/cohorts/new")
    page.wait_for_function("document.getElementById('total').textContent !== '…'")
    assert page.locator("#hits").count() == 0  # researchers get no rows
    page.click("#toggle-json")
    page.fill("#filter-json", '{"op": "=", "content": {"field": "cases.diagnosis", "value": "x"}}')
    page.wait_for_function("document.getElementById('query-error').textContent.includes('unknown field')")
    assert "did you mean" in page.text_content("#query-error")
    page.fill("#filter-json", '{"op": "=", "content": {"field": "cases.disease_group", "value": "lupus"}}')
    lupus = {"op": "=", "content": {"field": "cases.disease_group", "value": "lupus"}}
    wait_total(page, expected(app, "researcher", lupus))
    context.close()


def test_case_and_lesion_pages_show_thumbnails(server, browser):
    base, app = server
    with app.app_context():
        from biobank.models import Image, Lesion

        lesion = db.session.scalars(
            sa.select(Lesion.code).join(Image, Image.lesion_id == Lesion.id).order_by(Lesion.id)
        ).first()
        db.session.remove()
    context = browser.new_context()
    page = context.new_page()
    login(page, base, "admin", "admin-demo-pw")
    page.goto(f"{base}/lesions/{lesion}")
    page.wait_for_function("""() => {
        const images = [...document.querySelectorAll('#images img')];
        return images.length > 0 && images.every(i => i.complete && i.naturalWidth > 0); }""")
    assert page.locator("figure[data-modality=dermoscopy]").count() >= 1
    page.click("dd a")  # to the case
    page.wait_for_selector("#images figure")
    context.close()
