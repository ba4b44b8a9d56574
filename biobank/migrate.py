"""Alembic wiring: the project's migrations run on the app's engine. Alembic is loaded when a
migration runs, not by every command and server start that imports this module."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from biobank.db import db, transaction
from biobank.services.ledger import seal_unkeyed_events

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config() -> Config:
    """An Alembic config bound to the current app's database (call in an app context)."""
    from alembic.config import Config

    cfg = Config(str(MIGRATIONS / "alembic.ini"))
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option(
        "sqlalchemy.url", db.engine.url.render_as_string(hide_password=False).replace("%", "%%")
    )
    return cfg


def upgrade(revision: str = "head") -> None:
    from alembic import command

    with db.engine.begin() as connection:
        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)
    if revision == "head":
        seal_ledger()


def seal_ledger() -> None:
    """Seal custody events written before the custody key (once; see
    :func:`biobank.services.ledger.seal_unkeyed_events`), under the key."""
    with transaction():
        seal_unkeyed_events()


def downgrade(revision: str) -> None:
    from alembic import command

    with db.engine.begin() as connection:
        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, revision)


def current_revision() -> str | None:
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
