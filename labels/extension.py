"""How labels registers itself on the biobank app: its tables, tasks, API, pages, CLI and
the signals that print labels for new tubes. The app factory calls ``init_app``."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from biobank import signals
from biobank.api import API_PREFIX, api
from biobank.auth import current_actor
from biobank.db import db
from labels import models, services, tasks  # noqa: F401  (tables and Celery tasks)
from labels.api import jobs_blp, printers_blp
from labels.cli import labels_cli
from labels.render import template_names
from labels.web import bp


def init_app(app: Any) -> None:
    """Register the labels API, pages, CLI and tasks on the biobank app."""

    api.register_blueprint(printers_blp, url_prefix=f"{API_PREFIX}/printers")
    api.register_blueprint(jobs_blp, url_prefix=f"{API_PREFIX}/print-jobs")
    app.register_blueprint(bp)
    app.cli.add_command(labels_cli)
    app.config.setdefault("SPECIMEN_PANELS", []).append("labels/_print_panel.html")
    app.config.setdefault("CONTAINER_PANELS", []).append("labels/_box_print_panel.html")
    app.config.setdefault("ALIQUOT_FORM_PANELS", []).append("labels/_aliquot_print_fields.html")
    app.config.setdefault("NEW_TUBES_PANELS", []).append("labels/_new_labels_panel.html")
    app.config.setdefault("STAFF_NAV", []).append(("Printers", "label_pages.printer_list"))
    signals.aliquots_created.connect(_print_new_aliquots, weak=False)
    signals.labels_wanted.connect(_print_wanted, weak=False)

    @app.context_processor
    def _label_helpers() -> dict[str, Any]:
        def printers() -> list[Any]:
            return list(
                db.session.scalars(
                    sa.select(models.Printer).where(models.Printer.is_active).order_by(models.Printer.name)
                )
            )

        def label_job_for(barcodes: list[str]) -> Any:
            """The latest print job of the user's sites holding the first of *barcodes*."""
            if not barcodes:
                return None
            return db.session.scalar(
                sa.select(models.PrintJob)
                .join(models.PrintJobItem)
                .where(models.PrintJobItem.barcode == barcodes[0], services.job_clause(current_actor()))
                .order_by(models.PrintJob.id.desc())
                .limit(1)
            )

        return {
            "label_templates": template_names,
            "label_printers": printers,
            "label_job_for": label_job_for,
            "specimen_label_templates": services.specimen_templates,
            "box_label_templates": services.container_templates,
            "default_specimen_template": services.default_specimen_template,
        }


def _print_wanted(actor: Any, *, specimens: list[Any], print_request: dict[str, Any], source: str) -> Any:
    """One print job for the labels of specimens made in one action; returns the job."""
    printer_id = print_request.get("printer_id")
    return services.print_specimens(
        specimens,
        template=print_request["template"],
        actor=actor,
        printer=services.get_printer(printer_id) if printer_id else None,
        copies=print_request.get("copies", 1),
        source=source,
    )


def _print_new_aliquots(
    actor: Any, *, parent: Any, children: list[Any], print_request: dict[str, Any] | None
) -> None:
    """Labels for specimens just split off a parent, in the caller's transaction."""
    if print_request:
        _print_wanted(actor, specimens=children, print_request=print_request, source="aliquot creation")
