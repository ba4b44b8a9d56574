"""ZPL II for Zebra printers: DataMatrix (``^BX``), Code 128, GS1-128 (``^BC``) and Code 39
(``^B3``), UTF-8 text in the built-in font or a Unicode font stored on the printer."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from labels.render.layout import check_printable, fit_text, printable, unprintable
from labels.render.linear import CODE39_RATIO, gs1_data, module_count
from labels.render.templates import Element, LabelError, Template

#: fewest printer dots per barcode module that scan reliably
MIN_MODULE_DOTS = 2
#: a font stored on the printer: drive, name, TrueType extension (nothing ZPL could misread)
PRINTER_FONT = re.compile(r"[REBA]:[A-Za-z0-9_-]{1,16}\.(?:TTF|TTE|ttf|tte)")


def _dots(mm: float, dpi: int) -> int:
    return round(mm / 25.4 * dpi)


def _field_data(text: str) -> str:
    """``^FH`` escapes, so that ``^`` and ``~`` in values cannot become ZPL commands."""
    return "^FH_^FD" + text.replace("_", "_5F").replace("^", "_5E").replace("~", "_7E") + "^FS"


def _module_dots(element: Element, dpi: int, text: str) -> int:
    dots = _dots(element.module, dpi)
    if dots < MIN_MODULE_DOTS:
        raise LabelError(
            f"{element.module} mm modules are {dots} dot(s) at {dpi} dpi: too small "
            f"to scan {text!r}; use at least {MIN_MODULE_DOTS} dots"
        )
    return dots


#: how each linear symbology is asked of the printer: ^BY ratio, then the barcode command
#: (Code 128 in automatic subset mode; GS1-128 the same, starting with FNC1)
_LINEAR = {
    "code128": ("3", "^BCN,{h},N,N,N,A"),
    "gs1-128": ("3", "^BCN,{h},N,N,N,A"),
    "code39": (f"{CODE39_RATIO}.0", "^B3N,N,{h},N,N"),
}
#: the font mapped (^CW) to the printer's TrueType font, when it has one
UNICODE_FONT_ID = "1"


def _text(
    element: Element, values: dict[str, Any], text: str, x: int, y: int, dpi: int, font: str | None
) -> list[str]:
    """Text lines in the built-in font ``^A0`` where it can print them (Windows-1252),
    else in the printer's Unicode font; what neither can print is refused."""
    check_printable(
        element,
        values,
        unicode=font is not None,
        font=f"the printer's font {font}"
        if font
        else "the printer's built-in font (give the printer a Unicode font)",
    )
    fitted = fit_text(element, text)
    height = max(8, round(fitted.size_pt / 72 * dpi))
    step = round(height * 1.15)
    out = []
    for i, line in enumerate(fitted.lines):
        shown = printable(line)
        face = "0" if unprintable(shown, unicode=False) is None else UNICODE_FONT_ID
        out.append(f"^FO{x},{y + i * step}^A{face}N,{height},{height}{_field_data(shown)}")
    return out


def _element(element: Element, values: dict[str, Any], dpi: int, font: str | None = None) -> list[str]:
    text = element.fill(values)
    x, y = _dots(element.x, dpi), _dots(element.y, dpi)
    if element.type == "text":
        return _text(element, values, text, x, y, dpi, font)
    module = _module_dots(element, dpi, text)
    if element.type == "datamatrix":
        return [f"^FO{x},{y}^BXN,{module},200{_field_data(text)}"]
    if ">" in text:  # the printer would take it for a subset or function invocation
        raise LabelError(
            f"barcode {text!r}: '>' cannot be printed in a ZPL {element.type}",
            field=min(element.fields(), default=None),
        )
    height = _dots(element.height, dpi)
    module = _linear_fit(element, dpi, text, module)
    ratio, command = _LINEAR[element.type]
    data = f">;>8{gs1_data(text, fnc1='>8')}" if element.type == "gs1-128" else text
    # Quiet zone of 10 modules on the left, as on the PDF label.
    return [
        f"^FO{x + 10 * module},{y}^BY{module},{ratio},{height}{command.format(h=height)}{_field_data(data)}"
    ]


def _linear_fit(element: Element, dpi: int, text: str, nominal: int) -> int:
    """Dots per module of a linear symbol: the template's module in whole dots, or fewer
    (never below :data:`MIN_MODULE_DOTS`) when the symbol and its two 10-module quiet zones
    would not fit the template's width at this resolution (0.33 mm is 2.6 dots at 203 dpi:
    3 dots make a 14-character Code 128 74 mm wide, 2 dots 50 mm)."""
    if not element.width:
        return nominal
    count = module_count(element.type, text) + 20
    fitting = int(element.width / 25.4 * dpi) // count
    if fitting < MIN_MODULE_DOTS:
        need = count * MIN_MODULE_DOTS / dpi * 25.4
        raise LabelError(
            f"barcode {text!r} needs {need:.1f} mm at {MIN_MODULE_DOTS} dots per "
            f"module and {dpi} dpi; the template gives {element.width} mm",
            field=min(element.fields(), default=None),
        )
    return min(nominal, fitting)


def iter_zpl(
    template: Template,
    records: Iterable[Mapping[str, Any]],
    *,
    dpi: int = 203,
    copies: int = 1,
    font: str | None = None,
) -> Iterator[str]:
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
    font
        A TrueType font stored on the printer (``E:ANMDS.TTF``) for text the built-in font
        cannot print, such as Chinese; mapped with ``^CW``. Without it such text is refused.
    """
    if copies < 1:
        raise LabelError("copies must be at least 1")
    if font is not None and not PRINTER_FONT.fullmatch(font):
        raise LabelError(f"printer font {font!r} is not a stored font such as E:ANMDS.TTF")
    head = [f"^PW{_dots(template.width_mm, dpi)}", f"^LL{_dots(template.height_mm, dpi)}"]
    if font is not None:
        head.append(f"^CW{UNICODE_FONT_ID},{font}")
    for values in records:
        lines = ["^XA", "^CI28", *head, "^LH0,0"]
        given = dict(values)
        for element in template.elements:
            lines += _element(element, given, dpi, font)
        lines += [f"^PQ{copies}", "^XZ"]
        yield "\n".join(lines) + "\n"


def render_zpl(
    template: Template,
    records: Iterable[Mapping[str, Any]],
    *,
    dpi: int = 203,
    copies: int = 1,
    font: str | None = None,
) -> bytes:
    """The ZPL for all *records*, UTF-8 encoded (``^CI28``)."""
    data = "".join(iter_zpl(template, records, dpi=dpi, copies=copies, font=font))
    if not data:
        raise LabelError("no labels to print")
    return data.encode()
