"""The imports page: the templates to download, an upload checked as the job runs (dry run
first if wished), its problems as a table, and the imports made before."""

from __future__ import annotations

from typing import Any

from flask import abort, render_template, request

from biobank.auth import MANAGERS, current_actor, roles_required
from biobank.models.imports import ImportJob, ImportStatus
from biobank.services import imports
from biobank.web.pages import bp, login_required
from biobank.web.tables import Column, Table

JOB_TABLE = Table(
    "imports",
    {
        "id": Column("#", lambda j: j.id, ImportJob.id),
        "file": Column("File", lambda j: j.filename, ImportJob.filename),
        "template": Column("Template", lambda j: j.template, ImportJob.template),
        "status": Column("Status", lambda j: j.status, ImportJob.status),
        "dry_run": Column("Dry run", lambda j: "yes" if j.dry_run else "no", shown=False),
        "rows": Column("Rows", lambda j: j.rows_read or 0, ImportJob.rows_read),
        "problems": Column("Problems", lambda j: j.error_count, ImportJob.error_count),
        "when": Column("When", lambda j: j.created_at, ImportJob.created_at),
        "by": Column("By", lambda j: j.created_by_name, shown=False),
        "sha256": Column("SHA-256", lambda j: j.sha256, shown=False),
    },
    default_sort="-when",
    tie=ImportJob.id,
    page_size=20,
)


def _jobs_found() -> Any:
    stmt = imports.list_jobs(actor=current_actor())
    status = request.args.get("status") or None
    template = request.args.get("template") or None
    if status is not None:
        if status not in {s.value for s in ImportStatus}:
            abort(400, f"unknown import status {status!r}")
        stmt = stmt.where(ImportJob.status == ImportStatus(status))
    if template is not None:
        if template not in imports.TEMPLATES:
            abort(400, f"unknown import template {template!r}")
        stmt = stmt.where(ImportJob.template == template)
    return stmt


@bp.route("/imports")
@login_required
@roles_required(*MANAGERS)
def import_page() -> Any:
    templates = [
        (name, title, imports.template_columns(name)) for name, (_groups, title) in imports.TEMPLATES.items()
    ]
    page = JOB_TABLE.page(_jobs_found(), request.args)
    return render_template(
        "imports.html",
        templates=templates,
        page=page,
        statuses=list(ImportStatus),
        status=request.args.get("status", ""),
        template=request.args.get("template", ""),
    )


@bp.route("/imports.csv")
@login_required
@roles_required(*MANAGERS)
def import_csv() -> Any:
    """The imports the filters find, every one, as CSV."""
    return JOB_TABLE.csv(_jobs_found(), request.args)
