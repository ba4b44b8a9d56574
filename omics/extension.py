"""How omics registers itself on the biobank app: its tables, tasks, API, pages, query
fields, cohort objects and demo data. The app factory calls ``init_app``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from biobank import signals
from biobank.api import API_PREFIX, api
from biobank.cohort_objects import register_object_kind
from biobank.http import register_api_paths
from biobank.query import register_family, register_fields
from omics import models, tasks  # noqa: F401  (tables and Celery tasks)
from omics.api import blp
from omics.beacon import blp as beacon_blp
from omics.cli import omics_cli
from omics.cohorts import OBJECT_KIND
from omics.cohorts import blp as cohorts_blp
from omics.demo import load_demo_omics
from omics.drs import blp as drs_blp
from omics.htsget import blp as htsget_blp
from omics.phenopackets import blp as phenopackets_blp
from omics.query_fields import EXPRESSION, EXPRESSION_ENTRY, expression_field, omics_fields
from omics.services import omics_of_specimen


def init_app(app: Any) -> None:
    """Register the omics API and tasks on the biobank app."""

    register_object_kind(app, OBJECT_KIND)

    app.cli.add_command(omics_cli)

    app.config.setdefault("OMICS_STORAGE_ROOT", "")

    register_fields(app, omics_fields())
    register_family(app, EXPRESSION, expression_field, EXPRESSION_ENTRY)
    signals.demo_loaded.connect(_demo_omics, weak=False)

    app.register_blueprint(Blueprint("omics_pages", __name__, template_folder="web_templates"))
    app.config.setdefault("SPECIMEN_PANELS", []).append("omics/_specimen_panel.html")

    @app.context_processor
    def _omics_helpers() -> dict[str, Any]:
        return {"omics_for": omics_of_specimen}

    api.register_blueprint(blp, url_prefix=f"{API_PREFIX}/omics")
    api.register_blueprint(cohorts_blp, url_prefix=f"{API_PREFIX}/cohorts")
    api.register_blueprint(phenopackets_blp, url_prefix=API_PREFIX)
    register_api_paths(
        app, drs_blp.url_prefix + "/", htsget_blp.url_prefix + "/", beacon_blp.url_prefix + "/"
    )
    api.register_blueprint(drs_blp)
    api.register_blueprint(htsget_blp)
    api.register_blueprint(beacon_blp)


def _demo_omics(_sender: Any, *, seed: int) -> dict[str, int]:
    return load_demo_omics(seed=seed)
