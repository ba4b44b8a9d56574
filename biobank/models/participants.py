"""Participants (pseudonymous), their identifying record kept apart, and consent responses."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from biobank.db import db, intpk, str32, str64, str128, timestamp
from biobank.models.mixins import Audited, Timestamps
from biobank.models.sites import Site
from biobank.models.studies import ConsentTier, Study
from biobank.models.vocab import ConsentDecision, Sex


class Participant(Audited, Timestamps, db.Model):
    __tablename__ = "participants"

    id: Mapped[intpk]
    code: Mapped[str32] = mapped_column(unique=True, comment="Pseudonymous participant code")
    study_id: Mapped[int] = mapped_column(sa.ForeignKey("studies.id"), index=True)
    site_id: Mapped[int] = mapped_column(sa.ForeignKey("sites.id"), index=True)
    sex: Mapped[Sex] = mapped_column(default=Sex.UNKNOWN)
    birth_year: Mapped[int | None] = mapped_column(comment="Year only: the full date is PHI")

    study: Mapped[Study] = relationship(lazy="joined")
    site: Mapped[Site] = relationship(lazy="joined")
    phi: Mapped[ParticipantPHI | None] = relationship(
        back_populates="participant", cascade="all, delete-orphan", uselist=False
    )
    consents: Mapped[list[ConsentResponse]] = relationship(
        back_populates="participant", cascade="all, delete-orphan", lazy="selectin"
    )

    def __repr__(self) -> str:
        return f"<Participant {self.code}>"


class ParticipantPHI(Audited, Timestamps, db.Model):
    """Identifying data, in its own table so that access to it can be granted separately."""

    __tablename__ = "participant_phi"

    participant_id: Mapped[int] = mapped_column(
        sa.ForeignKey("participants.id", ondelete="CASCADE"), primary_key=True
    )
    given_name: Mapped[str128 | None]
    family_name: Mapped[str128 | None]
    medical_record_number: Mapped[str64 | None] = mapped_column(index=True)
    birth_date: Mapped[dt.date | None]
    contact: Mapped[str | None] = mapped_column(sa.Text)

    participant: Mapped[Participant] = relationship(back_populates="phi")


class ConsentResponse(Audited, Timestamps, db.Model):
    __tablename__ = "consent_responses"
    __table_args__ = (
        sa.UniqueConstraint("participant_id", "tier_id"),
        # What cohort queries ask (who consented to a scope, what a participant consented
        # to) answered from the indexes alone
        sa.Index("ix_consent_responses_tier_id", "tier_id", "decision", "withdrawn_at", "participant_id"),
        sa.Index(
            "ix_consent_responses_participant_id_given",
            "participant_id",
            "decision",
            "withdrawn_at",
            "tier_id",
        ),
    )

    id: Mapped[intpk]
    participant_id: Mapped[int] = mapped_column(sa.ForeignKey("participants.id", ondelete="CASCADE"))
    tier_id: Mapped[int] = mapped_column(sa.ForeignKey("consent_tiers.id"))
    decision: Mapped[ConsentDecision]
    signed_on: Mapped[dt.date]
    withdrawn_at: Mapped[timestamp | None] = mapped_column(
        comment="When consent was withdrawn; locks all descendant specimens"
    )

    participant: Mapped[Participant] = relationship(back_populates="consents")
    tier: Mapped[ConsentTier] = relationship(lazy="joined")

    @property
    def is_granted(self) -> bool:
        return self.decision is ConsentDecision.YES and self.withdrawn_at is None
