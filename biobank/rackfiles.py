"""Reading rack-scanner exports (pure: no Flask, no database).

Accepted layouts (comma- or semicolon-separated, UTF-8 with or without BOM):

* **FluidX** (Perception / IntelliCode), no header row: ``position,tube`` per line, or
  ``rack,position,tube``; e.g. ``A01,FX05653780``.
* **Thermo VisionMate**, header row with ``Rack ID`` (optional), ``Tube Position`` (or
  ``Position``/``Location``) and ``Tube Barcode`` (or ``Barcode``); other columns such as
  ``Date`` and ``Time`` are ignored.
* **Ziath DataPaq**, header row with ``Tube Row`` (letter), ``Tube Column`` (number) and
  ``Tube Barcode``, optional ``Rack Barcode``.

Positions are written ``A1`` or ``A01``. An empty cell, ``NO TUBE`` or ``EMPTY`` is an empty
position; ``NO READ`` or ``ERROR`` is a tube the scanner could not read.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

EMPTY = {"", "NO TUBE", "NOTUBE", "EMPTY", "NONE"}
NO_READ = {"NO READ", "NOREAD", "ERROR", "NO CODE", "FAILED"}
POSITION = re.compile(r"^([A-Za-z]{1,2})0*([0-9]{1,3})$")
UNREADABLE = "?"


class RackFileError(ValueError):
    """A rack file that cannot be read; ``line`` is 1-based where known."""

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line else message)
        self.line = line


@dataclass
class RackFile:
    format: str
    rack_barcode: str | None
    #: (row, column) → tube barcode, ``None`` for empty, ``"?"`` for unreadable
    positions: dict[tuple[int, int], str | None] = field(default_factory=dict)


def parse_position(text: str) -> tuple[int, int] | None:
    match = POSITION.match(text.strip())
    if not match:
        return None
    row = 0
    for char in match.group(1).upper():
        row = row * 26 + ord(char) - 64
    return row, int(match.group(2))


def position_label(row: int, col: int) -> str:
    letters = ""
    while row:
        row, rem = divmod(row - 1, 26)
        letters = chr(65 + rem) + letters
    return f"{letters}{col}"


def _tube(value: str) -> str | None:
    text = value.strip()
    if text.upper() in EMPTY:
        return None
    if text.upper() in NO_READ:
        return UNREADABLE
    return text


def _decode(data: bytes) -> str:
    if b"\x00" in data[:4096]:
        raise RackFileError("this is a binary file, not a rack-scanner CSV export")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise RackFileError("not UTF-8 text (export the file as UTF-8 CSV)", line=line) from None


def _find(header: list[str], *names: str) -> int | None:
    lowered = [h.strip().lower() for h in header]
    for name in names:
        if name in lowered:
            return lowered.index(name)
    return None


def read_rack_file(data: bytes) -> RackFile:
    """Parse a rack-scanner export into positions.

    Raises
    ------
    RackFileError
        For an unknown layout, a bad position, a position or tube listed twice.

    Examples
    --------
    >>> read_rack_file(b"A01,FX001\\nA02,NO TUBE\\n").positions
    {(1, 1): 'FX001', (1, 2): None}
    """
    text = _decode(data)
    sample = text[:2048]
    delimiter = ";" if sample.count(";") > sample.count(",") else ","
    rows = [
        (n, r)
        for n, r in enumerate(csv.reader(io.StringIO(text), delimiter=delimiter), start=1)
        if any(cell.strip() for cell in r)
    ]
    if not rows:
        raise RackFileError("the file is empty")
    first_line, header = rows[0]
    tube_row = _find(header, "tube row")
    tube_col = _find(header, "tube column")
    barcode_col = _find(header, "tube barcode", "barcode", "tube id", "tube")
    rack_col = _find(header, "rack barcode", "rack id", "rackid", "rack")
    position_col = _find(header, "tube position", "position", "location", "well")

    rack_barcodes: set[str] = set()
    result: RackFile
    entries: list[tuple[int, tuple[int, int] | None, str, str]] = []
    if tube_row is not None and tube_col is not None and barcode_col is not None:
        result = RackFile("ziath-datapaq", None)
        for line, cells in rows[1:]:
            cells += [""] * (len(header) - len(cells))
            pos = parse_position(f"{cells[tube_row].strip()}{cells[tube_col].strip()}")
            entries.append((line, pos, f"{cells[tube_row]}{cells[tube_col]}", cells[barcode_col]))
            if rack_col is not None and cells[rack_col].strip():
                rack_barcodes.add(cells[rack_col].strip())
    elif position_col is not None and barcode_col is not None:
        result = RackFile("visionmate", None)
        for line, cells in rows[1:]:
            cells += [""] * (len(header) - len(cells))
            entries.append(
                (line, parse_position(cells[position_col]), cells[position_col], cells[barcode_col])
            )
            if rack_col is not None and cells[rack_col].strip():
                rack_barcodes.add(cells[rack_col].strip())
    elif len(header) in (2, 3) and parse_position(header[-2]) is not None:
        result = RackFile("fluidx", None)
        for line, cells in rows:
            if len(cells) not in (2, 3):
                raise RackFileError(f"expected 2 or 3 columns, found {len(cells)}", line=line)
            entries.append((line, parse_position(cells[-2]), cells[-2], cells[-1]))
            if len(cells) == 3 and cells[0].strip():
                rack_barcodes.add(cells[0].strip())
    else:
        raise RackFileError(
            "unrecognised rack file: expected a FluidX export (position,tube lines), a "
            "VisionMate export (Tube Position and Tube Barcode columns) or a Ziath DataPaq "
            "export (Tube Row, Tube Column and Tube Barcode columns)",
            line=first_line,
        )

    seen: dict[str, int] = {}
    for line, pos, raw, tube_text in entries:
        if pos is None:
            raise RackFileError(f"{raw.strip()!r} is not a position such as A1", line=line)
        if pos in result.positions:
            raise RackFileError(f"position {position_label(*pos)} is listed twice", line=line)
        tube = _tube(tube_text)
        if tube not in (None, UNREADABLE):
            if tube in seen:
                raise RackFileError(f"tube {tube} is listed twice (also line {seen[tube]})", line=line)
            seen[tube] = line
        result.positions[pos] = tube
    if len(rack_barcodes) > 1:
        raise RackFileError(f"the file mixes racks: {', '.join(sorted(rack_barcodes))}")
    result.rack_barcode = rack_barcodes.pop() if rack_barcodes else None
    return result
