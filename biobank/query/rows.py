"""The rows a cohort query answers with, one shape per level: pseudonymous, never PHI.

Each function takes the ids of one level's rows and returns them as plain dictionaries (enums
as their values, decimals as numbers, dates as ISO text) in the order of the ids; the level
descriptions in ``biobank.query.levels`` name the function and its columns."""

from __future__ import annotations

import enum
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from biobank.db import db
from biobank.models import Case, Lesion, Participant, Site, Specimen, StorageContainer, Study


def plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Decimal):
        return float(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _in_order(stmt: sa.Select, ids: list[int]) -> list[dict[str, Any]]:
    """*stmt*'s rows (their first column is the id) as plain dictionaries, in *ids*' order."""
    rows = {r[0]: {k: plain(v) for k, v in r._mapping.items()} for r in db.session.execute(stmt)}
    return [rows[i] for i in ids if i in rows]


def participant_rows(ids: list[int]) -> list[dict[str, Any]]:
    """Participants: code, sex, birth year, study and site."""
    stmt = (
        sa.select(
            Participant.id.label("participant_id"),
            Participant.code.label("participant"),
            Participant.sex,
            Participant.birth_year,
            Study.code.label("study"),
            Site.code.label("site"),
        )
        .join(Study, Study.id == Participant.study_id)
        .join(Site, Site.id == Participant.site_id)
        .where(Participant.id.in_(ids))
    )
    return _in_order(stmt, ids)


def case_rows(ids: list[int]) -> list[dict[str, Any]]:
    """Cases: diagnosis, stage and melanoma depth, with the participant's code."""
    stmt = (
        sa.select(
            Case.id.label("case_id"),
            Case.code.label("case"),
            Participant.code.label("participant"),
            Case.disease_group,
            Case.icd10_code,
            Case.diagnosis_date,
            Case.ajcc_stage,
            Case.breslow_mm,
            Case.ulceration,
        )
        .join(Participant, Participant.id == Case.participant_id)
        .where(Case.id.in_(ids))
    )
    return _in_order(stmt, ids)


def lesion_rows(ids: list[int]) -> list[dict[str, Any]]:
    """Lesions: body site, side and size, with their case's disease group."""
    stmt = (
        sa.select(
            Lesion.id.label("lesion_id"),
            Lesion.code.label("lesion"),
            Case.code.label("case"),
            Participant.code.label("participant"),
            Case.disease_group,
            Lesion.body_site,
            Lesion.laterality,
            Lesion.diameter_mm,
        )
        .join(Case, Case.id == Lesion.case_id)
        .join(Participant, Participant.id == Case.participant_id)
        .where(Lesion.id.in_(ids))
    )
    return _in_order(stmt, ids)


def specimen_rows(ids: list[int]) -> list[dict[str, Any]]:
    """Pseudonymous rows of specimens (of any lineage), with their place, in the order of *ids*."""
    stmt = (
        sa.select(
            Specimen.id,
            Specimen.barcode,
            Specimen.lineage,
            Specimen.material_type,
            Specimen.pathology_status,
            Specimen.status,
            Specimen.quantity,
            Specimen.unit,
            Specimen.freeze_thaw_count,
            Site.code.label("site"),
            Specimen.container_id,
            Specimen.pos_row,
            Specimen.pos_col,
            Lesion.code.label("lesion"),
            Case.code.label("case"),
            Participant.code.label("participant"),
            Case.disease_group,
        )
        .join(Site, Site.id == Specimen.site_id)
        .join(Participant, Participant.id == Specimen.participant_id)
        .outerjoin(Lesion, Lesion.id == Specimen.lesion_id)
        .outerjoin(Case, Case.id == Specimen.case_id)
        .where(Specimen.id.in_(ids))
    )
    raw = list(db.session.execute(stmt))
    container_ids = {r.container_id for r in raw if r.container_id is not None}
    containers = {
        c.id: c
        for c in db.session.scalars(sa.select(StorageContainer).where(StorageContainer.id.in_(container_ids)))
    }
    out = {}
    for r in raw:
        location = None
        if r.container_id is not None:
            box = containers[r.container_id]
            location = box.name
            if r.pos_row is not None:
                location += " " + box.position_label(r.pos_row, r.pos_col)
        out[r.id] = {
            "specimen_id": r.id,
            "barcode": r.barcode,
            "lineage": plain(r.lineage),
            "material_type": plain(r.material_type),
            "pathology_status": plain(r.pathology_status),
            "status": plain(r.status),
            "quantity": plain(r.quantity),
            "unit": plain(r.unit),
            "freeze_thaw_count": r.freeze_thaw_count,
            "site": r.site,
            "location": location,
            "lesion": r.lesion,
            "case": r.case,
            "participant": r.participant,
            "disease_group": plain(r.disease_group),
        }
    return [out[i] for i in ids if i in out]
