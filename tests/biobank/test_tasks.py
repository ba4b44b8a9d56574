"""Background tasks: in-process on the embedded default, on a real Redis broker in workers."""

from __future__ import annotations

import sqlalchemy as sa

from biobank.models import CustodyCheckpoint
from biobank.tasks import celery, custody_checkpoint


def test_checkpoint_task_runs_in_process_by_default(make, site, technician, db_session):
    from biobank.models.vocab import CustodyEventType
    from biobank.services.custody import record_custody_event

    specimen = make.specimen(participant=make.participant(site=site))
    record_custody_event(specimen, CustodyEventType.RECEIVED, actor=technician)
    assert celery.conf.task_always_eager is True
    result = custody_checkpoint.delay().get()
    stored = db_session.scalars(sa.select(CustodyCheckpoint)).one()
    assert result == {"id": stored.id, "events": 1, "hash": stored.hash}
    assert "custody-checkpoint" in celery.conf.beat_schedule


def test_checkpoint_task_runs_in_a_worker_over_redis(tmp_path):
    """The same task through a real broker: Redis, and a Celery worker thread."""
    import pytest
    import redis

    from biobank import create_app
    from biobank.db import db
    from biobank.tasks import init_celery
    from tests.conftest import separate_database

    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=2).ping()
    except redis.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    from celery.contrib.testing.worker import start_worker

    url = separate_database(tmp_path, "worker")
    app = create_app({"DATABASE_URL": url, "CELERY_BROKER_URL": "redis://127.0.0.1:6379/15",
                      "CELERY_RESULT_BACKEND": "redis://127.0.0.1:6379/15"})
    try:
        with app.app_context():
            from biobank import migrate

            migrate.upgrade()
        assert celery.conf.task_always_eager is False
        celery.control.purge()  # nothing left over from an earlier, interrupted run
        with start_worker(celery, perform_ping_check=False, pool="solo", loglevel="WARNING"):
            result = custody_checkpoint.delay().get(timeout=30)
        with app.app_context():
            stored = db.session.scalars(sa.select(CustodyCheckpoint)).one()
            assert result["id"] == stored.id
            db.session.remove()
            db.engine.dispose()
    finally:
        # Put the shared Celery app back to in-process mode for the other tests.
        init_celery(create_app({"DATABASE_URL": url}))
