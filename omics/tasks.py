"""Omics background tasks (Celery; in-process on the embedded default)."""

from __future__ import annotations

import logging
from typing import Any

from biobank.db import db, transaction, utcnow
from biobank.jobs import celery
from omics import services
from omics.formats import FormatError
from omics.models import FileStatus

logger = logging.getLogger(__name__)


@celery.task(name="omics.ingest")
def ingest(file_id: int) -> dict[str, Any]:
    """Ingest one registered file in one transaction; a file that cannot be read is marked
    failed with the reason and leaves no rows behind."""
    record = services.get_file(file_id)
    try:
        with transaction():
            services.ingest_file(record)
    except FormatError as error:
        _failed(file_id, str(error))
    except Exception as error:  # never a file left "registered" for ever
        logger.exception("ingestion of omics file %s stopped", file_id)
        _failed(
            file_id,
            f"ingestion stopped ({type(error).__name__}): "
            f"{str(error).splitlines()[0][:300] if str(error) else 'no detail'}; "
            "register the file again to retry",
        )
    db.session.expire_all()
    record = services.get_file(file_id)
    return {
        "id": record.id,
        "status": record.status.value,
        "variants": record.variant_count,
        "calls": record.call_count,
    }


def _failed(file_id: int, error: str) -> None:
    """Mark the file failed with *error*, in a transaction of its own (the ingestion's was
    rolled back: nothing of the file is left in the database)."""
    with transaction():
        record = services.get_file(file_id)
        record.status, record.error = FileStatus.FAILED, error
        record.ingested_at = utcnow()
