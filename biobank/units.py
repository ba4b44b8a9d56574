"""Quantities as people read them: ``30 µL``, ``20 mg``, ``0.5 mL`` (pure: no Flask, no
database). Every page, label and message formats quantities here, one way."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

#: stored unit → symbol shown
UNIT_SYMBOLS = {
    "uL": "µL",
    "ug": "µg",
    "mL": "mL",
    "g": "g",
    "mg": "mg",
    "ng": "ng",
    "cells": "cells",
    "count": "",
}


def format_number(value: Decimal | float | int | str) -> str:
    """*value* with its significant digits and no trailing zeros, never in exponent form
    (``Decimal('30.000')`` → ``30``, ``Decimal('0.050')`` → ``0.05``)."""
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    if not number.is_finite():
        return str(number)
    text = format(number.normalize(), "f")
    return "0" if text in ("-0", "") else text


def unit_symbol(unit: Any) -> str:
    """The symbol of a unit given as a ``QuantityUnit`` or its stored value."""
    value = getattr(unit, "value", unit)
    return UNIT_SYMBOLS.get(value, value) if value is not None else ""


def format_quantity(value: Decimal | float | int | str | None, unit: Any = None) -> str:
    """``30 µL``; an unknown quantity is an empty string."""
    if value is None or value == "":
        return ""
    symbol = unit_symbol(unit)
    return f"{format_number(value)} {symbol}".strip()
