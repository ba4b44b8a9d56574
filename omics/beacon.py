"""GA4GH Beacon v2: may the network know whether the biobank holds a variant, an individual
or a biosample like the one asked for?

``/beacon/v2`` answers ``info``, ``service-info``, ``configuration``, ``map``, ``entry_types``,
``filtering_terms`` and the three entry types ``g_variants``, ``individuals`` and
``biosamples`` (GET with query parameters, or POST with a Beacon request body). How much
an answer says depends on who asks: without credentials a yes or no (``boolean``; only when
``BEACON_ANONYMOUS`` is on), a researcher a count protected as every researcher's count is
(below ``COUNT_SMALL_CELL`` only a yes, the others rounded), staff exact counts and the
records of their own sites. Only participants who consent to research use are counted, and
for variants only those who consent to genetic research too. Coordinates are 0-based as
Beacon's are.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from flask import Response, current_app, g, jsonify, request
from flask.views import MethodView
from flask_smorest import Blueprint

from biobank.db import db
from biobank.errors import BiobankError
from biobank.models import Case, ConsentResponse, ConsentTier, Participant, Specimen, User
from biobank.models.users import Actor
from biobank.models.vocab import (
    ConsentDecision,
    ConsentScope,
    DiseaseGroup,
    MaterialType,
    PathologyStatus,
    Role,
    Sex,
)
from biobank.services.common import visible
from biobank.services.query import suppress
from biobank.version import __version__
from omics.formats.genes import canonical_chrom
from omics.models import Variant, VariantCall
from omics.services import build_of

blp = Blueprint(
    "beacon",
    __name__,
    url_prefix="/beacon/v2",
    description="GA4GH Beacon v2: variants, individuals and biosamples, answered "
    "as a yes or no, a protected count or records by who asks",
)
API_VERSION = "v2.0.0"
GRANULARITIES = ("boolean", "count", "record")
DEFAULT_LIMIT, MAX_LIMIT = 10, 1000

#: sex as Beacon's default model codes it (NCIT General Qualifier)
SEX_TERMS = {
    Sex.FEMALE: ("NCIT:C16576", "female"),
    Sex.MALE: ("NCIT:C20197", "male"),
    Sex.OTHER: ("NCIT:C17998", "unknown"),
    Sex.UNKNOWN: ("NCIT:C17998", "unknown"),
}
#: a biosample's status (EFO): tumour, other lesion, or reference tissue
STATUS_TERMS = {
    PathologyStatus.MALIGNANT: ("EFO:0009656", "neoplastic sample"),
    PathologyStatus.METASTATIC: ("EFO:0009656", "neoplastic sample"),
    PathologyStatus.NON_MALIGNANT: ("EFO:0009655", "abnormal sample"),
    PathologyStatus.NORMAL: ("EFO:0009654", "reference sample"),
}
UNKNOWN_TERM = ("NCIT:C17998", "unknown")
ORIGIN_TERM = {"id": "OBI:0001479", "label": "specimen from organism"}
#: RefSeq accessions of the assembled chromosomes (GRCh38's are GRCh37's, one version on)
_REFSEQ_37 = {
    **{
        str(n): v
        for n, v in zip(
            range(1, 23),
            (10, 11, 11, 11, 9, 11, 13, 10, 11, 10, 9, 11, 10, 8, 9, 9, 10, 9, 9, 10, 8, 10),
            strict=True,
        )
    },
    "X": 10,
    "Y": 9,
}
REFSEQ = {
    "GRCh37": {
        c: f"NC_{int(c) if c.isdigit() else 22 + 'XY'.index(c) + 1:06d}.{v}" for c, v in _REFSEQ_37.items()
    },
    "GRCh38": {
        c: f"NC_{int(c) if c.isdigit() else 22 + 'XY'.index(c) + 1:06d}.{v + 1}"
        for c, v in _REFSEQ_37.items()
    },
}
_FROM_REFSEQ = {acc: (build, chrom) for build, table in REFSEQ.items() for chrom, acc in table.items()}
ENTRY_TYPES = {
    "individuals": ("individual", "Individual", "individuals"),
    "biosamples": ("biosample", "Biosample", "biosamples"),
    "g_variants": ("genomicVariation", "Genomic variation", "genomicVariations"),
}


class BeaconRequestError(Exception):
    """A request Beacon's way of saying cannot be answered: its status and what is wrong."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class Query:
    """What was asked, from the query string (GET) or a Beacon request body (POST)."""

    granularity: str = "boolean"
    skip: int = 0
    limit: int = DEFAULT_LIMIT
    filters: list[dict[str, Any]] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    test_mode: bool = False

    def summary(self, entry: str) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "apiVersion": API_VERSION,
            "requestedSchemas": [_schema(entry)],
            "pagination": {"skip": self.skip, "limit": self.limit},
            "requestedGranularity": self.granularity,
            "testMode": self.test_mode,
        }
        if self.filters:
            summary["filters"] = [f["id"] for f in self.filters]
        return summary


