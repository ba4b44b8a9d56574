"""Cases (a diagnosis of a participant) and lesions (the site on the skin)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from biobank.db import db, intpk, str16, str32
from biobank.models.mixins import Audited, Timestamps
from biobank.models.participants import Participant
from biobank.models.vocab import AjccStage, BodySite, DiseaseGroup, Laterality


class Case(Audited, Timestamps, db.Model):
    __tablename__ = "cases"
    __table_args__ = (
        sa.CheckConstraint("breslow_mm IS NULL OR breslow_mm >= 0", name="breslow_non_negative"),
        # a case's participant and diagnosis by its id without reading the table (cohort
        # queries look up every candidate case)
        sa.Index("ix_cases_id_summary", "id", "participant_id", "disease_group"),
    )

    id: Mapped[intpk]
    code: Mapped[str32] = mapped_column(unique=True)
    participant_id: Mapped[int] = mapped_column(
        sa.ForeignKey("participants.id", ondelete="CASCADE"), index=True
    )
    disease_group: Mapped[DiseaseGroup] = mapped_column(index=True)
    icd10_code: Mapped[str16] = mapped_column(comment="ICD-10 code, e.g. C43.5")
    diagnosis_date: Mapped[dt.date | None]
    breslow_mm: Mapped[Decimal | None] = mapped_column(
        sa.Numeric(5, 2), comment="Melanoma Breslow thickness in millimetres"
    )
    ulceration: Mapped[bool | None] = mapped_column(comment="Melanoma ulceration present")
    ajcc_stage: Mapped[AjccStage | None]
    icdo3_morphology: Mapped[str16 | None] = mapped_column(
        comment="ICD-O-3 morphology of a tumour with its behaviour, e.g. 8720/3"
    )
    icdo3_topography: Mapped[str16 | None] = mapped_column(
        comment="ICD-O-3 topography of a tumour, e.g. C44.5 (skin of trunk)"
    )
    notes: Mapped[str | None] = mapped_column(sa.Text)

    participant: Mapped[Participant] = relationship(lazy="joined")
    lesions: Mapped[list[Lesion]] = relationship(back_populates="case", order_by="Lesion.id")

    def __repr__(self) -> str:
        return f"<Case {self.code} {self.disease_group.value}>"


class Lesion(Audited, Timestamps, db.Model):
    __tablename__ = "lesions"
    #: a lesion's case by its id without reading the table (cohort queries at lesion level)
    __table_args__ = (sa.Index("ix_lesions_id_case_id", "id", "case_id"),)

    id: Mapped[intpk]
    code: Mapped[str32] = mapped_column(unique=True)
    case_id: Mapped[int] = mapped_column(sa.ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    body_site: Mapped[BodySite]
    laterality: Mapped[Laterality] = mapped_column(default=Laterality.NOT_APPLICABLE)
    diameter_mm: Mapped[Decimal | None] = mapped_column(sa.Numeric(6, 1))
    description: Mapped[str | None] = mapped_column(sa.Text)

    case: Mapped[Case] = relationship(back_populates="lesions")
