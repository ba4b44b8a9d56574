"""Witnesses: custody checkpoints exchanged with other LIMS instances of the network.

An instance sends each of its checkpoints (heads, counts and Merkle root, not the chains)
to the instances it names as witnesses; each keeps it and answers with a countersignature
under its own custody key. Whoever controls one instance's database and files cannot reach
what the others keep.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from biobank.db import db, intpk, str16, str64, str128, str255, timestamp


class WitnessedCheckpoint(db.Model):
    """A checkpoint of another instance, kept here and countersigned. Never changed."""

    __tablename__ = "witnessed_checkpoints"
    __table_args__ = (sa.UniqueConstraint("instance", "checkpoint_id"),)

    id: Mapped[intpk]
    instance: Mapped[str128] = mapped_column(comment="Name of the instance that sent it")
    submitted_by: Mapped[str64] = mapped_column(
        comment="The account here that instance signs in with; only it adds to the instance"
    )
    checkpoint_id: Mapped[int]
    kind: Mapped[str16]
    created_at: Mapped[str64] = mapped_column(comment="When the instance made it (its clock)")
    max_event_id: Mapped[int]
    specimen_count: Mapped[int]
    event_count: Mapped[int]
    root: Mapped[str | None] = mapped_column(sa.String(64))
    prev_hash: Mapped[str | None] = mapped_column(sa.String(64))
    signature: Mapped[str] = mapped_column(sa.String(64), comment="The instance's own signature of it")
    key_id: Mapped[str16 | None] = mapped_column(comment="Id of the instance's custody key")
    received_at: Mapped[timestamp]
    countersignature: Mapped[str] = mapped_column(
        sa.String(64), comment="HMAC-SHA256 under this instance's custody key"
    )
    witness_key_id: Mapped[str16]


class WitnessReceipt(db.Model):
    """A witness's countersignature of one of this instance's checkpoints."""

    __tablename__ = "custody_witness_receipts"
    __table_args__ = (sa.UniqueConstraint("checkpoint_id", "witness"),)

    id: Mapped[intpk]
    checkpoint_id: Mapped[int] = mapped_column(
        comment="custody_checkpoints.id (no foreign key: the receipt outlives a deleted row)"
    )
    witness: Mapped[str255] = mapped_column(comment="The witness's base URL")
    received_at: Mapped[str64] = mapped_column(comment="When the witness received it")
    countersignature: Mapped[str] = mapped_column(sa.String(64))
    witness_key_id: Mapped[str16]


def _refuse(kind: str) -> Any:
    def refuse(_mapper: Any, _conn: Any, target: Any) -> None:
        raise RuntimeError(f"{target.__tablename__} are append-only: {kind} refused")

    return refuse


for _model in (WitnessedCheckpoint, WitnessReceipt):
    sa.event.listen(_model, "before_update", _refuse("update"))
    sa.event.listen(_model, "before_delete", _refuse("delete"))
