"""Request pages: researchers ask and follow, managers decide and allocate, technicians pick
and ship, the receiving lab reconciles. Each step calls the API from the page."""

from __future__ import annotations

from typing import Any

from flask import abort, render_template, request

from biobank.auth import ALL_ROLES, current_actor, has_role, roles_required
from biobank.models import RequestStatus, SampleRequest
from biobank.models.vocab import Role
from biobank.services import cohorts as cohort_service
from biobank.services import requests as request_service
from biobank.web.pages import bp, login_required
from biobank.web.tables import Column, Table

REQUEST_TABLE = Table(
    "requests",
    {
        "request": Column("Request", lambda r: r.code, SampleRequest.id),
        "title": Column("Title", lambda r: r.title, SampleRequest.title),
        "requester": Column("Requester", lambda r: r.requester.full_name),
        "status": Column("Status", lambda r: r.status, SampleRequest.status),
        "submitted": Column("Submitted", lambda r: r.created_at.date(), SampleRequest.created_at),
        "cohort": Column("Cohort", lambda r: r.cohort_id, shown=False),
        "purpose": Column("Purpose", lambda r: r.purpose, shown=False),
    },
    default_sort="-submitted",
    tie=SampleRequest.id,
)


def _requests_found() -> Any:
    status = request.args.get("status") or None
    if status is not None and status not in {s.value for s in RequestStatus}:
        abort(400, f"unknown request status {status!r}")
    return request_service.requests_query(current_actor(), status=status)


@bp.route("/requests")
@login_required
@roles_required(*ALL_ROLES)
def request_list() -> Any:
    """The requests one may follow, filtered by status, in any column's order, a page at a time."""
    page = REQUEST_TABLE.page(_requests_found(), request.args)
    return render_template(
        "requests.html", page=page, status=request.args.get("status", ""), statuses=list(RequestStatus)
    )


@bp.route("/requests.csv")
@login_required
@roles_required(*ALL_ROLES)
def request_csv() -> Any:
    """The same requests, every one, as CSV: code, title, requester, status, dates, cohort, purpose."""
    return REQUEST_TABLE.csv(_requests_found(), request.args)


@bp.route("/requests/new")
@login_required
@roles_required(*ALL_ROLES)
def request_new() -> Any:
    actor = current_actor()
    cohorts = [c for c in cohort_service.list_cohorts(actor) if c.level in request_service.REQUEST_LEVELS]
    return render_template("request_new.html", cohorts=cohorts, chosen=request.args.get("cohort", type=int))


@bp.route("/requests/<int:request_id>")
@login_required
@roles_required(*ALL_ROLES)
def request_detail(request_id: int) -> Any:
    actor = current_actor()
    item = request_service.get_request(request_id, actor)
    parcels = request_service.visible_shipments(item, actor)
    return render_template(
        "request.html",
        r=item,
        is_manager=has_role(actor, (Role.ADMIN, Role.MANAGER)),
        is_staff=has_role(actor, (Role.ADMIN, Role.MANAGER, Role.TECHNICIAN)),
        is_requester=item.requester_id == actor.id,
        picks=request_service.pick_list(item, actor),
        to_ship=request_service.sites_to_ship(item, actor),
        parcels=parcels,
        travelling=[s for s in parcels if s.received_at is None],
        tasks=request_service.processing_tasks(item, actor) if item.status.value == "allocated" else [],
        made=request.args.get("made", type=int),
        job=request.args.get("job", type=int),
    )


@bp.route("/requests/<int:request_id>/report")
@login_required
@roles_required(*ALL_ROLES)
def request_report(request_id: int) -> Any:
    actor = current_actor()
    item = request_service.get_request(request_id, actor)
    return render_template("request_report.html", report=request_service.distribution_report(item, actor))
