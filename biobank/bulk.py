"""Writing many rows fast inside the current transaction, each with its audit record.

Rows are buffered per table and written in foreign-key order: with ``COPY … FROM STDIN`` on
PostgreSQL, with one multi-row ``executemany`` on SQLite. Ids are taken before the rows are
written, so rows can point at each other: on PostgreSQL from the table's own sequence (safe
beside concurrent writers), on SQLite by counting on from the largest id (writers hold the
database lock for the whole transaction).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from biobank.audit import plain_value
from biobank.db import db
from biobank.models import AuditRecord
from biobank.models.vocab import AuditAction

ID_BLOCK = 2000


class BulkWriter:
    """Buffer rows of *order* (models in foreign-key order) and write them every *batch*."""

    def __init__(
        self,
        order: list[type],
        *,
        actor_id: int | None,
        actor_name: str,
        reason: str,
        now: dt.datetime,
        batch: int = 5000,
        unaudited: tuple[type, ...] = (),
    ) -> None:
        self.order = order
        self.actor_id, self.actor_name, self.reason, self.now = actor_id, actor_name, reason, now
        self.batch = batch
        self.unaudited = unaudited
        self.rows: dict[type, list[dict[str, Any]]] = defaultdict(list)
        self.updates: list[tuple[sa.Update, dict[str, Any]]] = []
        self.counts: dict[str, int] = defaultdict(int)
        self.pending = 0
        #: goes up at every flush: a row added in the current generation is still buffered
        self.generation = 0
        self._ids: dict[type, list[int]] = defaultdict(list)
        self._next: dict[type, int] = {}
        self.postgres = db.session.get_bind().dialect.name == "postgresql"

    # -- ids ---------------------------------------------------------------------------------

    def next_id(self, model: type) -> int:
        if self.postgres:
            free = self._ids[model]
            if not free:
                # one row holding the whole block: fetching thousands of rows costs more
                free.extend(
                    reversed(
                        db.session.scalar(
                            sa.text(
                                "SELECT array_agg(nextval(pg_get_serial_sequence(:table, 'id'))) "
                                "FROM generate_series(1, :n)"
                            ),
                            {"table": model.__tablename__, "n": ID_BLOCK},
                        )
                    )
                )
            return free.pop()
        if model not in self._next:
            self._next[model] = (db.session.scalar(sa.select(sa.func.max(model.id))) or 0) + 1
        ident = self._next[model]
        self._next[model] += 1
        return ident

    # -- buffering ---------------------------------------------------------------------------

    def add(self, model: type, values: dict[str, Any]) -> dict[str, Any]:
        """Buffer one row (with ``id`` assigned when the table has one) and return it."""
        table = model.__table__
        if "id" in table.c and values.get("id") is None:
            values["id"] = self.next_id(model)
        if "created_at" in table.c and "created_at" not in values:
            values["created_at"] = self.now
            if "updated_at" in table.c:
                values["updated_at"] = self.now
        self.rows[model].append(values)
        self.pending += 1
        if self.pending >= self.batch:
            self.flush()
        return values

    def update(self, stmt: sa.Update, params: dict[str, Any]) -> None:
        """An UPDATE to run after the next batch of inserts (e.g. a parent's new quantity)."""
        self.updates.append((stmt, params))

    def flush(self) -> None:
        audit: list[dict[str, Any]] = []
        for model in self.order:
            batch = self.rows.pop(model, [])
            if not batch:
                continue
            self._insert(model.__table__, batch)
            self.counts[model.__tablename__] += len(batch)
            if model in self.unaudited:
                continue
            key = "id" if "id" in model.__table__.c else model.__table__.primary_key.columns[0].name
            audit.extend(
                {
                    "id": self.next_id(AuditRecord),
                    "occurred_at": self.now,
                    "actor_id": self.actor_id,
                    "actor_name": self.actor_name,
                    "action": AuditAction.INSERT,
                    "entity": model.__tablename__,
                    "entity_id": str(row[key]),
                    "changes": {
                        k: plain_value(v)
                        for k, v in row.items()
                        if v is not None and k not in ("created_at", "updated_at")
                    },
                    "reason": self.reason,
                }
                for row in batch
            )
        for stmt, params in self.updates:
            db.session.execute(stmt, {k: v for k, v in params.items() if k != "_changes"})
            audit.append(
                {
                    "id": self.next_id(AuditRecord),
                    "occurred_at": self.now,
                    "actor_id": self.actor_id,
                    "actor_name": self.actor_name,
                    "action": AuditAction.UPDATE,
                    "entity": stmt.table.name,  # type: ignore[attr-defined]
                    "entity_id": str(params["_id"]),
                    "changes": {
                        k: [plain_value(v[0]), plain_value(v[1])]
                        for k, v in params.get("_changes", {}).items()
                    },
                    "reason": self.reason,
                }
            )
        self.updates.clear()
        if audit:
            self._insert(AuditRecord.__table__, audit)
        self.pending = 0
        self.generation += 1

    # -- writing -----------------------------------------------------------------------------

    def _insert(self, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        if not self.postgres:
            db.session.execute(table.insert(), rows)
            return
        columns = list(rows[0])
        converters = [_copy_converter(table.c[name].type) for name in columns]
        raw = db.session.connection().connection.driver_connection
        names = ", ".join(f'"{name}"' for name in columns)
        with raw.cursor() as cursor, cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row(
                    [
                        convert(row[name]) if convert else row[name]
                        for name, convert in zip(columns, converters, strict=True)
                    ]
                )


def _copy_converter(column_type: Any) -> Callable[[Any], Any] | None:
    """How a Python value of *column_type* goes into COPY (which bypasses SQLAlchemy)."""
    if isinstance(column_type, sa.Enum):
        return lambda v: v.value if v is not None and hasattr(v, "value") else v
    if (
        isinstance(column_type, sa.JSON)
        or column_type.__class__.__name__ == "JSONB"
        or (getattr(column_type, "impl", None) is not None and isinstance(column_type.impl, sa.JSON))
    ):
        from psycopg.types.json import Jsonb

        return lambda v: None if v is None else Jsonb(v)
    return None
