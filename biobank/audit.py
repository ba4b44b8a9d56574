"""Writes an AuditRecord for every insert, update and delete of audited rows, in the same flush."""

from __future__ import annotations

import datetime as dt
import enum
import functools
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, inspect
from sqlalchemy.orm import MANYTOONE, Session, UOWTransaction
from sqlalchemy.orm.attributes import set_committed_value

from biobank.db import utcnow
from biobank.models.audit import AuditRecord
from biobank.models.mixins import Audited
from biobank.models.vocab import AuditAction

SYSTEM_ACTOR = "system"
_AUDIT_INSERT = sa.insert(AuditRecord.__table__)


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
        if attr.key not in state.committed_state:
            continue  # not set since it was loaded
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


def _base(session: Session) -> dict[str, Any]:
    """What every audit row of *session*'s changes now says: when, who, why."""
    return {
        "occurred_at": utcnow(),
        "actor_id": session.info.get("actor_id"),
        "actor_name": session.info.get("actor_name") or SYSTEM_ACTOR,
        "reason": session.info.get("audit_reason"),
    }


@event.listens_for(Session, "after_flush")
def _write_audit(session: Session, _ctx: UOWTransaction) -> None:
    base = _base(session)
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
        session.connection().execute(_AUDIT_INSERT, rows)


def write_changes(session: Session, obj: Any) -> None:
    """Write the changes made to *obj* (a persistent row of one table) with one UPDATE,
    and its audit record with one INSERT: the statements a flush would issue for it, without
    the unit of work, for a path that changes one row at a time (a scan).

    As in a flush, a many-to-one relationship set on *obj* gives its foreign key and the
    mapper's ``before_update`` listeners run first; the audit record is the one the flush
    would write, and *obj* is left as after a flush (its changes committed to its state,
    nothing left for the next flush of it). A row this cannot write as a flush would (not
    stored yet, of several tables, versioned) is refused with ``ValueError``."""
    state = inspect(obj)
    mapper = state.mapper
    if state.key is None or len(mapper.tables) != 1 or mapper.version_id_col is not None:
        raise ValueError(f"this {mapper.class_.__name__} is written by a flush, not by write_changes")
    connection = session.connection()
    for rel in mapper.relationships:
        if rel.direction is MANYTOONE and rel.key in state.committed_state:
            _take_key(obj, mapper, rel)
    mapper.dispatch.before_update(mapper, connection, state)
    changed = {
        attr.columns[0]: getattr(obj, attr.key)
        for attr in mapper.column_attrs
        if attr.key in state.committed_state and state.attrs[attr.key].history.has_changes()
    }
    audit = _diff(obj) if isinstance(obj, Audited) else {}
    table = mapper.local_table
    if changed:
        statement, renewed = _update_statement(table, tuple(column.key for column in changed))
        values = {f"new_{column.key}": value for column, value in changed.items()}
        values.update(
            (f"key_{column.key}", ident)
            for column, ident in zip(mapper.primary_key, state.identity, strict=True)
        )
        fresh = connection.execute(statement, values).one()
        # (with no column renewed, the row answers its key, which is known already)
        for column, value in zip(renewed, fresh, strict=False):
            set_committed_value(obj, mapper.get_property_by_column(column).key, value)
        mapper.dispatch.after_update(mapper, connection, state)
    # what a flush does last: the values written become the row's committed state
    state._commit_all(state.dict, session.identity_map)
    if audit:
        connection.execute(
            _AUDIT_INSERT,
            _base(session)
            | {
                "action": AuditAction.UPDATE,
                "entity": table.name,
                "entity_id": _identity(obj),
                "changes": audit,
            },
        )


@functools.lru_cache(maxsize=256)
def _update_statement(table: sa.Table, keys: tuple[str, ...]) -> tuple[sa.Update, list[sa.Column]]:
    """UPDATE of *table*'s columns *keys* by primary key (parameters ``new_<column>`` and
    ``key_<column>``), returning the columns it renews on every update (``updated_at``),
    which it also answers; built once per set of columns."""
    renewed = [c for c in table.columns if c.onupdate is not None and c.key not in keys]
    statement = table.update().values({table.c[key]: sa.bindparam(f"new_{key}") for key in keys})
    for column in table.primary_key:
        statement = statement.where(column == sa.bindparam(f"key_{column.key}"))
    # a row always answers (the version of it that is written): RETURNING needs a column
    return statement.returning(*(renewed or list(table.primary_key))), renewed


def _take_key(obj: Any, mapper: sa.orm.Mapper[Any], rel: Any) -> None:
    """Set the foreign key of *obj*'s (mapped by *mapper*) many-to-one relationship *rel*
    from the row it now points to, as a flush does."""
    target = getattr(obj, rel.key)
    found = None if target is None else inspect(target)
    if found is not None and found.key is None:
        raise ValueError(f"{rel.key} of {obj!r} is not stored yet: flush instead")
    for local, remote in rel.local_remote_pairs:
        key = None if found is None else getattr(target, found.mapper.get_property_by_column(remote).key)
        setattr(obj, mapper.get_property_by_column(local).key, key)


@event.listens_for(Session, "after_rollback")
def _forget_deletes(session: Session) -> None:
    session.info.pop("_audit_deleted", None)
