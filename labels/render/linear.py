"""Linear (1D) symbols with python-barcode: Code 128, Code 39 and GS1-128.

Each symbol is a string of modules (``1`` dark, ``0`` light) without quiet zones: the PDF,
the previews and the width checks of the ZPL all draw or measure the same pattern.
"""

from __future__ import annotations

import re

from labels.render.templates import LabelError

#: template element types that are linear symbols
LINEAR_TYPES = frozenset({"code128", "code39", "gs1-128"})
#: narrow to wide ratio of Code 39 as python-barcode draws it (and the ZPL asks for)
CODE39_RATIO = 3
FNC1 = "\xf1"
#: GS1 application identifiers whose data has a predefined length, by their first two
#: digits (GS1 General Specifications figure 7.8.4-2, less two): the data's length plus the
#: AI's digits beyond two. No FNC1 separator follows them
PREDEFINED_LENGTH = {"00": 18, "01": 14, "02": 14, "03": 14, "04": 16, "11": 6, "12": 6,
                     "13": 6, "14": 6, "15": 6, "16": 6, "17": 6, "18": 6, "19": 6, "20": 2,
                     "31": 8, "32": 8, "33": 8, "34": 8, "35": 8, "36": 8, "41": 14}
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
        raise LabelError(f"GS1-128 needs AIs in parentheses, each followed by its data, "
                         f"e.g. (01)09501101530003(10)LOT42; got {text!r}")
    for ai, data in pairs:
        length = PREDEFINED_LENGTH.get(ai[:2])
        if length is not None and len(ai) - 2 + len(data) != length:
            raise LabelError(f"GS1 AI ({ai}) takes {length - len(ai) + 2} characters; "
                             f"got {data!r}")
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


def modules(kind: str, text: str) -> str:
    """The module pattern of *text* in symbology *kind* (see :data:`LINEAR_TYPES`).

    Raises
    ------
    LabelError
        For a character the symbology cannot encode (Code 39 has no lower case).
    """
    from barcode.codex import Code39, Code128, Gs1_128
    from barcode.errors import IllegalCharacterError

    try:
        if kind == "code128":
            return Code128(text).build()[0]
        if kind == "code39":
            if text != text.upper():  # python-barcode would upper-case it: a different code
                raise LabelError(f"cannot encode {text!r} as code39: it has no lower case")
            return Code39(text, add_checksum=False).build()[0]
        if kind == "gs1-128":
            return Gs1_128(gs1_data(text)).build()[0]
    except IllegalCharacterError as error:
        raise LabelError(f"cannot encode {text!r} as {kind}: {error}") from None
    raise LabelError(f"unknown linear symbology {kind!r}")


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
