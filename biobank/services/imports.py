"""Bulk import: participants, cases, visits, specimens and placements from CSV or XLSX.

One engine serves every template: a template is a choice of column groups (participant,
case, visit, specimen, placement). The file is streamed in chunks; every row is checked
(types, vocabularies, references, uniqueness, free positions, quantities) against the
database and against the rows before it, and every problem is collected with its line and
column. Rows are written with the bulk writer as long as no problem has been found; at the
end the caller commits only if there was none, so an import is all or nothing. Each
imported specimen starts its custody chain (collected, received, stored) and every row
gets its audit record.
"""

from __future__ import annotations

import csv
import datetime as dt
import difflib
import io
import os
import re
import socket
import time
import zoneinfo
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import current_app

from biobank.auth import visible_site_ids
from biobank.barcodes import MATERIAL_CODES, explain_invalid, make_barcode
from biobank.bulk import BulkWriter
from biobank.db import STATISTICS_AFTER_ROWS, db, refresh_statistics, transaction, utcnow
from biobank.errors import Conflict, InvalidInput, NotFound
from biobank.importfiles import (
    ImportFileError,
    Table,
    open_openspecimen,
    open_table,
    sha256_of,
)
from biobank.models import (
    Case,
    CollectionEvent,
    CustodyEvent,
    ImportJob,
    ImportProblem,
    ImportStatus,
    Participant,
    ParticipantPHI,
    PositionHold,
    Site,
    Specimen,
    StorageContainer,
    Study,
    User,
)
from biobank.models.users import Actor
from biobank.models.vocab import (
    AjccStage,
    BodySite,
    CollectionProcedure,
    CustodyEventType,
    DiseaseGroup,
    Lineage,
    MaterialType,
    PathologyStatus,
    QuantityUnit,
    Sex,
    SpecimenStatus,
)
from biobank.services.barcodes import GENERATED_PATTERN, reserve_sequence
from biobank.services.cases import MELANOMA_FIELDS, TUMOUR_FIELDS, diagnosis_problem
from biobank.services.custody import chain_rows
from biobank.services.storage import SPECIMEN_HOLDERS
from biobank.sprec import validate_sprec
from biobank.units import format_quantity

CHUNK = 2000
#: rows buffered before the writer writes them
WRITE_BATCH = 5000
#: problems kept per job; the count goes on, the report says how many more there were
MAX_PROBLEMS = 10_000
WRITE_ORDER = [Participant, ParticipantPHI, Case, CollectionEvent, Specimen, CustodyEvent]
IMPORT_STATUSES = (
    SpecimenStatus.RECEIVED,
    SpecimenStatus.IN_STORAGE,
    SpecimenStatus.QUARANTINED,
    SpecimenStatus.CONSUMED,
    SpecimenStatus.DISPOSED,
    SpecimenStatus.DISTRIBUTED,
    SpecimenStatus.MISSING,
)
_PLACED = (SpecimenStatus.IN_STORAGE, SpecimenStatus.QUARANTINED)
_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")


# -- the column catalogue ---------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str
    group: str
    kind: str  # code, text, int, decimal, date, datetime, bool, enum
    help: str
    required: bool = False
    enum: type | None = None
    max_length: int = 128
    example: str = ""


COLUMNS = [
    Column(
        "participant_code",
        "participant",
        "code",
        "Pseudonymous participant code; rows "
        "with the same code are one participant (an existing code adds to that participant)",
        True,
        max_length=32,
        example="SKN-900001",
    ),
    Column(
        "study_code",
        "participant",
        "code",
        "Study (collection protocol) code",
        True,
        max_length=32,
        example="SKIN-BB",
    ),
    Column("site_code", "participant", "code", "Enrolling site code", True, max_length=16, example="CTR"),
    Column("sex", "participant", "enum", "female, male, other or unknown", enum=Sex, example="female"),
    Column("birth_year", "participant", "int", "Year of birth", example="1968"),
    Column("given_name", "phi", "text", "Given name (identifying: kept apart)", example="Wei"),
    Column("family_name", "phi", "text", "Family name (identifying)", example="Wang"),
    Column(
        "medical_record_number",
        "phi",
        "text",
        "Hospital record number (identifying)",
        max_length=64,
        example="MRN7000001",
    ),
    Column("birth_date", "phi", "date", "Date of birth (identifying)", example="1968-04-02"),
    Column(
        "case_code",
        "case",
        "code",
        "Case (diagnosis) code; leave empty for none",
        max_length=32,
        example="C-900001",
    ),
    Column(
        "disease_group",
        "case",
        "enum",
        "melanoma, other_skin_tumour, psoriasis, urticaria, "
        "rosacea, alopecia or lupus (needed for a new case)",
        enum=DiseaseGroup,
        example="melanoma",
    ),
    Column(
        "icd10_code",
        "case",
        "text",
        "ICD-10 code fitting the disease group (new case)",
        max_length=16,
        example="C43.5",
    ),
    Column("diagnosis_date", "case", "date", "Date of diagnosis", example="2024-03-01"),
    Column("breslow_mm", "case", "decimal", "Melanoma Breslow thickness, mm", example="1.2"),
    Column("ulceration", "case", "bool", "Melanoma ulceration: yes or no", example="no"),
    Column("ajcc_stage", "case", "enum", "AJCC 8 stage group, e.g. IIA", enum=AjccStage, example="IB"),
    Column(
        "icdo3_morphology",
        "case",
        "text",
        "ICD-O-3 morphology of a tumour, e.g. 8743/3",
        max_length=16,
        example="8743/3",
    ),
    Column(
        "icdo3_topography",
        "case",
        "text",
        "ICD-O-3 topography of a tumour, e.g. C44.5",
        max_length=16,
        example="C44.5",
    ),
    Column(
        "collected_at",
        "visit",
        "datetime",
        "When the specimen was collected (ISO 8601; without a zone: the import time zone)",
        True,
        example="2024-03-01 10:30",
    ),
    Column(
        "procedure",
        "visit",
        "enum",
        "Collection procedure, e.g. excision, venipuncture",
        True,
        enum=CollectionProcedure,
        example="excision",
    ),
    Column("collector", "visit", "text", "Who collected", example="Dr. Lin"),
    Column(
        "specimen_barcode",
        "specimen",
        "code",
        "Tube barcode; empty: one is issued",
        max_length=32,
        example="",
    ),
    Column("label", "specimen", "text", "Human-readable label text", max_length=64),
    Column("manufacturer_barcode", "specimen", "code", "Pre-printed 2D code of the tube", max_length=64),
    Column(
        "material_type",
        "specimen",
        "enum",
        "MIABIS material, e.g. TISSUE_FROZEN, PLASMA",
        True,
        enum=MaterialType,
        example="TISSUE_FROZEN",
    ),
    Column(
        "lineage",
        "specimen",
        "enum",
        "primary (default), aliquot or derivative",
        enum=Lineage,
        example="primary",
    ),
    Column(
        "parent_barcode",
        "specimen",
        "code",
        "Parent of an aliquot or derivative: a barcode earlier in the file or already in the biobank",
        max_length=32,
    ),
    Column(
        "pathology_status",
        "specimen",
        "enum",
        "malignant, normal, …",
        enum=PathologyStatus,
        example="malignant",
    ),
    Column(
        "anatomical_site",
        "specimen",
        "enum",
        "Body site, e.g. posterior_torso",
        enum=BodySite,
        example="posterior_torso",
    ),
    Column("quantity", "specimen", "decimal", "Quantity held", example="40"),
    Column(
        "unit", "specimen", "enum", "mL, uL, g, mg, ug, ng, cells or count", enum=QuantityUnit, example="mg"
    ),
    Column("concentration_ng_ul", "specimen", "decimal", "Nucleic acid concentration"),
    Column("sprec_code", "specimen", "text", "SPREC v3 code", max_length=40, example="TIS-SRG-A-B-SNP-Z-C"),
    Column("received_at", "specimen", "datetime", "When the biobank received it"),
    Column("frozen_at", "specimen", "datetime", "When it was frozen or fixed"),
    Column(
        "status",
        "specimen",
        "enum",
        "received, in_storage (default when placed), quarantined, consumed, disposed, distributed or missing",
        enum=SpecimenStatus,
    ),
    Column(
        "container_barcode",
        "placement",
        "code",
        "Barcode of the box, bag or drawer",
        max_length=32,
        example="CTRBX00001M",
    ),
    Column(
        "position",
        "placement",
        "text",
        "Position in the container's scheme: A1, 1 or 1/1",
        max_length=8,
        example="A1",
    ),
]
BY_NAME = {c.name: c for c in COLUMNS}
#: template → (groups, required columns)
TEMPLATES: dict[str, tuple[tuple[str, ...], str]] = {
    "participants": (("participant", "phi"), "Participants and their identifying record"),
    "cases": (("participant_ref", "case"), "Cases of existing participants"),
    "specimens": (
        ("participant_ref", "case_ref", "visit", "specimen", "placement"),
        "Specimens of existing participants, with visits and placements",
    ),
    "master": (
        ("participant", "phi", "case", "visit", "specimen", "placement"),
        "Master specimen file: participants, cases, visits, specimens and placements in one pass",
    ),
    "openspecimen": (
        ("participant", "phi", "case", "visit", "specimen", "placement"),
        "An OpenSpecimen query export, read as master rows (give the study)",
    ),
}


