"""The application factory."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path
from typing import Any

from flask import Flask, g

from biobank import signals
from biobank.config import Config
from biobank.db import configure_engine_events, db, end_reads


def _secret_key(instance_path: Path) -> str:
    """A per-installation secret kept in the instance folder, created on first start."""
    path = instance_path / "secret_key"
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_hex(32)
    path.write_text(key)
    path.chmod(0o600)
    return key


def _time_requests(app: Flask) -> None:
    """Every answer says how long the server took (``Server-Timing: app;dur=12.3``, in ms),
    so browsers' developer tools and load tests see server time apart from the network.
    Registered first: its clock includes signing in and every other hook."""

    @app.before_request
    def _start_clock() -> None:
        g.request_started = time.perf_counter()

    @app.after_request
    def _server_timing(response: Any) -> Any:
        started = g.get("request_started")
        if started is not None:
            response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
        return response


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the Flask app.

    Configuration is layered: ``Config`` defaults, then ``BIOBANK_*`` environment variables,
    then ``biobank.cfg`` in the instance folder, then *test_config*.
    """
    instance_path = os.environ.get("BIOBANK_INSTANCE_PATH") or None
    app = Flask("biobank", instance_path=instance_path, instance_relative_config=True)
    app.config.from_object(Config)
    app.config.from_prefixed_env("BIOBANK")
    app.config.from_pyfile("biobank.cfg", silent=True)
    if test_config:
        app.config.from_mapping(test_config)

    instance = Path(app.instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = _secret_key(instance)
    url = app.config["DATABASE_URL"] or f"sqlite:///{instance / 'biobank.db'}"
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {})

    import biobank.audit
    import biobank.models

    db.init_app(app)
    with app.app_context():
        configure_engine_events(
            db.engine, ping_after_idle=float(app.config["DATABASE_PING_AFTER_IDLE_SECONDS"])
        )
    # Registered after the session's own teardown, so it runs before it.
    app.teardown_appcontext(end_reads)

    import biobank.tasks  # noqa: F401  (registers the biobank's tasks by name)
    from biobank import auth, cli, jobs, query, web
    from biobank.api import register_api

    _time_requests(app)
    auth.init_app(app)
    query.init_app(app)
    register_api(app)
    web.init_app(app)
    cli.init_app(app)
    jobs.init_celery(app)

    # The domain packages built on biobank register themselves here, and only here.
    from labels.extension import init_app as init_labels
    from omics.extension import init_app as init_omics

    init_labels(app)
    init_omics(app)

    signals.app_created.send(app)
    return app
