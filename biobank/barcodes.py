"""Specimen identifiers: site and material prefix, a sequence, and two ISO 7064 MOD 1271-36
check characters, so a mistyped or misread code is rejected at the scanner.

MOD 1271-36 is a pure ISO 7064 system over 0-9A-Z. Unlike the hybrid MOD 37,36 (which lets a
few adjacent transpositions such as ...0178L/...0187L through), it catches every single wrong
character and every adjacent transposition, including those that touch the check characters,
without the ``*`` that the one-character MOD 37-2 needs.
"""

from __future__ import annotations

import re

from biobank.models.vocab import MaterialType

#: what may be printed on a tube's label as its barcode, issued here or by a hospital
LABEL_BARCODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{2,31}$")
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
_RADIX = 36
_M = 1271

#: two-letter material codes used in generated barcodes
MATERIAL_CODES = {
    MaterialType.WHOLE_BLOOD: "WB",
    MaterialType.PLASMA: "PL",
    MaterialType.SERUM: "SE",
    MaterialType.BUFFY_COAT: "BC",
    MaterialType.PERIPHERAL_BLOOD_CELLS: "PB",
    MaterialType.TISSUE_FROZEN: "TF",
    MaterialType.TISSUE_PARAFFIN_EMBEDDED: "TP",
    MaterialType.TISSUE_STAINED: "TS",
    MaterialType.URINE: "UR",
    MaterialType.FECES: "ST",
    MaterialType.SALIVA: "SA",
    MaterialType.DNA: "DN",
    MaterialType.RNA: "RN",
    MaterialType.CDNA: "CD",
    MaterialType.MICRO_RNA: "MI",
    MaterialType.CELL_LINES: "CL",
    MaterialType.PATHOGEN: "PA",
    MaterialType.NASAL_SWAB: "NS",
    MaterialType.THROAT_SWAB: "TH",
    MaterialType.OTHER: "OT",
}


def check_characters(payload: str) -> str:
    """The two ISO 7064 MOD 1271-36 check characters of *payload* (digits, capital letters).

    Examples
    --------
    >>> check_characters("CTRPL0000001")
    '3C'
    """
    p = 0
    for char in payload:
        try:
            value = _VALUE[char]
        except KeyError:
            raise ValueError(f"{char!r} is not allowed in a barcode (0-9, A-Z)") from None
        p = (p * _RADIX + value) % _M
    p = (p * _RADIX * _RADIX) % _M
    check = (_M + 1 - p) % _M
    high, low = divmod(check, _RADIX)
    return ALPHABET[high] + ALPHABET[low]


def is_valid(code: str) -> bool:
    """Whether *code* ends with the right two check characters."""
    if len(code) < 3 or any(c not in _VALUE for c in code):
        return False
    return check_characters(code[:-2]) == code[-2:]


def explain_invalid(code: str) -> str | None:
    """Why *code* is not a valid generated identifier, or ``None`` when it is."""
    bad = sorted({c for c in code if c not in _VALUE})
    if bad:
        return f"characters {''.join(bad)!r} are not used in barcodes (0-9, A-Z only)"
    if len(code) < 3:
        return "too short to carry check characters"
    if not is_valid(code):
        return "check characters do not match: a character was misread or mistyped, or two were swapped"
    return None


#: what a site code may hold: it starts every barcode issued at the site
SITE_CODE_PATTERN = re.compile(r"[A-Z][A-Z0-9]{1,7}")
SITE_CODE_RULE = (
    "use 2 to 8 letters and digits (A-Z, 0-9), starting with a letter; it starts "
    "every barcode issued at the site"
)


def make_barcode(site_code: str, material: MaterialType, sequence: int, *, width: int = 7) -> str:
    """A new identifier such as ``CTRPL00000013C``."""
    payload = f"{site_code.upper()}{MATERIAL_CODES[material]}{sequence:0{width}d}"
    return payload + check_characters(payload)
