"""The biobank's background tasks, on the Celery app of ``biobank.jobs``. The embedded default
runs them in-process (eagerly); set ``BIOBANK_CELERY_BROKER_URL`` (Redis or RabbitMQ) and run
``celery -A biobank.tasks worker`` (and ``beat`` for periodic tasks) to run them in workers."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from celery import Celery, Task
from celery.signals import worker_ready
from flask import current_app

from biobank.app import create_app
from biobank.db import db, transaction
from biobank.jobs import bound_app, celery
from biobank.models import ImportJob
from biobank.services import witnesses
from biobank.services.imports import recover_interrupted_jobs, run_job
from biobank.services.ledger import create_checkpoint


@celery.task(name="biobank.custody_checkpoint")
def custody_checkpoint() -> dict[str, Any]:
    """Sign the head of every custody chain (scheduled every CUSTODY_CHECKPOINT_MINUTES);
    once committed, it is appended to the store outside the database."""
    with transaction():
        checkpoint = create_checkpoint()
    return {"id": checkpoint.id, "events": checkpoint.event_count, "hash": checkpoint.hash}


@celery.task(name=witnesses.SEND_TASK)
def send_to_witnesses() -> dict[str, Any]:
    """Send the witnesses of CUSTODY_WITNESSES the checkpoints they have not countersigned
    (queued after each checkpoint commits)."""
    return witnesses.send_checkpoints()


@celery.task(name="biobank.import_file", bind=True)
def import_file(
    self: Task, job_id: int, *, delimiter: str = ",", options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run an import job; progress (rows checked) is reported through the result backend."""
    with transaction():
        job = db.session.get(ImportJob, job_id)
        if job is not None and self.request.id and job.task_id is None and not self.request.is_eager:
            job.task_id = self.request.id

    def progress(rows: int, share: float | None) -> None:
        if not self.request.is_eager and self.request.id:
            self.update_state(state="PROGRESS", meta={"rows_checked": rows, "share_read": share})

    job = run_job(job_id, delimiter=delimiter, progress=progress, options=options)
    return {"id": job.id, "status": job.status.value, "rows": job.rows_read, "problems": job.error_count}


def _worker_app() -> Celery:
    create_app()
    return celery


@worker_ready.connect
def _recover_interrupted_jobs(**_kwargs: Any) -> None:
    """A worker that starts marks the jobs a dead process left 'running' as failed."""
    app = bound_app()
    if app is None:
        return
    with app.app_context():
        recover_jobs()


def recover_jobs() -> list[int]:
    """Mark interrupted import jobs failed (see ``recover_interrupted_jobs``); the database
    may not be set up yet, in which case there is nothing to recover."""
    if not sa.inspect(db.engine).has_table("import_jobs"):
        return []

    try:
        with transaction():  # ends its transaction: a server must not start holding a lock
            recovered = recover_interrupted_jobs()
    finally:
        db.session.remove()
    if recovered:
        current_app.logger.warning(
            "import jobs %s were interrupted: marked failed", ", ".join(map(str, recovered))
        )
    return recovered


def __getattr__(name: str) -> Any:
    # `celery -A biobank.tasks worker` imports this module and asks for `app`: that is when
    # the Flask app (configuration, database) is built for the worker.
    if name == "app":
        return _worker_app()
    raise AttributeError(name)
