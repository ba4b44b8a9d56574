"""Rack-scanner exports: the three accepted layouts and the ones refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from biobank.rackfiles import UNREADABLE, RackFileError, read_rack_file

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "rackscans"
EXPECTED = {
    (1, 1): "FX05653780",
    (1, 2): "FX05653781",
    (1, 3): None,
    (2, 1): UNREADABLE,
    (2, 2): "FX05653784",
}


@pytest.mark.parametrize(
    ("name", "fmt", "rack"),
    [
        ("fluidx.csv", "fluidx", None),
        ("visionmate.csv", "visionmate", "RK00012345"),
        ("ziath-datapaq.csv", "ziath-datapaq", "RK00012345"),
    ],
)
def test_each_layout_reads_to_the_same_positions(name, fmt, rack):
    parsed = read_rack_file((FIXTURES / name).read_bytes())
    assert parsed.format == fmt
    assert parsed.rack_barcode == rack
    assert parsed.positions == EXPECTED


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\x00\x01\x02binary", "binary"),
        (b"Sample,Volume\nS1,20\n", "unrecognised rack file"),
        (b"A01,X1\nA01,X2\n", "line 2: position A1 is listed twice"),
        (b"A01,X1\nA02,X1\n", "line 2: tube X1 is listed twice"),
        (b"A01,X1\nA1B,X2\n", "line 2: .A1B. is not a position"),
        (b"A01,X1\n\xff\xfe bad\n", "line 2: not UTF-8"),
        (b"R1,A01,X1\nR2,A02,X2\n", "mixes racks"),
    ],
)
def test_bad_files_are_refused_with_the_reason(content, message):
    with pytest.raises(RackFileError, match=message):
        read_rack_file(content)
