"""Linear symbols drawn from python-barcode's patterns: Code 128, Code 39 and GS1-128, read
back by zbar from the PDF, and asked of a Zebra in the ZPL it understands."""

from __future__ import annotations

import pytest

from labels.render import LabelError, load_template
from labels.render.linear import gs1_data, modules
from labels.render.pdf import render_pdf
from labels.render.zpl import render_zpl
from tests.labels.render.test_pdf import decode, decoders, values

__all__ = ["decoders"]

#: Code 128 symbol patterns from ISO/IEC 15417: Start C (105) and FNC1 (102)
START_C, FNC1 = "11010011100", "11110101110"


def kit(gs1: str) -> dict[str, str]:
    return values(1) | {"gs1": gs1, "text": "QIAamp DNA Mini Kit"}


@pytest.mark.parametrize("dpi", [203, 300])
def test_gs1_128_reads_back_with_a_separator_after_a_variable_length_lot(dpi, tmp_path):
    """The lot (10) is variable-length: when another AI follows, FNC1 ends it, which a
    scanner sends as GS (0x1D); GTIN (01) and expiry (17) have fixed lengths and need none."""
    records = [kit("(01)09501101530003(10)LOT42A(17)271231"), kit("(01)09501101530003(17)271231(10)LOT42A")]
    pages = decode(render_pdf(load_template("reagent-kit"), records), tmp_path, dpi, datamatrix=False)
    assert [linear for _, linear in pages] == [
        {"010950110153000310LOT42A\x1d17271231"},
        {"01095011015300031727123110LOT42A"},
    ]


def test_gs1_128_starts_with_fnc1_and_plain_code_128_does_not():
    assert modules("gs1-128", "(01)09501101530003")[:22] == START_C + FNC1
    assert modules("code128", "0109501101530003")[:22] != START_C + FNC1


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("01095011015300031727", "AIs in parentheses"),
        ("(01)0950110153000(10)X", r"\(01\) takes 14 characters"),
        ("(17)2712(10)X", r"\(17\) takes 6 characters"),
        ("(01)09501101530003 trailing(", "AIs in parentheses"),
    ],
)
def test_malformed_gs1_is_refused_with_the_reason(text, reason):
    with pytest.raises(LabelError, match=reason):
        render_pdf(load_template("reagent-kit"), [kit(text)])


def test_gs1_128_and_code_39_in_zpl():
    zpl = render_zpl(load_template("reagent-kit"), [kit("(01)09501101530003(10)LOT42A(17)271231")]).decode()
    # Zebra's FNC1 invocation is >8, after the start in subset C (>;)
    assert "^BCN,112,N,N,N,A^FH_^FD>;>8010950110153000310LOT42A>817271231^FS" in zpl
    zpl = render_zpl(load_template("legacy-code39"), [values(1)], dpi=300).decode()
    assert f"^BY3,3.0,118^B3N,N,118,N,N^FH_^FD{values(1)['barcode']}^FS" in zpl


def test_code_39_refuses_lower_case_rather_than_change_the_code():
    with pytest.raises(LabelError, match="no lower case"):
        render_pdf(load_template("legacy-code39"), [values(1) | {"barcode": "ctrpl1"}])
    assert gs1_data("(10)ab(21)7", fnc1="|") == "10ab|217"


@pytest.mark.parametrize("barcode", ["9912345678", "99", "0012345678", "99AB12", "9"])
def test_data_starting_with_99_is_not_taken_for_a_code_set_switch(barcode, tmp_path):
    """Legacy and manufacturer barcodes start with digits: a leading "99" is data, although
    its codeword in code set C is also "switch to C" (python-barcode dropped it)."""
    pages = decode(
        render_pdf(load_template("tube-side-code128"), [values(1) | {"barcode": barcode}]),
        tmp_path,
        300,
        datamatrix=False,
    )
    assert pages == [(set(), {barcode})]


def test_module_count_is_the_patterns_length_for_every_shape():
    """The ZPL width check counts modules by the barcode's shape (which characters are
    digits, which in one code set only); here against encoding each one."""
    import random
    import string

    from labels.render.linear import module_count

    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits + "-./ "
    for _ in range(3000):
        text = "".join(
            rng.choice(alphabet if rng.random() < 0.5 else string.digits) for _ in range(rng.randint(1, 20))
        )
        assert module_count("code128", text) == len(modules("code128", text)), text
        if text == text.upper():
            assert module_count("code39", text) == len(modules("code39", text)), text
    for lot in ("A", "12345", "AB12", "1234567", "x/y"):
        text = f"(01)09501101530003(10){lot}(17)271231"
        assert module_count("gs1-128", text) == len(modules("gs1-128", text))
