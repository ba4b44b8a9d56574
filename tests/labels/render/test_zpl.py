"""ZPL labels: pinned output per template, structure, escaping and refusals."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from labels.render import LabelError, load_template, template_names
from labels.render.zpl import iter_zpl, render_zpl
from tests.labels.render.test_pdf import values

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


@pytest.mark.parametrize("name", template_names())
def test_zpl_matches_the_golden_file(name):
    zpl = render_zpl(load_template(name), [values(1)], dpi=203).decode()
    golden = GOLDEN / f"{name}.zpl"
    if os.environ.get("BIOBANK_UPDATE_GOLDEN"):
        golden.write_text(zpl)
    assert zpl == golden.read_text()


@pytest.mark.parametrize("name", template_names())
def test_zpl_structure(name):
    template = load_template(name)
    blocks = list(iter_zpl(template, [values(n) for n in (1, 2)], dpi=300, copies=2))
    assert len(blocks) == 2
    for block, n in zip(blocks, (1, 2), strict=True):
        assert block.startswith("^XA\n^CI28\n") and block.endswith("^PQ2\n^XZ\n")
        assert block.count("^XA") == block.count("^XZ") == 1
        assert f"^PW{round(template.width_mm / 25.4 * 300)}" in block
        assert f"^LL{round(template.height_mm / 25.4 * 300)}" in block
        kinds = {e.type for e in template.elements}
        assert ("^BXN," in block) == ("datamatrix" in kinds)
        assert ("^BCN," in block) == bool(kinds & {"code128", "gs1-128"})
        assert ("^B3N," in block) == ("code39" in kinds)
        if "barcode" in template.fields:
            assert f"^FD{values(n)['barcode']}^FS" in block
        assert all(fd.startswith("^FH_") for fd in re.findall(r"\^FH_\^FD", block))


def test_values_cannot_inject_zpl_commands():
    record = values(1) | {"label": "A^XZ~JR_x"}
    zpl = render_zpl(load_template("ffpe-cassette"), [record]).decode()
    assert "^FDA_5EXZ_7EJR_5Fx^FS" in zpl
    assert zpl.count("^XZ") == 1


def test_modules_too_small_for_the_printer_are_refused():
    with pytest.raises(LabelError, match="too small"):
        render_zpl(load_template("tube-side-code128"), [values(1)], dpi=100)


def test_text_goes_out_as_the_pdf_prints_it_in_utf8():
    """The minus sign U+2212 prints as "-", as on the PDF; the degree sign is UTF-8."""
    zpl = render_zpl(load_template("shipping-box"), [values(1)])
    assert "-60 °C".encode() in zpl and "−".encode() not in zpl


def test_no_records_is_an_error():
    with pytest.raises(LabelError, match="no labels"):
        render_zpl(load_template("box"), [])


def _widest_barcodes():
    """For each demo site, the barcode it issues whose Code 128 is widest: every material,
    the largest sequence numbers and a spread of others (the check characters vary)."""
    from reportlab.graphics.barcode.code128 import Code128

    from biobank.barcodes import MATERIAL_CODES, make_barcode
    from biobank.demo import SITES

    out = []
    for code, *_ in SITES:
        codes = [
            make_barcode(code, material, sequence)
            for material in MATERIAL_CODES
            for sequence in [*range(9_999_999, 9_999_899, -1), *range(1, 10_000_000, 99_991)]
        ]
        out.append(max(codes, key=lambda c: (Code128(c, barWidth=1, quiet=False).width, c)))
    return out


@pytest.mark.parametrize("dpi", [203, 300, 600])
@pytest.mark.parametrize("name", template_names())
def test_every_template_prints_every_sites_widest_barcode(name, dpi):
    """Modules are whole dots, never fewer than two, and each linear symbol with its quiet
    zones fits its element: no barcode the LIMS issues is refused at any printer resolution.
    (Widths are counted by reportlab's encoders, independent of the renderer's.)"""
    from reportlab.graphics.barcode.code39 import Standard39
    from reportlab.graphics.barcode.code128 import Code128

    template = load_template(name)
    linear = [e for e in template.elements if e.type in ("code128", "code39") and e.value == "{barcode}"]
    for barcode in _widest_barcodes():
        zpl = render_zpl(template, [values(1) | {"barcode": barcode}], dpi=dpi).decode()
        symbols = re.findall(r"\^FO(\d+),\d+\^BY(\d+),[^\n]*\^FD" + re.escape(barcode), zpl)
        for element, found in zip(linear, symbols, strict=True):
            x, module = int(found[0]), int(found[1])
            symbol = (
                Code128(barcode, barWidth=1, quiet=False)
                if element.type == "code128"
                else Standard39(barcode, barWidth=1, ratio=3, checksum=0, quiet=False)
            )
            modules = round(symbol.width)
            nominal = round(element.module / 25.4 * dpi)
            assert 2 <= module <= nominal, (barcode, dpi, module)
            left = round(element.x / 25.4 * dpi)
            assert x - left == 10 * module  # the left quiet zone is kept
            assert (modules + 20) * module <= element.width / 25.4 * dpi, (barcode, dpi)


def test_a_203_dpi_printer_narrows_the_modules_rather_than_refusing():
    """0.33 mm is 2.6 dots at 203 dpi: 3 dots made 74 mm of a 72.5 mm element."""
    zpl = render_zpl(
        load_template("specimen-bag"), [values(1) | {"barcode": "CTRPL9999999ZZ"}], dpi=203
    ).decode()
    assert "^BY2,3," in zpl
    zpl = render_zpl(
        load_template("specimen-bag"), [values(1) | {"barcode": "CTRPL9999999ZZ"}], dpi=300
    ).decode()
    assert "^BY4,3," in zpl  # 0.33 mm is 3.9 dots: the nominal 4 fit


def test_a_barcode_too_long_at_two_dots_is_refused_with_its_width():
    with pytest.raises(LabelError, match=r"needs \d+\.\d mm at 2 dots per module and 203 dpi"):
        render_zpl(load_template("tube-side-code128"), [values(1) | {"barcode": "ABCDEFGH" * 4}], dpi=203)


CHINESE_SITE = "中国医学科学院皮肤病医院"  # a real hospital name, in Chinese


def test_chinese_text_without_a_printer_font_is_refused_naming_its_field():
    """The built-in ^A0 has no Chinese: sending it would print boxes or nothing."""
    with pytest.raises(LabelError, match=r"U\+4E2D.*\{site\}|\{site\}.*U\+4E2D") as error:
        render_zpl(load_template("box"), [values(1) | {"site": CHINESE_SITE}])
    assert error.value.field == "site"


def test_chinese_text_goes_to_the_printers_unicode_font():
    zpl = render_zpl(
        load_template("shipping-box"), [values(1) | {"destination": CHINESE_SITE}], font="E:ANMDS.TTF"
    ).decode()
    assert zpl.count("^CW1,E:ANMDS.TTF") == 1  # mapped once per label, inside ^XA…^XZ
    [chinese] = [line for line in zpl.splitlines() if CHINESE_SITE[:4] in line]
    assert chinese.startswith("^FO") and "^A1N," in chinese
    # the rest stays in the built-in font
    assert all(
        "^A0N," in line for line in zpl.splitlines() if "^FD" in line and "^B" not in line and line != chinese
    )


@pytest.mark.parametrize("font", [None, "E:ANMDS.TTF"])
def test_an_emoji_is_refused_by_zpl_as_by_pdf_and_preview(font):
    from labels.render.pdf import render_pdf
    from labels.render.preview import render_png

    record = values(1) | {"label": "Block \U0001f9ea"}
    template = load_template("ffpe-cassette")
    for render in (
        lambda: render_zpl(template, [record], font=font),
        lambda: render_pdf(template, [record]),
        lambda: render_png(template, record),
    ):
        with pytest.raises(LabelError, match=r"U\+1F9EA") as error:
            render()
        assert error.value.field == "label"


@pytest.mark.parametrize("font", ["ANMDS.TTF", "E:ANMDS.TTF^XZ", "E:../x.TTF", "E:ANMDS.PDF"])
def test_a_printer_font_must_be_a_stored_font_name(font):
    with pytest.raises(LabelError, match="stored font"):
        render_zpl(load_template("box"), [values(1)], font=font)
