"""Pages in a real browser: login, dashboard, specimen search and detail, participant, case."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from biobank.db import db
from biobank.models import Case, Participant, Specimen, StorageContainer
from biobank.models.vocab import DiseaseGroup, Lineage, MaterialType
from tests.browser import browser, live_server, login
from tests.conftest import separate_database

pytestmark = pytest.mark.browser
__all__ = ["browser"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    url = separate_database(tmp_path_factory.mktemp("pages"), "pages")
    with live_server(url) as (base, app):
        yield base, app


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    yield page
    context.close()


def _query(app, stmt):
    with app.app_context():
        try:
            return db.session.execute(stmt).scalars().all()
        finally:
            db.session.remove()


def test_login_then_dashboard_shows_real_counts(server, page):
    base, app = server
    login(page, base, "tech", "tech-demo-pw")
    page.wait_for_url(f"{base}/")
    total = len(_query(app, sa.select(Specimen.id)))
    assert page.text_content("#total-specimens") == str(total)
    plasma = len(_query(app, sa.select(Specimen.id).where(Specimen.material_type == MaterialType.PLASMA)))
    row = page.locator("#by-material tr", has_text="Plasma")
    assert row.locator("td.num").text_content() == str(plasma)
    assert page.locator("#by-disease tr").count() == len(DiseaseGroup)


def test_wrong_password_is_shown_and_pages_need_login(server, page):
    base, _ = server
    page.goto(f"{base}/specimens")
    assert "/login" in page.url
    login(page, base, "tech", "not-the-password")
    assert page.locator("p.flash.error").text_content() == "wrong username or password"


def test_specimen_search_filters_and_opens_the_detail_page(server, page):
    base, app = server
    login(page, base, "tech", "tech-demo-pw")
    page.goto(f"{base}/specimens")
    page.select_option("select[name=material_type]", "PLASMA")
    page.select_option("select[name=lineage]", "aliquot")
    page.click("form.filters button")
    page.wait_for_url("**material_type=PLASMA**")
    materials = page.locator("#results tbody td:nth-child(3)").all_text_contents()
    assert materials and set(materials) == {"Plasma"}

    barcode = page.locator("#results tbody td:first-child a").first.text_content()
    with app.app_context():
        specimen = db.session.scalars(sa.select(Specimen).where(Specimen.barcode == barcode)).one()
        location, lineage, n_events = specimen.location_text, specimen.lineage, specimen.custody_seq
        db.session.remove()
    page.click(f"text={barcode}")
    page.wait_for_url(f"**/specimens/{barcode}")
    assert page.text_content("#barcode") == barcode
    assert lineage is Lineage.ALIQUOT
    # Lineage shows the parent above the aliquot; custody and audit are listed.
    assert page.locator("#lineage li").count() >= 2
    assert page.locator("#custody tbody tr").count() == n_events
    assert page.locator("#audit tbody tr").count() >= 1
    assert page.text_content("#chain-status").strip() == f"chain verified · {n_events} events"
    assert page.locator("#timeline tbody tr.kind-custody").count() == n_events
    assert page.text_content("#location") == (location or "not in storage")


def test_search_by_barcode_prefix_and_next_page(server, page):
    base, _ = server
    login(page, base, "tech", "tech-demo-pw")
    page.goto(f"{base}/specimens")
    page.fill("input[name=q]", "CTRPL")
    page.press("input[name=q]", "Enter")
    page.wait_for_url("**q=CTRPL**")
    first = page.locator("#results tbody td:first-child a").all_text_contents()
    assert len(first) == 50 and all(b.startswith("CTRPL") for b in first)
    page.click("#next-page")
    page.wait_for_url("**after=**")
    second = page.locator("#results tbody td:first-child a").all_text_contents()
    assert second and not set(first) & set(second)
    # a whole barcode, typed or scanned, opens that specimen
    page.goto(f"{base}/specimens")
    page.fill("input[name=q]", second[0])
    page.press("input[name=q]", "Enter")
    page.wait_for_url(f"**/specimens/{second[0]}")
    assert page.text_content("#barcode") == second[0]


def test_participant_page_shows_phi_to_staff_and_nothing_to_researchers(server, browser):
    base, app = server
    participant = _query(app, sa.select(Participant).order_by(Participant.id))[0]
    with app.app_context():
        family = db.session.get(Participant, participant.id).phi.family_name
        db.session.remove()
    for user, password, sees_rows in (
        ("tech", "tech-demo-pw", True),
        ("researcher", "researcher-demo-pw", False),
    ):
        context = browser.new_context()
        page = context.new_page()
        login(page, base, user, password)
        response = page.goto(f"{base}/participants/{participant.code}")
        # the text shown, not the HTML: a random token in the markup may hold a short name
        words = re.findall(r"\w+", page.inner_text("body"))
        assert (family in words) is sees_rows
        if sees_rows:
            assert page.text_content("#participant-code") == participant.code
            assert page.locator("#phi").count() == 1
            assert page.locator("#consents tbody tr").count() == 6
        else:  # researchers see counts and their approved tubes, not participants
            assert response.status == 403
            assert page.locator("nav >> text=Specimens").count() == 0
        context.close()


def test_case_page_shows_melanoma_staging_and_specimens(server, page):
    base, app = server
    case = _query(app, sa.select(Case).where(Case.disease_group == DiseaseGroup.MELANOMA).order_by(Case.id))[
        0
    ]
    login(page, base, "manager", "manager-demo-pw")
    page.goto(f"{base}/cases/{case.code}")
    assert page.text_content("#disease-group") == "Melanoma"
    assert page.text_content("#breslow") == f"{case.breslow_mm} mm"
    assert page.locator("#samples tbody tr").count() >= 1
    # thumbnails finish loading first: leaving mid-download drops the dev server's file
    page.wait_for_load_state("networkidle")
    page.click("#samples tbody a >> nth=0")
    page.wait_for_url("**/specimens/**")


def test_unknown_specimen_gives_a_404_page(server, page):
    base, _ = server
    login(page, base, "tech", "tech-demo-pw")
    response = page.goto(f"{base}/specimens/NOPE123")
    assert response.status == 404
    assert "NOPE123" in page.text_content("#error-message")


def test_print_a_label_from_the_specimen_page(server, page):
    base, app = server
    with app.app_context():
        barcode = db.session.scalars(
            sa.select(Specimen.barcode)
            .where(Specimen.material_type == MaterialType.SERUM)
            .order_by(Specimen.id.desc())
        ).first()
        db.session.remove()
    login(page, base, "tech", "tech-demo-pw")
    page.goto(f"{base}/specimens/{barcode}")
    page.select_option("#print-panel select[name=template]", "cryovial-2d")
    with page.expect_download() as download:
        page.click("#print-panel button[type=submit]")
    assert download.value.suggested_filename.endswith(".pdf")
    with open(download.value.path(), "rb") as pdf:
        assert pdf.read(5) == b"%PDF-"
    page.goto(f"{base}/specimens/{barcode}")
    page.select_option("#print-panel select[name=template]", "cryovial-2d")
    page.click("#print-panel button[type=submit]")
    page.wait_for_selector("p.flash.error")
    assert "give a reprint_reason" in page.text_content("p.flash.error")


def test_navigate_storage_to_a_box_map_and_print_its_labels(server, page):
    base, app = server
    from biobank.models.vocab import ContainerKind

    with app.app_context():
        box = db.session.scalars(
            sa.select(StorageContainer)
            .where(StorageContainer.kind == ContainerKind.BOX, StorageContainer.barcode.is_not(None))
            .order_by(StorageContainer.id)
        ).first()
        path = [c.name for c in box.path()]
        occupied = {
            s.position_label: s.barcode
            for s in db.session.scalars(sa.select(Specimen).where(Specimen.container_id == box.id))
        }
        db.session.remove()
    login(page, base, "tech", "tech-demo-pw")
    page.click("nav >> text=Storage")
    for name in path:  # site → freezer → rack → box, by clicking
        page.click(f"#children a:text-is('{name}')")
    assert page.text_content("#breadcrumb strong") == path[-1]
    cells = page.locator("#boxmap td.cell")
    assert cells.count() == 81
    assert page.locator("#boxmap td.occupied").count() == len(occupied)
    position, barcode = sorted(occupied.items())[0]
    assert "mat-" in page.get_attribute(f"#boxmap td[data-position='{position}']", "class")
    with page.expect_download() as download:
        page.click("#box-print-panel button[type=submit]")
    assert download.value.suggested_filename.endswith(".pdf")
    page.goto(f"{base}/containers/{box.id}")
    page.click(f"#boxmap td[data-position='{position}'] a")
    page.wait_for_url(f"**/specimens/{barcode}")


def test_storage_usage_counts_every_position_below(server, page):
    base, app = server
    from biobank.models.vocab import ContainerKind
    from biobank.services.storage import subtree_usage

    with app.app_context():
        freezer = db.session.scalars(
            sa.select(StorageContainer)
            .where(StorageContainer.kind == ContainerKind.FREEZER)
            .order_by(StorageContainer.id)
        ).first()
        used, capacity = subtree_usage([freezer.id])[freezer.id]
        db.session.remove()
    login(page, base, "tech", "tech-demo-pw")
    page.goto(f"{base}/storage")
    row = page.locator("#children tr", has_text=freezer.name)
    assert row.locator(".num").text_content() == f"{used} / {capacity}"
    assert used > 0


def test_evacuation_plan_page_for_a_freezer(server, page):
    base, app = server
    from biobank.models.vocab import ContainerKind

    with app.app_context():
        freezer = db.session.scalars(
            sa.select(StorageContainer)
            .where(StorageContainer.kind == ContainerKind.FREEZER)
            .order_by(StorageContainer.id)
        ).first()
        db.session.remove()
    login(page, base, "manager", "manager-demo-pw")
    page.goto(f"{base}/containers/{freezer.id}")
    page.click("text=Freezer failure: plan an evacuation")
    # The demo's only −80 °C freezer at the site is the failing one: no room elsewhere.
    problem = page.locator("#plan-problem")
    if problem.count():
        assert "no free position" in problem.text_content()
    else:
        assert page.locator("#moves tbody tr").count() > 0
        assert page.locator("#execute").count() == 1


def test_api_docs_render_with_every_external_request_blocked(server, page):
    base, _ = server
    outside = []

    def only_local(route):
        if route.request.url.startswith(base):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.goto(f"{base}/api/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=15000)
    paths = page.locator(".opblock-summary-path").all_text_contents()
    assert any("/api/v1/specimens/" in p for p in paths)
    assert outside == []


def test_quantities_show_as_people_write_them(server, page):
    import re

    base, app = server
    login(page, base, "tech", "tech-demo-pw")
    page.goto(f"{base}/specimens")
    cells = [c.strip() for c in page.locator("#results tbody td.num").all_text_contents()]
    shown = [c for c in cells if c]
    assert shown
    for text in shown:
        assert re.fullmatch(r"\d+(\.\d*[1-9])?( (µL|mL|mg|g|µg|ng|cells))?", text), text
    specimen = _query(app, sa.select(Specimen).where(Specimen.quantity.is_not(None)).limit(1))[0]
    page.goto(f"{base}/specimens/{specimen.barcode}")
    from biobank.units import format_quantity

    detail = page.locator("dt:text('Quantity') + dd").text_content()
    assert detail.startswith(format_quantity(specimen.quantity, specimen.unit) + " (initial ")


def test_print_panels_offer_only_fitting_templates_and_print_with_their_defaults(server, page):
    base, app = server
    from biobank.models.vocab import ContainerKind
    from labels.services import (
        container_templates,
        default_specimen_template,
        specimen_templates,
    )

    with app.app_context():
        specimen = db.session.scalars(
            sa.select(Specimen).where(Specimen.material_type == MaterialType.PLASMA).order_by(Specimen.id)
        ).first()
        barcode, default = specimen.barcode, default_specimen_template(specimen)
        box_id = db.session.scalars(
            sa.select(StorageContainer.id)
            .where(StorageContainer.kind == ContainerKind.BOX)
            .order_by(StorageContainer.id.desc())
        ).first()
        tube_names, box_names = specimen_templates(), container_templates()
        db.session.remove()
    assert "shipping-box" not in tube_names + box_names  # it needs a destination
    login(page, base, "tech", "tech-demo-pw")

    page.goto(f"{base}/specimens/{barcode}")
    options = page.locator("#print-panel select[name=template] option")
    assert options.all_text_contents() == tube_names
    assert page.input_value("#print-panel select[name=template]") == default
    with page.expect_download() as download:  # the defaults print
        page.click("#print-panel button[type=submit]")
    assert download.value.suggested_filename.endswith(".pdf")
    # printing again needs a reason: the error keeps what was chosen
    other = next(n for n in tube_names if n != default)
    for copies in ("1", "3"):
        page.goto(f"{base}/specimens/{barcode}")
        page.select_option("#print-panel select[name=template]", other)
        page.fill("#print-panel input[name=copies]", copies)
        if copies == "1":
            with page.expect_download():
                page.click("#print-panel button[type=submit]")
    page.click("#print-panel button[type=submit]")
    page.wait_for_selector("p.flash.error")
    assert page.input_value("#print-panel select[name=template]") == other
    assert page.input_value("#print-panel input[name=copies]") == "3"

    page.goto(f"{base}/containers/{box_id}")
    labels = page.locator("#box-print-panel select[name=label] option")
    assert labels.evaluate_all("os => os.map(o => o.value)") == (
        [f"box:{n}" for n in box_names] + [f"tubes:{n}" for n in tube_names]
    )
    assert page.input_value("#box-print-panel select[name=label]") == "box:box"
    with page.expect_download() as download:
        page.click("#box-print-panel button[type=submit]")
    assert download.value.suggested_filename.endswith(".pdf")
