"""Background tasks on Celery. The embedded default runs them in-process (eagerly); set
``BIOBANK_CELERY_BROKER_URL`` (Redis or RabbitMQ) and run ``celery -A biobank.tasks worker``
(and ``beat`` for periodic tasks) to run them in workers."""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from celery.signals import worker_ready
from flask import Flask, current_app, has_app_context

_bound: dict[str, Flask] = {}


class AppTask(Task):
    """Runs every task inside an app context of its own: of the app that queued it when it
    runs in-process (the embedded default), else of the app Celery was last bound to."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        app = current_app._get_current_object() if has_app_context() else _bound["app"]
        with app.app_context():
            return self.run(*args, **kwargs)


celery = Celery("biobank", task_cls=AppTask)


def init_celery(app: Flask) -> Celery:
    """Bind the Celery app to the Flask app and configure the broker."""
    broker = app.config["CELERY_BROKER_URL"]
    _bound["app"] = app
    celery.conf.update(
        broker_url=broker or "memory://",
        result_backend=app.config["CELERY_RESULT_BACKEND"] or None,
        task_always_eager=not broker,
        task_eager_propagates=True,
        task_acks_late=True,
        broker_connection_retry_on_startup=True,
        beat_schedule={
            "custody-checkpoint": {
                "task": "biobank.custody_checkpoint",
                "schedule": 60.0 * app.config["CUSTODY_CHECKPOINT_MINUTES"],
            },
        },
    )
    # Several apps may be made in one process (tests, the CLI): forget the connections and
    # forget the result backend kept for the previous configuration.
    celery._pool = None
    celery.amqp._producer_pool = None
    vars(celery._local).pop("backend", None)
    celery._backend_cache = None
    app.extensions["celery"] = celery
    return celery


@celery.task(name="biobank.custody_checkpoint")
def custody_checkpoint() -> dict[str, Any]:
    """Sign the head of every custody chain (scheduled every CUSTODY_CHECKPOINT_MINUTES);
    once committed, it is appended to the store outside the database."""
    from biobank.db import transaction
    from biobank.services.ledger import create_checkpoint

    with transaction():
        checkpoint = create_checkpoint()
    return {"id": checkpoint.id, "events": checkpoint.event_count, "hash": checkpoint.hash}


@celery.task(name="biobank.custody_witnesses")
def send_to_witnesses() -> dict[str, Any]:
    """Send the witnesses of CUSTODY_WITNESSES the checkpoints they have not countersigned
    (queued after each checkpoint commits)."""
    from biobank.services.witnesses import send_checkpoints

    return send_checkpoints()


@celery.task(name="biobank.import_file", bind=True)
def import_file(
    self: Task, job_id: int, *, delimiter: str = ",", options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run an import job; progress (rows checked) is reported through the result backend."""
    from biobank.db import db, transaction
    from biobank.models import ImportJob
    from biobank.services.imports import run_job

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
    from biobank.app import create_app

    create_app()
    return celery


@worker_ready.connect
def _recover_interrupted_jobs(**_kwargs: Any) -> None:
    """A worker that starts marks the jobs a dead process left 'running' as failed."""
    if "app" not in _bound:
        return
    with _bound["app"].app_context():
        recover_jobs()


def recover_jobs() -> list[int]:
    """Mark interrupted import jobs failed (see ``recover_interrupted_jobs``); the database
    may not be set up yet, in which case there is nothing to recover."""
    import sqlalchemy as sa

    from biobank.db import db
    from biobank.services.imports import recover_interrupted_jobs

    if not sa.inspect(db.engine).has_table("import_jobs"):
        return []
    from biobank.db import transaction

    try:
        with transaction():  # ends its transaction: a server must not start holding a lock
            recovered = recover_interrupted_jobs()
    finally:
        db.session.remove()
    if recovered:
        _bound["app"].logger.warning(
            "import jobs %s were interrupted: marked failed", ", ".join(map(str, recovered))
        )
    return recovered


def __getattr__(name: str) -> Any:
    # `celery -A biobank.tasks worker` imports this module and asks for `app`: that is when
    # the Flask app (configuration, database) is built for the worker.
    if name == "app":
        return _worker_app()
    raise AttributeError(name)
