"""Background tasks: in-process on the embedded default, on a real Redis broker in workers."""

from __future__ import annotations

import sqlalchemy as sa

from biobank.jobs import celery
from biobank.models import CustodyCheckpoint
from biobank.tasks import custody_checkpoint


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
    from celery.contrib.testing.worker import start_worker

    from biobank.db import db
    from tests.conftest import worker_app

    with worker_app(tmp_path, "worker") as app:
        with start_worker(celery, perform_ping_check=False, pool="solo", loglevel="WARNING"):
            result = custody_checkpoint.delay().get(timeout=30)
        with app.app_context():
            stored = db.session.scalars(sa.select(CustodyCheckpoint)).one()
            assert result["id"] == stored.id
