"""Omics: registration and ingestion of exome, RNA-Seq, methylation, proteomics and
metabolomics files linked to aliquots. Its readers in ``omics.formats`` import neither Flask
nor SQLAlchemy."""

from __future__ import annotations

from typing import Any


def init_app(app: Any) -> None:
    """Register the omics API and tasks on the biobank app."""
    from biobank.api import API_PREFIX, api
    from omics import models, tasks  # noqa: F401  (tables and Celery tasks)
    from omics.api import blp
    from omics.drs import blp as drs_blp

    app.config.setdefault("OMICS_STORAGE_ROOT", "")
    api.register_blueprint(blp, url_prefix=f"{API_PREFIX}/omics")
    api.register_blueprint(drs_blp)
