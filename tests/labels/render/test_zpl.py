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
        assert ("^BCN," in block) == ("code128" in kinds)
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


def test_utf8_text_is_sent_as_utf8():
    zpl = render_zpl(load_template("shipping-box"), [values(1)])
    assert "−60 °C".encode() in zpl


def test_no_records_is_an_error():
    with pytest.raises(LabelError, match="no labels"):
        render_zpl(load_template("box"), [])
