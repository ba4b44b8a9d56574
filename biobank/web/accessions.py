"""Accessioning at the desk: the participant scanned or typed (or registered), consent per
scope, the visit, and its tubes scanned in one after another; everything recorded at once,
then the labels printed from the confirmation in one action."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import flash, redirect, render_template, request, url_for

from biobank.auth import STAFF, current_actor, roles_required
from biobank.db import db, transaction, utcnow
from biobank.errors import BiobankError, InvalidInput
from biobank.models import Site, Study
from biobank.models.vocab import (
    CollectionProcedure,
    ConsentDecision,
    MaterialType,
    QuantityUnit,
    Sex,
    display_name,
)
from biobank.services import accessions, sites, studies
from biobank.sprec import PRIMARY_CONTAINERS
from biobank.web.pages import bp, login_required


def _choices() -> dict[str, Any]:
    actor = current_actor()
    return {
        "studies": db.session.scalars(studies.list_studies(actor=actor).order_by(Study.code)).all(),
        "sites": db.session.scalars(sites.list_sites(actor=actor).order_by(Site.name)).all(),
        "materials": sorted(MaterialType, key=display_name),
        "units": list(QuantityUnit),
        "containers": PRIMARY_CONTAINERS,
        "procedures": list(CollectionProcedure),
        "sexes": list(Sex),
        "decisions": list(ConsentDecision),
    }


@bp.route("/accession")
@login_required
@roles_required(*STAFF)
def accession_start() -> Any:
    """Scan or type the participant's code; none (or a new code) registers a participant."""
    return render_template("accession_start.html", **_choices())


@bp.route("/accession/visit", methods=["GET", "POST"])
@login_required
@roles_required(*STAFF)
def accession_visit() -> Any:
    """The visit form: participant (found, or new), consent, visit, tubes."""
    actor = current_actor()
    form = request.form if request.method == "POST" else request.args
    code = (form.get("participant") or "").strip()
    participant = accessions.find_participant(code, actor=actor) if code else None
    study_id = participant.study_id if participant else form.get("study_id", type=int)
    if request.method == "POST":
        try:
            with transaction():
                done = accessions.accession(
                    actor=actor, participant_code=code or None, **_visit_of(form, study_id)
                )
                visit_id = done.visit.id
                said = f"Participant {done.participant.code} registered. " if done.registered else ""
            flash(f"{said}Visit recorded with {len(done.specimens)} tubes.", "ok")
            return redirect(url_for("pages.accession_done", visit_id=visit_id))
        except BiobankError as error:
            flash(f"Nothing was recorded: {error.message}.", "error")
            status = 422
    else:
        status = 200
    return render_template(
        "accession.html",
        participant=participant,
        code=code,
        form=form,
        study=db.session.get(Study, study_id) if study_id else None,
        tiers=accessions.open_tiers(participant, study_id) if study_id else [],
        now=utcnow().strftime("%Y-%m-%dT%H:%M"),
        **_choices(),
    ), status


def _enum(kind: Any, text: str | None, field: str) -> Any:
    try:
        return kind[text or ""]
    except KeyError:
        raise InvalidInput(f"choose the {field.replace('_', ' ')}", field=field) from None


def _visit_of(form: Any, study_id: int | None) -> dict[str, Any]:
    """The service's arguments from the form, refused in words naming what is wrong."""
    try:
        collected_at = dt.datetime.fromisoformat(form.get("collected_at", "")).replace(tzinfo=dt.UTC)
    except ValueError:
        raise InvalidInput("give the collection date and time", field="collected_at") from None
    birth_year = form.get("birth_year", "").strip()
    if birth_year and not (birth_year.isdigit() and 1900 <= int(birth_year) <= utcnow().year):
        raise InvalidInput(f"the year of birth {birth_year!r} is not a year", field="birth_year")
    phi = {k: form.get(k, "").strip() or None for k in ("given_name", "family_name", "medical_record_number")}
    new_participant = {
        "study_id": study_id,
        "site_id": form.get("site_id", type=int),
        "sex": Sex(form.get("sex") or "unknown"),
        "birth_year": int(birth_year) if birth_year else None,
        "phi": phi if any(phi.values()) else None,
    }
    tubes = []
    columns = [form.getlist(f"tube_{k}") for k in ("barcode", "material", "quantity", "unit", "container")]
    if len({len(c) for c in columns}) != 1:
        raise InvalidInput("the tube list is incomplete: reload the page", field="tubes")
    for n, (barcode, material, quantity, unit, container) in enumerate(zip(*columns, strict=True), 1):
        try:
            amount = Decimal(quantity) if quantity.strip() else None
        except InvalidOperation:
            raise InvalidInput(
                f"tube {n}: the quantity {quantity!r} is not a number", field=f"tubes[{n}].quantity"
            ) from None
        tubes.append(
            accessions.Tube(
                barcode=barcode.strip() or None,
                material=_enum(MaterialType, material, f"tubes[{n}].material_type"),
                quantity=amount,
                unit=QuantityUnit[unit] if unit in QuantityUnit.__members__ else None,
                container=container or None,
            )
        )
    consents = {
        int(key.removeprefix("consent_")): ConsentDecision(value)
        for key, value in form.items()
        if key.startswith("consent_")
        and key.removeprefix("consent_").isdigit()
        and value in {d.value for d in ConsentDecision}
    }
    return {
        "new_participant": new_participant,
        "consents": consents,
        "procedure": _enum(CollectionProcedure, form.get("procedure"), "procedure"),
        "collected_at": collected_at,
        "collector": form.get("collector", "").strip(),
        "tubes": tubes,
        "received": form.get("received") == "on",
    }


@bp.route("/accession/visits/<int:visit_id>")
@login_required
@roles_required(*STAFF)
def accession_done(visit_id: int) -> Any:
    """The recorded visit and its tubes, with their labels to print in one action."""
    visit, tubes = accessions.visit_tubes(visit_id, actor=current_actor())
    return render_template(
        "accession_done.html", visit=visit, tubes=tubes, barcodes=[t.barcode for t in tubes]
    )
