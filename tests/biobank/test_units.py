"""Quantities are written one way: significant digits, no trailing zeros, µ for micro."""

from __future__ import annotations

from decimal import Decimal

import pytest

from biobank.models.vocab import QuantityUnit
from biobank.units import format_number, format_quantity


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (Decimal("30.000"), QuantityUnit.UL, "30 µL"),
        (Decimal("20.000"), QuantityUnit.MG, "20 mg"),
        (Decimal("70"), "mg", "70 mg"),
        (Decimal("0.050"), QuantityUnit.ML, "0.05 mL"),
        (Decimal("1200.500"), QuantityUnit.UG, "1200.5 µg"),
        (Decimal("0.000"), QuantityUnit.UL, "0 µL"),
        (Decimal("100000000"), QuantityUnit.CELLS, "100000000 cells"),
        (Decimal("3"), QuantityUnit.COUNT, "3"),
        (None, QuantityUnit.UL, ""),
    ],
)
def test_quantities_are_written_one_way(value, unit, text):
    assert format_quantity(value, unit) == text


def test_numbers_never_take_exponent_form():
    assert format_number(Decimal("3E+1")) == "30"
    assert format_number(Decimal("-0.000")) == "0"
    assert "E" not in format_number(Decimal("1E+8"))
