"""Reading import files row by row (pure: no Flask, no database).

CSV files must be UTF-8 (with or without a byte-order mark) and comma-separated unless
another delimiter is asked for; XLSX files are read from their first sheet in read-only
mode. Both stream: memory does not grow with the number of rows. Problems that make the
whole file unreadable raise :class:`ImportFileError` with the line (CSV) or sheet row (XLSX)
and, where it applies, the column.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

XLSX_MAGIC = b"PK\x03\x04"
_MERGE = re.compile(rb'<(?:\w+:)?mergeCell\s+ref="([A-Z]+[0-9]+:[A-Z]+[0-9]+)"')


class ImportFileError(ValueError):
    """The file cannot be read as a table; ``line`` is 1-based (0 when it is the whole file)."""

    def __init__(self, message: str, *, line: int = 0, column: str | None = None) -> None:
        where = f"line {line}: " if line else ""
        super().__init__(f"{where}{message}")
        self.message = message
        self.line = line
        self.column = column


@dataclass
class Table:
    """An open import file: its header and an iterator of ``(line, cells)``."""

    format: str
    header: list[str]
    rows: Iterator[tuple[int, list[str]]]
    close: Callable[[], None]
    #: share of the file read so far, 0 to 1 (``None`` where it cannot be told)
    progress: Callable[[], float | None] = lambda: None


def sha256_of(path: str | Path) -> str:
    """SHA-256 of a file, read in 1 MB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def open_table(path: str | Path, *, delimiter: str = ",") -> Table:
    """Open a CSV or XLSX file (told apart by content, not by name) for streaming."""
    path = Path(path)
    with path.open("rb") as probe:
        magic = probe.read(4)
    if magic == XLSX_MAGIC:
        return _open_xlsx(path)
    return _open_csv(path, delimiter)


def _decoded_lines(raw: IO[bytes]) -> Iterator[str]:
    for number, line in enumerate(raw, start=1):
        if number == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        if b"\x00" in line:
            raise ImportFileError(
                "the line holds a NUL byte: is this a binary file or UTF-16 text? Save it as 'CSV UTF-8'",
                line=number,
            )
        try:
            yield line.decode("utf-8")
        except UnicodeDecodeError as error:
            guess = _guess_encoding(line)
            hint = f"; it looks like {guess}" if guess else ""
            raise ImportFileError(
                f"the file is not UTF-8 text: byte 0x{line[error.start]:02X} at character "
                f"{error.start + 1} cannot be read{hint}. Save it as 'CSV UTF-8' and upload "
                "it again",
                line=number,
            ) from None


def _guess_encoding(line: bytes) -> str | None:
    for name, label in (("gb18030", "GB18030 (Chinese Windows)"), ("cp1252", "Windows-1252")):
        try:
            line.decode(name)
        except UnicodeDecodeError:
            continue
        return label
    return None


def _open_csv(path: Path, delimiter: str) -> Table:
    if len(delimiter) != 1 or delimiter in '"\r\n':
        raise ImportFileError(f"{delimiter!r} cannot separate columns: give one character")
    raw = path.open("rb")
    lines = _decoded_lines(raw)
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as error:
        raw.close()
        raise ImportFileError(f"unreadable header: {error}", line=1) from None
    except ImportFileError:
        raw.close()
        raise
    if not header or not any(cell.strip() for cell in header):
        raw.close()
        raise ImportFileError("the file is empty: the first line must name the columns", line=1)
    if len(header) == 1 and delimiter == "," and ";" in header[0]:
        raw.close()
        raise ImportFileError(
            "the columns are separated by semicolons; the template uses commas. Export as "
            "'CSV UTF-8 (comma delimited)', or give the delimiter ';' explicitly",
            line=1,
        )

    def rows() -> Iterator[tuple[int, list[str]]]:
        try:
            line = reader.line_num + 1
            for cells in reader:
                if any(cell.strip() for cell in cells):
                    yield line, cells
                line = reader.line_num + 1
        except csv.Error as error:
            raise ImportFileError(f"malformed CSV: {error}", line=reader.line_num) from None
        finally:
            raw.close()

    size = max(path.stat().st_size, 1)

    def progress() -> float | None:
        return None if raw.closed else min(raw.tell() / size, 1.0)

    return Table("csv", [cell.strip() for cell in header], rows(), raw.close, progress)


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def merged_ranges(path: Path) -> list[str]:
    """The merged-cell ranges of the workbook's first sheet, read without loading it."""
    with zipfile.ZipFile(path) as archive:
        sheets = sorted(n for n in archive.namelist() if re.fullmatch(r"xl/worksheets/sheet\d+\.xml", n))
        if not sheets:
            return []
        found: set[str] = set()
        tail = b""
        with archive.open(sheets[0]) as stream:
            while chunk := stream.read(1 << 20):
                data = tail + chunk
                found.update(m.decode() for m in _MERGE.findall(data))
                tail = data[-200:]  # a tag cut in two is whole in the next round
        return sorted(found)


