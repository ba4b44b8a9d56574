"""The audit trail: who changed which row, when, from what to what, and why."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from biobank.db import db, intpk, str64, timestamp
from biobank.models.vocab import AuditAction


class AuditRecord(db.Model):
    __tablename__ = "audit_records"
    __table_args__ = (sa.Index("ix_audit_records_entity", "entity", "entity_id"),)

    id: Mapped[intpk]
    occurred_at: Mapped[timestamp]
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    actor_name: Mapped[str64]
    action: Mapped[AuditAction]
    entity: Mapped[str64] = mapped_column(comment="Table name of the changed row")
    entity_id: Mapped[str64]
    changes: Mapped[dict[str, Any]] = mapped_column(
        comment='{"field": [old, new]} for updates; the full row for inserts and deletes'
    )
    reason: Mapped[str | None] = mapped_column(sa.Text)
