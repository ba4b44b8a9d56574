"""HL7 FHIR R4 endpoint: ``/fhir/r4/metadata``, read and search of ``Specimen`` and
``Patient`` (see ``biobank.services.fhir``). Answers are ``application/fhir+json``; errors
are ``OperationOutcome`` resources naming what is wrong; searches are ``searchset`` bundles
paged by ``next`` links."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from flask import Response, json, request
from flask.views import MethodView
from flask_smorest import Blueprint

from biobank.auth import ALL_ROLES, STAFF, current_actor, roles_required
from biobank.db import db, transaction
from biobank.errors import BiobankError, InvalidInput
from biobank.services import fhir

blp = Blueprint(
    "fhir",
    __name__,
    url_prefix="/fhir/r4",
    description="HL7 FHIR R4: Specimen, Patient, Condition, BodyStructure, "
    "Consent and Media, read and search; intake of transaction "
    "Bundles",
)
MIMETYPE = "application/fhir+json"
#: OperationOutcome issue types by HTTP status
ISSUE_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    409: "conflict",
    422: "invalid",
    429: "throttled",
}
RESOURCE = {"type": "object", "description": "A FHIR R4 resource (JSON)"}
OUTCOME = {
    "type": "object",
    "description": "A FHIR R4 OperationOutcome naming the problem",
    "required": ["resourceType", "issue"],
    "properties": {
        "resourceType": {"type": "string", "enum": ["OperationOutcome"]},
        "issue": {"type": "array", "items": {"type": "object"}},
    },
}
#: parameters every search takes besides the resource's own
CONTROL = ("_count", "_cursor", "_format")


def fhir_json(document: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(document), status=status, mimetype=MIMETYPE)


def outcome(status: int, message: str, field: str | None = None) -> Response:
    issue: dict[str, Any] = {
        "severity": "error",
        "code": ISSUE_CODES.get(status, "processing"),
        "diagnostics": message,
    }
    if field:
        issue["expression"] = [field]
    return fhir_json({"resourceType": "OperationOutcome", "issue": [issue]}, status)


@blp.errorhandler(BiobankError)
def _domain_error(error: BiobankError) -> Response:
    db.session.rollback()
    status = 400 if error.status == 422 else error.status
    if isinstance(error, fhir.IntakeRefused):  # every problem of a Bundle, each where it is
        return fhir_json(
            {
                "resourceType": "OperationOutcome",
                "issue": [
                    {"severity": "error", "code": "invalid", "diagnostics": what, "expression": [where]}
                    for where, what in error.issues
                ],
            },
            status,
        )
    return outcome(status, error.message, error.field)


def _documented(func: Callable[..., Any]) -> Callable[..., Any]:
    for status, text in (
        (400, "a search parameter or value the server does not take"),
        (401, "no credentials, or credentials that do not hold"),
        (403, "a role that may not read this"),
        (404, "no such resource among the caller's sites"),
    ):
        func = blp.alt_response(status, schema=OUTCOME, description=text, content_type=MIMETYPE)(func)
    return func


def _search_args() -> tuple[dict[str, list[str]], int, int | None]:
    params = {k: request.args.getlist(k) for k in request.args if k not in CONTROL}
    fmt = request.args.get("_format")
    if fmt not in (None, "json", MIMETYPE, "application/json"):
        raise InvalidInput(f"_format: only JSON is served, not {fmt!r}", field="_format")
    try:
        count = int(request.args.get("_count", fhir.DEFAULT_COUNT))
        cursor = int(request.args["_cursor"]) if "_cursor" in request.args else None
    except ValueError:
        raise InvalidInput("_count and _cursor are whole numbers", field="_count") from None
    if not 0 < count <= fhir.MAX_COUNT:
        raise InvalidInput(f"_count: 1 to {fhir.MAX_COUNT}", field="_count")
    if cursor is not None and not 0 <= cursor < 2**62:
        raise InvalidInput("_cursor: not one this server gave", field="_cursor")
    return params, count, cursor


def _search(kind: str, search: Callable[..., fhir.Page]) -> Response:
    params, count, cursor = _search_args()
    return _bundle(kind, search(params, current_actor(), count=count, cursor=cursor))


def _bundle(kind: str, page: fhir.Page) -> Response:
    base = request.host_url.rstrip("/") + blp.url_prefix
    query = [(k, v) for k in request.args if k != "_cursor" for v in request.args.getlist(k)]
    links = [{"relation": "self", "url": request.url}]
    if page.next_cursor is not None:
        links.append(
            {
                "relation": "next",
                "url": f"{base}/{kind}?" + urlencode([*query, ("_cursor", str(page.next_cursor))]),
            }
        )
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": page.total,
        "link": links,
    }
    if page.resources:  # (FHIR's JSON has no empty arrays)
        bundle["entry"] = [
            {"fullUrl": f"{base}/{kind}/{r['id']}", "resource": r, "search": {"mode": "match"}}
            for r in page.resources
        ]
    return fhir_json(bundle)


@blp.route("/")
class Transaction(MethodView):
    @roles_required(*STAFF)
    @blp.response(200, RESOURCE, content_type=MIMETYPE)
    @blp.doc(
        requestBody={
            "required": True,
            "content": {
                MIMETYPE: {
                    "schema": {
                        "type": "object",
                        "description": "A FHIR R4 transaction Bundle of Patient, Specimen "
                        "and ServiceRequest resources",
                    }
                }
            },
        },
        parameters=[
            {
                "name": name,
                "in": "query",
                "required": False,
                "schema": {"type": "string"},
                "description": f"Code of the {name} to register new participants "
                "and tubes in (needed when there is more than one)",
            }
            for name in ("study", "site")
        ],
    )
    @_documented
    def post(self) -> Any:
        """Register a connected hospital's participants, visits and expected tubes

        A transaction Bundle of Patients (the biobank's participant code as identifier, or
        the hospital's, kept as the medical record number), Specimens (barcode as the first
        identifier, SNOMED CT or MIABIS sample type, parent, collection time, quantity) and
        ServiceRequests, taken all or nothing. Every tube is registered `expected`, so the
        receiving scan takes it in. A refused Bundle answers an OperationOutcome with one
        issue per problem, each with the FHIRPath of the element.
        """
        bundle = request.get_json(force=True, silent=True)
        if bundle is None:
            raise InvalidInput("the body is not JSON", field="Bundle")
        with transaction():
            answer = fhir.intake_bundle(
                bundle,
                actor=current_actor(),
                study_code=request.args.get("study"),
                site_code=request.args.get("site"),
            )
        return fhir_json(answer)


@blp.route("/metadata")
class Metadata(MethodView):
    @blp.response(200, RESOURCE, content_type=MIMETYPE)
    def get(self) -> Any:
        """The server's CapabilityStatement"""
        return fhir_json(fhir.capability_statement(request.host_url.rstrip("/") + blp.url_prefix))