def template_columns(template: str) -> list[Column]:
    if template == "openspecimen":
        template = "master"
    groups = TEMPLATES[template][0]
    columns = []
    for column in COLUMNS:
        if column.group in groups or (column.name == "participant_code" and "participant_ref" in groups):
            columns.append(column)
        elif column.name == "case_code" and "case_ref" in groups:
            columns.append(
                Column(column.name, "case", "code", "Existing case the visit belongs to", max_length=32)
            )
    if template == "cases":  # cases are the point of this template
        columns = [
            Column(c.name, c.group, c.kind, c.help, True, c.enum, c.max_length, c.example)
            if c.name in ("case_code", "disease_group", "icd10_code")
            else c
            for c in columns
        ]
    return columns


def required_columns(template: str) -> list[str]:
    return [c.name for c in template_columns(template) if c.required]


def check_template(name: str) -> str:
    if name not in TEMPLATES:
        raise InvalidInput(
            f"unknown import template {name!r} (known: {', '.join(TEMPLATES)})", field="template"
        )
    return name


def template_csv(template: str) -> str:
    """The template as CSV: the header and one example row."""
    columns = template_columns(check_template(template))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([c.name for c in columns])
    writer.writerow([c.example for c in columns])
    return out.getvalue()


def template_xlsx(template: str) -> bytes:
    """The template as an XLSX workbook: the columns (required ones in bold), an example row,
    and a second sheet describing every column and its allowed values."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    columns = template_columns(check_template(template))
    book = Workbook()
    sheet = book.active
    sheet.title = template
    sheet.append([c.name for c in columns])
    sheet.append([c.example or None for c in columns])
    for cell, column in zip(sheet[1], columns, strict=True):
        cell.font = Font(bold=column.required)
    sheet.freeze_panes = "A2"
    guide = book.create_sheet("columns")
    guide.append(["column", "required", "description", "allowed values"])
    for column in columns:
        allowed = ", ".join(m.value for m in column.enum) if column.enum else column.kind
        guide.append([column.name, "yes" if column.required else "", column.help, allowed])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# -- problems ---------------------------------------------------------------------------------


@dataclass
class Problem:
    line: int
    column: str | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "file"
        return f"{where}{', ' + self.column if self.column else ''}: {self.message}"


class RowError(Exception):
    def __init__(self, column: str | None, message: str) -> None:
        super().__init__(message)
        self.column, self.message = column, message


# -- cell parsing -----------------------------------------------------------------------------

_TRUE = {"yes", "y", "true", "1"}
_FALSE = {"no", "n", "false", "0"}


def _parse(column: Column, text: str, tz: dt.tzinfo) -> Any:
    if column.kind in ("code", "text"):
        if len(text) > column.max_length:
            raise RowError(column.name, f"{len(text)} characters; at most {column.max_length}")
        if column.kind == "code" and not _CODE.match(text):
            raise RowError(
                column.name, f"{text!r} holds characters a code cannot have (letters, digits, . _ / - only)"
            )
        return text
    if column.kind == "enum":
        assert column.enum is not None
        value = _ENUM_LOOKUP[column.enum].get(text.lower())
        if value is None:
            allowed = ", ".join(m.value for m in column.enum)
            close = difflib.get_close_matches(text, [m.value for m in column.enum], n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise RowError(column.name, f"unknown value {text!r}{hint}; allowed: {allowed}")
        return value
    if column.kind == "int":
        if not text.lstrip("-").isdigit():
            raise RowError(column.name, f"{text!r} is not a whole number")
        return int(text)
    if column.kind == "decimal":
        try:
            value = Decimal(text.replace(" ", ""))
        except InvalidOperation:
            raise RowError(column.name, f"{text!r} is not a number") from None
        if not value.is_finite() or value < 0 or value >= Decimal("1e9"):
            raise RowError(column.name, f"{text} is out of range (0 to 999,999,999)")
        return value
    if column.kind == "bool":
        low = text.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise RowError(column.name, f"{text!r} is not yes or no")
    if column.kind == "date":
        try:
            return dt.date.fromisoformat(
                text[:10] if len(text) > 10 and text[10] in " T" and text[11:].strip("0:") == "" else text
            )
        except ValueError:
            raise RowError(column.name, f"{text!r} is not a date such as 2024-03-01") from None
    if column.kind == "datetime":
        try:
            value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise RowError(
                column.name,
                f"{text!r} is not a date and time such as 2024-03-01 10:30 or 2024-03-01T10:30:00+08:00",
            ) from None
        if value.tzinfo is None:
            value = value.replace(tzinfo=tz)
        return value
    raise AssertionError(column.kind)


def _enum_lookup(enum_cls: type) -> dict[str, Any]:
    table = {}
    for member in enum_cls:  # type: ignore[attr-defined]
        table[member.value.lower()] = member
        table[member.name.lower()] = member
    return table


_ENUM_LOOKUP = {c.enum: _enum_lookup(c.enum) for c in COLUMNS if c.enum}


def normalise_header(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def check_header(header: list[str], template: str) -> tuple[list[Column | None], list[Problem]]:
    """Map the file's columns to the template's; every unknown, doubled or missing column is
    a problem on line 1."""
    known = {c.name: c for c in template_columns(template)}
    problems: list[Problem] = []
    mapped: list[Column | None] = []
    seen: set[str] = set()
    for raw in header:
        name = normalise_header(raw)
        if not name:
            mapped.append(None)
            continue
        if name in seen:
            problems.append(Problem(1, raw, "this column appears twice"))
        seen.add(name)
        column = known.get(name)
        if column is None:
            close = difflib.get_close_matches(name, list(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            other = "; it belongs to another template" if name in BY_NAME else ""
            problems.append(Problem(1, raw, f"unknown column for the {template} template{hint}{other}"))
        mapped.append(column)
    for name in required_columns(template):
        if name not in seen:
            problems.append(Problem(1, name, "required column missing"))
    return mapped, problems


# -- the engine -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Participant:
    id: int
    site_id: int
    values: dict[str, Any]
    line: int | None  # line that created it; None when it was already in the database


@dataclass(slots=True)
class _Specimen:
    id: int
    participant_id: int
    material: MaterialType
    unit: QuantityUnit | None
    remaining: Decimal | None
    in_db: bool
    line: int = 0
    visible: bool = True


class _SpecimenIndex:
    """Every barcode seen (in the file or looked up in the database) with what a child row
    may need of it, in parallel arrays: a million specimens take about 130 bytes each."""

    _MATERIALS = list(MaterialType)
    _UNITS = list(QuantityUnit)
    _MATERIAL_CODE = {m: i for i, m in enumerate(_MATERIALS)}
    _UNIT_CODE = {u: i for i, u in enumerate(_UNITS)}

    def __init__(self) -> None:
        self.position: dict[str, int] = {}
        self.ids = array("q")
        self.participants = array("q")
        self.materials = array("b")
        self.units = array("b")
        self.remaining = array("q")  # thousandths (quantities have three decimals); -1: none
        self.lines = array("l")  # 0: already in the database
        self.visible = array("b")

    def __contains__(self, barcode: str) -> bool:
        return barcode in self.position

    def __iter__(self) -> Iterator[str]:
        return iter(self.position)

    def add(self, barcode: str, entry: _Specimen) -> None:
        self.position[barcode] = len(self.ids)
        self.ids.append(entry.id)
        self.participants.append(entry.participant_id)
        self.materials.append(self._MATERIAL_CODE[entry.material])
        self.units.append(self._UNIT_CODE[entry.unit] if entry.unit is not None else -1)
        self.remaining.append(-1 if entry.remaining is None else int(entry.remaining * 1000))
        self.lines.append(0 if entry.in_db else entry.line)
        self.visible.append(entry.visible)

    def get(self, barcode: str) -> _Specimen | None:
        i = self.position.get(barcode)
        if i is None:
            return None
        unit, left = self.units[i], self.remaining[i]
        return _Specimen(
            self.ids[i],
            self.participants[i],
            self._MATERIALS[self.materials[i]],
            self._UNITS[unit] if unit >= 0 else None,
            None if left < 0 else Decimal(left).scaleb(-3),
            self.lines[i] == 0,
            self.lines[i],
            bool(self.visible[i]),
        )

    def set_remaining(self, barcode: str, value: Decimal) -> None:
        self.remaining[self.position[barcode]] = int(value * 1000)


@dataclass
class _Container:
    id: int
    site_id: int
    name: str
    model: StorageContainer
    path: str
    #: row * 1000 + column → what is there: a line of this file, or a text for the database
    taken: dict[int, int | str] = field(default_factory=dict)


@dataclass
class ImportResult:
    rows: int = 0
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    counts: dict[str, int] = field(default_factory=dict)


class Importer:
    """Checks and writes one file; ``run`` returns what it found and wrote (flushed only)."""

    def __init__(
        self,
        *,
        template: str,
        actor: Actor,
        job_id: int | None,
        reason: str,
        dry_run: bool = False,
        tz: dt.tzinfo | None = None,
    ) -> None:
        self.template = check_template(template)
        self.groups = set(TEMPLATES[template][0])
        self.actor = actor
        self.job_id = job_id
        self.dry_run = dry_run
        self.tz = tz or dt.UTC
        self.now = utcnow()
        self.sites_visible = visible_site_ids(actor)
        self.writer = BulkWriter(
            WRITE_ORDER,
            actor_id=actor.id,
            actor_name=actor.username,
            reason=reason,
            now=self.now,
            unaudited=(CustodyEvent,),
            batch=WRITE_BATCH,
        )
        self.result = ImportResult()
        self.participants: dict[str, _Participant] = {}
        self.missing_participants: set[str] = set()
        self.cases: dict[str, tuple[int, int]] = {}  # code → (id, participant id)
        self.visits: dict[tuple[int, dt.datetime, CollectionProcedure], int] = {}
        self.visit_cases: dict[int, int | None] = {}  # visit id → its case (the specimens' too)
        self.loaded_visits: set[int] = set()
        self.specimens = _SpecimenIndex()
        self._barcodes: dict[str, list[str]] = {}
        #: specimen rows added since the writer last wrote, by barcode (cleared as it writes)
        self._buffered: dict[str, dict[str, Any]] = {}
        self._buffered_generation = 0
        self.manufacturer: dict[str, int] = {}
        self.containers: dict[str, _Container | None] = {}
        self.studies = {code: ident for ident, code in db.session.execute(sa.select(Study.id, Study.code))}
        self.site_ids = {code: ident for ident, code in db.session.execute(sa.select(Site.id, Site.code))}
        self.site_codes = {ident: code for code, ident in self.site_ids.items()}
        self.barcode_width = current_app.config["BARCODE_SEQUENCE_WIDTH"]

    @property
    def writing(self) -> bool:
        return not self.dry_run and self.result.problem_count == 0

    def problem(self, line: int, column: str | None, message: str) -> None:
        self.result.problem_count += 1
        if len(self.result.problems) < MAX_PROBLEMS:
            self.result.problems.append(Problem(line, column, message))

    # -- driving -------------------------------------------------------------------------

    def run(self, table: Table, progress: Callable[[int, float | None], None] | None = None) -> ImportResult:
        columns, problems = check_header(table.header, self.template)
        for p in problems:
            self.problem(p.line, p.column, p.message)
        if problems:
            return self.result
        chunk: list[tuple[int, dict[str, str]]] = []
        # In a CSV every row has as many cells as the header; spreadsheets leave trailing
        # empty cells out.
        strict_width = table.format == "csv"
        try:
            for line, cells in table.rows:
                self.result.rows += 1
                if len(cells) > len(columns) and any(c.strip() for c in cells[len(columns) :]):
                    self.problem(
                        line, None, f"{len(cells)} cells but the header names {len(columns)} columns"
                    )
                    continue
                if strict_width and len(cells) != len(columns):
                    # A file cut short, or a separator lost or added: the cells would land
                    # in the wrong columns.
                    self.problem(
                        line,
                        None,
                        f"{len(cells)} cells but the header names "
                        f"{len(columns)} columns: a separator is missing "
                        "or extra, or the file was cut short",
                    )
                    continue
                chunk.append(
                    (
                        line,
                        {
                            col.name: cell.strip()
                            for col, cell in zip(columns, cells, strict=False)
                            if col is not None
                        },
                    )
                )
                if len(chunk) >= CHUNK:
                    self._chunk(chunk)
                    chunk = []
                    if progress:
                        progress(self.result.rows, table.progress())
        except ImportFileError as error:
            self.problem(error.line, error.column, error.message)
            return self.result
        if chunk:
            self._chunk(chunk)
        if progress:
            progress(self.result.rows, 1.0)
        if self.result.rows == 0:
            self.problem(0, None, "the file names its columns but holds no rows")
        if self.writing:
            self.writer.flush()
            self.result.counts = dict(self.writer.counts)
        return self.result

    def _chunk(self, chunk: list[tuple[int, dict[str, str]]]) -> None:
        parsed = []
        for line, cells in chunk:
            values: dict[str, Any] = {}
            bad = False
            for name, text in cells.items():
                if not text:
                    continue
                try:
                    values[name] = _parse(BY_NAME[name], text, self.tz)
                except RowError as error:
                    self.problem(line, error.column, error.message)
                    bad = True
            if not bad:
                parsed.append((line, values))
        self._prefetch([v for _, v in parsed])
        for line, values in parsed:
            try:
                self._row(line, values)
            except RowError as error:
                self.problem(line, error.column, error.message)

    # -- looking up what the chunk refers to, in a few queries ---------------------------

    def _prefetch(self, rows: list[dict[str, Any]]) -> None:
        codes = (
            {r["participant_code"] for r in rows if "participant_code" in r}
            - set(self.participants)
            - self.missing_participants
        )
        if codes:
            self._load_participants(codes)
        cases = {r["case_code"] for r in rows if "case_code" in r} - set(self.cases)
        if cases:
            stmt = sa.select(Case.code, Case.id, Case.participant_id).where(Case.code.in_(cases))
            for code, ident, participant_id in db.session.execute(stmt):
                self.cases[code] = (ident, participant_id)
        barcodes = {r[k] for r in rows for k in ("specimen_barcode", "parent_barcode") if k in r}
        barcodes -= set(self.specimens)
        if barcodes:
            stmt = sa.select(
                Specimen.barcode,
                Specimen.id,
                Specimen.participant_id,
                Specimen.material_type,
                Specimen.unit,
                Specimen.quantity,
                Specimen.site_id,
            ).where(Specimen.barcode.in_(barcodes))
            for code, ident, pid, material, unit, qty, site_id in db.session.execute(stmt):
                self.specimens.add(
                    code,
                    _Specimen(
                        ident,
                        pid,
                        material,
                        unit,
                        qty,
                        True,
                        visible=self.sites_visible is None or site_id in self.sites_visible,
                    ),
                )
        made = {r["manufacturer_barcode"] for r in rows if "manufacturer_barcode" in r}
        made -= set(self.manufacturer)
        if made:
            for (code,) in db.session.execute(
                sa.select(Specimen.manufacturer_barcode).where(Specimen.manufacturer_barcode.in_(made))
            ):
                self.manufacturer[code] = 0
        boxes = {r["container_barcode"] for r in rows if "container_barcode" in r}
        boxes -= set(self.containers)
        if boxes:
            self._load_containers(boxes)

    def _load_participants(self, codes: set[str]) -> None:
        stmt = (
            sa.select(Participant, ParticipantPHI)
            .outerjoin(ParticipantPHI, ParticipantPHI.participant_id == Participant.id)
            .where(Participant.code.in_(codes))
        )
        for participant, phi in db.session.execute(stmt):
            values = {
                "study_code": participant.study.code,
                "site_code": participant.site.code,
                "sex": participant.sex,
                "birth_year": participant.birth_year,
            }
            if phi is not None:
                values |= {
                    "given_name": phi.given_name,
                    "family_name": phi.family_name,
                    "medical_record_number": phi.medical_record_number,
                    "birth_date": phi.birth_date,
                }
            self.participants[participant.code] = _Participant(
                participant.id, participant.site_id, values, None
            )
        self.missing_participants |= codes - set(self.participants)

    def _load_containers(self, barcodes: set[str]) -> None:
        found = {
            c.barcode: c
            for c in db.session.scalars(
                sa.select(StorageContainer).where(StorageContainer.barcode.in_(barcodes))
            )
        }
        for code in barcodes:
            container = found.get(code)
            if container is None or (
                self.sites_visible is not None and container.site_id not in self.sites_visible
            ):
                self.containers[code] = None
                continue
            entry = _Container(
                container.id,
                container.site_id,
                container.name,
                container,
                " › ".join(c.name for c in container.path()),
            )
            if container.has_grid:
                for barcode, row, col in db.session.execute(
                    sa.select(Specimen.barcode, Specimen.pos_row, Specimen.pos_col).where(
                        Specimen.container_id == container.id
                    )
                ):
                    entry.taken[row * 1000 + col] = f"holds {barcode}"
                for hold in db.session.scalars(
                    sa.select(PositionHold).where(PositionHold.container_id == container.id)
                ):
                    entry.taken[hold.pos_row * 1000 + hold.pos_col] = f"is {hold.kind.value}" + (
                        f" ({hold.reason})" if hold.reason else ""
                    )
            self.containers[code] = entry

    # -- one row -------------------------------------------------------------------------

    def _row(self, line: int, v: dict[str, Any]) -> None:
        participant = self._participant(line, v)
        case_id = (
            self._case(line, v, participant) if "case" in self.groups or ("case_ref" in self.groups) else None
        )
        if "specimen" in self.groups:
            visit_id = self._visit(line, v, participant, case_id)
            self._specimen(line, v, participant, visit_id)

    def _participant(self, line: int, v: dict[str, Any]) -> _Participant:
        code = v.get("participant_code")
        if code is None:
            raise RowError("participant_code", "required")
        known = self.participants.get(code)
        given = {
            k: v[k]
            for k in (
                "study_code",
                "site_code",
                "sex",
                "birth_year",
                "given_name",
                "family_name",
                "medical_record_number",
                "birth_date",
            )
            if k in v
        }
        if known is not None:
            if self.sites_visible is not None and known.site_id not in self.sites_visible:
                raise RowError(
                    "participant_code", f"participant {code} belongs to a site you are not a member of"
                )
            for name, value in given.items():
                if known.values.get(name) != value:
                    where = f"line {known.line}" if known.line else "the biobank"
                    old = known.values.get(name)
                    shown = getattr(old, "value", old)
                    raise RowError(
                        name,
                        f"participant {code} has {name} {shown!r} in {where}; "
                        f"this row says {getattr(value, 'value', value)!r}",
                    )
            return known
        if "participant" not in self.groups:
            raise RowError(
                "participant_code",
                f"participant {code} does not exist: import it first (participants or master template)",
            )
        for name in ("study_code", "site_code"):
            if name not in v:
                raise RowError(name, f"required for the new participant {code}")
        study_id = self.studies.get(v["study_code"])
        if study_id is None:
            raise RowError("study_code", f"unknown study {v['study_code']!r}")
        site_id = self.site_ids.get(v["site_code"])
        if site_id is None:
            raise RowError("site_code", f"unknown site {v['site_code']!r}")
        if self.sites_visible is not None and site_id not in self.sites_visible:
            raise RowError("site_code", f"you are not a member of site {v['site_code']}")
        year = v.get("birth_year")
        if year is not None and not 1880 <= year <= self.now.year:
            raise RowError("birth_year", f"{year} is not a plausible year of birth")
        if "birth_date" in v and v["birth_date"] > self.now.date():
            raise RowError("birth_date", "in the future")
        entry = _Participant(0, site_id, given, line)
        self.participants[code] = entry
        self.missing_participants.discard(code)
        if self.writing:
            row = self.writer.add(
                Participant,
                {
                    "code": code,
                    "study_id": study_id,
                    "site_id": site_id,
                    "sex": v.get("sex", Sex.UNKNOWN),
                    "birth_year": year,
                },
            )
            entry.id = row["id"]
            phi = {k: v.get(k) for k in ("given_name", "family_name", "medical_record_number", "birth_date")}
            if any(value is not None for value in phi.values()):
                self.writer.add(ParticipantPHI, {"participant_id": entry.id, **phi, "contact": None})
        return entry

    def _case(self, line: int, v: dict[str, Any], participant: _Participant) -> int | None:
        code = v.get("case_code")
        fields = {
            k: v[k]
            for k in ("disease_group", "icd10_code", "diagnosis_date", *MELANOMA_FIELDS, *TUMOUR_FIELDS)
            if k in v
        }
        if code is None:
            if fields:
                raise RowError("case_code", "give the case code the diagnosis belongs to")
            return None
        known = self.cases.get(code)
        if known is not None:
            ident, participant_id = known
            if participant_id != participant.id:
                raise RowError("case_code", f"case {code} belongs to another participant")
            return ident
        if "case" not in self.groups:
            raise RowError("case_code", f"case {code} does not exist")
        group = fields.get("disease_group")
        icd10 = fields.get("icd10_code")
        if group is None:
            raise RowError("disease_group", f"required for the new case {code}")
        if icd10 is None:
            raise RowError("icd10_code", f"required for the new case {code}")
        icd10 = icd10.upper()
        problem = diagnosis_problem(group, icd10, fields)
        if problem:
            raise RowError(*problem)
        ident = 0
        if self.writing:
            row = self.writer.add(
                Case,
                {
                    "code": code,
                    "participant_id": participant.id,
                    "disease_group": group,
                    "icd10_code": icd10,
                    "diagnosis_date": fields.get("diagnosis_date"),
                    "breslow_mm": fields.get("breslow_mm"),
                    "ulceration": fields.get("ulceration"),
                    "ajcc_stage": fields.get("ajcc_stage"),
                    "icdo3_morphology": fields.get("icdo3_morphology"),
                    "icdo3_topography": fields.get("icdo3_topography"),
                    "notes": None,
                },
            )
            ident = row["id"]
        self.cases[code] = (ident, participant.id)
        return ident

    def _visit(self, line: int, v: dict[str, Any], participant: _Participant, case_id: int | None) -> int:
        for name in ("collected_at", "procedure"):
            if name not in v:
                raise RowError(name, "required")
        when, procedure = v["collected_at"], v["procedure"]
        if when > self.now:
            raise RowError("collected_at", "in the future")
        if participant.line is None and participant.id not in self.loaded_visits:
            self.loaded_visits.add(participant.id)
            for ident, at, proc, visit_case in db.session.execute(
                sa.select(
                    CollectionEvent.id,
                    CollectionEvent.collected_at,
                    CollectionEvent.procedure,
                    CollectionEvent.case_id,
                ).where(CollectionEvent.participant_id == participant.id)
            ):
                self.visits[(participant.id, at, proc)] = ident
                self.visit_cases[ident] = visit_case
        key = (participant.id, when, procedure)
        ident = self.visits.get(key)
        if ident is None:
            ident = 0
            if self.writing:
                row = self.writer.add(
                    CollectionEvent,
                    {
                        "participant_id": participant.id,
                        "case_id": case_id,
                        "lesion_id": None,
                        "site_id": participant.site_id,
                        "collected_at": when,
                        "collector": v.get("collector"),
                        "procedure": procedure,
                        "notes": None,
                    },
                )
                ident = row["id"]
                self.visit_cases[ident] = case_id
            self.visits[key] = ident
        return ident

    def _specimen(self, line: int, v: dict[str, Any], participant: _Participant, visit_id: int) -> None:
        material: MaterialType | None = v.get("material_type")
        if material is None:
            raise RowError("material_type", "required")
        barcode = v.get("specimen_barcode")
        if barcode is not None:
            if GENERATED_PATTERN.match(barcode) and (reason := explain_invalid(barcode)):
                raise RowError("specimen_barcode", f"{barcode}: {reason}")
            earlier = self.specimens.get(barcode)
            if earlier is not None:
                where = "in the biobank" if earlier.in_db else f"on line {earlier.line}"
                raise RowError("specimen_barcode", f"{barcode} is already used {where}")
        made = v.get("manufacturer_barcode")
        if made is not None:
            if made in self.manufacturer:
                where = f"on line {self.manufacturer[made]}" if self.manufacturer[made] else "in the biobank"
                raise RowError("manufacturer_barcode", f"{made} is already used {where}")
            self.manufacturer[made] = line

        quantity, unit = v.get("quantity"), v.get("unit")
        if quantity is not None and unit is None:
            raise RowError("unit", "give the unit of the quantity")
        lineage = v.get("lineage")
        parent = None
        if "parent_barcode" in v:
            parent = self.specimens.get(v["parent_barcode"])
            if parent is None or not parent.visible:
                raise RowError(
                    "parent_barcode",
                    f"{v['parent_barcode']} is neither on an earlier line nor in the biobank",
                )
            if parent.participant_id != participant.id:
                raise RowError("parent_barcode", f"{v['parent_barcode']} belongs to another participant")
            lineage = lineage or (Lineage.ALIQUOT if parent.material is material else Lineage.DERIVATIVE)
            if lineage is Lineage.PRIMARY:
                raise RowError("lineage", "a primary specimen has no parent")
            if lineage is Lineage.ALIQUOT:
                self._take_from(parent, v["parent_barcode"], material, quantity, unit)
        elif lineage not in (None, Lineage.PRIMARY):
            raise RowError("parent_barcode", f"an {lineage.value} needs its parent's barcode")
        lineage = lineage or Lineage.PRIMARY

        sprec = v.get("sprec_code")
        if sprec is not None and (message := validate_sprec(sprec)):
            raise RowError("sprec_code", message)
        for name in ("received_at", "frozen_at"):
            if name in v and v[name] > self.now:
                raise RowError(name, "in the future")

        container, row, col, location = self._placement(line, v)
        status = v.get("status") or (SpecimenStatus.IN_STORAGE if container else SpecimenStatus.RECEIVED)
        if status not in IMPORT_STATUSES:
            raise RowError(
                "status",
                f"an imported specimen cannot be {status.value}; use one "
                f"of {', '.join(s.value for s in IMPORT_STATUSES)}",
            )
        if container is not None and status not in _PLACED:
            raise RowError(
                "status", f"a {status.value} specimen is not in a container: leave container_barcode empty"
            )
        if container is None and status is SpecimenStatus.IN_STORAGE:
            raise RowError("container_barcode", "an in_storage specimen needs its container")

        if not self.writing:
            if barcode is not None:
                self.specimens.add(
                    barcode, _Specimen(0, participant.id, material, unit, quantity, False, line)
                )
            return
        site_id = container.site_id if container else participant.site_id
        if barcode is None:
            barcode = self._issue(site_id, material)
        ident = self.writer.next_id(Specimen)
        self.specimens.add(barcode, _Specimen(ident, participant.id, material, unit, quantity, False, line))
        events: list[tuple[CustodyEventType, dt.datetime, dict[str, Any]]] = []
        tag = {"import": self.job_id}
        collected_at = v["collected_at"]
        if parent is not None:
            kind = CustodyEventType.ALIQUOTED if lineage is Lineage.ALIQUOT else CustodyEventType.DERIVED
            events.append(
                (
                    kind,
                    v.get("frozen_at") or v.get("received_at") or collected_at,
                    {"details": tag | {"parent": v["parent_barcode"]}},
                )
            )
        else:
            events.append((CustodyEventType.COLLECTED, collected_at, {"details": tag}))
        if "received_at" in v and parent is None:
            events.append((CustodyEventType.RECEIVED, v["received_at"], {"details": tag}))
        if container is not None:
            stored = v.get("frozen_at") or v.get("received_at") or collected_at
            events.append(
                (
                    CustodyEventType.STORED,
                    max(stored, events[-1][1]),
                    {"to_location": location[:128], "details": tag},
                )
            )
        final = {
            SpecimenStatus.CONSUMED: CustodyEventType.CONSUMED,
            SpecimenStatus.DISPOSED: CustodyEventType.DISPOSED,
            SpecimenStatus.DISTRIBUTED: CustodyEventType.SHIPPED,
            SpecimenStatus.MISSING: CustodyEventType.MARKED_MISSING,
            SpecimenStatus.QUARANTINED: CustodyEventType.QUARANTINED,
        }.get(status)
        if final is not None:
            events.append((final, max(e[1] for e in events), {"details": tag}))
        chain = chain_rows(
            specimen_id=ident,
            barcode=barcode,
            actor_id=self.actor.id,
            actor_name=self.actor.username,
            events=events,
            recorded_at=self.now,
        )
        self._sync_buffered()
        self._buffered[barcode] = self.writer.add(
            Specimen,
            {
                "id": ident,
                "barcode": barcode,
                "label": v.get("label"),
                "manufacturer_barcode": made,
                "participant_id": participant.id,
                "collection_event_id": visit_id,
                "lesion_id": None,
                "site_id": site_id,
                "case_id": self.visit_cases.get(visit_id),
                "parent_id": parent.id if parent else None,
                "lineage": lineage,
                "material_type": material,
                "pathology_status": v.get("pathology_status", PathologyStatus.NOT_SPECIFIED),
                "anatomical_site": v.get("anatomical_site"),
                "status": status,
                "initial_quantity": quantity,
                "quantity": Decimal(0) if status is SpecimenStatus.CONSUMED and quantity else quantity,
                "unit": unit,
                "concentration_ng_ul": v.get("concentration_ng_ul"),
                "freeze_thaw_count": 0,
                "sprec_code": sprec,
                "received_at": v.get("received_at"),
                "processed_at": None,
                "frozen_at": v.get("frozen_at"),
                "container_id": container.id if container else None,
                "pos_row": row,
                "pos_col": col,
                "custody_head": chain[-1]["hash"],
                "custody_seq": len(chain),
            },
        )
        for event in chain:
            self.writer.add(CustodyEvent, event)

    def _sync_buffered(self) -> None:
        """Forget buffered rows once the writer has written them: they change by UPDATE."""
        if self._buffered_generation != self.writer.generation:
            self._buffered.clear()
            self._buffered_generation = self.writer.generation

    def _take_from(
        self,
        parent: _Specimen,
        parent_code: str,
        material: MaterialType,
        quantity: Decimal | None,
        unit: QuantityUnit | None,
    ) -> None:
        if parent.material is not material:
            raise RowError(
                "lineage",
                f"an aliquot is the same material as its parent "
                f"({parent.material.value}); this is a derivative",
            )
        if quantity is None:
            return
        if parent.unit is not None and unit is not parent.unit:
            raise RowError("unit", f"{parent_code} is measured in {parent.unit.value}")
        if parent.remaining is None:
            return
        if quantity > parent.remaining:
            raise RowError(
                "quantity",
                f"{format_quantity(quantity, unit)} is more than "
                f"{parent_code} still holds "
                f"({format_quantity(parent.remaining, unit)})",
            )
        parent.remaining -= quantity
        self.specimens.set_remaining(parent_code, parent.remaining)
        if not self.writing:
            return
        self._sync_buffered()
        row = self._buffered.get(parent_code)
        if row is not None and row["status"] is SpecimenStatus.CONSUMED:
            return  # used up after its aliquots were taken: it stays at zero
        if row is not None:
            row["quantity"] = parent.remaining  # still buffered: write it as it ends up
            return
        self.writer.update(
            sa.update(Specimen)
            .where(Specimen.id == sa.bindparam("_id"))
            .values(quantity=sa.bindparam("qty"), updated_at=sa.bindparam("now")),
            {
                "_id": parent.id,
                "qty": parent.remaining,
                "now": self.now,
                "_changes": {"quantity": [parent.remaining + quantity, parent.remaining]},
            },
        )

    def _placement(
        self, line: int, v: dict[str, Any]
    ) -> tuple[_Container | None, int | None, int | None, str]:
        code = v.get("container_barcode")
        if code is None:
            if "position" in v:
                raise RowError("container_barcode", "a position needs its container")
            return None, None, None, ""
        container = self.containers.get(code)
        if container is None:
            raise RowError("container_barcode", f"no container with barcode {code!r}")
        model = container.model
        if model.kind not in SPECIMEN_HOLDERS:
            raise RowError(
                "container_barcode",
                f"{container.name} is a {model.kind.value}; specimens go in a box, bag, drawer or canister",
            )
        if not model.has_grid:
            if "position" in v:
                raise RowError("position", f"{container.name} has no positions")
            return container, None, None, container.path
        if "position" not in v:
            raise RowError("position", f"{container.name} has positions ({model.position_range()}): give one")
        try:
            row, col = model.parse_position(v["position"])
        except ValueError as error:
            raise RowError("position", str(error)) from None
        taken = container.taken.get(row * 1000 + col)
        if taken is not None:
            what = f"is already taken by line {taken}" if isinstance(taken, int) else taken
            raise RowError("position", f"{model.position_label(row, col)} of {container.name} {what}")
        container.taken[row * 1000 + col] = line
        return container, row, col, f"{container.path} › {model.position_label(row, col)}"

    def _issue(self, site_id: int, material: MaterialType) -> str:
        prefix = f"{self.site_codes[site_id].upper()}{MATERIAL_CODES[material]}"
        pool = self._barcodes.setdefault(prefix, [])
        if not pool:
            first, last = reserve_sequence(prefix, 500)
            candidates = [
                make_barcode(self.site_codes[site_id], material, n, width=self.barcode_width)
                for n in range(first, last + 1)
            ]
            used = set(
                db.session.scalars(sa.select(Specimen.barcode).where(Specimen.barcode.in_(candidates)))
            )
            pool.extend(reversed([c for c in candidates if c not in used and c not in self.specimens]))
            if not pool:
                return self._issue(site_id, material)
        return pool.pop()


# -- jobs -------------------------------------------------------------------------------------


def already_imported(sha256: str) -> ImportJob | None:
    return db.session.scalar(
        sa.select(ImportJob).where(ImportJob.sha256 == sha256, ImportJob.status == ImportStatus.SUCCEEDED)
    )


def create_job(
    *,
    actor: Actor,
    path: Path,
    filename: str,
    template: str,
    dry_run: bool = False,
    sha256: str | None = None,
) -> ImportJob:
    """A queued job for the file at *path*; a file imported before is refused."""
    check_template(template)
    sha256 = sha256 or sha256_of(path)
    earlier = already_imported(sha256)
    if earlier is not None and not dry_run:
        raise Conflict(
            f"this file was already imported (job {earlier.id}, "
            f"{earlier.filename}, {earlier.finished_at:%Y-%m-%d %H:%M} UTC): "
            "importing it again would duplicate it",
            field="file",
            job_id=earlier.id,
        )
    job = ImportJob(
        template=template,
        filename=filename[:255],
        sha256=sha256,
        size_bytes=path.stat().st_size,
        dry_run=dry_run,
        stored_path=str(path),
        created_by_id=actor.id,
        created_by_name=actor.username,
    )
    db.session.add(job)
    db.session.flush()
    return job


def run_job(
    job_id: int,
    *,
    delimiter: str = ",",
    progress: Callable[[int, float | None], None] | None = None,
    options: dict[str, str] | None = None,
) -> ImportJob:
    """Run a queued job: the data and the job's success commit together; on any problem
    nothing is written and the job records every problem instead. Commits."""
    job = db.session.get(ImportJob, job_id)
    if job is None:
        raise NotFound(f"no import job {job_id}")
    if job.status not in (ImportStatus.QUEUED, ImportStatus.RUNNING):
        return job  # already done (a redelivered task)
    actor = db.session.get(User, job.created_by_id) if job.created_by_id else None
    with transaction():
        job.status, job.started_at = ImportStatus.RUNNING, utcnow()
        job.runner, job.heartbeat_at = runner_id(), job.started_at
    progress = _with_heartbeat(job.id, progress)
    if actor is None:
        return _finish_failed(
            job,
            ImportResult(
                problems=[Problem(0, None, "the user who uploaded the file no longer exists")],
                problem_count=1,
            ),
        )
    tz = zoneinfo.ZoneInfo(current_app.config["IMPORT_TIMEZONE"])
    openspecimen = job.template == "openspecimen"
    importer = Importer(
        template="master" if openspecimen else job.template,
        actor=actor,
        job_id=job.id,
        reason=f"import {job.id}: {job.filename}",
        dry_run=job.dry_run,
        tz=tz,
    )
    try:
        if openspecimen:
            table = open_openspecimen(job.stored_path or "", **(options or {}))
        else:
            table = open_table(job.stored_path or "", delimiter=delimiter)
    except ImportFileError as error:
        return _finish_failed(
            job, ImportResult(problems=[Problem(error.line, error.column, error.message)], problem_count=1)
        )
    except OSError as error:
        return _finish_failed(
            job,
            ImportResult(
                problems=[Problem(0, None, f"the uploaded file cannot be read: {error.strerror}")],
                problem_count=1,
            ),
        )
    try:
        with transaction():  # all rows or none
            try:
                result = importer.run(table, progress)
            finally:
                table.close()
            if result.problem_count:
                raise _Refused(result)
            job.status = ImportStatus.VALIDATED if job.dry_run else ImportStatus.SUCCEEDED
            job.rows_read = result.rows
            job.created = result.counts
            job.finished_at = utcnow()
    except _Refused as refused:
        return _finish_failed(job, refused.result)
    except Exception:
        # A fault of ours, not of the file: nothing is written, and the job says so
        # instead of staying 'running' for ever.
        current_app.logger.exception("import job %s stopped on an unexpected error", job_id)
        return _finish_failed(
            job,
            ImportResult(
                problems=[
                    Problem(
                        0,
                        None,
                        "the import stopped on an unexpected error and nothing was written; "
                        "the administrators' log has the details",
                    )
                ],
                problem_count=1,
            ),
        )
    _discard_file(job)
    if not job.dry_run and job.rows_read >= STATISTICS_AFTER_ROWS:
        refresh_statistics()  # SQLite plans its queries by them
    return job


class _Refused(Exception):
    """A file with problems: rolls the import's transaction back, then the job says why."""

    def __init__(self, result: ImportResult) -> None:
        super().__init__(f"{result.problem_count} problem(s)")
        self.result = result


