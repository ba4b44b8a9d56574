"""Background tasks: in-process on the embedded default, on a real Redis broker in workers."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from biobank.jobs import celery, enqueue
from biobank.models import CustodyCheckpoint
from biobank.services import witnesses
from biobank.tasks import custody_checkpoint
from labels import services as label_services


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


def test_services_queue_tasks_by_names_the_packages_registered(app):
    """Services queue by name (they never import the tasks, which import them): every name
    they use is a registered task once the app is built, and an unknown one is refused."""
    for name in (witnesses.SEND_TASK, label_services.SEND_TASK, "biobank.import_file", "omics.ingest"):
        assert name in celery.tasks, name
    with pytest.raises(KeyError, match=r"nobody\.task"):
        enqueue("nobody.task")
