"""PDF labels: every label decodes to exactly its barcode with real decoders."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from biobank.barcodes import make_barcode
from biobank.models.vocab import MaterialType
from labels.render import LabelError, load_template, template_names
from labels.render.pdf import render_pdf
from labels.render.templates import parse_template

TOOLS = ("pdftoppm", "zbarimg", "dmtxread")


@pytest.fixture(scope="module", autouse=True)
def decoders():
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing and not os.environ.get("CI"):
        pytest.skip(
            f"missing {', '.join(missing)} (apt-get install poppler-utils zbar-tools "
            "dmtx-utils); CI installs them"
        )


def values(n: int) -> dict[str, str]:
    return {
        "barcode": make_barcode("CTR", MaterialType.PLASMA, n),
        "participant_code": f"SKN-{n:06d}",
        "material_type": "PLASMA",
        "collection_date": "2025-03-01",
        "volume": "0.5 mL",
        "sprec_code": "PL1-PED-A-D-N-A-B",
        "label": "Block A1",
        "container": "Box 0012",
        "site": "Central Dermatology Hospital Biobank",
        "destination": "Dept. of Dermatology, Northern Regional Hospital, Beijing",
        "text": "Keep frozen below −60 °C",
        "gs1": f"(01)09501101530003(17)271231(10)LOT{n:04d}",
    }


#: the linear symbologies a template may use
LINEAR = {"code128", "code39", "gs1-128"}


def symbols(template, record) -> tuple[set[str], set[str]]:
    """What decoders read off a label: (DataMatrix, linear symbols). A GS1-128 reads as its
    AIs and data run together (the lot is last in these values: no separator is needed)."""
    matrix, linear = set(), set()
    for element in template.elements:
        text = element.fill(record)
        if element.type == "datamatrix":
            matrix.add(text)
        elif element.type == "gs1-128":
            linear.add(re.sub(r"[()]", "", text))
        elif element.type in LINEAR:
            linear.add(text)
    return matrix, linear


def decode(
    pdf: bytes, tmp_path: Path, dpi: int, *, datamatrix: bool = True, code128: bool = True, per_page: int = 1
) -> list[tuple[set[str], set[str]]]:
    """(DataMatrix codes, linear codes) found on each page."""
    (tmp_path / "labels.pdf").write_bytes(pdf)
    subprocess.run(
        ["pdftoppm", "-r", str(dpi), "-png", str(tmp_path / "labels.pdf"), str(tmp_path / "page")], check=True
    )
    pages = []
    for png in sorted(tmp_path.glob("page-*.png")):
        dm = zb = ""
        if datamatrix:
            # -N: stop once every expected symbol is found; -m: give up on a page after 20 s.
            dm = subprocess.run(
                ["dmtxread", "-n", "-N", str(per_page), "-m", "20000", str(png)],
                capture_output=True,
                text=True,
            ).stdout
        if code128:
            zb = subprocess.run(
                ["zbarimg", "-q", "--nodbus", "--raw", str(png)], capture_output=True, text=True
            ).stdout
        pages.append(
            (
                {line for line in dm.splitlines() if line},
                # not splitlines(): a GS1 separator (GS, 0x1D) is no line break
                {line for line in zb.split("\n") if line},
            )
        )
    return pages


@pytest.mark.parametrize("dpi", [300, 203])
@pytest.mark.parametrize("name", template_names())
def test_every_template_decodes_to_exactly_its_barcode(name, dpi, tmp_path):
    template = load_template(name)
    records = [values(n) for n in (1, 2, 3)]
    kinds = {e.type for e in template.elements}
    pages = decode(
        render_pdf(template, records),
        tmp_path,
        dpi,
        datamatrix="datamatrix" in kinds,
        code128=bool(kinds & LINEAR),
    )
    assert len(pages) == 3
    for record, (datamatrix, linear) in zip(records, pages, strict=True):
        expected = symbols(template, record)
        assert expected[0] or expected[1]
        if expected[0]:
            assert datamatrix == expected[0]
        if expected[1]:
            assert linear == expected[1]


def test_sheet_of_labels_decodes_every_label(tmp_path):
    records = [values(n) for n in range(1, 41)]
    pages = decode(
        render_pdf(load_template("cryovial-2d"), records, sheet=True),
        tmp_path,
        300,
        code128=False,
        per_page=len(records),
    )
    found = set().union(*(dm for dm, _ in pages))
    assert found == {r["barcode"] for r in records}
    assert len(pages) >= 1


def test_text_that_does_not_fit_is_refused_not_cut():
    record = values(1) | {"participant_code": "A-VERY-LONG-PARTICIPANT-CODE-THAT-WILL-NOT-FIT"}
    with pytest.raises(LabelError, match="does not fit"):
        render_pdf(load_template("cryovial-2d"), [record])


def test_long_text_is_shrunk_or_wrapped_where_allowed(tmp_path):
    from labels.render.layout import fit_text

    element = load_template("shipping-box").elements[1]
    fitted = fit_text(element, "To: " + "Department of Dermatology and Venereology, " * 2)
    assert len(fitted.lines) > 1
    assert fitted.size_pt >= element.min_font_size


def test_missing_placeholder_value_is_named():
    record = values(1)
    del record["volume"]
    with pytest.raises(LabelError, match="volume"):
        render_pdf(load_template("cryovial-2d"), [record])


def test_template_with_unknown_placeholder_is_refused():
    with pytest.raises(LabelError, match="unknown placeholder"):
        parse_template(
            {
                "title": "t",
                "width_mm": 20,
                "height_mm": 10,
                "elements": [{"type": "text", "x": 0, "y": 0, "value": "{patient_name}"}],
            },
            name="bad",
        )


def test_barcode_too_long_for_the_label_is_refused():
    with pytest.raises(LabelError, match="needs"):
        render_pdf(load_template("tube-side-code128"), [values(1) | {"barcode": "X" * 40}])


def test_every_issued_barcode_fits_every_template():
    """Check characters vary the Code 128 length: no issued code may be too long for a label."""
    from labels.render.preview import layout_label

    for n in (1, 7, 99, 123456, 1234567, 9999999, *range(1000, 1200)):
        for name in template_names():
            for material in (MaterialType.PLASMA, MaterialType.TISSUE_PARAFFIN_EMBEDDED):
                layout_label(load_template(name), values(n) | {"barcode": make_barcode("CTR", material, n)})


def test_text_no_pdf_font_can_show_is_refused_not_replaced():
    record = values(1) | {"label": "Block \U0001f9ea"}  # a test-tube emoji
    with pytest.raises(LabelError, match=r"U\+1F9EA"):
        render_pdf(load_template("ffpe-cassette"), [record])


def test_chinese_names_print_in_the_chinese_font(tmp_path):
    """A hospital's name in Chinese is printed (in Adobe's STSong-Light, which readers
    supply), fitted with that font's widths, and the label still scans."""
    record = values(4) | {"destination": "北京大学第一医院 皮肤科", "site": "中心皮肤病医院"}
    shipping = render_pdf(load_template("shipping-box"), [record])
    text = subprocess.run(["pdftotext", "-", "-"], input=shipping, capture_output=True).stdout
    assert "北京大学第一医院 皮肤科" in text.decode()
    fonts = subprocess.run(["pdffonts", "-"], input=shipping, capture_output=True).stdout
    assert b"STSong-Light-UniGB-UCS2-H" in fonts and b"Helvetica" in fonts
    pages = decode(shipping, tmp_path, 300, datamatrix=False)
    assert pages == [(set(), {record["barcode"]})]
    box = load_template("box")
    too_long = values(4) | {"site": "中心皮肤病医院" * 6}
    with pytest.raises(LabelError, match="does not fit"):
        render_pdf(box, [too_long])


