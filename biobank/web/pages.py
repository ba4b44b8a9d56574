"""Pages for staff and researchers: login, dashboard, specimen search and detail pages."""

from __future__ import annotations

import functools
import secrets
import time
from collections.abc import Callable
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    stream_with_context,
    url_for,
)

from biobank.auth import (
    ALL_ROLES,
    MANAGERS,
    STAFF,
    authenticate,
    current_actor,
    end_session,
    has_role,
    roles_required,
    start_session,
    visible_site_ids,
)
from biobank.db import db, transaction, utcnow
from biobank.errors import AuthenticationRequired, BiobankError
from biobank.http import is_api_request
from biobank.models import (
    Specimen,
)
from biobank.models.vocab import (
    DiseaseGroup,
    Lineage,
    MaterialType,
    Role,
    SpecimenStatus,
    display_name,
)
from biobank.services import cases as case_service
from biobank.services import participants as participant_service
from biobank.services import sites
from biobank.services import specimens as specimen_service
from biobank.services.common import count_of, get_by
from biobank.services.consents import has_withdrawn
from biobank.services.custody import correctable_event, list_custody_events
from biobank.services.query import suppress
from biobank.services.requests import allocated_specimen
from biobank.services.scans import CONDITIONS
from biobank.services.specimens import correct_custody_event
from biobank.services.storage import with_locations
from biobank.services.timeline import specimen_timeline

bp = Blueprint("pages", __name__)


def _csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


@bp.app_context_processor
def _inject() -> dict[str, Any]:
    return {"csrf_token": _csrf_token, "actor": g.get("actor")}


def check_form_csrf() -> None:
    """Every form post to a page, whichever package adds the page, carries the session's
    token (the API has its own check: a header, or a bearer token)."""
    if request.method in ("GET", "HEAD", "OPTIONS") or is_api_request():
        return
    token = request.form.get("csrf")
    if not token or token != session.get("csrf"):
        abort(400, "the form expired: reload the page and try again")


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if g.get("actor") is None:
            return redirect(url_for("pages.login", next=request.full_path))
        return view(*args, **kwargs)

    return wrapper


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    error = None
    if request.method == "POST":
        try:
            with transaction():
                user = authenticate(request.form.get("username", ""), request.form.get("password", ""))
                secret = start_session(user) if user is not None else None
            if user is None:
                raise AuthenticationRequired("wrong username or password")
        except BiobankError as exc:
            error = exc.message
            return render_template("login.html", error=error), exc.status
        session.clear()
        session["sid"] = secret
        target = request.args.get("next") or ""
        # Only local paths: never redirect a fresh login to another site.
        if not target.startswith("/") or target.startswith("//"):
            target = url_for("pages.dashboard")
        return redirect(target)
    return render_template("login.html", error=error)


@bp.post("/logout")
def logout() -> Any:
    """End the session here, not only in the browser: the old cookie signs no one in."""
    if "sid" in session:
        with transaction():
            end_session(session["sid"])
    session.clear()
    return redirect(url_for("pages.login"))


@bp.route("/")
@login_required
@roles_required(*ALL_ROLES)
def dashboard() -> Any:
    actor = current_actor()
    counts, as_of = cached_summary("dashboard", actor, lambda: specimen_service.overview(actor=actor))

    # researchers' counts are protected like every count they see
    def shown(rows: Any) -> list[tuple[Any, Any]]:
        return [(key, suppress(n, actor)) for key, n in rows]

    return render_template(
        "dashboard.html",
        total=suppress(counts["total"], actor),
        participants=suppress(counts["participants"], actor),
        by_material=shown(counts["by_material"]),
        by_status=shown(counts["by_status"]),
        by_disease=shown(counts["by_disease"]),
        disease_total=suppress(sum(n for _, n in counts["by_disease"]), actor),
        by_site=shown(counts["by_site"]),
        as_of=as_of,
    )


