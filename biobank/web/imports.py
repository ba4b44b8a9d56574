"""The imports page: the templates to download, an upload checked as the job runs (dry run
first if wished), its problems as a table, and the imports made before."""

from __future__ import annotations

from typing import Any

from flask import render_template

from biobank.auth import MANAGERS, current_actor, roles_required
from biobank.db import db
from biobank.services import imports
from biobank.web.pages import bp, login_required


@bp.route("/imports")
@login_required
@roles_required(*MANAGERS)
def import_page() -> Any:
    templates = [
        (name, title, imports.template_columns(name)) for name, (_groups, title) in imports.TEMPLATES.items()
    ]
    jobs = db.session.scalars(imports.list_jobs(actor=current_actor()).limit(20)).all()
    return render_template("imports.html", templates=templates, jobs=jobs)
