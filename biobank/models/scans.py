"""Scans from barcode scanners, custody checkpoints, barcode sequences and rack scans."""

from __future__ import annotations

import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from biobank.db import created_at, db, intpk, str16, str32, str64, timestamp
from biobank.models.custody import CustodyEvent
from biobank.models.specimens import Specimen
from biobank.models.storage import StorageContainer
from biobank.models.users import User


class ScanAction(enum.Enum):
    RECEIVE = "receive"
    STORE = "store"
    MOVE = "move"
    CHECK_OUT = "check_out"
    CHECK_IN = "check_in"
    THAW = "thaw"
    SHIP = "ship"
    RECEIVE_AT_DESTINATION = "receive_at_destination"
    CONSUME = "consume"
    DISPOSE = "dispose"
    MARK_MISSING = "mark_missing"


class Scan(db.Model):
    """One accepted scan. The client event id makes a retried scan land once: the stored
    response is returned again instead of recording a second event."""

    __tablename__ = "scans"

    id: Mapped[intpk]
    client_event_id: Mapped[str64] = mapped_column(unique=True)
    request_hash: Mapped[str] = mapped_column(
        sa.String(64), comment="SHA-256 of the scan's content, to refuse a reused id"
    )
    specimen_id: Mapped[int] = mapped_column(sa.ForeignKey("specimens.id"), index=True)
    custody_event_id: Mapped[int] = mapped_column(sa.ForeignKey("custody_events.id"))
    action: Mapped[ScanAction]
    actor_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    scanned_at: Mapped[timestamp] = mapped_column(comment="Scanner clock")
    recorded_at: Mapped[created_at]
    response: Mapped[dict[str, Any]] = mapped_column(comment="The answer given to the scanner")

    specimen: Mapped[Specimen] = relationship()
    custody_event: Mapped[CustodyEvent] = relationship()
    actor: Mapped[User] = relationship()


class CustodyCheckpoint(db.Model):
    """Digests of every specimen's chain head at one moment, chained to the previous
    checkpoint and signed with a key kept outside the database: deleting or rewriting a
    whole chain, or a checkpoint, is then detected. Each is also appended to a store
    outside the database (and sent to witnesses), so deleting checkpoints is detected too.

    A *seal* is the checkpoint of the events written before the custody key: it digests
    the heads of their chains, and verification holds them to it."""

    __tablename__ = "custody_checkpoints"

    id: Mapped[intpk]
    kind: Mapped[str16] = mapped_column(default="checkpoint", comment="checkpoint or seal")
    created_at: Mapped[created_at]
    max_event_id: Mapped[int] = mapped_column(comment="Last custody event covered")
    specimen_count: Mapped[int] = mapped_column(comment="Specimens with at least one event")
    event_count: Mapped[int]
    buckets: Mapped[dict[str, Any]] = mapped_column(
        comment='{"<specimen id // 256>": [digest of that bucket\'s chain heads, events]}'
    )
    root: Mapped[str | None] = mapped_column(sa.String(64), comment="Merkle root of the bucket digests")
    prev_hash: Mapped[str | None] = mapped_column(sa.String(64))
    key_id: Mapped[str | None] = mapped_column(sa.String(16), comment="Id of the signing key")
    hash: Mapped[str] = mapped_column(sa.String(64), comment="HMAC-SHA256 with the custody key")

    def as_record(self) -> dict[str, Any]:
        """The checkpoint as the store outside the database keeps it (and witnesses, but
        for the bucket heads): enough to check its signature alone."""
        return {
            "id": self.id,
            "kind": self.kind,
            "created_at": self.created_at.isoformat(timespec="microseconds"),
            "max_event_id": self.max_event_id,
            "specimen_count": self.specimen_count,
            "event_count": self.event_count,
            "buckets": self.buckets,
            "root": self.root,
            "prev_hash": self.prev_hash,
            "key_id": self.key_id,
            "hash": self.hash,
        }


class BarcodeSequence(db.Model):
    """The last number issued per barcode prefix (site code + material code)."""

    __tablename__ = "barcode_sequences"

    prefix: Mapped[str32] = mapped_column(primary_key=True)
    last_value: Mapped[int] = mapped_column(default=0)


class RackScanStatus(enum.Enum):
    PENDING = "pending"
    CONFIRMED = "confirmed"


class RackScan(db.Model):
    """An uploaded rack-scanner file for a box and its difference with the records."""

    __tablename__ = "rack_scans"

    id: Mapped[intpk]
    container_id: Mapped[int] = mapped_column(sa.ForeignKey("storage_containers.id"), index=True)
    actor_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    created_at: Mapped[created_at]
    file_format: Mapped[str32]
    file_sha256: Mapped[str] = mapped_column(sa.String(64))
    rack_barcode: Mapped[str64 | None]
    positions: Mapped[dict[str, Any]] = mapped_column(comment='{"A1": "barcode" or null}')
    diff: Mapped[dict[str, Any]]
    status: Mapped[RackScanStatus] = mapped_column(default=RackScanStatus.PENDING)
    confirmed_at: Mapped[timestamp | None]

    container: Mapped[StorageContainer] = relationship()
