"""ZPL II for Zebra printers: DataMatrix (``^BX``), Code 128 (``^BC``), UTF-8 text."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from labels.render.layout import fit_text
from labels.render.templates import Element, LabelError, Template

#: fewest printer dots per barcode module that scan reliably
MIN_MODULE_DOTS = 2


def _dots(mm: float, dpi: int) -> int:
    return round(mm / 25.4 * dpi)


def _field_data(text: str) -> str:
    """``^FH`` escapes, so that ``^`` and ``~`` in values cannot become ZPL commands."""
    return "^FH_^FD" + text.replace("_", "_5F").replace("^", "_5E").replace("~", "_7E") + "^FS"


def _module_dots(element: Element, dpi: int, text: str) -> int:
    dots = _dots(element.module, dpi)
    if dots < MIN_MODULE_DOTS:
        raise LabelError(f"{element.module} mm modules are {dots} dot(s) at {dpi} dpi: too small "
                         f"to scan {text!r}; use at least {MIN_MODULE_DOTS} dots")
    return dots


def _code128_modules(text: str) -> int:
    from reportlab.graphics.barcode.code128 import Code128

    symbol = Code128(text, barWidth=1, quiet=False)
    return round(symbol.width)


def _element(element: Element, text: str, dpi: int) -> list[str]:
    x, y = _dots(element.x, dpi), _dots(element.y, dpi)
    if element.type == "text":
        fitted = fit_text(element, text)
        height = max(8, round(fitted.size_pt / 72 * dpi))
        step = round(height * 1.15)
        return [f"^FO{x},{y + i * step}^A0N,{height},{height}{_field_data(line)}"
                for i, line in enumerate(fitted.lines)]
    module = _module_dots(element, dpi, text)
    if element.type == "datamatrix":
        return [f"^FO{x},{y}^BXN,{module},200{_field_data(text)}"]
    height = _dots(element.height, dpi)
    module = _code128_fit(element, dpi, text, module)
    # Quiet zone of 10 modules on the left, as on the PDF label.
    return [f"^FO{x + 10 * module},{y}^BY{module},3,{height}^BCN,{height},N,N,N,A"
            f"{_field_data(text)}"]


def _code128_fit(element: Element, dpi: int, text: str, nominal: int) -> int:
    """Dots per module of a Code 128: the template's module in whole dots, or fewer (never
    below :data:`MIN_MODULE_DOTS`) when the symbol and its two 10-module quiet zones would
    not fit the template's width at this resolution (0.33 mm is 2.6 dots at 203 dpi: 3 dots
    make a 14-character barcode 74 mm wide, 2 dots 50 mm)."""
    modules = _code128_modules(text) + 20
    if not element.width:
        return nominal
    fitting = int(element.width / 25.4 * dpi) // modules
    if fitting < MIN_MODULE_DOTS:
        need = modules * MIN_MODULE_DOTS / dpi * 25.4
        raise LabelError(f"barcode {text!r} needs {need:.1f} mm at {MIN_MODULE_DOTS} dots per "
                         f"module and {dpi} dpi; the template gives {element.width} mm")
    return min(nominal, fitting)


def iter_zpl(template: Template, records: Iterable[Mapping[str, Any]], *, dpi: int = 203,
             copies: int = 1) -> Iterator[str]:
    """Yield one ``^XA … ^XZ`` block per record (streamed: nothing is held in memory).

    Parameters
    ----------
    template
        The label layout; sizes in millimetres are converted to printer dots.
    records
        Placeholder values, one mapping per label.
    dpi
        Printer resolution: 203 (8 dots/mm), 300 or 600.
    copies
        ``^PQ`` count for each label.
    """
    if copies < 1:
        raise LabelError("copies must be at least 1")
    head = [f"^PW{_dots(template.width_mm, dpi)}", f"^LL{_dots(template.height_mm, dpi)}"]
    for values in records:
        lines = ["^XA", "^CI28", *head, "^LH0,0"]
        for element in template.elements:
            lines += _element(element, element.fill(dict(values)), dpi)
        lines += [f"^PQ{copies}", "^XZ"]
        yield "\n".join(lines) + "\n"


def render_zpl(template: Template, records: Iterable[Mapping[str, Any]], *, dpi: int = 203,
               copies: int = 1) -> bytes:
    """The ZPL for all *records*, UTF-8 encoded (``^CI28``)."""
    data = "".join(iter_zpl(template, records, dpi=dpi, copies=copies))
    if not data:
        raise LabelError("no labels to print")
    return data.encode()