def test_minus_sign_and_western_text_print(tmp_path):
    """Typographic minus prints as a hyphen; Western European letters as themselves."""
    template = load_template("shipping-box")
    pdf = render_pdf(template, [values(2) | {"text": "−80 °C Zürich µL"}])
    text = subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True).stdout
    assert "-80 °C Zürich µL" in text.decode()


def test_many_pages_make_one_valid_document(tmp_path):
    """Past one node of the page tree, every label is still a page of its own."""
    from labels.render.pdf import PAGES_PER_NODE

    count = PAGES_PER_NODE * 2 + 3
    out = tmp_path / "many.pdf"
    with out.open("wb") as handle:
        assert (
            render_pdf(load_template("cryovial-2d"), (values(i) for i in range(1, count + 1)), out=handle)
            is None
        )
    info = subprocess.run(["pdfinfo", str(out)], capture_output=True, text=True, check=True)
    assert re.search(rf"^Pages:\s+{count}$", info.stdout, re.M)
    # The last page is the last label.
    subprocess.run(
        [
            "pdftoppm",
            "-r",
            "300",
            "-f",
            str(count),
            "-l",
            str(count),
            "-png",
            "-singlefile",
            str(out),
            str(tmp_path / "last"),
        ],
        check=True,
    )
    found = subprocess.run(
        ["dmtxread", "-n", "-N", "1", "-m", "20000", str(tmp_path / "last.png")],
        capture_output=True,
        text=True,
    ).stdout
    assert found.split() == [values(count)["barcode"]]
