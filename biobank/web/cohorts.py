"""Cohort pages: the builder (live counts, facets, modality completeness), snapshots, lesions."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import render_template

from biobank.auth import ALL_ROLES, STAFF, current_actor, has_role, roles_required
from biobank.db import db
from biobank.models import Image, Lesion, Specimen
from biobank.models.vocab import Role
from biobank.services import cohorts as cohort_service
from biobank.services.common import get_by
from biobank.web.pages import bp, login_required

#: facets the builder shows until the user picks others
DEFAULT_FACETS = [
    "cases.disease_group",
    "specimens.material_class",
    "consents.scope",
    "images.modality",
    "omics.assay_kind",
]


@bp.route("/cohorts")
@login_required
@roles_required(*ALL_ROLES)
def cohort_list() -> Any:
    actor = current_actor()
    return render_template("cohorts.html", cohorts=cohort_service.list_cohorts(actor))


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
    actor = current_actor()
    lesion = get_by(Lesion, Lesion.code, code, actor)
    images = db.session.scalars(
        sa.select(Image).where(Image.lesion_id == lesion.id).order_by(Image.modality, Image.id)
    ).all()
    samples = db.session.scalars(
        sa.select(Specimen).where(Specimen.lesion_id == lesion.id).order_by(Specimen.id)
    ).all()
    return render_template("lesion.html", lesion=lesion, images=images, samples=samples)
