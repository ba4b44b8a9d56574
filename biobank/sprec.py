"""SPREC (ISBER Standard PREanalytical Code) v3 validation."""

from __future__ import annotations

import re

#: SPREC type-of-sample codes for fluid and solid specimens (ISBER SPREC 2.0/3.0 tables)
FLUID_TYPES = frozenset(
    "ASC AMN BAL BLD BMA BMK BUC BUF BFF CEL CEN CLN CRD CSF CTC DWB NAS PEL PEN PFL PL1 PL2 "
    "PLP RBC SAL SEM SER SPT STL SYN TER U24 URN URM URT ZZZ".split()
)
SOLID_TYPES = frozenset("BON CEN FNA HAR LCM NAL PLC TCM TIS TTH ZZZ".split())
_ELEMENT = re.compile(r"^[A-Z0-9]{1,3}$")


def validate_sprec(code: str) -> str | None:
    """Return an error message for an invalid SPREC code, or ``None`` when it is well formed.

    Examples
    --------
    >>> validate_sprec("SER-SST-A-D-N-A-E") is None
    True
    >>> validate_sprec("XYZ-SST-A-D-N-A-E")
    "unknown SPREC sample type 'XYZ'"
    """
    parts = code.split("-")
    if len(parts) != 7:
        return f"a SPREC code has 7 elements separated by '-', got {len(parts)}"
    for i, part in enumerate(parts, start=1):
        if not _ELEMENT.match(part):
            return f"SPREC element {i} ({part!r}) must be 1–3 capital letters or digits"
    if parts[0] not in FLUID_TYPES | SOLID_TYPES:
        return f"unknown SPREC sample type {parts[0]!r}"
    return None