def _schema(entry: str) -> dict[str, str]:
    _, name, model = ENTRY_TYPES[entry]
    return {"entityType": name, "schema": f"beacon-v2-default-model:{model}:{API_VERSION}"}


def _beacon_id() -> str:
    return current_app.config["BEACON_ID"]


def _informational_meta() -> dict[str, Any]:
    return {"beaconId": _beacon_id(), "apiVersion": API_VERSION, "returnedSchemas": []}


def _error_response(status: int, message: str) -> Response:
    response = jsonify(
        {
            "meta": {
                "beaconId": _beacon_id(),
                "apiVersion": API_VERSION,
                "returnedSchemas": [],
                "returnedGranularity": "boolean",
                "receivedRequestSummary": {
                    "apiVersion": API_VERSION,
                    "requestedSchemas": [],
                    "pagination": {"skip": 0, "limit": 0},
                    "requestedGranularity": "boolean",
                },
            },
            "error": {"errorCode": status, "errorMessage": message},
        }
    )
    response.status_code = status
    return response


@blp.errorhandler(BeaconRequestError)
def _beacon_error(error: BeaconRequestError) -> Response:
    return _error_response(error.status, error.message)


@blp.errorhandler(BiobankError)
def _domain_error(error: BiobankError) -> Response:
    return _error_response(error.status, error.message)


# --- who asks --------------------------------------------------------------------------------


def _asker() -> User | None:
    """The signed-in caller, None for an anonymous one; credentials that are sent but not
    valid are refused rather than read as anonymous."""
    actor = g.get("actor")
    if actor is None and g.get("auth_error"):
        raise BeaconRequestError(401, g.auth_error)
    if actor is None and not current_app.config["BEACON_ANONYMOUS"]:
        raise BeaconRequestError(401, "this beacon answers signed-in users only: send a bearer token")
    return actor


def _most_for(actor: Actor | None) -> str:
    if actor is None:
        return "boolean"
    return "count" if actor.role is Role.RESEARCHER else "record"


# --- reading the request -----------------------------------------------------------------------


def _int(name: str, value: Any, *, low: int = 0, high: int = 2**31 - 1) -> int:
    if (
        isinstance(value, bool)
        or not (isinstance(value, int) or (isinstance(value, str) and value.isdigit()))
        or not low <= int(value) <= high
    ):
        raise BeaconRequestError(400, f"{name} must be a whole number from {low} to {high}, not {value!r}")
    return int(value)


