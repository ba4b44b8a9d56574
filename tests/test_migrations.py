"""The migrations build exactly the models' schema, and step down and up again."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from biobank import migrate
from biobank.db import Base, configure_engine_events
from tests.conftest import separate_database


@pytest.fixture
def empty_engine(tmp_path):
    """A fresh, empty database; the shared test database is left alone."""
    engine = sa.create_engine(separate_database(tmp_path, "migrations"))
    configure_engine_events(engine)
    yield engine
    engine.dispose()


def _config(connection):
    from alembic.config import Config

    cfg = Config(str(migrate.MIGRATIONS / "alembic.ini"))
    cfg.set_main_option("script_location", str(migrate.MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def _diff(engine):
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)


def _revision(engine):
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def test_there_is_a_single_head():
    assert len(ScriptDirectory.from_config(_config(None)).get_heads()) == 1


def test_upgrade_from_empty_matches_the_models(empty_engine):
    with empty_engine.begin() as conn:
        command.upgrade(_config(conn), "head")
    assert _diff(empty_engine) == []


def test_downgrade_one_step_and_upgrade_again(empty_engine):
    with empty_engine.begin() as conn:
        command.upgrade(_config(conn), "head")
    script = ScriptDirectory.from_config(_config(None))
    head = script.get_revision(script.get_current_head())
    with empty_engine.begin() as conn:
        command.downgrade(_config(conn), "-1")
    assert _revision(empty_engine) == head.down_revision
    if head.down_revision is None:
        assert "specimens" not in sa.inspect(empty_engine).get_table_names()
    with empty_engine.begin() as conn:
        command.upgrade(_config(conn), "head")
    assert _diff(empty_engine) == []