def _open_xlsx(path: Path) -> Table:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        merged = merged_ranges(path)
        if merged:
            shown = ", ".join(merged[:5]) + (" …" if len(merged) > 5 else "")
            raise ImportFileError(
                f"the sheet has merged cells ({shown}): unmerge them so that every row carries its own values"
            )
        # Opened as a stream: openpyxl judges a path by its suffix, and uploads are stored
        # without one (the content said it is a workbook).
        stream = path.open("rb")
        try:
            book = load_workbook(stream, read_only=True, data_only=True)
        except BaseException:
            stream.close()
            raise
    except ImportFileError:
        raise
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, InvalidFileException) as error:
        raise ImportFileError(f"not a readable XLSX workbook ({error})") from None

    def close() -> None:
        book.close()
        stream.close()

    if not book.worksheets:
        close()
        raise ImportFileError("the workbook has no worksheet")
    sheet = book.worksheets[0]
    iterator = sheet.iter_rows(values_only=True)
    first = next(iterator, None)
    if not first or not any(v not in (None, "") for v in first):
        close()
        raise ImportFileError("the first sheet is empty: its first row must name the columns", line=1)
    header = [_cell_text(v).strip() for v in first]
    while header and not header[-1]:
        header.pop()

    def rows() -> Iterator[tuple[int, list[str]]]:
        try:
            for number, values in enumerate(iterator, start=2):
                cells = [_cell_text(v) for v in values]
                while len(cells) > len(header) and not cells[-1].strip():
                    cells.pop()
                if any(cell.strip() for cell in cells):
                    yield number, cells
        finally:
            close()

    return Table("xlsx", header, rows(), close)


# -- OpenSpecimen query exports -------------------------------------------------------------

#: OpenSpecimen specimen types → MIABIS material types
OPENSPECIMEN_TYPES = {
    "whole blood": "WHOLE_BLOOD",
    "plasma": "PLASMA",
    "serum": "SERUM",
    "buffy coat": "BUFFY_COAT",
    "pbmc": "PERIPHERAL_BLOOD_CELLS",
    "urine": "URINE",
    "stool": "FECES",
    "feces": "FECES",
    "saliva": "SALIVA",
    "dna": "DNA",
    "rna": "RNA",
    "cdna": "CDNA",
    "fresh tissue": "TISSUE_FROZEN",
    "frozen tissue": "TISSUE_FROZEN",
    "fixed tissue block": "TISSUE_PARAFFIN_EMBEDDED",
    "fixed tissue slide": "TISSUE_STAINED",
    "sputum": "OTHER",
    "not specified": "OTHER",
}
_UNITS = {
    "TISSUE_FROZEN": "g",
    "TISSUE_PARAFFIN_EMBEDDED": "count",
    "TISSUE_STAINED": "count",
    "DNA": "ug",
    "RNA": "ug",
    "CDNA": "ug",
    "PERIPHERAL_BLOOD_CELLS": "cells",
}
OPENSPECIMEN_COLUMNS = [
    "participant_code",
    "study_code",
    "site_code",
    "sex",
    "collected_at",
    "procedure",
    "specimen_barcode",
    "label",
    "material_type",
    "quantity",
    "unit",
]


def open_openspecimen(path: str | Path, *, study_code: str, site_code: str | None = None) -> Table:
    """An OpenSpecimen query export (its "Exported By/On" preamble, ``Participant_PPID``,
    ``Visit_Visit Date`` dd/mm/yyyy, ``Specimen_Specimen Label``, ``Specimen_Type``,
    ``Specimen_Available Quantity`` …) read as rows of the master template: the label is
    the barcode, specimens join *study_code*, participants the site *site_code* (default:
    the registration site as written), and units follow OpenSpecimen's defaults per class
    (mL for fluids, g for tissue, µg for nucleic acids)."""
    source = _open_csv(Path(path), ",")
    if "Participant_PPID" not in source.header:
        preamble = 1
        for line, cells in source.rows:
            if cells and cells[0].strip() == "Participant_PPID":
                source.header = [c.strip() for c in cells]
                preamble = line
                break
        else:
            source.close()
            raise ImportFileError(
                "no header row starting with Participant_PPID: not an OpenSpecimen query export"
            )
    else:
        preamble = 1
    index = {name: i for i, name in enumerate(source.header)}
    needed = ["Participant_PPID", "Visit_Visit Date", "Specimen_Specimen Label", "Specimen_Type"]
    missing = [name for name in needed if name not in index]
    if missing:
        source.close()
        raise ImportFileError(f"OpenSpecimen columns missing: {', '.join(missing)}", line=preamble)

    def cell(cells: list[str], name: str) -> str:
        i = index.get(name)
        return cells[i].strip() if i is not None and i < len(cells) else ""

    def rows() -> Iterator[tuple[int, list[str]]]:
        for line, cells in source.rows:
            day = cell(cells, "Visit_Visit Date")
            try:
                collected = dt.datetime.strptime(day, "%d/%m/%Y").date().isoformat() if day else ""
            except ValueError:
                collected = day  # reported by the importer as not a date, with its line
            kind = cell(cells, "Specimen_Type")
            material = OPENSPECIMEN_TYPES.get(kind.lower(), kind)
            quantity = cell(cells, "Specimen_Available Quantity") or cell(cells, "Specimen_Initial Quantity")
            gender = cell(cells, "Participant_Gender").lower()
            yield (
                line,
                [
                    cell(cells, "Participant_PPID"),
                    study_code,
                    site_code or cell(cells, "Participant_Registration Site"),
                    gender or "unknown",
                    collected,
                    "other",
                    cell(cells, "Specimen_Specimen Label"),
                    cell(cells, "Specimen_Specimen Label"),
                    material,
                    quantity,
                    _UNITS.get(material, "mL") if quantity else "",
                ],
            )

    return Table("openspecimen", list(OPENSPECIMEN_COLUMNS), rows(), source.close, source.progress)
