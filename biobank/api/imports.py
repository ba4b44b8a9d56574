"""Bulk import API: templates, uploads run as background jobs, status and problem reports."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

from flask import Response, current_app, url_for
from flask.views import MethodView
from flask_smorest import Blueprint

from biobank.auth import MANAGERS, current_actor, roles_required
from biobank.db import after_commit, db, transaction
from biobank.errors import InvalidInput, NotFound
from biobank.models import ImportJob
from biobank.schemas.imports import (
    ImportFileSchema,
    ImportJobSchema,
    ImportProblemSchema,
    ImportTemplateSchema,
    ImportUploadSchema,
)
from biobank.services import imports
from biobank.tasks import celery, import_file

blp = Blueprint("imports", __name__, description="Bulk import from CSV and XLSX: all or nothing")


def _with_links(job: Any) -> Any:
    job.problems_url = url_for("imports.ImportProblemReportViews", item_id=job.id)
    job.progress = None
    if job.status.value == "running" and job.task_id:
        info = celery.AsyncResult(job.task_id).info if celery.conf.result_backend else None
        job.progress = info if isinstance(info, dict) else None
    return job


@blp.route("/templates")
class ImportTemplateListViews(MethodView):
    @roles_required(*MANAGERS)
    @blp.response(200, ImportTemplateSchema(many=True))
    def get(self) -> Any:
        """The import templates and their columns"""
        return [
            {
                "name": name,
                "title": title,
                "columns": imports.template_columns(name),
                "csv_url": url_for("imports.ImportTemplateFileViews", name=name, fmt="csv"),
                "xlsx_url": url_for("imports.ImportTemplateFileViews", name=name, fmt="xlsx"),
            }
            for name, (_groups, title) in imports.TEMPLATES.items()
            if name != "openspecimen"
        ]  # read from OpenSpecimen's own export


@blp.route("/templates/<name>.<fmt>")
class ImportTemplateFileViews(MethodView):
    @roles_required(*MANAGERS)
    @blp.response(200, {"format": "binary", "type": "string"}, content_type="application/octet-stream")
    def get(self, name: str, fmt: str) -> Any:
        """Download a template as CSV or XLSX (`.csv` or `.xlsx`)"""
        imports.check_template(name)
        if fmt == "csv":
            body, mimetype = imports.template_csv(name).encode(), "text/csv; charset=utf-8"
        elif fmt == "xlsx":
            body = imports.template_xlsx(name)
            mimetype = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        else:
            raise NotFound(f"templates come as .csv or .xlsx, not .{fmt}")
        return Response(
            body, mimetype=mimetype, headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"'}
        )


@blp.route("/")
class ImportViews(MethodView):
    @roles_required(*MANAGERS)
    @blp.response(200, ImportJobSchema(many=True))
    def get(self) -> Any:
        """Import jobs, newest first (yours; administrators see all)"""
        stmt = imports.list_jobs(actor=current_actor()).limit(200)
        return [_with_links(job) for job in db.session.scalars(stmt)]

    @roles_required(*MANAGERS)
    @blp.arguments(ImportUploadSchema, location="query")
    @blp.arguments(ImportFileSchema, location="files")
    @blp.response(202, ImportJobSchema)
    def post(self, form: dict[str, Any], files: dict[str, Any]) -> Any:
        """Upload a file to import

        The file is stored and checked by a background job (in-process on the embedded
        default): poll the job until it has `succeeded` (everything written) or `failed`
        (nothing written; `problems_url` lists every problem with its line and column). A
        file imported before is refused with 409.
        """
        actor = current_actor()
        options = None
        if form["template"] == "openspecimen":
            if not form.get("study_code"):
                raise InvalidInput("give study_code with the openspecimen template", field="study_code")
            options = {"study_code": form["study_code"], "site_code": form.get("site_code")}
        upload = files["file"]
        path, sha256 = _store(upload)
        try:
            with transaction():
                job = imports.create_job(
                    actor=actor,
                    path=path,
                    sha256=sha256,
                    filename=Path(upload.filename or "upload").name,
                    template=form["template"],
                    dry_run=form["dry_run"],
                )
                after_commit(lambda: _dispatch(job.id, form["delimiter"], options))
        except BaseException:
            path.unlink(missing_ok=True)
            raise

        db.session.expire_all()
        job = imports.get_job(job.id, actor=actor)
        return _with_links(job), 202, {"Location": url_for("imports.ImportByIdViews", item_id=job.id)}


def _store(upload: Any) -> tuple[Path, str]:
    """Stream the upload to the import directory, hashing it on the way."""
    limit = current_app.config["IMPORT_MAX_BYTES"]
    digest = hashlib.sha256()
    size = 0
    target = imports.import_dir()
    with tempfile.NamedTemporaryFile(dir=target, prefix="upload-", delete=False) as out:
        while chunk := upload.stream.read(1 << 20):
            size += len(chunk)
            if size > limit:
                out.close()
                Path(out.name).unlink(missing_ok=True)
                raise InvalidInput(f"the file is larger than {limit:,} bytes", field="file")
            digest.update(chunk)
            out.write(chunk)
    if size == 0:
        Path(out.name).unlink(missing_ok=True)
        raise InvalidInput("the file is empty", field="file")
    return Path(out.name), digest.hexdigest()


def _dispatch(job_id: int, delimiter: str, options: dict[str, Any] | None = None) -> None:
    result = import_file.apply_async(args=[job_id], kwargs={"delimiter": delimiter, "options": options})
    if not import_file.app.conf.task_always_eager:
        with transaction():
            job = db.session.get(ImportJob, job_id)
            if job is not None and job.task_id is None:
                job.task_id = result.id


@blp.route("/<int:item_id>")
class ImportByIdViews(MethodView):
    @roles_required(*MANAGERS)
    @blp.response(200, ImportJobSchema)
    def get(self, item_id: int) -> Any:
        """Status of an import job"""
        return _with_links(imports.get_job(item_id, actor=current_actor()))


@blp.route("/<int:item_id>/problems")
class ImportProblemViews(MethodView):
    @roles_required(*MANAGERS)
    @blp.response(200, ImportProblemSchema(many=True))
    def get(self, item_id: int) -> Any:
        """The first 1,000 problems of a failed import

        The CSV report (`problems.csv`) lists every problem kept: all of them up to 10,000,
        then the first 10,000 and how many more were found (`error_count` counts them all).
        """
        job = imports.get_job(item_id, actor=current_actor())
        return imports.problems_of(job, limit=1000)


@blp.route("/<int:item_id>/problems.csv")
class ImportProblemReportViews(MethodView):
    @roles_required(*MANAGERS)
    @blp.response(200, {"format": "binary", "type": "string"}, content_type="text/csv")
    def get(self, item_id: int) -> Any:
        """Every problem of an import as CSV: line, column, message"""
        job = imports.get_job(item_id, actor=current_actor())
        return Response(
            list(imports.iter_problem_report(job)),
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="import-{job.id}-problems.csv"'},
        )
