"""Sending print jobs in the background, with retries."""

from __future__ import annotations

from typing import Any

from biobank.db import db, transaction
from biobank.jobs import celery
from labels.models import PrintJob
from labels.services import SEND_TASK, send_job


@celery.task(name=SEND_TASK, bind=True, max_retries=5)
def send_print_job(self: Any, job_id: int) -> str:
    """Send one job. A printer that does not answer is retried with growing delays by a
    worker; every attempt and error is recorded on the job, so a failure is shown, never
    lost. In-process (no broker) the failure is recorded and shown for a manual retry."""
    with transaction():
        job = db.session.get(PrintJob, job_id)
        sent = send_job(job)
        status = job.status.value
    if not sent and not celery.conf.task_always_eager:
        raise self.retry(countdown=min(300, 5 * 2**self.request.retries))
    return status
