"""PNG and SVG previews show the same symbols as the printed label."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from labels.render import load_template, template_names
from labels.render.layout import datamatrix_modules
from labels.render.preview import render_png, render_svg
from tests.labels.render.test_pdf import decoders, symbols, values

__all__ = ["decoders"]


@pytest.mark.parametrize("name", template_names())
def test_png_preview_decodes_to_the_barcode(name, tmp_path):
    template = load_template(name)
    png = tmp_path / "label.png"
    png.write_bytes(render_png(template, values(7)))
    matrix, linear = symbols(template, values(7))
    if matrix and shutil.which("dmtxread"):
        out = subprocess.run(
            ["dmtxread", "-n", "-N", "1", "-m", "20000", str(png)], capture_output=True, text=True
        ).stdout.split()
        assert set(out) == matrix
    if linear and shutil.which("zbarimg"):
        out = subprocess.run(
            ["zbarimg", "-q", "--nodbus", "--raw", str(png)], capture_output=True, text=True
        ).stdout.split()
        assert set(out) == linear


def test_svg_preview_is_well_formed_and_escapes_text():
    svg = render_svg(load_template("ffpe-cassette"), values(1) | {"label": "A<B & C"})
    root = ET.fromstring(svg)
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "A<B & C" in texts
    # The rectangles after the white background cover exactly the symbol's dark modules.
    rects = list(root.iter("{http://www.w3.org/2000/svg}rect"))[1:]
    dark = sum(map(sum, datamatrix_modules(values(1)["barcode"])))
    module = 0.375  # mm, the ffpe-cassette template's module
    area = sum(float(r.get("width")) * float(r.get("height")) for r in rects)
    assert dark > 100 and area == pytest.approx(dark * module**2, rel=1e-3)


def test_preview_endpoint(client, make, site, technician, headers):
    tube = make.specimen(participant=make.participant(site=site))
    h = headers(technician)
    r = client.get(
        "/api/v1/print-jobs/preview",
        headers=h,
        query_string={"template": "cryovial-2d", "specimen_id": tube.id},
    )
    assert r.mimetype == "image/png" and r.data.startswith(b"\x89PNG")
    r = client.get(
        "/api/v1/print-jobs/preview",
        headers=h,
        query_string={"template": "box", "specimen_id": tube.id, "format": "svg"},
    )
    assert r.status_code == 422
    assert "container" in r.json["detail"]
