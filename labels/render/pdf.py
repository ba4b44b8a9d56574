"""PDF labels with reportlab: one label per page (roll printers) or a grid on A4 sheets."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO

from labels.render.layout import FONT, PT_PER_MM, datamatrix_modules, fit_text
from labels.render.templates import LabelError, Template

if TYPE_CHECKING:
    from reportlab.pdfgen.canvas import Canvas

MM = PT_PER_MM
A4 = (210.0, 297.0)


def _draw_label(canvas: Canvas, template: Template, values: Mapping[str, Any], ox: float,
                oy: float) -> None:
    """Draw one label with its top-left corner at (*ox*, *oy*) mm from the page's top-left."""
    from reportlab.graphics.barcode.code128 import Code128

    page_h = canvas._pagesize[1] / MM
    for element in template.elements:
        text = element.fill(dict(values))
        x = ox + element.x
        top = oy + element.y
        if element.type == "text":
            fitted = fit_text(element, text)
            canvas.setFont(FONT, fitted.size_pt)
            line_h = fitted.size_pt * 1.15 / MM
            for i, line in enumerate(fitted.lines):
                baseline = top + fitted.size_pt / MM * 0.85 + i * line_h
                canvas.drawString(x * MM, (page_h - baseline) * MM, line)
        elif element.type == "datamatrix":
            matrix = datamatrix_modules(text)
            m = element.module
            canvas.saveState()
            canvas.setFillColorRGB(0, 0, 0)
            for r, row in enumerate(matrix):
                c = 0
                while c < len(row):
                    if not row[c]:
                        c += 1
                        continue
                    start = c
                    while c < len(row) and row[c]:
                        c += 1
                    # One rectangle per run of dark modules keeps the PDF small.
                    canvas.rect((x + start * m) * MM, (page_h - top - (r + 1) * m) * MM,
                                (c - start) * m * MM, m * MM, stroke=0, fill=1)
            canvas.restoreState()
        elif element.type == "code128":
            bars = Code128(text, barWidth=element.module * MM, barHeight=element.height * MM,
                           quiet=True, lquiet=element.module * 10 * MM,
                           rquiet=element.module * 10 * MM)
            if element.width and bars.width / MM > element.width:
                raise LabelError(
                    f"barcode {text!r} needs {bars.width / MM:.1f} mm at {element.module} mm "
                    f"per module; the template gives {element.width} mm")
            canvas.saveState()
            bars.drawOn(canvas, x * MM, (page_h - top - element.height) * MM)
            canvas.restoreState()


def render_pdf(template: Template, records: Iterable[Mapping[str, Any]], *,
               sheet: bool = False, margin_mm: float = 8.0, gap_mm: float = 2.0,
               out: BinaryIO | None = None) -> bytes | None:
    """Render labels as PDF.

    Parameters
    ----------
    template
        The label layout.
    records
        One mapping of placeholder values per label; consumed as it is iterated, so
        thousands of labels never sit in memory at once.
    sheet
        ``False``: one label per page, page size = label size (roll printers).
        ``True``: as many labels as fit on A4 pages in a grid (office printers).

    out
        A binary file to write to; then nothing is returned.

    Returns
    -------
    bytes or None
        The PDF document, when *out* is not given.
    """
    from reportlab.pdfgen.canvas import Canvas

    buffer = out if out is not None else io.BytesIO()
    if sheet:
        page = A4
        cols = max(1, int((page[0] - 2 * margin_mm + gap_mm) // (template.width_mm + gap_mm)))
        rows = max(1, int((page[1] - 2 * margin_mm + gap_mm) // (template.height_mm + gap_mm)))
    else:
        page = (template.width_mm, template.height_mm)
        cols = rows = 1
        margin_mm = gap_mm = 0.0
    canvas = Canvas(buffer, pagesize=(page[0] * MM, page[1] * MM), pageCompression=1)
    per_page = cols * rows
    count = 0
    for values in records:
        slot = count % per_page
        if count and slot == 0:
            canvas.showPage()
        r, c = divmod(slot, cols)
        _draw_label(canvas, template, values, margin_mm + c * (template.width_mm + gap_mm),
                    margin_mm + r * (template.height_mm + gap_mm))
        count += 1
    if count == 0:
        raise LabelError("no labels to print")
    canvas.showPage()
    canvas.save()
    return None if out is not None else buffer.getvalue()
