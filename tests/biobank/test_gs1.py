"""GS1 element strings from kit labels: scanner output (symbology identifier, GS
separators) and the human-readable form read alike; GTIN check digits and dates checked."""

from __future__ import annotations

import datetime as dt

import pytest

from biobank.gs1 import GS1Error, gs1_date, gtin_is_valid, parse, read_kit

TODAY = dt.date(2026, 12, 6)
#: GS1's own example GTIN (General Specifications), expiry 31 Dec 2027, lot LOT42A
SCANS = [
    "]C1010950110153000310LOT42A\x1d17271231",  # GS1-128, lot first: GS ends it
    "]d201095011015300031727123110LOT42A",  # GS1 DataMatrix, lot last: no GS
    "01095011015300031727123110LOT42A",  # a scanner sending no identifier
    "(01)09501101530003(17)271231(10)LOT42A",  # typed from the human-readable line
]


@pytest.mark.parametrize("scan", SCANS)
def test_every_form_of_the_same_label_gives_the_same_kit(scan):
    kit = read_kit(scan, on=TODAY)
    assert (kit.gtin, kit.lot, kit.expiry) == ("09501101530003", "LOT42A", dt.date(2027, 12, 31))


def test_three_and_four_digit_ais_and_fixed_fields_followed_by_gs():
    found = parse("]C10109501101530003\x1d3103000250241PART-7\x1d4101234567890128")
    assert found == {"01": "09501101530003", "3103": "000250", "241": "PART-7", "410": "1234567890128"}


@pytest.mark.parametrize(
    ("scan", "reason"),
    [
        ("]C0CTRPL0000001", "not a GS1 symbol"),
        ("(01)09501101530004(10)X", "wrong check digit"),
        ("(10)LOT42A(17)271231", "no GTIN"),
        ("(01)0950110153000(10)X", r"\(01\) takes 14 characters"),
        ("010950110153000317271231AB", "application identifier at character 25"),
        ("(01)09501101530003(17)271331", "month 13"),
        ("(01)09501101530003(17)270230", "not a calendar date"),
        ("(01)09501101530003(17)261205(10)OLD", "expired on 2026-12-05"),
        ("(01)09501101530003(10)X(", "AIs in parentheses"),
        ("(01)09501101530003 (10)X", r"\(01\) takes 14 characters, got .09501101530003 ."),
    ],
)
def test_unusable_labels_are_refused_with_the_reason(scan, reason):
    with pytest.raises(GS1Error, match=reason):
        read_kit(scan, on=TODAY)


def test_dates_day_zero_and_century():
    assert gs1_date("270200", today=TODAY) == dt.date(2027, 2, 28)
    assert gs1_date("280200", today=TODAY) == dt.date(2028, 2, 29)
    assert gs1_date("761231", today=TODAY) == dt.date(2076, 12, 31)  # 50 years ahead
    assert gs1_date("771231", today=TODAY) == dt.date(1977, 12, 31)  # else the past
    assert read_kit("(01)09501101530003(17)261206", on=TODAY).expiry == TODAY  # usable today


def test_gtin_check_digits():
    assert gtin_is_valid("09501101530003") and gtin_is_valid("4006381333931")
    assert not gtin_is_valid("4006381333932") and not gtin_is_valid("40063813339")