def _filters(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise BeaconRequestError(400, "query.filters must be a list")
    out = []
    for i, item in enumerate(raw):
        if isinstance(item, str):
            item = {"id": item}
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
            raise BeaconRequestError(400, f"query.filters[{i}] must be a filter id or an object with an id")
        if "operator" in item or "value" in item:
            raise BeaconRequestError(
                400,
                f"filter {item['id']!r}: alphanumeric filters "
                "(operator, value) are not served; see "
                "/beacon/v2/filtering_terms",
            )
        descendants = item.get("includeDescendantTerms", True)
        if not isinstance(descendants, bool):
            raise BeaconRequestError(
                400, f"filter {item['id']!r}: includeDescendantTerms must be true or false"
            )
        out.append({"id": item["id"], "includeDescendantTerms": descendants})
    return out


def _query(parameter_names: tuple[str, ...]) -> Query:
    if request.method == "POST":
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise BeaconRequestError(
                400, 'send a Beacon request body as JSON: {"meta": {...}, "query": {...}}'
            )
        raw = body.get("query", {})
        if not isinstance(raw, dict):
            raise BeaconRequestError(400, "query must be an object")
        pagination = raw.get("pagination", {})
        if not isinstance(pagination, dict):
            raise BeaconRequestError(400, "query.pagination must be an object")
        parameters = raw.get("requestParameters", {})
        if not isinstance(parameters, dict):
            raise BeaconRequestError(400, "query.requestParameters must be an object")
        granularity = raw.get("requestedGranularity", "boolean")
        skip, limit = pagination.get("skip", 0), pagination.get("limit", DEFAULT_LIMIT)
        filters = _filters(raw.get("filters"))
        test_mode = raw.get("testMode", False)
    else:
        args = request.args
        granularity = args.get("requestedGranularity", "boolean")
        skip, limit = args.get("skip", "0"), args.get("limit", str(DEFAULT_LIMIT))
        filters = _filters(
            [f for f in args.get("filters", "").split(",") if f] if "filters" in args else None
        )
        parameters = {k: args[k] for k in parameter_names if k in args}
        test_mode = args.get("testMode", "false").lower() == "true"
    unknown = sorted(set(parameters) - set(parameter_names))
    if unknown:
        raise BeaconRequestError(
            400,
            f"request parameter {unknown[0]!r} is not served here; "
            f"ask with {', '.join(parameter_names) or 'filters'}",
        )
    if granularity not in GRANULARITIES:
        raise BeaconRequestError(
            400, f"requestedGranularity must be boolean, count or record, not {granularity!r}"
        )
    return Query(
        granularity,
        _int("skip", skip),
        _int("limit", limit, high=MAX_LIMIT),
        filters,
        parameters,
        test_mode is True,
    )


# --- filters -------------------------------------------------------------------------------------


def _consenting(*scopes: ConsentScope) -> sa.Select:
    """Participants who said yes to every scope and have not withdrawn it."""
    stmt = (
        sa.select(ConsentResponse.participant_id)
        .join(ConsentTier, ConsentTier.id == ConsentResponse.tier_id)
        .where(
            ConsentResponse.decision == ConsentDecision.YES,
            ConsentResponse.withdrawn_at.is_(None),
            ConsentTier.scope.in_(scopes),
        )
        .group_by(ConsentResponse.participant_id)
        .having(sa.func.count(sa.distinct(ConsentTier.scope)) == len(scopes))
    )
    return stmt


def _participants_with_case(condition: Any) -> sa.Select:
    """Participants with a case meeting *condition*."""
    return sa.select(Case.participant_id).where(condition)


def _filter_condition(item: dict[str, Any], entry: str) -> Any:
    """The condition a filter puts on the rows of *entry* (participant or specimen ids)."""
    term = item["id"]
    for sex, (code, _) in SEX_TERMS.items():
        if term == code:
            return (
                Participant.sex.in_([s for s, (c, _) in SEX_TERMS.items() if c == code])
                if sex in (Sex.OTHER, Sex.UNKNOWN)
                else Participant.sex == sex
            )
    if term.startswith("ICD10:") and len(term) > 6:
        code = term[6:]
        matches = (
            Case.icd10_code.startswith(code, autoescape=True)
            if item["includeDescendantTerms"]
            else Case.icd10_code == code
        )
        return Participant.id.in_(_participants_with_case(matches))
    prefix, _, value = term.partition(":")
    if prefix == "diseaseGroup":
        group = _enum(DiseaseGroup, value, term)
        return Participant.id.in_(_participants_with_case(Case.disease_group == group))
    if prefix == "materialType":
        if entry == "individuals":
            raise BeaconRequestError(
                400, f"filter {term!r} applies to biosamples and g_variants, not individuals"
            )
        return Specimen.material_type == _enum(MaterialType, value, term)
    raise BeaconRequestError(400, f"unknown filter {term!r}: see /beacon/v2/filtering_terms")


def _enum(kind: Any, value: str, term: str) -> Any:
    for member in kind:
        if member.value.lower() == value.lower():
            return member
    raise BeaconRequestError(400, f"unknown filter {term!r}: see /beacon/v2/filtering_terms")


# --- the entry types -----------------------------------------------------------------------------
# Each entry type builds the statement of its rows and a function making the records of a
# page of them. *scope* is the asker whose sites the rows are limited to (staff asking for
# counts or records), None when the answer spans the network.

Records = Callable[[list[Any]], list[dict[str, Any]]]


def _scope(stmt: sa.Select, model: type, scope: User | None) -> sa.Select:
    return stmt if scope is None else visible(stmt, model, scope)


def _individuals(query: Query, scope: User | None) -> tuple[sa.Select, Records]:
    stmt = sa.select(Participant).where(Participant.id.in_(_consenting(ConsentScope.RESEARCH_USE)))
    for item in query.filters:
        stmt = stmt.where(_filter_condition(item, "individuals"))
    return _scope(stmt, Participant, scope).order_by(Participant.code), _individual_records


def _individual_records(participants: list[Participant]) -> list[dict[str, Any]]:
    cases: dict[int, list[Case]] = {}
    for case in db.session.scalars(
        sa.select(Case).where(Case.participant_id.in_([p.id for p in participants])).order_by(Case.code)
    ):
        cases.setdefault(case.participant_id, []).append(case)
    out = []
    for participant in participants:
        code, label = SEX_TERMS[participant.sex]
        record: dict[str, Any] = {"id": participant.code, "sex": {"id": code, "label": label}}
        theirs = cases.get(participant.id, [])
        if theirs:
            record["diseases"] = [{"diseaseCode": {"id": f"ICD10:{c.icd10_code}"}} for c in theirs]
            record["info"] = {"diseaseGroups": sorted({c.disease_group.value for c in theirs})}
        out.append(record)
    return out


def _biosamples(query: Query, scope: User | None) -> tuple[sa.Select, Records]:
    stmt = (
        sa.select(Specimen)
        .join(Participant, Participant.id == Specimen.participant_id)
        .where(Participant.id.in_(_consenting(ConsentScope.RESEARCH_USE)))
    )
    for item in query.filters:
        stmt = stmt.where(_filter_condition(item, "biosamples"))
    return _scope(stmt, Specimen, scope).order_by(Specimen.barcode), _biosample_records


def _biosample_records(specimens: list[Specimen]) -> list[dict[str, Any]]:
    out = []
    for specimen in specimens:
        code, label = STATUS_TERMS.get(specimen.pathology_status, UNKNOWN_TERM)
        out.append(
            {
                "id": specimen.barcode,
                "individualId": specimen.participant.code,
                "biosampleStatus": {"id": code, "label": label},
                "sampleOriginType": ORIGIN_TERM,
                "info": {"materialType": specimen.material_type.value, "lineage": specimen.lineage.value},
            }
        )
    return out


G_VARIANT_PARAMETERS = (
    "assemblyId",
    "referenceName",
    "start",
    "end",
    "referenceBases",
    "alternateBases",
    "variantType",
    "geneId",
    "aminoacidChange",
)


def _positions(name: str, value: Any) -> list[int]:
    items = value if isinstance(value, list) else str(value).split(",")
    if not 1 <= len(items) <= 2:
        raise BeaconRequestError(400, f"{name} takes one position or two (a bracket)")
    return [_int(name, item) for item in items]


def _g_variants(query: Query, scope: User | None) -> tuple[sa.Select, Records]:
    p = query.parameters
    if not (p.get("geneId") or p.get("referenceName")):
        raise BeaconRequestError(400, "a g_variants query needs a geneId or a referenceName")
    # the samples whose calls count: of the filters' samples and donors, of the asker's
    # sites when scoped, of donors who consent to research use and genetic research
    samples = (
        sa.select(Specimen.id)
        .join(Participant, Participant.id == Specimen.participant_id)
        .where(Participant.id.in_(_consenting(ConsentScope.RESEARCH_USE, ConsentScope.GENETIC_RESEARCH)))
    )
    for item in query.filters:
        samples = samples.where(_filter_condition(item, "g_variants"))
    samples = _scope(samples, Specimen, scope)
    stmt = _variant_conditions(sa.select(Variant), p, canonical_chrom)
    # correlated: the database walks the variants asked for and looks for one carrier each
    stmt = stmt.where(
        sa.select(VariantCall.id)
        .where(VariantCall.variant_id == Variant.id, VariantCall.specimen_id.in_(samples))
        .exists()
    )
    return (
        stmt.order_by(Variant.chrom, Variant.pos, Variant.id),
        lambda variants: _variant_records(variants, samples),
    )


def _variant_conditions(
    stmt: sa.Select, p: dict[str, Any], canonical_chrom: Callable[[str], str]
) -> sa.Select:
    build = None
    if p.get("assemblyId"):
        build = build_of(str(p["assemblyId"])) or str(p["assemblyId"])
        stmt = stmt.where(Variant.reference_genome == build)
    if p.get("referenceName"):
        name = str(p["referenceName"]).removeprefix("refseq:")
        if name in _FROM_REFSEQ:
            refseq_build, chrom = _FROM_REFSEQ[name]
            if build not in (None, refseq_build):
                raise BeaconRequestError(400, f"{name} is a {refseq_build} chromosome, not {build}")
            stmt = stmt.where(Variant.reference_genome == refseq_build)
        else:
            chrom = canonical_chrom(name)
        stmt = stmt.where(Variant.chrom == chrom)
        if "start" not in p:
            raise BeaconRequestError(400, "a referenceName needs a start (0-based)")
    if "start" in p:
        if not p.get("referenceName"):
            raise BeaconRequestError(400, "start and end need a referenceName")
        starts = _positions("start", p["start"])
        ends = _positions("end", p["end"]) if "end" in p else []
        if len(starts) == 2 or len(ends) == 2:
            raise BeaconRequestError(
                400,
                "bracket queries (two starts or ends) are not "
                "served: ask for a range with one start and one end",
            )
        if ends:
            if ends[0] <= starts[0]:
                raise BeaconRequestError(400, f"end {ends[0]} is not after start {starts[0]}")
            # 0-based half-open [start, end): VCF positions start + 1 to end
            stmt = stmt.where(Variant.pos > starts[0], Variant.pos <= ends[0])
        else:  # a sequence query: the variant that starts there
            if "alternateBases" not in p:
                raise BeaconRequestError(
                    400, "a start without an end asks for one variant: give alternateBases too"
                )
            stmt = stmt.where(Variant.pos == starts[0] + 1)
    for key, column in (("referenceBases", Variant.ref), ("alternateBases", Variant.alt)):
        if key in p:
            bases = str(p[key]).upper()
            if not re.fullmatch(r"[ACGTN]+", bases):
                raise BeaconRequestError(400, f"{key} must be bases (A, C, G, T, N), not {p[key]!r}")
            stmt = stmt.where(sa.func.upper(column) == bases)
    if p.get("geneId"):
        stmt = stmt.where(Variant.gene == str(p["geneId"]).upper())
    if p.get("aminoacidChange"):
        change = str(p["aminoacidChange"])
        stmt = stmt.where(Variant.protein_change == (change if change.startswith("p.") else f"p.{change}"))
    if p.get("variantType"):
        stmt = stmt.where(_variant_type(str(p["variantType"]).upper()))
    return stmt


def _variant_type(kind: str) -> Any:
    ref_len, alt_len = sa.func.length(Variant.ref), sa.func.length(Variant.alt)
    symbolic = Variant.alt.startswith("<")
    if kind == "SNP":
        return sa.and_(ref_len == 1, alt_len == 1, ~symbolic)
    if kind == "MNP":
        return sa.and_(ref_len == alt_len, ref_len > 1, ~symbolic)
    if kind in ("DEL", "INS"):
        shorter = alt_len < ref_len if kind == "DEL" else alt_len > ref_len
        return sa.or_(Variant.alt.startswith(f"<{kind}"), sa.and_(~symbolic, shorter))
    if kind in ("DUP", "INV", "CNV"):
        return Variant.alt.startswith(f"<{kind}")
    raise BeaconRequestError(400, f"variantType {kind!r} is not one of SNP, MNP, DEL, INS, DUP, INV, CNV")


def _legacy_type(ref: str, alt: str) -> str:
    if alt.startswith("<"):
        return alt[1:-1].split(":")[0]
    if len(ref) == len(alt):
        return "SNP" if len(ref) == 1 else "MNP"
    return "DEL" if len(alt) < len(ref) else "INS"


def _variant_records(variants: list[Any], samples: sa.Select) -> list[dict[str, Any]]:
    """Variants as the default model's ``genomicVariations`` (legacy variation with a VRS
    sequence location), each with the samples of the asker's sites that carry it."""
    # the page's calls by their variants (an index), then which of their samples count: as
    # one statement, a database may start from the samples and read every call of each
    calls = db.session.execute(
        sa.select(VariantCall.variant_id, VariantCall.specimen_id)
        .distinct()
        .where(VariantCall.variant_id.in_([v.id for v in variants]))
    ).all()
    names = {
        specimen_id: (barcode, code)
        for specimen_id, barcode, code in db.session.execute(
            sa.select(Specimen.id, Specimen.barcode, Participant.code)
            .join(Participant, Participant.id == Specimen.participant_id)
            .where(Specimen.id.in_({c.specimen_id for c in calls}), Specimen.id.in_(samples))
        )
    }
    carriers: dict[int, list[dict[str, str]]] = {}
    for variant_id, barcode, code in sorted((v, *names[s]) for v, s in calls if s in names):
        carriers.setdefault(variant_id, []).append({"biosampleId": barcode, "individualId": code})
    out = []
    for variant in variants:
        build = variant.reference_genome
        sequence = REFSEQ.get(build or "", {}).get(variant.chrom)
        start = variant.pos - 1
        symbolic = variant.alt.startswith("<")
        record: dict[str, Any] = {
            "variantInternalId": f"{build}:{variant.chrom}:{variant.pos}:{variant.ref}:{variant.alt}",
            "variation": {
                "referenceBases": variant.ref.upper(),
                "alternateBases": "" if symbolic else variant.alt.upper(),
                "variantType": _legacy_type(variant.ref, variant.alt),
                "location": {
                    "type": "SequenceLocation",
                    "sequence_id": f"refseq:{sequence}" if sequence else f"{build}:{variant.chrom}",
                    "interval": {
                        "type": "SequenceInterval",
                        "start": {"type": "Number", "value": start},
                        "end": {"type": "Number", "value": start + len(variant.ref)},
                    },
                },
            },
            "caseLevelData": carriers.get(variant.id, []),
        }
        if sequence and not symbolic and len(variant.ref) == len(variant.alt) == 1:
            record["identifiers"] = {
                "genomicHGVSId": f"{sequence}:g.{variant.pos}{variant.ref}>{variant.alt}"
            }
        if variant.gene:
            record["molecularAttributes"] = {"geneIds": [variant.gene]}
            if variant.protein_change:
                record["molecularAttributes"]["aminoacidChanges"] = [
                    variant.protein_change.removeprefix("p.")
                ]
        out.append(record)
    return out


ENTRIES: dict[str, tuple[Callable[[Query, User | None], tuple[sa.Select, Records]], tuple[str, ...]]] = {
    "individuals": (_individuals, ()),
    "biosamples": (_biosamples, ()),
    "g_variants": (_g_variants, G_VARIANT_PARAMETERS),
}


def answer(entry: str) -> dict[str, Any]:
    """The Beacon response to a request for *entry*, at the granularity the asker may have."""
    actor = _asker()
    build, parameter_names = ENTRIES[entry]
    query = _query(parameter_names)
    granularity = min(query.granularity, _most_for(actor), key=GRANULARITIES.index)
    # staff count and list their own sites' data exactly; yes/no answers and researchers'
    # protected counts span the network
    staff = actor is not None and actor.role is not Role.RESEARCHER
    stmt, records = build(query, actor if staff and granularity != "boolean" else None)
    count = db.session.scalar(sa.select(sa.func.count()).select_from(stmt.order_by(None).subquery())) or 0
    meta = {
        "beaconId": _beacon_id(),
        "apiVersion": API_VERSION,
        "returnedSchemas": [_schema(entry)],
        "returnedGranularity": granularity,
        "receivedRequestSummary": query.summary(entry),
        "testMode": query.test_mode,
    }
    summary: dict[str, Any] = {"exists": count > 0}
    out: dict[str, Any] = {"meta": meta, "responseSummary": summary}
    if granularity == "boolean":
        return out
    shown = suppress(count, actor) if actor is not None else count
    if isinstance(shown, str):  # too few to count for this asker: a yes only
        meta["returnedGranularity"] = "boolean"
        out["info"] = {"countWithheld": f"fewer than {current_app.config['COUNT_SMALL_CELL']}"}
        return out
    summary["numTotalResults"] = shown
    if granularity == "count":
        return out
    rows = list(db.session.scalars(stmt.offset(query.skip).limit(query.limit)).unique())
    out["response"] = {
        "resultSets": [
            {
                "id": _beacon_id(),
                "setType": "dataset",
                "exists": count > 0,
                "resultsCount": count,
                "results": records(rows),
            }
        ]
    }
    return out


# --- the routes ------------------------------------------------------------------------------------


def _json(data: dict[str, Any]) -> Response:
    return jsonify(data)


ERROR_SCHEMA = {
    "type": "object",
    "required": ["meta", "error"],
    "properties": {
        "meta": {"type": "object"},
        "error": {
            "type": "object",
            "required": ["errorCode"],
            "properties": {"errorCode": {"type": "integer"}, "errorMessage": {"type": "string"}},
        },
    },
}


def _documented(func: Callable[..., Any]) -> Callable[..., Any]:
    for status, text in (
        (400, "a request the beacon cannot answer, and why"),
        (401, "credentials that do not hold, or none where the beacon answers signed-in users only"),
    ):
        func = blp.alt_response(
            status, schema=ERROR_SCHEMA, description=text, content_type="application/json"
        )(func)
    return func


def _entry_view(entry: str) -> type[MethodView]:
    class EntryViews(MethodView):
        @blp.response(200, {"type": "object"})
        @_documented
        def get(self) -> Any:
            return _json(answer(entry))

        @blp.response(200, {"type": "object"})
        @_documented
        def post(self) -> Any:
            return _json(answer(entry))

    EntryViews.__name__ = f"{entry.title().replace('_', '')}Views"
    EntryViews.get.__doc__ = (
        f"{ENTRY_TYPES[entry][1]} entries: a yes or no, a count or records, by who asks (query parameters)"
    )
    EntryViews.post.__doc__ = (
        f"{ENTRY_TYPES[entry][1]} entries: a yes or no, a count or "
        "records, by who asks (a Beacon request body)"
    )
    return EntryViews


for _entry in ENTRIES:
    blp.route(f"/{_entry}")(_entry_view(_entry))


def _info() -> dict[str, Any]:
    config = current_app.config
    return {
        "id": config["BEACON_ID"],
        "name": config["BEACON_NAME"],
        "apiVersion": API_VERSION,
        "environment": config["BEACON_ENVIRONMENT"].lower(),
        "version": f"v{__version__}",
        "description": "Samples, their donors and their variants, as the biobank may tell",
        "organization": {"id": config["BEACON_ORGANIZATION_ID"], "name": config["BEACON_ORGANIZATION_NAME"]},
    }


@blp.route("/")
class RootViews(MethodView):
    @blp.response(200, {"type": "object"})
    def get(self) -> Any:
        """The beacon's description (as /info)"""
        return _json({"meta": _informational_meta(), "response": _info()})


@blp.route("/info")
class InfoViews(MethodView):
    @blp.response(200, {"type": "object"})
    def get(self) -> Any:
        """The beacon's description"""
        return _json({"meta": _informational_meta(), "response": _info()})


@blp.route("/service-info")
class ServiceInfoViews(MethodView):
    @blp.response(200, {"type": "object"})
    def get(self) -> Any:
        """GA4GH service-info of the beacon"""
        info = _info()
        return _json(
            {
                "id": info["id"],
                "name": info["name"],
                "type": {"group": "org.ga4gh", "artifact": "beacon", "version": "v2.0"},
                "organization": {"name": info["organization"]["name"], "url": request.host_url.rstrip("/")},
                "version": info["version"],
                "environment": info["environment"],
            }
        )


def _entry_types() -> dict[str, Any]:
    return {
        entry_id: {
            "id": entry_id,
            "name": f"{name} entry",
            "partOfSpecification": "Beacon v2.0.0",
            "defaultSchema": {
                "id": f"beacon-v2-default-model:{model}",
                "name": f"Default schema for {model}",
                "referenceToSchemaDefinition": f"https://github.com/ga4gh-beacon/beacon-v2/tree/main/models/json/"
                f"beacon-v2-default-model/{model}/defaultSchema.json",
                "schemaVersion": API_VERSION,
            },
            "nonFilteredQueriesAllowed": entry_id != "genomicVariation",
        }
        for entry_id, name, model in ENTRY_TYPES.values()
    }


@blp.route("/entry_types")
class EntryTypesViews(MethodView):
    @blp.response(200, {"type": "object"})
    def get(self) -> Any:
        """The entry types this beacon answers"""
        return _json({"meta": _informational_meta(), "response": {"entryTypes": _entry_types()}})


@blp.route("/configuration")
class ConfigurationViews(MethodView):
    @blp.response(200, {"type": "object"})
    def get(self) -> Any:
        """Maturity, security and entry types"""
        anonymous = current_app.config["BEACON_ANONYMOUS"]
        return _json(
            {
                "meta": _informational_meta(),
                "response": {
                    "$schema": "https://json-schema.org/draft/2020-12/schema",
                    "maturityAttributes": {"productionStatus": current_app.config["BEACON_ENVIRONMENT"]},
                    "securityAttributes": {
                        "defaultGranularity": "boolean" if anonymous else "count",
                        "securityLevels": (["PUBLIC", "REGISTERED"] if anonymous else ["REGISTERED"]),
                    },
                    "entryTypes": _entry_types(),
                },
            }
        )


@blp.route("/map")
class MapViews(MethodView):
    @blp.response(200, {"type": "object"})
    def get(self) -> Any:
        """Where each entry type is answered"""
        root = request.host_url.rstrip("/") + blp.url_prefix
        return _json(
            {
                "meta": _informational_meta(),
                "response": {
                    "$schema": "https://json-schema.org/draft/2020-12/schema",
                    "endpointSets": {
                        entry_id: {"entryType": entry_id, "rootUrl": f"{root}/{path}"}
                        for path, (entry_id, _, _) in ENTRY_TYPES.items()
                    },
                },
            }
        )


def _filtering_terms() -> list[dict[str, Any]]:
    everywhere = ["individual", "biosample", "genomicVariation"]
    terms: list[dict[str, Any]] = [
        {"type": "ontologyTerm", "id": code, "label": label, "scopes": everywhere}
        for code, label in sorted(set(SEX_TERMS.values()))
    ]
    terms += [
        {
            "type": "customTerm",
            "id": f"diseaseGroup:{group.value}",
            "label": group.value.replace("_", " "),
            "scopes": everywhere,
        }
        for group in DiseaseGroup
    ]
    codes = db.session.scalars(sa.select(Case.icd10_code).distinct().order_by(Case.icd10_code)).all()
    terms += [
        {"type": "ontologyTerm", "id": f"ICD10:{code}", "label": code, "scopes": everywhere} for code in codes
    ]
    terms += [
        {
            "type": "customTerm",
            "id": f"materialType:{material.value}",
            "label": material.value.replace("_", " ").lower(),
            "scopes": ["biosample", "genomicVariation"],
        }
        for material in MaterialType
    ]
    return terms


@blp.route("/filtering_terms")
class FilteringTermsViews(MethodView):
    @blp.response(200, {"type": "object"})
    def get(self) -> Any:
        """The filters this beacon understands"""
        return _json(
            {
                "meta": _informational_meta(),
                "response": {
                    "filteringTerms": _filtering_terms(),
                    "resources": [
                        {
                            "id": "ncit",
                            "name": "NCI Thesaurus",
                            "nameSpacePrefix": "NCIT",
                            "iriPrefix": "http://purl.obolibrary.org/obo/NCIT_",
                        },
                        {"id": "icd10", "name": "ICD-10", "nameSpacePrefix": "ICD10"},
                    ],
                },
            }
        )
