"""The Celery application every package's tasks are registered on, and how services queue
them: by name, through ``enqueue``, so that a service never imports the tasks (which
import services). The embedded default runs tasks in-process (eagerly); set
``BIOBANK_CELERY_BROKER_URL`` (Redis or RabbitMQ) to run them in workers."""

from __future__ import annotations

from typing import Any

from celery import Celery, Task
from celery.result import AsyncResult
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


def bound_app() -> Flask | None:
    """The Flask app Celery was last bound to (a worker's), if any."""
    return _bound.get("app")


def enqueue(name: str, *args: Any, **kwargs: Any) -> AsyncResult:
    """Queue the task registered as *name* (run at once by the embedded default). A name no
    package registered is a ``KeyError`` naming it: the app factory imports every task."""
    return celery.tasks[name].delay(*args, **kwargs)