def runner_id() -> str:
    """This process, as recorded on the jobs it runs."""
    return f"{socket.gethostname()}:{os.getpid()}"[:128]


def _with_heartbeat(
    job_id: int, progress: Callable[[int, float | None], None] | None
) -> Callable[[int, float | None], None]:
    """*progress*, also telling the database the job is alive every
    ``IMPORT_HEARTBEAT_SECONDS`` (PostgreSQL: on SQLite the import's own transaction holds
    the only write lock, and one process runs the jobs, so its process id suffices)."""
    every = current_app.config["IMPORT_HEARTBEAT_SECONDS"]
    engine = db.engine
    beat = engine.dialect.name == "postgresql"
    last = time.monotonic()

    def report(rows: int, share: float | None) -> None:
        nonlocal last
        if beat and time.monotonic() - last >= every:
            last = time.monotonic()
            with engine.begin() as conn:
                conn.execute(sa.update(ImportJob).where(ImportJob.id == job_id).values(heartbeat_at=utcnow()))
        if progress is not None:
            progress(rows, share)

    return report


def _process_is_gone(runner: str) -> bool | None:
    """Whether the process *runner* names has ended; ``None`` when it ran on another host."""
    host, _, pid = runner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def recover_interrupted_jobs() -> list[int]:
    """Mark as failed the jobs left 'running' by a process that ended (killed, crashed,
    restarted): on this host when their process is gone, elsewhere when they have given no
    sign of life for ``IMPORT_STALE_MINUTES``. Nothing of theirs was committed, so their file
    can be imported again. Run when the server or a worker starts; returns the job ids."""
    stale = utcnow() - dt.timedelta(minutes=current_app.config["IMPORT_STALE_MINUTES"])
    running = db.session.scalars(sa.select(ImportJob).where(ImportJob.status == ImportStatus.RUNNING)).all()
    recovered = []
    for job in running:
        gone = _process_is_gone(job.runner) if job.runner else None
        last_sign = job.heartbeat_at or job.started_at
        if gone is False or (gone is None and last_sign is not None and last_sign > stale):
            continue
        recovered.append(job.id)
        _finish_failed(
            job,
            ImportResult(
                problems=[
                    Problem(
                        0,
                        None,
                        "the import was interrupted (its process ended before it finished); "
                        "nothing was written: import the file again",
                    )
                ],
                problem_count=1,
            ),
        )
    return recovered


