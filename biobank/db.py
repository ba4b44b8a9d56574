"""Declarative base, session object, column types and the transaction boundary."""

from __future__ import annotations

import datetime as dt
import enum
import functools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from decimal import Decimal
from typing import Annotated, Any

import sqlalchemy as sa
from flask import has_request_context, request
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


@functools.cache
def inserting(table: sa.Table) -> sa.Insert:
    """One row's INSERT into *table*, answering its new id (built once per table: for rows
    written one at a time, many times a second, without the unit of work)."""
    return sa.insert(table).returning(table.c.id)


def utcnow() -> dt.datetime:
    """The current time, timezone-aware in UTC."""
    return dt.datetime.now(dt.UTC)


class UTCDateTime(sa.TypeDecorator):
    """A timestamp always stored and returned as UTC.

    SQLite keeps no zone, so values read back are made aware again; naive input is refused
    because a wall-clock time without a zone cannot be placed on a custody timeline.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: a timezone is required")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def _enum_values(enum_cls: type[enum.Enum]) -> list[str]:
    return [member.value for member in enum_cls]


intpk = Annotated[int, mapped_column(primary_key=True)]
str16 = Annotated[str, 16]
str32 = Annotated[str, 32]
str64 = Annotated[str, 64]
str128 = Annotated[str, 128]
str255 = Annotated[str, 255]
timestamp = Annotated[dt.datetime, "utc"]
created_at = Annotated[dt.datetime, mapped_column(UTCDateTime(), default=utcnow)]
updated_at = Annotated[dt.datetime, mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)]
quantity = Annotated[Decimal, "quantity"]


class Base(DeclarativeBase):
    # An explicit registry: Flask-SQLAlchemy 3.1 rejects a `type_annotation_map`
    # attribute on the base (pallets-eco/flask-sqlalchemy#1361).
    registry = sa.orm.registry(
        metadata=sa.MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={
            # Enums are stored by value in a VARCHAR with a CHECK, so renaming a Python
            # member never rewrites data and PostgreSQL needs no ALTER TYPE migrations.
            enum.Enum: sa.Enum(
                enum.Enum,
                native_enum=False,
                create_constraint=True,
                length=32,
                values_callable=_enum_values,
                validate_strings=True,
            ),
            str16: sa.String(16),
            str32: sa.String(32),
            str64: sa.String(64),
            str128: sa.String(128),
            str255: sa.String(255),
            timestamp: UTCDateTime(),
            quantity: sa.Numeric(12, 3),
            dict[str, Any]: sa.JSON().with_variant(JSONB(), "postgresql"),
            list[str]: sa.JSON().with_variant(JSONB(), "postgresql"),
            list[dict[str, Any]]: sa.JSON().with_variant(JSONB(), "postgresql"),
        },
    )


db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})


def after_commit(func: Callable[[], None]) -> None:
    """Run *func* once the current transaction has committed (printing, task dispatch)."""
    db.session.info.setdefault("after_commit", []).append(func)


@contextmanager
def transaction() -> Iterator[None]:
    """Commit once on success, roll back on any error, then run after-commit hooks.

    The one place that commits: API views, page handlers, CLI commands and tasks wrap their
    work in it; services only flush.
    """
    try:
        yield
        db.session.commit()
    except BaseException:
        db.session.rollback()
        db.session.info.pop("after_commit", None)
        raise
    for func in db.session.info.pop("after_commit", []):
        func()


def configure_engine_events(engine: sa.Engine, *, ping_after_idle: float | None = None) -> None:
    """Every database: note whether a transaction wrote (see :func:`end_reads`). A server
    (PostgreSQL): check a pooled connection idle for longer than *ping_after_idle* seconds
    before it is used (see :func:`ping_when_idle`). SQLite: WAL, foreign keys, a busy
    timeout and real (savepoint-capable) transactions."""

    @sa.event.listens_for(engine, "begin")
    def _nothing_written(conn: sa.Connection) -> None:
        conn.info["wrote"] = False

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _note_writes(
        conn: sa.Connection, _cursor: Any, statement: str, _parameters: Any, context: Any, _many: bool
    ) -> None:
        if not conn.info.get("wrote") and not _reads(statement, context):
            conn.info["wrote"] = True

    if engine.dialect.name != "sqlite":
        if ping_after_idle is not None:
            ping_when_idle(engine, ping_after_idle)
        return

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own transaction handling defeats SAVEPOINT; let SQLAlchemy emit BEGIN.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql(_sqlite_begin())


#: when a pooled connection was last given back (in the entry's ``info``, which a new
#: connection of the entry starts without)
_RETURNED = "biobank_returned_at"


def ping_when_idle(engine: sa.Engine, idle_seconds: float) -> None:
    """Check that a pooled connection still reaches the server before it is handed out,
    when it sat in the pool for longer than *idle_seconds*; replace it when it does not.

    This is SQLAlchemy's pre-ping (the same ``dialect.do_ping``, and a dropped connection is
    replaced on checkout in the same way), minus the round trip for connections in steady
    use: a server restart or an idle timeout finds connections that waited, and under load
    every scan and scan card paid a ping for a connection given back milliseconds before.
    A connection that breaks within the window fails its request (a 503) and is replaced."""
    dialect = engine.dialect

    @sa.event.listens_for(engine, "checkin")
    def _given_back(_dbapi_connection: Any, record: Any) -> None:
        record.info[_RETURNED] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _check(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get(_RETURNED)
        if returned is None or time.monotonic() - returned <= idle_seconds:
            return  # new, or in use a moment ago
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if not dialect.is_disconnect(error, dbapi_connection, None):
                raise
            # the pool replaces this connection and checks out again
            raise sa.exc.DisconnectionError(str(error)) from error


def _reads(statement: str, context: Any) -> bool:
    """Whether a statement surely only reads: a compiled SELECT (or SQLite's own BEGIN).
    Anything else, text included, counts as a write."""
    if statement.startswith("BEGIN"):
        return True
    compiled = getattr(context, "compiled", None)
    return compiled is not None and isinstance(compiled.statement, sa.Select)


def end_reads(error: BaseException | None = None) -> None:
    """End a request's transaction with COMMIT when it only read (otherwise the session's
    teardown rolls it back, as before).

    The two are the same to the database, but not to PostgreSQL's driver: psycopg forgets
    every prepared statement of a connection at a ROLLBACK, so ending each read with one
    made every request plan its statements again. Anything written, flushed or pending,
    or an error, keeps the rollback."""
    session = db.session()
    transaction_ = session.get_transaction()
    if error is not None or transaction_ is None or not transaction_.is_active:
        return
    if session.new or session.dirty or session.deleted:
        return
    if session.connection().info.get("wrote", True):
        return
    try:
        session.commit()
    except sa.exc.SQLAlchemyError:
        session.rollback()


_READ_ONLY: ContextVar[bool] = ContextVar("biobank_read_only", default=False)
_WRITING: ContextVar[bool] = ContextVar("biobank_writing", default=False)


@contextmanager
def writing() -> Iterator[None]:
    """Transactions begun inside write, even in a GET request: on SQLite they take the write
    lock when they begin (a read transaction that then writes cannot wait for another
    writer, it fails). For the small bookkeeping writes of reads (a token's last use)."""
    token = _WRITING.set(True)
    try:
        yield
    finally:
        _WRITING.reset(token)


@contextmanager
def read_only() -> Iterator[None]:
    """Transactions begun inside only read: on SQLite they do not take the write lock, so a
    long check (``biobank custody verify``) neither waits for writers nor holds them up."""
    token = _READ_ONLY.set(True)
    try:
        yield
    finally:
        _READ_ONLY.reset(token)


def _sqlite_begin() -> str:
    """Writers take SQLite's write lock when they begin, not halfway through.

    A deferred transaction that reads and then writes fails at once ("database is locked")
    if another writer committed in between; taking the lock up front makes concurrent
    writers queue (busy_timeout) and then see each other's work, so a race for one freezer
    position ends in a clean conflict. Read-only requests and work declared
    :func:`read_only` keep deferred transactions.
    """
    if _WRITING.get():
        return "BEGIN IMMEDIATE"
    if _READ_ONLY.get() or (has_request_context() and request.method in ("GET", "HEAD", "OPTIONS")):
        return "BEGIN"
    return "BEGIN IMMEDIATE"


#: rows an import must write before SQLite's statistics are gathered again after it
STATISTICS_AFTER_ROWS = 10_000


def refresh_statistics(*, only_if_missing: bool = False) -> bool:
    """Gather SQLite's table statistics (``ANALYZE``) in a transaction of the session's own;
    returns whether it ran. Call it with no work pending in the session.

    SQLite plans with statistics only once ``ANALYZE`` has gathered them: without them a
    list of a million tubes of two sites, in barcode order, sorted every row (0.5 s instead
    of 4 ms). They are gathered when ``serve`` starts and finds none, after the demo load and
    after large imports; ``serve`` corrects figures it finds (see ``_discount_nulls``).
    PostgreSQL's autovacuum keeps its own: nothing is done there."""
    if db.session.get_bind().dialect.name != "sqlite":
        return False
    with transaction():
        if (
            only_if_missing
            and db.session.execute(sa.text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_stat1'")).first()
        ):
            _discount_nulls()  # figures gathered before they were corrected are corrected now
            return False
        db.session.execute(sa.text("ANALYZE"))
        _discount_nulls()
    return True


def _discount_nulls() -> None:
    """Correct what ``ANALYZE`` says of an index whose leading column is mostly NULL.

    SQLite counts NULL as one value that all its rows share, so an index on a column that is
    NULL in most rows (a manufacturer's barcode, a label) looks as if ``column = ?`` matched
    most of the table, although an equality never matches NULL. With such figures
    ``barcode = ? OR manufacturer_barcode = ?`` (every scan) read the whole table instead of
    two index entries. The leading figure becomes the rows per distinct non-NULL value, and
    the reloaded statistics are what the planner uses."""
    session = db.session
    changed = False
    for table, index, stat in session.execute(
        sa.text("SELECT tbl, idx, stat FROM sqlite_stat1 WHERE idx IS NOT NULL")
    ).all():
        words = stat.split(" ")
        if len(words) < 2 or not (words[0].isdigit() and words[1].isdigit()):
            continue
        # Only a figure that makes an equality match 1% of the table or more can send the
        # planner past the index; once corrected it is below that, so a restart of `serve`
        # counts nothing again.
        if int(words[1]) < max(2, int(words[0]) // 100):
            continue
        columns = session.execute(sa.text(f'PRAGMA index_info("{index}")')).all()
        nullable = {row[1]: not row[3] for row in session.execute(sa.text(f'PRAGMA table_info("{table}")'))}
        if not columns or not nullable.get(columns[0][2], False):
            continue
        present, distinct = session.execute(
            sa.text(f'SELECT count("{columns[0][2]}"), count(DISTINCT "{columns[0][2]}") FROM "{table}"')
        ).one()
        per_value = max(1, -(-present // distinct)) if distinct else 1
        if per_value >= int(words[1]):
            continue
        numbers = [w for w in words[1:] if w.isdigit()]
        fixed = [str(min(int(n), per_value)) for n in numbers]
        new = " ".join([words[0], *fixed, *words[1 + len(numbers) :]])
        session.execute(
            sa.text("UPDATE sqlite_stat1 SET stat = :stat WHERE tbl = :tbl AND idx = :idx"),
            {"stat": new, "tbl": table, "idx": index},
        )
        changed = True
    if changed:
        session.execute(sa.text("ANALYZE sqlite_master"))  # the planner reloads the figures
