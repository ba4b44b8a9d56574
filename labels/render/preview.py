"""Previews of one label as SVG or PNG, from the same layout as the PDF and ZPL."""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from PIL import Image, ImageDraw, ImageFont

from labels.render.layout import (
    PT_PER_MM,
    check_printable,
    datamatrix_modules,
    fit_text,
    printable,
)
from labels.render.linear import bars, modules
from labels.render.templates import LabelError, Template


@dataclass(frozen=True)
class Box:
    """A dark rectangle, in millimetres from the label's top-left corner."""

    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True)
class Text:
    x: float
    baseline: float
    size_pt: float
    text: str


def layout_label(template: Template, values: Mapping[str, Any]) -> list[Box | Text]:
    """What one label shows, as dark boxes and text runs (text as printed: see
    :func:`labels.render.layout.printable`; a character no font prints is refused, so a
    preview never shows a label that printing would refuse)."""
    shapes: list[Box | Text] = []
    given = dict(values)
    for element in template.elements:
        text = element.fill(given)
        if element.type == "text":
            check_printable(element, given)
            fitted = fit_text(element, text)
            line_h = fitted.size_pt * 1.15 / PT_PER_MM
            for i, line in enumerate(fitted.lines):
                baseline = element.y + fitted.size_pt / PT_PER_MM * 0.85 + i * line_h
                shapes.append(Text(element.x, baseline, fitted.size_pt, printable(line)))
        elif element.type == "datamatrix":
            m = element.module
            for r, row in enumerate(datamatrix_modules(text)):
                c = 0
                while c < len(row):
                    if not row[c]:
                        c += 1
                        continue
                    start = c
                    while c < len(row) and row[c]:
                        c += 1
                    # One box per run of dark modules: smaller files, no seams between them.
                    shapes.append(Box(element.x + start * m, element.y + r * m, (c - start) * m, m))
        else:
            # a linear symbol between quiet zones of 10 modules
            pattern = modules(element.type, text)
            start = element.x + 10 * element.module
            need = (len(pattern) + 20) * element.module
            if element.width and need > element.width:
                raise LabelError(
                    f"barcode {text!r} needs {need:.1f} mm; the template gives {element.width} mm",
                    field=min(element.fields(), default=None),
                )
            shapes.extend(
                Box(start + off, element.y, w, element.height) for off, w in bars(pattern, element.module)
            )
    return shapes


def render_svg(template: Template, values: Mapping[str, Any]) -> str:
    """An SVG preview of one label (millimetre user units)."""
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{template.width_mm}mm" '
        f'height="{template.height_mm}mm" viewBox="0 0 {template.width_mm} '
        f'{template.height_mm}">',
        '<rect width="100%" height="100%" fill="#fff"/>',
        '<g fill="#000">',
    ]
    for shape in layout_label(template, values):
        if isinstance(shape, Box):
            parts.append(
                f'<rect x="{shape.x:.3f}" y="{shape.y:.3f}" width="{shape.w:.3f}" height="{shape.h:.3f}"/>'
            )
        else:
            parts.append(
                f'<text x="{shape.x:.3f}" y="{shape.baseline:.3f}" '
                f'font-family="Helvetica, Arial, sans-serif" '
                f'font-size="{shape.size_pt / PT_PER_MM:.3f}">{escape(shape.text)}</text>'
            )
    parts += ["</g>", "</svg>"]
    return "\n".join(parts)


def render_png(template: Template, values: Mapping[str, Any], *, dpi: int = 300) -> bytes:
    """A PNG preview of one label at *dpi*, modules snapped to whole pixels."""
    px = dpi / 25.4
    image = Image.new("L", (round(template.width_mm * px), round(template.height_mm * px)), 255)
    draw = ImageDraw.Draw(image)
    for shape in layout_label(template, values):
        if isinstance(shape, Box):
            x0, y0 = round(shape.x * px), round(shape.y * px)
            x1, y1 = round((shape.x + shape.w) * px), round((shape.y + shape.h) * px)
            draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=0)
        else:
            size = max(6, round(shape.size_pt / 72 * dpi))
            font = ImageFont.load_default(size=size)
            draw.text((shape.x * px, shape.baseline * px), shape.text, fill=0, font=font, anchor="ls")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