def _resource_views(
    kind: str,
    search: Callable[..., fhir.Page],
    read: Callable[[int, Any], dict[str, Any]],
    search_doc: str,
    read_doc: str,
) -> None:
    """Search (``/fhir/r4/<kind>``) and read (``/fhir/r4/<kind>/<id>``) of one resource
    type, for every role and scoped as the API is."""

    class Search(MethodView):
        @roles_required(*ALL_ROLES)
        @blp.response(200, RESOURCE, content_type=MIMETYPE)
        @_documented
        def get(self) -> Any:
            return _search(kind, search)

    class Read(MethodView):
        @roles_required(*ALL_ROLES)
        @blp.response(200, RESOURCE, content_type=MIMETYPE)
        @_documented
        def get(self, ident: int) -> Any:
            return fhir_json(read(ident, current_actor()))

    Search.__name__, Read.__name__ = f"{kind}Search", f"{kind}Read"
    Search.get.__doc__, Read.get.__doc__ = search_doc, read_doc
    blp.route(f"/{kind}")(Search)
    blp.route(f"/{kind}/<int:ident>")(Read)


def _base() -> str:
    return request.host_url.rstrip("/")


PAGING = "`_count` (≤ 500) and the `next` link's `_cursor` page through it."
_resource_views(
    "Specimen",
    fhir.search_specimens,
    fhir.read_specimen,
    f"""Search specimens: a searchset Bundle

    `identifier` (barcode), `subject`/`patient` (Patient/<id>), `type` (a SNOMED CT sample type
    or a MIABIS material), `collected` (`[eq|gt|lt|ge|le]YYYY[-MM[-DD]]`), `parent`
    (Specimen/<id>), `status`, `container` (a storage container's id). {PAGING}
    """,
    "One specimen",
)
_resource_views(
    "Patient",
    fhir.search_patients,
    fhir.read_patient,
    f"""Search participants as pseudonymous Patients: a searchset Bundle

    `identifier` (participant code), `gender`, `_id`. {PAGING}
    """,
    "One participant as a Patient (identifying data only for roles that may see it)",
)
_resource_views(
    "Condition",
    fhir.search_conditions,
    fhir.read_condition,
    f"""Search diagnoses (cases) as Conditions: a searchset Bundle

    `identifier` (case code), `subject`/`patient`, `code` (ICD-10; a category takes its
    subcodes). {PAGING}
    """,
    "One case as a Condition (ICD-10, AJCC 8 stage, body sites)",
)
_resource_views(
    "BodyStructure",
    fhir.search_body_structures,
    fhir.read_body_structure,
    f"""Search lesions as BodyStructures: a searchset Bundle

    `identifier` (lesion code), `patient`. {PAGING}
    """,
    "One lesion as a BodyStructure",
)
_resource_views(
    "Consent",
    fhir.search_consents,
    fhir.read_consent,
    f"""Search consents (each answer to a consent tier): a searchset Bundle

    `patient`. {PAGING}
    """,
    "One answer to a consent tier: permit or deny of its scope (GA4GH DUO)",
)
_resource_views(
    "Media",
    lambda *args, **kwargs: fhir.search_media(*args, base=_base(), **kwargs),
    lambda ident, actor: fhir.read_media(ident, actor, _base()),
    f"""Search images as Media: a searchset Bundle

    `patient`/`subject`. Images are seen as DRS serves them: staff their sites', researchers
    those of an approved request. {PAGING}
    """,
    "One image as Media, its bytes at its DRS object",
)
_resource_views(
    "Group",
    fhir.search_groups,
    fhir.read_group,
    f"""Frozen cohort snapshots as Groups of Patients: a searchset Bundle

    The snapshots of one's own cohorts (managers: every cohort's). {PAGING}
    """,
    "One cohort snapshot as a Group: its query and, for staff, its size and the members of their sites",
)
