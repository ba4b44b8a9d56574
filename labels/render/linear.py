"""Linear (1D) symbols with python-barcode: Code 128, Code 39 and GS1-128.

Each symbol is a string of modules (``1`` dark, ``0`` light) without quiet zones: the PDF,
the previews and the width checks of the ZPL all draw or measure the same pattern.
"""

from __future__ import annotations

import functools
import re

from barcode.charsets import code39, code128
from barcode.codex import Code39, Code128, Gs1_128
from barcode.errors import IllegalCharacterError

from labels.render.templates import LabelError

#: narrow to wide ratio of Code 39 as python-barcode draws it (and the ZPL asks for)
CODE39_RATIO = 3
FNC1 = "\xf1"
#: GS1 application identifiers whose data has a predefined length, by their first two
#: digits (GS1 General Specifications figure 7.8.4-2, less two): the data's length plus the
#: AI's digits beyond two. No FNC1 separator follows them
PREDEFINED_LENGTH = {
    "00": 18,
    "01": 14,
    "02": 14,
    "03": 14,
    "04": 16,
    "11": 6,
    "12": 6,
    "13": 6,
    "14": 6,
    "15": 6,
    "16": 6,
    "17": 6,
    "18": 6,
    "19": 6,
    "20": 2,
    "31": 8,
    "32": 8,
    "33": 8,
    "34": 8,
    "35": 8,
    "36": 8,
    "41": 14,
}
_ELEMENT = re.compile(r"\((\d{2,4})\)([^()]+)")


def gs1_elements(text: str) -> list[tuple[str, str]]:
    """The (AI, data) pairs of a GS1 element string in its human-readable form,
    ``(01)09501101530003(17)271231(10)LOT42``.

    Raises
    ------
    LabelError
        For text that is not AIs in parentheses each followed by its data, or data of the
        wrong length for a predefined-length AI.
    """
    pairs = _ELEMENT.findall(text)
    if not pairs or "".join(f"({ai}){data}" for ai, data in pairs) != text:
        raise LabelError(
            f"GS1-128 needs AIs in parentheses, each followed by its data, "
            f"e.g. (01)09501101530003(10)LOT42; got {text!r}"
        )
    for ai, data in pairs:
        length = PREDEFINED_LENGTH.get(ai[:2])
        if length is not None and len(ai) - 2 + len(data) != length:
            raise LabelError(f"GS1 AI ({ai}) takes {length - len(ai) + 2} characters; got {data!r}")
    return pairs


def gs1_data(text: str, fnc1: str = FNC1) -> str:
    """The GS1 element string as encoded: AIs and data run together, *fnc1* after each
    variable-length element but the last (the leading FNC1 is the symbology's)."""
    pairs = gs1_elements(text)
    parts = []
    for i, (ai, data) in enumerate(pairs):
        parts.append(ai + data)
        if ai[:2] not in PREDEFINED_LENGTH and i < len(pairs) - 1:
            parts.append(fnc1)
    return "".join(parts)


class _LeadingPairSafe:
    """python-barcode folds a switch of code set right after the start into the start code,
    and takes a leading digit pair "99" in code set C (the same codeword as "switch to C")
    for such a switch, dropping it from the data. Data that starts with two digits starts
    with data, never a switch."""

    code: str

    def _try_to_optimize(self, encoded: list[int]) -> list[int]:
        if self.code[:2].isdigit():
            return encoded
        return super()._try_to_optimize(encoded)  # type: ignore[misc]


class _Code128(_LeadingPairSafe, Code128):
    pass


class _Gs1128(_LeadingPairSafe, Gs1_128):
    pass


def modules(kind: str, text: str) -> str:
    """The module pattern of *text* in symbology *kind*: ``code128``, ``code39`` or
    ``gs1-128``.

    Raises
    ------
    LabelError
        For a character the symbology cannot encode (Code 39 has no lower case).
    """
    try:
        if kind == "code128":
            return _Code128(text).build()[0]
        if kind == "code39":
            if text != text.upper():  # python-barcode would upper-case it: a different code
                raise LabelError(f"cannot encode {text!r} as code39: it has no lower case")
            return Code39(text, add_checksum=False).build()[0]
        if kind == "gs1-128":
            return _Gs1128(gs1_data(text)).build()[0]
    except IllegalCharacterError as error:
        raise LabelError(f"cannot encode {text!r} as {kind}: {error}") from None
    raise LabelError(f"unknown linear symbology {kind!r}")


def module_count(kind: str, text: str) -> int:
    """``len(modules(kind, text))`` without encoding every barcode: how long a Code 128 is
    depends only on which of its characters are digits, FNC1, or in one code set only, so
    barcodes of one shape share one encoding. Code 39 is 16 modules a character."""
    if kind == "code39":
        if text != text.upper() or not set(text) <= _CODE39:
            modules(kind, text)  # raises, naming what it cannot encode
        return 16 * (len(text) + 2) - 1
    data = gs1_data(text) if kind == "gs1-128" else text
    shape = data.translate(_SHAPES)
    if _OTHER.search(shape):  # a character no code set has: let the encoder say which
        return len(modules(kind, text))
    return _count(kind, shape)


@functools.lru_cache(maxsize=1024)
def _count(kind: str, shape: str) -> int:
    sample = shape.translate(_SAMPLES)
    symbol = _Gs1128(sample) if kind == "gs1-128" else _Code128(sample)
    return len(symbol.build()[0])


def _shapes() -> tuple[dict[int, str], dict[int, str], frozenset[str]]:
    shapes: dict[int, str] = {}
    for char in set(code128.A) | set(code128.B):
        if len(char) != 1:
            continue
        shapes[ord(char)] = (
            "9"
            if char.isdigit()
            else "x"
            if char in code128.A and char in code128.B
            else "b"
            if char in code128.B
            else "a"
        )
    shapes[ord(FNC1)] = "f"
    samples = {ord("9"): "0", ord("x"): "A", ord("b"): "a", ord("a"): "\x01", ord("f"): FNC1}
    return shapes, samples, frozenset(code39.REF)


_SHAPES, _SAMPLES, _CODE39 = _shapes()
_OTHER = re.compile("[^9xbaf]")


def bars(pattern: str, module: float) -> list[tuple[float, float]]:
    """(offset, width) of each dark run of *pattern*, in the unit of *module*."""
    out = []
    i, n = 0, len(pattern)
    while i < n:
        if pattern[i] == "1":
            start = i
            while i < n and pattern[i] == "1":
                i += 1
            out.append((start * module, (i - start) * module))
        else:
            i += 1
    return out
