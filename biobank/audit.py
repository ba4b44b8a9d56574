"""Writes an AuditRecord for every insert, update and delete of audited rows, in the same flush."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, inspect
from sqlalchemy.orm import Session, UOWTransaction

from biobank.db import utcnow
from biobank.models.audit import AuditRecord
from biobank.models.mixins import Audited
from biobank.models.vocab import AuditAction

SYSTEM_ACTOR = "system"


def set_actor(session: Session, user: Any, *, reason: str | None = None) -> None:
    """Record who is acting in *session* (and optionally why) for the audit trail."""
    session.info["actor_id"] = getattr(user, "id", None)
    session.info["actor_name"] = getattr(user, "username", None) or SYSTEM_ACTOR
    if reason is not None:
        session.info["audit_reason"] = reason


def set_reason(session: Session, reason: str | None) -> None:
    """Record the reason for the changes made in the current transaction."""
    if reason:
        session.info["audit_reason"] = reason
    else:
        session.info.pop("audit_reason", None)


def plain_value(value: Any) -> Any:
    """A JSON-ready form of a column value (enums by value, dates ISO, decimals as text)."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _identity(obj: Any) -> str:
    # New rows have no identity key until the flush completes; read the primary key itself.
    ident = inspect(obj).mapper.primary_key_from_instance(obj)
    return ",".join(str(part) for part in ident)


def _columns(obj: Any) -> list[Any]:
    exclude = set(getattr(obj, "__audit_exclude__", ())) | {"created_at", "updated_at"}
    return [attr for attr in inspect(obj).mapper.column_attrs if attr.key not in exclude]


def _row(obj: Any) -> dict[str, Any]:
    return {attr.key: plain_value(getattr(obj, attr.key)) for attr in _columns(obj)}


def _diff(obj: Any) -> dict[str, list[Any]]:
    state = inspect(obj)
    changes: dict[str, list[Any]] = {}
    for attr in _columns(obj):
        hist = state.attrs[attr.key].history
        if not hist.has_changes():
            continue
        old = hist.deleted[0] if hist.deleted else None
        new = hist.added[0] if hist.added else None
        if plain_value(old) != plain_value(new):
            changes[attr.key] = [plain_value(old), plain_value(new)]
    return changes


@event.listens_for(Session, "before_flush")
def _capture_deletes(session: Session, _ctx: UOWTransaction, _instances: Any) -> None:
    # Deleted rows are snapshotted before the flush expires their attributes.
    pending = session.info.setdefault("_audit_deleted", [])
    for obj in session.deleted:
        if isinstance(obj, Audited):
            pending.append((obj.__tablename__, _identity(obj), _row(obj)))


@event.listens_for(Session, "after_flush")
def _write_audit(session: Session, _ctx: UOWTransaction) -> None:
    now = utcnow()
    base = {
        "occurred_at": now,
        "actor_id": session.info.get("actor_id"),
        "actor_name": session.info.get("actor_name") or SYSTEM_ACTOR,
        "reason": session.info.get("audit_reason"),
    }
    rows: list[dict[str, Any]] = []
    for obj in session.new:
        if isinstance(obj, Audited):
            rows.append(
                base
                | {
                    "action": AuditAction.INSERT,
                    "entity": obj.__tablename__,
                    "entity_id": _identity(obj),
                    "changes": _row(obj),
                }
            )
    for obj in session.dirty:
        if isinstance(obj, Audited) and session.is_modified(obj, include_collections=False):
            changes = _diff(obj)
            if changes:
                rows.append(
                    base
                    | {
                        "action": AuditAction.UPDATE,
                        "entity": obj.__tablename__,
                        "entity_id": _identity(obj),
                        "changes": changes,
                    }
                )
    for table, ident, row in session.info.pop("_audit_deleted", []):
        rows.append(
            base | {"action": AuditAction.DELETE, "entity": table, "entity_id": ident, "changes": row}
        )
    if rows:
        # A Core insert on the flushing connection: same transaction, no second flush.
        session.connection().execute(sa.insert(AuditRecord), rows)


@event.listens_for(Session, "after_rollback")
def _forget_deletes(session: Session) -> None:
    session.info.pop("_audit_deleted", None)
