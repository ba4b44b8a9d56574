"""Issuing and resolving specimen barcodes."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import defaultload

from biobank.barcodes import MATERIAL_CODES, explain_invalid, make_barcode
from biobank.db import db
from biobank.errors import InvalidInput, NotFound
from biobank.models import BarcodeSequence, Participant, Site, Specimen
from biobank.models.vocab import MaterialType

_MATERIALS = "|".join(sorted(MATERIAL_CODES.values()))
#: what a barcode issued by this system looks like: site code, material code, digits, 2 checks
GENERATED_PATTERN = re.compile(rf"^[A-Z0-9]{{1,8}}(?:{_MATERIALS})[0-9]{{6,10}}[0-9A-Z]{{2}}$")


def next_sequence(prefix: str) -> int:
    """Atomically take the next number for *prefix* (one row per prefix, upserted)."""
    return reserve_sequence(prefix, 1)[0]


def reserve_sequence(prefix: str, count: int) -> tuple[int, int]:
    """Take *count* consecutive numbers for *prefix* at once: (first, last)."""
    postgresql = db.session.get_bind().dialect.name == "postgresql"
    stmt = (postgresql_insert if postgresql else sqlite_insert)(BarcodeSequence).values(
        prefix=prefix, last_value=count
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[BarcodeSequence.prefix],
        set_={"last_value": BarcodeSequence.last_value + count},
    ).returning(BarcodeSequence.last_value)
    last = db.session.execute(stmt).scalar_one()
    return last - count + 1, last


def issue_barcode(site: Site, material: MaterialType) -> str:
    """A new barcode for a specimen of *material* at *site*, e.g. ``CTRPL00000013C``."""
    # Sites created before codes were checked may hold '-', '_' or '.': barcodes leave them out.
    code = re.sub(r"[^A-Z0-9]", "", site.code.upper())
    prefix = f"{code}{MATERIAL_CODES[material]}"
    width = current_app.config["BARCODE_SEQUENCE_WIDTH"]
    while True:
        barcode = make_barcode(code, material, next_sequence(prefix), width=width)
        # Numbers issued before the sequence existed (imports, demo data) are skipped.
        if not db.session.scalar(sa.select(Specimen.id).where(Specimen.barcode == barcode)):
            return barcode


def named_by(code: Any) -> sa.ColumnElement[bool]:
    """The specimens *code* (a value or a parameter) names: by our barcode or the
    manufacturer's."""
    return sa.or_(Specimen.barcode == code, Specimen.manufacturer_barcode == code)


@functools.cache
def specimen_statement(lock: bool) -> sa.Select:
    """The specimen a code (parameter ``code``) names, locked with *lock* (built once per
    locking mode: every scan starts here)."""
    stmt = sa.select(Specimen).where(named_by(sa.bindparam("code")))
    if lock:
        stmt = stmt.with_for_update(of=Specimen).execution_options(populate_existing=True)
    # Scans need the participant's code and whether consent was withdrawn: not every
    # consent record, nor the participant's study and site.
    participant = defaultload(Specimen.participant)
    return stmt.options(
        participant.lazyload(Participant.consents),
        participant.lazyload(Participant.study),
        participant.lazyload(Participant.site),
    )


def resolve_barcode(code: str, *, lock: bool = False) -> Specimen:
    """The specimen a scanned code names: our barcode or a manufacturer's 2D code.

    A code in our format whose check characters do not match is refused with that reason,
    so a misread or mistyped scan never silently names nothing or something else. With
    *lock* (PostgreSQL), the specimen's row is locked until the transaction ends and read
    fresh in the same query.
    """
    return resolve_row(code, specimen_statement, lock=lock)[0]


def resolve_row(code: str, statement: Callable[[bool], sa.Select], *, lock: bool = False) -> sa.Row[Any]:
    """The row *statement* gives for a scanned code, as :func:`resolve_barcode` finds its
    specimen: *statement(locking)* selects the specimen (and what else its caller reads
    with it) by the parameter ``code``; a code that names nothing is refused with the
    reason."""
    code = code.strip()
    locking = lock and db.session.get_bind().dialect.name == "postgresql"
    row = db.session.execute(statement(locking), {"code": code}).first()
    if row is not None:
        return row
    if GENERATED_PATTERN.match(code) and (reason := explain_invalid(code)):
        raise InvalidInput(f"{code}: {reason}", field="barcode")
    raise NotFound(f"unknown barcode {code!r}", field="barcode")
