"""Omics background tasks (Celery; in-process on the embedded default)."""

from __future__ import annotations

from typing import Any

from biobank.tasks import celery


@celery.task(name="omics.ingest")
def ingest(file_id: int) -> dict[str, Any]:
    """Ingest one registered file in one transaction; a file that cannot be read is marked
    failed with the reason and leaves no rows behind."""
    from biobank.db import db, transaction, utcnow
    from omics import services
    from omics.formats import FormatError
    from omics.models import FileStatus

    record = services.get_file(file_id)
    try:
        with transaction():
            services.ingest_file(record)
    except FormatError as error:
        with transaction():
            record = services.get_file(file_id)
            record.status, record.error = FileStatus.FAILED, str(error)
            record.ingested_at = utcnow()
    db.session.expire_all()
    record = services.get_file(file_id)
    return {"id": record.id, "status": record.status.value, "variants": record.variant_count,
            "calls": record.call_count}
