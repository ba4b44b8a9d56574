"""The database layer. SQLite plans its queries by table statistics: they are gathered
after large imports, after the demo load and when `serve` finds none; PostgreSQL keeps its
own. A request that only read ends with COMMIT. A server's pooled connection is checked
before use when it sat idle, and replaced when the server dropped it."""

from __future__ import annotations

import contextlib
import time

import pytest
import sqlalchemy as sa

from biobank.db import db, refresh_statistics
from biobank.models.imports import ImportStatus
from biobank.services import imports
from biobank.services.barcodes import resolve_barcode
from tests.biobank.services.test_imports import MASTER, run, storage  # noqa: F401  (a fixture)
from tests.conftest import TEST_DATABASE_URL, is_postgres


def _statistics(db_session):
    if db_session.get_bind().dialect.name != "sqlite":
        return None
    return (
        db_session.execute(sa.text("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")).scalar()
        and db_session.execute(sa.text("SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'specimens'")).scalar()
    )


def test_statistics_are_gathered_on_sqlite_only(db_session, make, site):
    make.specimen(participant=make.participant(site=site))
    sqlite = db_session.get_bind().dialect.name == "sqlite"
    assert refresh_statistics() is sqlite
    if sqlite:
        assert _statistics(db_session) > 0  # every index of the table has its figures
        assert refresh_statistics(only_if_missing=True) is False  # there already
        assert refresh_statistics() is True


def test_a_large_import_gathers_them_again(db_session, manager, storage, monkeypatch):
    sqlite = db_session.get_bind().dialect.name == "sqlite"
    if sqlite and _statistics(db_session):
        db_session.execute(sa.text("DELETE FROM sqlite_stat1"))  # as if never gathered
        db_session.commit()
        assert not _statistics(db_session)
    monkeypatch.setattr(imports, "STATISTICS_AFTER_ROWS", 10)  # the master file's ten rows
    job = run(MASTER, manager)
    assert job.status is ImportStatus.SUCCEEDED and job.rows_read == 10
    if sqlite:
        assert _statistics(db_session) > 0


def _plans(db_session, run):
    """The query plan of every statement *run* sends."""
    connection = db_session.connection()
    sent = []

    def grab(_conn, _cursor, statement, parameters, _context, _many):
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append((statement, parameters))

    sa.event.listen(connection, "before_cursor_execute", grab)
    try:
        run()
    finally:
        sa.event.remove(connection, "before_cursor_execute", grab)
    return [
        [row[-1] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
        for statement, parameters in sent
    ]


def test_a_scan_reads_index_entries_when_manufacturer_codes_are_mostly_missing(db_session, make, site):
    """ANALYZE counts NULL as a value every such row shares: the manufacturer's-barcode
    index then looked useless, and every scan (barcode or manufacturer code) read the whole
    table. The statistics are corrected after ANALYZE."""
    if db_session.get_bind().dialect.name != "sqlite":
        return  # PostgreSQL's statistics know NULLs apart
    person = make.participant(site=site)
    tubes = [make.specimen(participant=person) for _ in range(40)]
    db_session.commit()
    lookup = lambda: resolve_barcode(tubes[7].barcode)  # noqa: E731
    db_session.execute(sa.text("ANALYZE"))  # the figures as SQLite gathers them
    db_session.execute(sa.text("ANALYZE sqlite_master"))
    assert any("SCAN specimens" in step for plan in _plans(db_session, lookup) for step in plan)
    db_session.commit()
    # a database whose figures predate the correction gets it when `serve` starts
    assert refresh_statistics(only_if_missing=True) is False
    plans = _plans(db_session, lookup)
    assert plans and not any("SCAN specimens" in step for plan in plans for step in plan), plans
    assert refresh_statistics() is True
    plans = _plans(db_session, lookup)
    assert plans and not any("SCAN specimens" in step for plan in plans for step in plan), plans
    assert lookup() is tubes[7]


def test_a_request_that_only_read_ends_with_commit_any_other_with_rollback(app):
    """psycopg forgets a connection's prepared statements at every ROLLBACK: a request that
    only read ends its transaction with COMMIT (the same to the database), so its statements
    stay prepared. A write, flushed or pending, a statement not known to be a SELECT, or an
    error, still ends in ROLLBACK, and nothing of it is kept."""
    from biobank.db import db, utcnow
    from biobank.models import Site
    from biobank.models.users import Throttle

    ends: list[str] = []

    def commit(_conn):
        ends.append("commit")

    def rollback(_conn):
        ends.append("rollback")

    def request(work, *, fail=False):
        ends.clear()
        try:
            with app.app_context():
                work()
                if fail:
                    raise RuntimeError("the view failed")
        except RuntimeError:
            pass
        return list(ends)

    def throttle():
        return Throttle(key="test-end-reads", failures=1, updated_at=utcnow())

    def pending():
        db.session.execute(sa.select(Site.id)).all()
        db.session.add(throttle())

    def flushed():
        db.session.add(throttle())
        db.session.flush()

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "commit", commit)
    sa.event.listen(engine, "rollback", rollback)
    try:
        assert request(lambda: db.session.execute(sa.select(Site.id)).all()) == ["commit"]
        assert request(lambda: db.session.get(Site, -1)) == ["commit"]
        assert request(pending) == ["rollback"]
        assert request(flushed) == ["rollback"]
        assert request(lambda: db.session.execute(sa.text("SELECT 1")).all()) == ["rollback"]
        assert request(lambda: db.session.execute(sa.select(Site.id)).all(), fail=True) == ["rollback"]
        assert request(lambda: None) == []
    finally:
        sa.event.remove(engine, "commit", commit)
        sa.event.remove(engine, "rollback", rollback)
    with app.app_context():
        assert db.session.get(Throttle, "test-end-reads") is None