def _finish_failed(job: ImportJob, result: ImportResult) -> ImportJob:
    with transaction():
        job = db.session.merge(job)
        job.status = ImportStatus.FAILED
        job.rows_read = result.rows
        job.error_count = result.problem_count
        job.finished_at = utcnow()
        db.session.execute(
            sa.insert(ImportProblem),
            [
                {
                    "job_id": job.id,
                    "line": p.line,
                    "column": (p.column or "")[:32] or None,
                    "message": p.message,
                }
                for p in result.problems
            ]
            or [],
        )
    _discard_file(job)
    return job


def _discard_file(job: ImportJob) -> None:
    if job.stored_path and Path(job.stored_path).parent == import_dir():
        Path(job.stored_path).unlink(missing_ok=True)


def import_dir() -> Path:
    configured = current_app.config["IMPORT_DIR"]
    path = Path(configured) if configured else Path(current_app.instance_path) / "imports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def problems_of(job: ImportJob, *, limit: int | None = None) -> list[ImportProblem]:
    stmt = (
        sa.select(ImportProblem)
        .where(ImportProblem.job_id == job.id)
        .order_by(ImportProblem.line, ImportProblem.id)
    )
    if limit:
        stmt = stmt.limit(limit)
    return list(db.session.scalars(stmt))


def iter_problem_report(job: ImportJob) -> Iterator[str]:
    """The job's problems as CSV lines: line, column, message."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["line", "column", "message"])
    for problem in problems_of(job):
        writer.writerow([problem.line, problem.column or "", problem.message])
        if buffer.tell() > 65536:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    if job.error_count > MAX_PROBLEMS:
        writer.writerow(
            [
                "",
                "",
                f"… and {job.error_count - MAX_PROBLEMS:,} more problems: "
                f"only the first {MAX_PROBLEMS:,} are kept",
            ]
        )
    yield buffer.getvalue()


def list_jobs(*, actor: Actor) -> sa.Select:
    stmt = sa.select(ImportJob).order_by(ImportJob.id.desc())
    if not actor.is_admin:
        stmt = stmt.where(ImportJob.created_by_id == actor.id)
    return stmt


def get_job(job_id: int, *, actor: Actor) -> ImportJob:
    job = db.session.get(ImportJob, job_id)
    if job is None or (not actor.is_admin and job.created_by_id != actor.id):
        raise NotFound(f"no import job {job_id}")
    return job
