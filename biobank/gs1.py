"""GS1 element strings as scanned from reagent kits (GS1-128, GS1 DataMatrix): GTIN, lot,
expiry.

A scanner sends the data of a GS1 symbol as application identifiers (AIs) run together,
ending a variable-length field with the group separator GS (0x1D) where another follows,
often after a symbology identifier (``]C1`` GS1-128, ``]d2`` GS1 DataMatrix, ``]Q3`` GS1
QR). People type the human-readable form, ``(01)09501101530003(17)271231(10)LOT42``. Both
are read here.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass

GS = "\x1d"
#: symbology identifiers of GS1 symbols; other identifiers are plain data
GS1_SYMBOLOGIES = {"]C1", "]d2", "]Q3", "]e0", "]J1"}
#: AIs whose data has a predefined length, by their first two digits (GS1 General
#: Specifications, figure 7.8.4-2, less two): the data's length plus the AI's digits beyond
#: two. They need no separator
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
#: the length of the AI itself, by its first two digits (2 unless listed)
AI_LENGTH = {
    **dict.fromkeys(["23", "24", "25", "40", "41", "42", "71"], 3),
    **dict.fromkeys(["31", "32", "33", "34", "35", "36", "39", "70", "72", "80", "81", "82"], 4),
}
_HRI = re.compile(r"\((\d{2,4})\)([^()]+)")


class GS1Error(ValueError):
    """A scan that is not a GS1 element string, or not a usable kit label; says why."""


@dataclass(frozen=True)
class Kit:
    gtin: str
    lot: str | None
    expiry: dt.date | None

    def as_dict(self) -> dict[str, str | None]:
        return {
            "gtin": self.gtin,
            "lot": self.lot,
            "expiry": self.expiry.isoformat() if self.expiry else None,
        }


def parse(scan: str) -> dict[str, str]:
    """The AIs and their data in *scan* (scanner output or the human-readable form).

    Raises
    ------
    GS1Error
        Naming the position where it stops making sense.
    """
    text = scan.strip()
    if text.startswith("]"):
        if text[:3] not in GS1_SYMBOLOGIES:
            raise GS1Error(f"symbology identifier {text[:3]!r} is not a GS1 symbol's")
        text = text[3:]
    if text.startswith("("):
        pairs = _HRI.findall(text)
        if "".join(f"({ai}){data}" for ai, data in pairs) != text:
            raise GS1Error("the human-readable form is AIs in parentheses, each followed by its data")
        found: dict[str, str] = {}
        for ai, data in pairs:
            _check_length(ai, data)
            found[ai] = data
        return found
    return _parse_raw(text.lstrip(GS))


def _parse_raw(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    i = 0
    while i < len(text):
        head = text[i : i + 2]
        if len(head) < 2 or not head.isdigit():
            raise GS1Error(
                f"expected an application identifier at character {i + 1}, found {text[i : i + 4]!r}"
            )
        ai = text[i : i + AI_LENGTH.get(head, 2)]
        i += len(ai)
        fixed = PREDEFINED_LENGTH.get(head)
        if fixed is not None:
            data = text[i : i + fixed - len(ai) + 2]
            i += len(data)
            if text[i : i + 1] == GS:
                i += 1
        else:
            end = text.find(GS, i)
            end = len(text) if end < 0 else end
            data, i = text[i:end], end + 1
        _check_length(ai, data)
        found[ai] = data
    return found


def _check_length(ai: str, data: str) -> None:
    fixed = PREDEFINED_LENGTH.get(ai[:2])
    if fixed is not None and len(data) != fixed - len(ai) + 2:
        raise GS1Error(f"AI ({ai}) takes {fixed - len(ai) + 2} characters, got {data!r}")
    if not data:
        raise GS1Error(f"AI ({ai}) has no data")


def gtin_is_valid(gtin: str) -> bool:
    """Whether the last digit of *gtin* is its GS1 mod-10 check digit."""
    if not gtin.isdigit() or len(gtin) not in (8, 12, 13, 14):
        return False
    body = [int(c) for c in reversed(gtin[:-1])]
    total = sum(d * (3 if i % 2 == 0 else 1) for i, d in enumerate(body))
    return (10 - total % 10) % 10 == int(gtin[-1])


def gs1_date(value: str, *, today: dt.date) -> dt.date:
    """A GS1 YYMMDD date; DD 00 is the month's last day, the century the one that puts the
    year within 49 years before or 50 after *today* (GS1 General Specifications 7.12)."""
    if not (len(value) == 6 and value.isdigit()):
        raise GS1Error(f"a GS1 date is YYMMDD, got {value!r}")
    yy, month, day = int(value[:2]), int(value[2:4]), int(value[4:])
    difference = yy - today.year % 100
    century = today.year // 100 + (1 if difference < -49 else -1 if difference > 50 else 0)
    year = century * 100 + yy
    if not 1 <= month <= 12:
        raise GS1Error(f"GS1 date {value!r} has month {month:02d}")
    if day == 0:
        day = calendar.monthrange(year, month)[1]
    try:
        return dt.date(year, month, day)
    except ValueError:
        raise GS1Error(f"GS1 date {value!r} is not a calendar date") from None


def read_kit(scan: str, *, on: dt.date) -> Kit:
    """The kit a label identifies: GTIN (AI 01), lot (10), expiry (17).

    Raises
    ------
    GS1Error
        When the scan has no valid GTIN, or the kit expired before *on* (the day it is used).
    """
    found = parse(scan)
    gtin = found.get("01")
    if gtin is None:
        raise GS1Error("the label has no GTIN (AI 01): not a product's GS1 label")
    if not gtin_is_valid(gtin):
        raise GS1Error(f"GTIN {gtin} has a wrong check digit")
    expiry = gs1_date(found["17"], today=on) if "17" in found else None
    if expiry is not None and expiry < on:
        raise GS1Error(
            f"the kit (GTIN {gtin}, lot {found.get('10', 'unknown')}) expired on {expiry.isoformat()}"
        )
    return Kit(gtin=gtin, lot=found.get("10"), expiry=expiry)
