"""Specimen work pages: making aliquots or a derivative from a parent, placed on a box grid
and labelled in the same action."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for

from biobank.auth import STAFF, current_actor, roles_required
from biobank.db import transaction
from biobank.errors import BiobankError, InvalidInput
from biobank.models import AuditRecord, CustodyEvent, Specimen, StorageContainer
from biobank.models.vocab import MaterialType, QuantityUnit
from biobank.services import specimens as specimen_service
from biobank.services import storage
from biobank.services.common import get_by, get_visible
from biobank.services.custody import custody_events_query
from biobank.web.pages import bp, login_required
from biobank.web.tables import Column, Table

#: most tubes one split makes (the API's limit)
MOST = 96


@bp.route("/aliquot")
@login_required
@roles_required(*STAFF)
def aliquot_start() -> Any:
    """Scan the parent tube; its aliquoting page opens."""
    barcode = request.args.get("barcode", "").strip()
    if barcode:
        specimen = get_by(Specimen, Specimen.barcode, barcode, current_actor())
        return redirect(url_for("pages.aliquot_plan", barcode=specimen.barcode))
    return render_template("aliquot_start.html")


def _plan_of(form: Any, parent: Specimen) -> dict[str, Any]:
    """What the form asks for, as the service takes it; a value that is not a number is
    refused in words naming the field."""

    def number(name: str, label: str, kind: type = Decimal) -> Any:
        text = (form.get(name) or "").strip()
        if not text:
            return None
        try:
            value = kind(text)
        except (InvalidOperation, ValueError):
            raise InvalidInput(f"{label}: {text!r} is not a number", field=name) from None
        if value <= 0:
            raise InvalidInput(f"{label} must be more than 0", field=name)
        return value

    count = number("count", "how many", int) or 1
    if count > MOST:
        raise InvalidInput(f"at most {MOST} tubes at once", field="count")
    quantity = number("quantity", "quantity of each")
    if quantity is None:
        raise InvalidInput("give the quantity of each new tube", field="quantity")
    material = MaterialType[form.get("material_type") or parent.material_type.name]
    plan: dict[str, Any] = {"count": count, "quantity": quantity}
    if material is not parent.material_type:
        plan["material_type"] = material
        plan["unit"] = QuantityUnit[form.get("unit")] if form.get("unit") else None
        plan["quantity_used"] = number("quantity_used", "quantity used")
        method = (form.get("method") or "").strip()
        if method:
            plan["processing"] = {"method": method[:128]}
    return plan


def _grids(
    parent: Specimen, count: int, shown: list[int]
) -> tuple[list[Any], set, str | None, list[tuple[StorageContainer, int]]]:
    """The boxes to show (the suggested ones, then those asked for) with their free and taken
    positions, the suggested positions, why nothing could be suggested, and the other boxes
    with room."""
    actor = current_actor()
    box = parent.container
    temperature = box.effective_temperature() if box is not None else None
    suggested: set[tuple[int, int, int]] = set()
    boxes: list[StorageContainer] = []
    problem = None
    try:
        space, room = storage.suggest_space(
            actor=actor, count=count, temperature=temperature, site_id=parent.site_id
        )
        for found in space:
            boxes.append(found["container"])
            suggested |= {(found["container"].id, r, c) for r, c in found["positions"]}
    except BiobankError as error:
        problem = error.message
        room = storage.boxes_with_room(actor=actor, site_id=parent.site_id, temperature=temperature)
    for box_id in shown:
        chosen = get_visible(StorageContainer, box_id, actor, field="box")
        if chosen not in boxes:
            boxes.append(chosen)
    grids = [
        {
            "box": b,
            "free": set(storage.free_positions(b)) if b.has_grid else set(),
            "taken": storage.occupancy(b),
        }
        for b in boxes
        if b.has_grid
    ]
    others = [(b, n) for b, n in room if b.id not in {g["box"].id for g in grids}]
    return grids, suggested, problem, others


def _page(parent: Specimen, status: int = 200) -> Any:
    form = request.form if request.method == "POST" else request.args
    shown = [int(b) for b in form.getlist("box") if b.isdigit()]
    count = form.get("count", type=int) or 1
    grids, suggested, problem, others = _grids(parent, min(max(count, 1), MOST), shown)
    chosen = {
        tuple(int(x) for x in p.split(":"))
        for p in form.getlist("pos")
        if p.count(":") == 2 and p.replace(":", "").isdigit()
    }
    if len(chosen) == count:  # show what the user chose, not the suggestion again
        suggested = chosen
    plan_problem = None
    if form.get("quantity") is not None:
        try:
            _plan_of(form, parent)
        except BiobankError as error:
            plan_problem = error.message
            status = 422
    box = parent.container
    temperature = box.effective_temperature() if box is not None else None
    derivable = sorted(specimen_service.DERIVABLE.get(parent.material_type, ()), key=lambda m: m.value)
    return render_template(
        "aliquot.html",
        s=parent,
        form=form,
        grids=grids,
        suggested=suggested,
        problem=problem,
        temperature=temperature,
        materials=[parent.material_type, *derivable],
        units=list(QuantityUnit),
        count=count,
        plan_problem=plan_problem,
        planned=form.get("quantity") is not None and plan_problem is None,
        others=others,
    ), status


@bp.route("/specimens/<barcode>/aliquot", methods=["GET", "POST"])
@login_required
@roles_required(*STAFF)
def aliquot_plan(barcode: str) -> Any:
    """Make aliquots or a derivative: how many and how much, positions suggested by the
    free-space search and changeable on the box grid, labels printed, all at once."""
    actor = current_actor()
    parent = get_by(Specimen, Specimen.barcode, barcode, actor)
    if request.method == "GET":
        return _page(parent)
    try:
        with transaction():
            parent = get_by(Specimen, Specimen.barcode, barcode, actor)
            plan = _plan_of(request.form, parent)
            placements = []
            for value in request.form.getlist("pos"):
                try:
                    box_id, row, col = (int(x) for x in value.split(":"))
                except ValueError:
                    raise InvalidInput(f"position {value!r} is not a box position", field="pos") from None
                placements.append({"container_id": box_id, "pos_row": row, "pos_col": col})
            template = request.form.get("label_template")
            printer_id = request.form.get("printer_id", type=int)
            children = specimen_service.create_aliquots(
                parent,
                actor=actor,
                placements=placements or None,
                print_request={"template": template, "printer_id": printer_id, "copies": 1}
                if template
                else None,
                **plan,
            )
            made = [c.barcode for c in children]
    except BiobankError as error:
        flash(f"Nothing was made: {error.message}.", "error")
        return _page(get_by(Specimen, Specimen.barcode, barcode, actor), 422)
    return redirect(url_for("pages.aliquots_made", barcode=barcode, made=made))


@bp.route("/specimens/<barcode>/aliquot/made")
@login_required
@roles_required(*STAFF)
def aliquots_made(barcode: str) -> Any:
    """What a split made: the new tubes, where they are, and their labels."""
    actor = current_actor()
    parent = get_by(Specimen, Specimen.barcode, barcode, actor)
    made = request.args.getlist("made")
    children = specimen_service.children_among(parent, made, actor=actor)
    if not children:
        abort(404, f"no tubes made from {barcode} among {', '.join(made) or 'none'}")
    return render_template(
        "aliquots_made.html", s=parent, children=children, barcodes=[c.barcode for c in children]
    )


CUSTODY_TABLE = Table(
    "custody",
    {
        "seq": Column("#", lambda e: e.seq, CustodyEvent.seq),
        "event": Column("Event", lambda e: e.event_type),
        "when": Column("When", lambda e: e.occurred_at),
        "recorded": Column("Recorded", lambda e: e.recorded_at),
        "who": Column("Who", lambda e: e.actor_name),
        "from": Column("From", lambda e: e.from_location),
        "to": Column("To", lambda e: e.to_location),
        "details": Column("Details", lambda e: json.dumps(e.details, sort_keys=True) if e.details else ""),
        "prev_hash": Column("Previous hash", lambda e: e.prev_hash),
        "hash": Column("Hash", lambda e: e.hash),
    },
    default_sort="seq",
    tie=CustodyEvent.id,
)

AUDIT_TABLE = Table(
    "audit",
    {
        "when": Column("When", lambda a: a.occurred_at, AuditRecord.occurred_at),
        "who": Column("Who", lambda a: a.actor_name),
        "action": Column("Action", lambda a: a.action),
        "changes": Column("Changes", lambda a: json.dumps(a.changes, sort_keys=True, default=str)),
        "reason": Column("Reason", lambda a: a.reason),
    },
    default_sort="when",
    tie=AuditRecord.id,
)


@bp.route("/specimens/<barcode>/custody.csv")
@login_required
@roles_required(*STAFF)
def custody_csv(barcode: str) -> Any:
    """A tube's whole chain of custody, with each event's hashes, for an auditor's file."""
    specimen = get_by(Specimen, Specimen.barcode, barcode, current_actor())
    return CUSTODY_TABLE.csv(
        custody_events_query(specimen), request.args, filename=f"{specimen.barcode}-custody"
    )


@bp.route("/specimens/<barcode>/audit.csv")
@login_required
@roles_required(*STAFF)
def audit_csv(barcode: str) -> Any:
    """Every recorded change of a tube's row: who, when, what, why."""
    specimen = get_by(Specimen, Specimen.barcode, barcode, current_actor())
    stmt = specimen_service.audit_query(specimen)
    return AUDIT_TABLE.csv(stmt, request.args, filename=f"{specimen.barcode}-audit")
