"""Test fixtures: one migrated database per run, a rolled-back savepoint per test.

The database is SQLite in a temporary folder unless ``BIOBANK_TEST_DATABASE_URL`` names
another (PostgreSQL in CI). The schema is built by the migrations, not ``create_all``.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_sqlalchemy.session import _app_ctx_id

from biobank import create_app
from biobank.audit import set_actor
from biobank.db import db
from tests.factories import Builder

TEST_DATABASE_URL = os.environ.get("BIOBANK_TEST_DATABASE_URL", "")


def is_postgres() -> bool:
    return TEST_DATABASE_URL.startswith("postgresql")


def reset_database(url: str) -> None:
    """Drop everything in the test database so the migrations start from empty."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("DROP SCHEMA public CASCADE")
            conn.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()


def wipe(engine: sa.Engine) -> None:
    """Delete every row committed by a test, the append-only custody ledger included
    (its PostgreSQL triggers are bypassed for this session only, as a superuser could)."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        for table in reversed(db.metadata.sorted_tables):
            conn.execute(table.delete())


def separate_database(tmp_path: Path, suffix: str) -> str:
    """A fresh, empty database of its own (for code that commits for real or builds its
    own schema): a SQLite file, or a new PostgreSQL database next to the test one."""
    if not TEST_DATABASE_URL:
        return f"sqlite:///{tmp_path / f'{suffix}.db'}"
    url = sa.engine.make_url(TEST_DATABASE_URL)
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"{url.database}_{suffix}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


@contextlib.contextmanager
def worker_app(tmp_path: Path, suffix: str) -> Iterator[Flask]:
    """An app on a migrated database of its own whose tasks go through a real broker
    (Redis, db 15) to the Celery worker the caller starts; the shared Celery app is put back
    in-process afterwards. Skips without Redis on 127.0.0.1:6379."""
    import redis
    from kombu import pools

    from biobank.jobs import celery, init_celery

    try:
        with redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2) as client:
            client.ping()
    except redis.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    url = separate_database(tmp_path, suffix)
    app = create_app(
        {
            "DATABASE_URL": url,
            "CELERY_BROKER_URL": "redis://127.0.0.1:6379/15",
            "CELERY_RESULT_BACKEND": "redis://127.0.0.1:6379/15",
        }
    )
    try:
        with app.app_context():
            from biobank import migrate

            migrate.upgrade()
        assert celery.conf.task_always_eager is False
        # one result backend for every thread, the worker's too, so that it is closed below
        # (a worker thread's own would be left to the garbage collector, socket open)
        celery.conf.result_backend_thread_safe = True
        celery.control.purge()  # nothing left over from an earlier, interrupted run
        yield app
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    finally:
        # Every Redis connection (result backend, its pub/sub listener, the broker pools kombu
        # keeps process-wide) closes now, not whenever a later test happens to collect it.
        celery.backend.result_consumer.stop()
        celery.backend.client.connection_pool.disconnect()
        pools.reset()
        celery.conf.result_backend_thread_safe = False
        gc.collect()
        # Put the shared Celery app back to in-process mode for the other tests.
        init_celery(create_app({"DATABASE_URL": url}))


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    if TEST_DATABASE_URL:
        reset_database(TEST_DATABASE_URL)
        return TEST_DATABASE_URL
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


@pytest.fixture(scope="session")
def app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    os.environ["BIOBANK_INSTANCE_PATH"] = str(tmp_path_factory.mktemp("instance"))
    # The test client speaks plain HTTP: an HTTPS-only cookie would never come back.
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": database_url,
            "SECRET_KEY": "test",
            "SESSION_COOKIE_SECURE": False,
            # rows come and go with every test: counted on every visit (test_pages keeps them)
            "SUMMARY_CACHE_SECONDS": 0,
        }
    )
    with app.app_context():
        from biobank import migrate

        migrate.upgrade()
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture(autouse=True)
def custody_store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Each test keeps custody checkpoints outside the database in a folder of its own, as
    its database changes are its own."""
    if "app" not in request.fixturenames:
        yield
        return
    app = request.getfixturevalue("app")
    app.config["CUSTODY_CHECKPOINT_DIR"] = str(tmp_path_factory.mktemp("custody-store"))
    yield
    app.config["CUSTODY_CHECKPOINT_DIR"] = ""


@pytest.fixture
def db_session(app: Flask) -> Iterator[Any]:
    """A session inside an outer transaction that is always rolled back.

    Code under test may commit: with ``join_transaction_mode="create_savepoint"`` a commit
    only releases a savepoint, so nothing outlives the test.
    """
    with app.app_context():
        connection = db.engine.connect()
        outer = connection.begin()
        original = db.session
        # A plain Session: Flask-SQLAlchemy's own ignores `bind` and would use the engine.
        factory = sa.orm.sessionmaker(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        db.session = sa.orm.scoped_session(factory, scopefunc=_app_ctx_id)
        try:
            yield db.session
        finally:
            db.session.remove()
            db.session = original
            outer.rollback()
            connection.close()


@pytest.fixture
def make(db_session: Any) -> Builder:
    return Builder(db_session)


@pytest.fixture
def site(make: Builder) -> Any:
    return make.site(code="CTR", name="Central Hospital")


@pytest.fixture
def other_site(make: Builder) -> Any:
    return make.site(code="NRT", name="Northern Hospital")


@pytest.fixture
def admin(make: Builder, site: Any) -> Any:
    return make.user("admin", role="admin", sites=[site])


@pytest.fixture
def manager(make: Builder, site: Any) -> Any:
    return make.user("manager", role="manager", sites=[site])


@pytest.fixture
def technician(make: Builder, site: Any, db_session: Any) -> Any:
    user = make.user("tech", role="technician", sites=[site])
    set_actor(db_session, user)
    return user


@pytest.fixture
def researcher(make: Builder, site: Any) -> Any:
    return make.user("researcher", role="researcher", sites=[site])


@pytest.fixture
def client(app: Flask, db_session: Any) -> Any:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> Any:
    return app.test_cli_runner()


@pytest.fixture
def headers(make: Builder) -> Any:
    """``headers(user)`` → bearer-token headers for *user*."""
    return make.auth_headers