#: summary counts (the dashboard's, the storage overview's) of each site scope, with when
#: they were counted: such pages are opened far more often than their counts change much
_SUMMARIES: dict[Any, tuple[float, Any, Any]] = {}


def cached_summary(name: str, actor: Any, count: Callable[[], Any]) -> tuple[Any, Any]:
    """What *count* answers for the actor's sites, counted at most ``SUMMARY_CACHE_SECONDS``
    ago in this process, and when it was counted."""
    sites = visible_site_ids(actor)
    key = (name, current_app.config["DATABASE_URL"], None if sites is None else tuple(sorted(sites)))
    keep = current_app.config["SUMMARY_CACHE_SECONDS"]
    now = time.monotonic()
    kept = _SUMMARIES.get(key)
    if kept is None or now - kept[0] >= keep:
        kept = (now, utcnow(), count())
        if keep > 0:
            _SUMMARIES[key] = kept
    return kept[2], kept[1]


#: how the specimen list can be ordered: (column, newest first), each paged by its key
SPECIMEN_SORTS = {
    "": (Specimen.id, False),
    "newest": (Specimen.id, True),
    "barcode": (Specimen.barcode, False),
}


def _specimen_filters(args: Any) -> dict[str, Any]:
    """The search form's filters; an unknown vocabulary term is a 400 naming it."""
    filters: dict[str, Any] = {"q": args.get("q") or None}
    for name, enum_cls in (
        ("material_type", MaterialType),
        ("status", SpecimenStatus),
        ("lineage", Lineage),
        ("disease_group", DiseaseGroup),
    ):
        values = [v for v in args.getlist(name) if v]
        try:
            filters[name] = [enum_cls(v) for v in values]
        except ValueError:
            abort(400, f"unknown {name}: {', '.join(values)}")
    return filters


@bp.route("/specimens.csv")
@login_required
@roles_required(*STAFF)
def specimen_csv() -> Any:
    """The specimens the search finds, every one, as CSV (streamed)."""
    rows = specimen_service.specimen_rows(
        specimen_service.list_specimens(actor=current_actor(), **_specimen_filters(request.args))
    )
    return Response(
        stream_with_context(rows),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="specimens.csv"'},
    )


@bp.route("/specimens")
@login_required
@roles_required(*STAFF)
def specimen_search() -> Any:
    actor = current_actor()
    args = request.args
    text = (args.get("q") or "").strip()
    alone = not any(v for k, v in args.items(multi=True) if k != "q")
    if text and alone:  # a barcode searched (or scanned) with no filter opens its specimen
        try:
            exact = specimen_service.get_specimen_by_barcode(text, actor=actor)
            return redirect(url_for("pages.specimen_detail", barcode=exact.barcode))
        except BiobankError:
            pass  # not a barcode of the user's sites: search for it
    filters = _specimen_filters(args)
    page_size = 50
    sort = args.get("sort") if args.get("sort") in SPECIMEN_SORTS else ""
    column, descending = SPECIMEN_SORTS[sort]
    stmt = specimen_service.list_specimens(actor=actor, **filters)
    total = count_of(stmt)
    after = args.get("after")
    if after:
        key = int(after) if column is Specimen.id and after.isdigit() else after
        stmt = stmt.where(column < key if descending else column > key)
    order = column.desc() if descending else column
    rows = list(db.session.scalars(stmt.order_by(order).limit(page_size + 1)))
    next_after = getattr(rows[page_size - 1], column.key) if len(rows) > page_size else None
    query = {k: v for k, v in args.items(multi=True) if k not in ("after", "sort")}
    return render_template(
        "specimens.html",
        rows=with_locations(rows[:page_size]),
        next_after=next_after,
        query=query,
        sort=sort,
        total=total,
        materials=list(MaterialType),
        statuses=list(SpecimenStatus),
        lineages=list(Lineage),
        diseases=list(DiseaseGroup),
        filters=filters,
    )


