"""The levels a cohort query answers at, each described once: its key and its ancestors'
keys, the statement its rows come from, the shape of the rows it answers with, how its
members reach specimens and images (a cohort snapshot's objects), and how any field relates
to it. Adding a level touches this file only."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from biobank.models import Case, Image, Lesion, Participant, Specimen
from biobank.models.vocab import Lineage
from biobank.query.rows import case_rows, lesion_rows, participant_rows, specimen_rows

if TYPE_CHECKING:
    from biobank.query.fields import Field

#: entity keys from the finest to the coarsest
KEYS = ("specimen_id", "lesion_id", "case_id", "participant_id")


@dataclass(frozen=True)
class Level:
    """What a query answers with: rows of one entity, with the ids of its ancestors."""

    name: str
    key: str
    keys: tuple[str, ...]
    columns: Callable[[], dict[str, Any]]
    joins: Callable[[sa.Select], sa.Select]
    #: the answer's rows for some ids (``biobank.query.rows``), and their columns
    rows: Callable[[list[int]], list[dict[str, Any]]]
    row_columns: tuple[str, ...]
    #: the row column that names a member to people (a code or a barcode)
    label: str
    #: members (a SELECT of ids) → the clause of the specimens that are theirs, given an
    #: alias of ``Specimen`` for the parent; and the clause of their images
    specimens_of: Callable[[Any, Any], Any]
    images_of: Callable[[Any], Any]
    where: Callable[[], Any] | None = None
    description: str = ""

    def col(self, key: str) -> Any:
        return self.columns()[key]

    def select(self, *cols: Any) -> sa.Select:
        stmt = self.joins(sa.select(*cols))
        if self.where is not None:
            stmt = stmt.where(self.where())
        return stmt


def _specimen_columns() -> dict[str, Any]:
    return {
        "specimen_id": Specimen.id,
        "lesion_id": Specimen.lesion_id,
        "case_id": Specimen.case_id,
        "participant_id": Specimen.participant_id,
    }


def _specimen_joins(stmt: sa.Select) -> sa.Select:
    return stmt.select_from(Specimen)


def _specimens_of_specimens(members: Any, parent: Any) -> Any:
    """A specimen's own objects and those of its aliquots and their derivatives."""
    return sa.or_(Specimen.id.in_(members), Specimen.parent_id.in_(members), parent.parent_id.in_(members))


_SPECIMEN_ROWS = (
    "specimen_id",
    "barcode",
    "lineage",
    "material_type",
    "pathology_status",
    "status",
    "quantity",
    "unit",
    "freeze_thaw_count",
    "site",
    "location",
    "lesion",
    "case",
    "participant",
    "disease_group",
)

_SPECIMENS = Level(
    "specimens",
    "specimen_id",
    KEYS,
    _specimen_columns,
    _specimen_joins,
    rows=specimen_rows,
    row_columns=_SPECIMEN_ROWS,
    label="barcode",
    specimens_of=_specimens_of_specimens,
    images_of=lambda members: Image.specimen_id.in_(members),
    description="Specimens of any lineage: primaries, aliquots and derivatives",
)

LEVELS: dict[str, Level] = {
    "participants": Level(
        "participants",
        "participant_id",
        ("participant_id",),
        lambda: {"participant_id": Participant.id},
        lambda stmt: stmt.select_from(Participant),
        rows=participant_rows,
        row_columns=("participant_id", "participant", "sex", "birth_year", "study", "site"),
        label="participant",
        specimens_of=lambda members, _parent: Specimen.participant_id.in_(members),
        images_of=lambda members: Image.case_id.in_(
            sa.select(Case.id).where(Case.participant_id.in_(members))
        ),
        description="Participants (pseudonymous)",
    ),
    "cases": Level(
        "cases",
        "case_id",
        ("case_id", "participant_id"),
        lambda: {"case_id": Case.id, "participant_id": Case.participant_id},
        lambda stmt: stmt.select_from(Case),
        rows=case_rows,
        row_columns=(
            "case_id",
            "case",
            "participant",
            "disease_group",
            "icd10_code",
            "diagnosis_date",
            "ajcc_stage",
            "breslow_mm",
            "ulceration",
        ),
        label="case",
        specimens_of=lambda members, _parent: Specimen.case_id.in_(members),
        images_of=lambda members: Image.case_id.in_(members),
        description="Cases: one diagnosis of a participant",
    ),
    "lesions": Level(
        "lesions",
        "lesion_id",
        ("lesion_id", "case_id", "participant_id"),
        lambda: {"lesion_id": Lesion.id, "case_id": Lesion.case_id, "participant_id": Case.participant_id},
        lambda stmt: stmt.select_from(Lesion).join(Case, Case.id == Lesion.case_id),
        rows=lesion_rows,
        row_columns=(
            "lesion_id",
            "lesion",
            "case",
            "participant",
            "disease_group",
            "body_site",
            "laterality",
            "diameter_mm",
        ),
        label="lesion",
        specimens_of=lambda members, _parent: Specimen.lesion_id.in_(members),
        images_of=lambda members: Image.lesion_id.in_(members),
        description="Lesions: one site on the skin of a case",
    ),
    "specimens": _SPECIMENS,
    "aliquots": replace(
        _SPECIMENS,
        name="aliquots",
        where=lambda: Specimen.lineage != Lineage.PRIMARY,
        description="Aliquots and derivatives only: the tubes a request is served from",
    ),
}

#: the level that lifts a field's key to a coarser one
LIFT = {
    "specimen_id": LEVELS["specimens"],
    "lesion_id": LEVELS["lesions"],
    "case_id": LEVELS["cases"],
    "participant_id": LEVELS["participants"],
}


class Relation(enum.Enum):
    """How a field's values reach a level's rows; filters and facets both follow it."""

    #: a column of the level's own table: read on the row itself
    OWN = "own"
    #: the field's entity is the level's or an ancestor's: matched by that key of the row
    KEY = "key"
    #: the field's source also carries the level's key (an image of a case, of no lesion)
    ALSO = "also"
    #: a finer entity's field (a case's specimens' material), lifted to the level's key
    LIFT = "lift"


def relation(f: Field, level: Level) -> Relation:
    """The one decision of how *f* relates to *level*."""
    if f.key in level.keys:
        return Relation.OWN if f.column is not None and f.key == level.key else Relation.KEY
    if level.key in f.also:
        return Relation.ALSO
    if KEYS.index(f.key) > KEYS.index(level.key):
        raise AssertionError(f"{f.key} is not finer than {level.key}")
    return Relation.LIFT


def lift(f: Field, level: Level, src: Any) -> tuple[sa.Select, Any]:
    """For a ``LIFT`` relation: a SELECT of the level's key (labelled ``lifted``) from *f*'s
    finer entity, and the expression of *f*'s value in it. A column of the finer entity's own
    table is read from it (no join of the table to itself); otherwise *src*, the field's
    source subquery, is joined."""
    finer = LIFT[f.key]
    stmt = finer.select(finer.col(level.key).label("lifted"))
    if f.column is not None:
        return stmt, f.column()
    return stmt.join(src, src.c.key == finer.col(f.key)), src.c.value