@contextlib.contextmanager
def _server_app(window: float):
    """An app of its own on the test server, with a real pool (the shared test app's
    session is bound to one connection), and a route that reads; its pool is closed after."""
    from biobank import create_app

    app = create_app({"DATABASE_URL": TEST_DATABASE_URL, "DATABASE_PING_AFTER_IDLE_SECONDS": window})

    @app.get("/api/v1/backend-pid")
    def backend_pid():
        return {"pid": db.session.execute(sa.text("select pg_backend_pid()")).scalar_one()}

    try:
        yield app
    finally:
        with app.app_context():
            db.engine.dispose()


def _drop(pid: int) -> None:
    """Drop a server connection as a restart or an idle timeout would."""
    admin = sa.create_engine(TEST_DATABASE_URL)
    with admin.begin() as conn:
        assert conn.execute(sa.text("select pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    admin.dispose()


def _pings(app, monkeypatch) -> list[object]:
    """The pings the pool sends (the dialect's own ``do_ping``, still called)."""

    with app.app_context():
        dialect = db.engine.dialect
    sent: list[object] = []
    ping = dialect.do_ping

    def counted(dbapi_connection):
        sent.append(dbapi_connection)
        return ping(dbapi_connection)

    monkeypatch.setattr(dialect, "do_ping", counted)
    return sent


@pytest.mark.skipif(not is_postgres(), reason="a server's pooled connections (SQLite has none)")
def test_a_connection_dropped_while_idle_in_the_pool_is_replaced_before_a_request_uses_it(monkeypatch):
    with _server_app(0.05) as app:
        pings = _pings(app, monkeypatch)
        client = app.test_client()
        first = client.get("/api/v1/backend-pid").get_json()["pid"]
        _drop(first)
        time.sleep(0.1)  # longer than the window: the pool checks before handing it out
        answer = client.get("/api/v1/backend-pid")
        assert answer.status_code == 200
        assert answer.get_json()["pid"] != first
        assert len(pings) == 1


@pytest.mark.skipif(not is_postgres(), reason="a server's pooled connections (SQLite has none)")
def test_a_connection_in_steady_use_is_not_pinged_and_a_drop_within_the_window_answers_503(monkeypatch):
    with _server_app(60) as app:
        pings = _pings(app, monkeypatch)
        client = app.test_client()
        pids = {client.get("/api/v1/backend-pid").get_json()["pid"] for _ in range(5)}
        assert len(pids) == 1 and pings == []  # one connection, handed over as it was
        _drop(pids.pop())
        lost = client.get("/api/v1/backend-pid")
        assert lost.status_code == 503, lost.get_data(as_text=True)
        assert lost.headers["Retry-After"] == "1"
        assert "connection to the database was lost" in lost.get_json()["detail"]
        assert client.get("/api/v1/backend-pid").status_code == 200  # replaced