@bp.route("/specimens/<barcode>")
@login_required
@roles_required(*ALL_ROLES)
def specimen_detail(barcode: str) -> Any:
    actor = current_actor()
    if actor.role is Role.RESEARCHER:
        return _allocated_specimen(barcode, actor)
    specimen = get_by(Specimen, Specimen.barcode, barcode, actor)
    ancestors, descendants = specimen_service.lineage_of(specimen)
    events = list_custody_events(specimen)
    audit = db.session.scalars(specimen_service.audit_query(specimen)).all()

    timeline = specimen_timeline(specimen)

    return render_template(
        "specimen.html",
        s=specimen,
        ancestors=ancestors,
        descendants=descendants,
        events=events,
        audit=audit,
        withdrawn=has_withdrawn(specimen.participant),
        timeline=timeline,
        sprec=specimen_service.sprec_of(specimen),
        correctable=correctable_event(events) if has_role(actor, MANAGERS) else None,
    )


def _allocated_specimen(barcode: str, actor: Any) -> Any:
    """A researcher's view of a tube an approved request of theirs allocated: what it is,
    not who handled it (no custody or audit trail); any other tube is not found."""
    return render_template("specimen_allocated.html", s=allocated_specimen(barcode, actor=actor))


@bp.post("/specimens/<barcode>/custody/correct")
@login_required
@roles_required(*MANAGERS)
def correct_custody(barcode: str) -> Any:
    """A manager undoes the latest custody event, recorded by mistake, with a reason."""
    back = url_for("pages.specimen_detail", barcode=barcode) + "#custody"
    try:
        with transaction():
            actor = current_actor()
            specimen = get_by(Specimen, Specimen.barcode, barcode, actor)
            event = correct_custody_event(
                specimen,
                request.form.get("event_id", type=int) or 0,
                actor=actor,
                reason=request.form.get("reason", ""),
            )
            done = (
                f"Event {event.details['corrects_seq']} "
                f"({event.details['corrected_type'].replace('_', ' ')}) corrected: "
                f"{specimen.barcode} is {display_name(specimen.status).lower()} again"
                + (f" at {specimen.location_text}" if specimen.location_text else "")
            )
    except BiobankError as error:
        flash(f"Not corrected: {error.message}", "error")
        return redirect(back)
    flash(done, "ok")
    return redirect(back)


@bp.route("/scan")
@login_required
@roles_required(*STAFF)
def scan_station() -> Any:
    """One input that keeps focus; wedge scanners type the code and press Enter."""
    return render_template("scan.html", sites=sites.network_sites())


@bp.route("/receive")
@login_required
@roles_required(*STAFF)
def receive_parcel() -> Any:
    """Receive a parcel: the tubes expected at the user's sites (registered by a hospital's
    FHIR Bundle, an import or the API), or those of a shipment manifest, ticked off by
    scanning, each with its condition, and the receipt recorded at once."""
    expected = specimen_service.expected_tubes(actor=current_actor(), limit=RECEIVE_LIMIT)
    return render_template(
        "receive.html",
        expected=expected,
        limit=RECEIVE_LIMIT,
        conditions=["acceptable", *sorted(CONDITIONS - {"acceptable"})],
    )


RECEIVE_LIMIT = 1000


@bp.route("/participants/<code>")
@login_required
@roles_required(*STAFF)
def participant_detail(code: str) -> Any:
    actor = current_actor()
    record = participant_service.participant_record(code, actor=actor)
    return render_template(
        "participant.html",
        p=record["participant"],
        cases=record["cases"],
        visits=record["visits"],
        samples=record["specimens"],
        show_phi=actor.may_see_phi(),
    )


@bp.route("/cases/<code>")
@login_required
@roles_required(*STAFF)
def case_detail(code: str) -> Any:
    record = case_service.case_record(code, actor=current_actor())
    return render_template(
        "case.html", c=record["case"], samples=record["specimens"], images=record["images"]
    )
