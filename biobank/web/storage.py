"""Storage pages: the units of the user's sites, a box as a grid, a freezer-failure
evacuation, and set-up of a freezer, tank, cabinet or box from a template."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for

from biobank.auth import MANAGERS, STAFF, current_actor, roles_required
from biobank.db import db, transaction
from biobank.errors import BiobankError, PermissionDenied
from biobank.models import Site, StorageContainer
from biobank.services import sites, storage
from biobank.services.common import get_visible
from biobank.storage_templates import TEMPLATES
from biobank.web.pages import bp, cached_summary, login_required


@bp.route("/storage")
@login_required
@roles_required(*STAFF)
def storage_overview() -> Any:
    """Top-level containers of the user's sites, with how full they are."""
    actor = current_actor()
    tops = db.session.scalars(
        storage.list_containers(actor=actor, top_level=True).order_by(
            StorageContainer.site_id, StorageContainer.name
        )
    ).all()
    # every tube of the user's sites is counted: kept a few seconds, like the dashboard's
    ids = [c.id for c in tops]
    usage, as_of = cached_summary(f"storage {ids}", actor, lambda: storage.subtree_usage(ids))
    children = [(c, *usage.get(c.id, (0, 0))) for c in tops]
    return render_template(
        "storage.html", container=None, children=children, as_of=as_of, setup=setup_choices()
    )


def _with_usage(containers: list[Any]) -> list[tuple[Any, int, int]]:
    """(container, used, capacity) counting every position below each container."""
    usage = storage.subtree_usage([c.id for c in containers])
    return [(c, *usage.get(c.id, (0, 0))) for c in containers]


@bp.route("/containers/<int:container_id>")
@login_required
@roles_required(*STAFF)
def container_detail(container_id: int) -> Any:
    """A box as a grid coloured by material and state; other containers list their children."""
    actor = current_actor()
    container = get_visible(StorageContainer, container_id, actor)
    children = sorted(container.children, key=lambda c: (len(c.name), c.name))
    grid = storage.occupancy(container) if container.has_grid else {}
    loose = [] if container.has_grid else storage.loose_specimens(container)
    return render_template(
        "storage.html",
        container=container,
        grid=grid,
        loose=loose,
        children=_with_usage(children),
        setup=setup_choices(container),
    )


@bp.route("/containers/<int:container_id>/evacuation", methods=["GET", "POST"])
@login_required
@roles_required(*STAFF)
def evacuation(container_id: int) -> Any:
    """A freezer-failure plan to review and print; managers carry it out from here."""
    actor = current_actor()
    container = get_visible(StorageContainer, container_id, actor)
    if request.method == "POST":
        if actor.role not in MANAGERS:
            raise PermissionDenied("only managers carry out an evacuation")
        with transaction():
            done = storage.evacuate(container, plan_sha256=request.form.get("plan_sha256", ""), actor=actor)
        flash(f"{done['count']} specimens moved out of {container.name}.", "ok")
        return render_template("evacuation.html", container=container, plan=done, done=True)
    try:
        plan = storage.evacuation_plan(container, actor=actor)
    except BiobankError as error:
        return render_template(
            "evacuation.html", container=container, plan=None, problem=error.message, done=False
        ), error.status
    return render_template("evacuation.html", container=container, plan=plan, done=False)


def setup_choices(container: Any = None) -> dict[str, Any]:
    """What the set-up form offers: the templates that fit where it is (inside *container*,
    or at the top of a site) and, at the top, the user's sites."""
    top = container is None
    return {
        "templates": storage.templates_fitting(container),
        "sites": db.session.scalars(sites.list_sites(actor=current_actor()).order_by(Site.name)).all()
        if top
        else [],
    }


@bp.post("/storage/new")
@login_required
@roles_required(*MANAGERS)
def storage_new() -> Any:
    """Create a storage unit, with everything inside it, from a template."""
    parent_id = request.form.get("parent_id", type=int)
    back = (
        url_for("pages.container_detail", container_id=parent_id)
        if parent_id
        else url_for("pages.storage_overview")
    )
    try:
        with transaction():
            unit = storage.create_from_template(
                request.form.get("template", ""),
                actor=current_actor(),
                name=request.form.get("name", "").strip(),
                parent_id=parent_id,
                site_id=request.form.get("site_id", type=int),
            )
            template = TEMPLATES[request.form["template"]]
            created = (unit.id, unit.name)
    except BiobankError as error:
        flash(f"Nothing was created: {error.message}.", "error")
        return redirect(back + "#storage-setup")
    flash(
        f"{created[1]} created: {template.title}"
        + (f", {template.capacity():,} positions." if template.capacity() else "."),
        "ok",
    )
    return redirect(url_for("pages.container_detail", container_id=created[0]))
