"""Administration of the network: sites, studies and their consent tiers. Forms go through
the API's own schemas and the same services, so a page refuses what the API refuses."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from marshmallow import ValidationError

from biobank.auth import MANAGERS, current_actor, roles_required
from biobank.db import db, transaction
from biobank.errors import BiobankError, InvalidInput
from biobank.models import Site, Study
from biobank.models.vocab import ConsentScope, Role
from biobank.schemas.sites import SiteCreateSchema
from biobank.schemas.studies import ConsentTierCreateSchema, StudyCreateSchema
from biobank.services import sites, studies
from biobank.services.common import get_visible
from biobank.web.pages import bp, login_required


def _form(schema: Any, names: tuple[str, ...]) -> dict[str, Any]:
    """The named fields of the posted form, loaded by *schema*; its first complaint is
    refused in words naming the field."""
    raw = {n: request.form.get(n, "").strip() for n in names if request.form.get(n, "").strip()}
    if "is_central" in names:
        raw["is_central"] = request.form.get("is_central") == "on"
    try:
        return schema.load(raw)
    except ValidationError as error:
        field, messages = next(iter(error.normalized_messages().items()))
        text = messages[0] if isinstance(messages, list) else str(messages)
        raise InvalidInput(f"{field.replace('_', ' ')}: {text}", field=field) from None


def _done(message: str | None, error: BiobankError | None, anchor: str) -> Any:
    if error is not None:
        flash(f"Not saved: {error.message}.", "error")
    else:
        flash(message, "ok")
    return redirect(url_for("pages.network") + anchor)


@bp.route("/admin/network")
@login_required
@roles_required(*MANAGERS)
def network() -> Any:
    """Sites and studies with their consent tiers; administrators add sites, managers
    studies and tiers (as the API allows)."""
    actor = current_actor()
    return render_template(
        "network.html",
        sites=db.session.scalars(sites.list_sites(actor=actor).order_by(Site.code)).all(),
        studies=db.session.scalars(studies.list_studies(actor=actor).order_by(Study.code)).all(),
        scopes=list(ConsentScope),
        may_add_sites=actor.role is Role.ADMIN,
    )


@bp.post("/admin/network/sites")
@login_required
@roles_required(Role.ADMIN)
def network_new_site() -> Any:
    try:
        with transaction():
            data = _form(SiteCreateSchema(), ("code", "name", "city", "country", "is_central"))
            site = sites.create_site(actor=current_actor(), **data)
            message = f"Site {site.code} ({site.name}) added: its barcodes start with {site.code}."
    except BiobankError as error:
        return _done(None, error, "#sites")
    return _done(message, None, "#sites")


@bp.post("/admin/network/studies")
@login_required
@roles_required(*MANAGERS)
def network_new_study() -> Any:
    try:
        with transaction():
            names = ("code", "title", "principal_investigator", "ethics_reference")
            data = _form(StudyCreateSchema(), names)
            study = studies.create_study(actor=current_actor(), **data)
            message = f"Study {study.code} added: give it its consent tiers."
    except BiobankError as error:
        return _done(None, error, "#studies")
    return _done(message, None, f"#study-{study.code}")


@bp.post("/admin/network/studies/<int:study_id>/tiers")
@login_required
@roles_required(*MANAGERS)
def network_new_tier(study_id: int) -> Any:
    try:
        with transaction():
            study = get_visible(Study, study_id, current_actor())
            data = _form(ConsentTierCreateSchema(), ("code", "scope", "statement"))
            tier = studies.add_consent_tier(study, actor=current_actor(), **data)
            message = f"Consent tier {tier.code} added to {study.code}."
            anchor = f"#study-{study.code}"
    except BiobankError as error:
        return _done(None, error, "#studies")
    return _done(message, None, anchor)
