"""Custody events: the append-only physical history of each specimen."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from biobank.db import db, intpk, str64, str128, timestamp
from biobank.models.specimens import Specimen
from biobank.models.users import User
from biobank.models.vocab import CustodyEventType


class CustodyEvent(db.Model):
    """One physical event. Rows are never updated or deleted; each carries the keyed digest
    of its canonical content (every column) and of the previous event of the same specimen
    (a per-specimen chain)."""

    __tablename__ = "custody_events"
    __table_args__ = (
        sa.UniqueConstraint("specimen_id", "seq"),
        sa.CheckConstraint("seq >= 1", name="seq_positive"),
    )

    id: Mapped[intpk]
    specimen_id: Mapped[int] = mapped_column(sa.ForeignKey("specimens.id"))
    seq: Mapped[int] = mapped_column(comment="1-based position in the specimen's chain")
    event_type: Mapped[CustodyEventType]
    occurred_at: Mapped[timestamp] = mapped_column(comment="When it happened (scanner clock)")
    recorded_at: Mapped[timestamp] = mapped_column(comment="When the server recorded it")
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    actor_name: Mapped[str64] = mapped_column(comment="Username, kept even if the user is removed")
    from_location: Mapped[str128 | None]
    to_location: Mapped[str128 | None]
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    client_event_id: Mapped[str64 | None] = mapped_column(
        unique=True, comment="Scanner-supplied id that makes retries idempotent"
    )
    prev_hash: Mapped[str | None] = mapped_column(sa.String(64))
    hash: Mapped[str] = mapped_column(
        sa.String(64),
        comment="HMAC-SHA256 under the custody key (plain SHA-256 if key_id "
        "is NULL: written before the key, sealed since)",
    )
    key_id: Mapped[str | None] = mapped_column(sa.String(16), comment="Id of the custody key of the digest")

    specimen: Mapped[Specimen] = relationship()
    actor: Mapped[User | None] = relationship()


@sa.event.listens_for(CustodyEvent, "before_update")
def _refuse_update(_mapper: Any, _conn: Any, target: CustodyEvent) -> None:
    raise RuntimeError(f"custody event {target.id} is append-only and cannot be updated")


@sa.event.listens_for(CustodyEvent, "before_delete")
def _refuse_delete(_mapper: Any, _conn: Any, target: CustodyEvent) -> None:
    raise RuntimeError(f"custody event {target.id} is append-only and cannot be deleted")
