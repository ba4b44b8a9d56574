"""Collection events (visits): when, where, by whom and how specimens were taken."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from biobank.db import db, intpk, str128, timestamp
from biobank.models.cases import Case, Lesion
from biobank.models.mixins import Audited, Timestamps
from biobank.models.participants import Participant
from biobank.models.sites import Site
from biobank.models.vocab import CollectionProcedure


class CollectionEvent(Audited, Timestamps, db.Model):
    __tablename__ = "collection_events"

    id: Mapped[intpk]
    participant_id: Mapped[int] = mapped_column(
        sa.ForeignKey("participants.id", ondelete="CASCADE"), index=True
    )
    case_id: Mapped[int | None] = mapped_column(sa.ForeignKey("cases.id"), index=True)
    lesion_id: Mapped[int | None] = mapped_column(sa.ForeignKey("lesions.id"), index=True)
    site_id: Mapped[int] = mapped_column(sa.ForeignKey("sites.id"), index=True)
    collected_at: Mapped[timestamp]
    collector: Mapped[str128 | None] = mapped_column(comment="Name of the person who collected")
    procedure: Mapped[CollectionProcedure]
    notes: Mapped[str | None] = mapped_column(sa.Text)

    participant: Mapped[Participant] = relationship(lazy="joined")
    case: Mapped[Case | None] = relationship()
    lesion: Mapped[Lesion | None] = relationship()
    site: Mapped[Site] = relationship()
