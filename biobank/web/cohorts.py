"""Cohort pages: the builder (live counts, facets, modality completeness), snapshots, lesions."""

from __future__ import annotations

from typing import Any

from flask import abort, render_template, request

from biobank.auth import ALL_ROLES, STAFF, current_actor, has_role, roles_required
from biobank.models import Cohort
from biobank.models.vocab import Role
from biobank.services import cases
from biobank.services import cohorts as cohort_service
from biobank.web.pages import bp, login_required
from biobank.web.tables import Column, Table

#: facets the builder shows until the user picks others
DEFAULT_FACETS = [
    "cases.disease_group",
    "specimens.material_class",
    "consents.scope",
    "images.modality",
    "omics.assay_kind",
]


COHORT_TABLE = Table(
    "cohorts",
    {
        "name": Column("Name", lambda c: c.name, Cohort.name),
        "level": Column("Level", lambda c: c.level, Cohort.level),
        "owner": Column("Owner", lambda c: c.owner.username),
        "snapshots": Column("Snapshots", lambda c: len(c.snapshots)),
        "created": Column("Created", lambda c: c.created_at, Cohort.created_at, shown=False),
        "updated": Column("Updated", lambda c: c.updated_at, Cohort.updated_at),
        "description": Column("Description", lambda c: c.description, shown=False),
    },
    default_sort="-updated",
    tie=Cohort.id,
)


def _cohorts_found() -> Any:
    level = request.args.get("level") or None
    if level is not None and level not in cohort_service.COHORT_LEVELS:
        abort(400, f"unknown cohort level {level!r}: one of {', '.join(cohort_service.COHORT_LEVELS)}")
    text = (request.args.get("q") or "").strip() or None
    return cohort_service.cohorts_query(current_actor(), level=level, text=text)


@bp.route("/cohorts")
@login_required
@roles_required(*ALL_ROLES)
def cohort_list() -> Any:
    """The cohorts one may see: named like, of a level, in any column's order, a page at a time."""
    page = COHORT_TABLE.page(_cohorts_found(), request.args)
    return render_template(
        "cohorts.html", page=page, levels=cohort_service.COHORT_LEVELS, level=request.args.get("level", "")
    )


@bp.route("/cohorts.csv")
@login_required
@roles_required(*ALL_ROLES)
def cohort_csv() -> Any:
    """The same cohorts, every one, as CSV."""
    return COHORT_TABLE.csv(_cohorts_found(), request.args)


@bp.route("/cohorts/new")
@login_required
@roles_required(*ALL_ROLES)
def cohort_new() -> Any:
    return _builder(None)


@bp.route("/cohorts/<int:cohort_id>")
@login_required
@roles_required(*ALL_ROLES)
def cohort_detail(cohort_id: int) -> Any:
    return _builder(cohort_service.get_cohort(cohort_id, current_actor()))


def _builder(cohort: Any) -> Any:
    actor = current_actor()
    return render_template(
        "cohort.html",
        cohort=cohort,
        facets=DEFAULT_FACETS,
        may_export=has_role(actor, (Role.ADMIN, Role.MANAGER)),
        counts_only=not has_role(actor, (Role.ADMIN, Role.MANAGER, Role.TECHNICIAN)),
    )


@bp.route("/lesions/<code>")
@login_required
@roles_required(*STAFF)
def lesion_detail(code: str) -> Any:
    return render_template("lesion.html", **cases.lesion_record(code, actor=current_actor()))
