"""Studies (collection protocols) and their consent tiers."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from biobank.db import db, intpk, str32, str64, str255
from biobank.models.mixins import Audited, Timestamps
from biobank.models.vocab import ConsentScope


class Study(Audited, Timestamps, db.Model):
    __tablename__ = "studies"

    id: Mapped[intpk]
    code: Mapped[str32] = mapped_column(unique=True)
    title: Mapped[str255]
    description: Mapped[str | None] = mapped_column(sa.Text)
    principal_investigator: Mapped[str255 | None]
    ethics_reference: Mapped[str64 | None] = mapped_column(comment="Ethics committee approval number")

    consent_tiers: Mapped[list[ConsentTier]] = relationship(
        back_populates="study", order_by="ConsentTier.position", cascade="all, delete-orphan"
    )

    def __repr__(self) -> str:
        return f"<Study {self.code}>"


class ConsentTier(Audited, db.Model):
    """One statement of a study's consent form, coded to a scope."""

    __tablename__ = "consent_tiers"
    __table_args__ = (sa.UniqueConstraint("study_id", "code"),)

    id: Mapped[intpk]
    study_id: Mapped[int] = mapped_column(sa.ForeignKey("studies.id", ondelete="CASCADE"))
    code: Mapped[str32]
    scope: Mapped[ConsentScope]
    statement: Mapped[str] = mapped_column(sa.Text)
    position: Mapped[int] = mapped_column(default=0)

    study: Mapped[Study] = relationship(back_populates="consent_tiers")
