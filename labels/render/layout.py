"""Fitting text into a label: shrink first, then wrap, and never cut text off silently."""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass
from typing import Any

from ppf.datamatrix import DataMatrix

from labels.render.templates import Element, LabelError

PT_PER_MM = 72 / 25.4
FONT = "Helvetica"
#: for text Helvetica cannot show (Chinese site or hospital names): Adobe's simplified
#: Chinese font, which PDF readers provide without embedding; it has Latin letters too
CJK_FONT = "STSong-Light"
#: characters outside WinAnsi that have an exact typographic equivalent inside it
EQUIVALENTS = str.maketrans({"\u2212": "-", "\u2010": "-", "\u2011": "-", "\u00a0": " "})


def printable(text: str) -> str:
    """*text* as it is printed: NFC-normalised, typographic dashes and spaces replaced by
    their Western European equivalents."""
    if text.isascii():  # most label text: nothing to normalise or replace
        return text
    return unicodedata.normalize("NFC", text).translate(EQUIVALENTS)


@functools.lru_cache(maxsize=4096)  # labels of a job repeat most of their text
def unprintable(text: str, *, unicode: bool = True) -> str | None:
    """The first character of *text* no label can print, or None.

    A label prints what is in its font: with a Unicode font (the PDF's Chinese font, a
    printer's TrueType font) the Basic Multilingual Plane, else Windows-1252 (Helvetica,
    the Zebra's built-in font). Never an emoji (outside the BMP), nor a control character.
    """
    if text.isascii():  # printable everywhere, but for control characters
        return None if text.isprintable() else next(c for c in text if not c.isprintable())
    for char in printable(text):
        if ord(char) > 0xFFFF or unicodedata.category(char) in ("Cc", "Cs", "Co", "Cn"):
            return char
        if not unicode and char not in _WIN_ANSI:
            return char
    return None


_WIN_ANSI = frozenset(bytes(range(32, 256)).decode("cp1252", errors="ignore"))


def check_printable(
    element: Element, values: dict[str, Any], *, unicode: bool = True, font: str = "the PDF's fonts"
) -> None:
    """Refuse a value of *element* with a character :func:`unprintable` finds, naming the
    placeholder it came from and the code point.

    Raises
    ------
    LabelError
        With ``field`` set to the placeholder.
    """
    for name in element.placeholders:
        value = values.get(name)
        char = unprintable(str(value), unicode=unicode) if value is not None else None
        if char is not None:
            raise LabelError(
                f"character {char!r} (U+{ord(char):04X}) in {{{name}}} "
                f"{str(value)!r} cannot be printed in {font}",
                field=name,
            )


def font_for(text: str) -> str:
    """Helvetica for text it can show (WinAnsi), else the Chinese font."""
    if text.isascii():
        return FONT
    try:
        printable(text).encode("cp1252")
    except UnicodeEncodeError:
        return CJK_FONT
    return FONT


@functools.cache
def _register_cjk_font() -> None:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont

    pdfmetrics.registerFont(UnicodeCIDFont(CJK_FONT))


def text_width_mm(text: str, size_pt: float) -> float:
    """Width of *text* at *size_pt* in the font it is printed in, in millimetres."""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    font = font_for(text)
    if font == CJK_FONT:
        _register_cjk_font()
    return stringWidth(printable(text), font, size_pt) / PT_PER_MM


@dataclass(frozen=True)
class FittedText:
    size_pt: float
    lines: tuple[str, ...]


def _wrap(text: str, size: float, width: float) -> list[str] | None:
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}".strip()
        if text_width_mm(candidate, size) <= width:
            current = candidate
            continue
        if not current or text_width_mm(word, size) > width:
            return None
        lines.append(current)
        current = word
    if current:
        lines.append(current)
    return lines


def fit_text(element: Element, text: str) -> FittedText:
    """The largest font size from ``font_size`` down to ``min_font_size`` at which *text*
    fits ``width`` in at most ``max_lines`` lines.

    Raises
    ------
    LabelError
        When it fits at no allowed size: a label must never lose text unnoticed.
    """
    return _fit_text(element, text)


@functools.lru_cache(maxsize=4096)  # labels of a job repeat most of their text
def _fit_text(element: Element, text: str) -> FittedText:
    if not element.width:
        return FittedText(element.font_size, (text,))
    size = element.font_size
    while size >= element.min_font_size - 1e-9:
        if text_width_mm(text, size) <= element.width:
            return FittedText(size, (text,))
        if element.max_lines > 1:
            lines = _wrap(text, size, element.width)
            if lines is not None and len(lines) <= element.max_lines:
                return FittedText(size, tuple(lines))
        size -= 0.5
    raise LabelError(
        f"text {text!r} does not fit {element.width} mm in {element.max_lines} "
        f"line(s) even at {element.min_font_size} pt"
    )


def datamatrix_modules(text: str) -> list[list[int]]:
    """The ECC 200 module matrix for *text* (smallest square symbol; 1 = dark)."""
    try:
        return DataMatrix(text).matrix
    except Exception as error:  # the encoder raises plain exceptions for what it cannot encode
        raise LabelError(f"cannot encode {text!r} as DataMatrix: {error}") from None
