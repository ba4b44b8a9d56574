"""Cohort queries: a GDC filter at a level, with facets, keyset pages and small-cell suppression.

Researchers see counts only, with counts of 1 to 4 shown as ``"<5"``: row-level answers would
let them count what suppression hides. Staff see pseudonymous rows (never PHI) of the sites
they belong to; administrators see every site.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm import aliased

from biobank.auth import has_role, visible_site_ids
from biobank.db import db
from biobank.errors import InvalidFilter, PermissionDenied
from biobank.models import Participant, Specimen
from biobank.models.users import Actor
from biobank.models.vocab import Role
from biobank.query import compiler, planner
from biobank.query.fields import FieldRegistry, registry
from biobank.query.filters import Clause, FilterError, Node, parse
from biobank.query.levels import LEVELS, Level

MAX_FILTER_BYTES = 16_384
MAX_FACETS = 12


@dataclass
class QueryResult:
    level: str
    total: int | str
    hits: list[dict[str, Any]] = field(default_factory=list)
    facets: dict[str, dict[str, Any]] = field(default_factory=dict)
    next_cursor: int | None = None
    hits_withheld: str | None = None


def counts_only(actor: Actor) -> bool:
    """Researchers see suppressed counts, not rows."""
    return not has_role(actor, (Role.ADMIN, Role.MANAGER, Role.TECHNICIAN))


def suppress(count: int, actor: Actor) -> int | str:
    """A count as *actor* may see it. Staff see it exact. For researchers, as statistical
    offices publish: below ``COUNT_SMALL_CELL`` it is hidden (``"<5"``), above it is rounded
    to the nearest ``COUNT_ROUNDING_BASE`` (never below the small cell), so no two answers
    can be subtracted to recover a count of 1 to 4, nor a hidden facet bucket derived from
    the total. Zero stays zero."""
    if not counts_only(actor):
        return count
    return protect(
        count, small=current_app.config["COUNT_SMALL_CELL"], base=current_app.config["COUNT_ROUNDING_BASE"]
    )


def protect(count: int, *, small: int, base: int) -> int | str:
    """A count as it may be published: zero, ``"<small"``, or rounded to *base*."""
    if count == 0:
        return count
    if count < small:
        return f"<{small}"
    return max(small, (2 * count + base) // (2 * base) * base)


SUPPRESSED = "suppressed"


def _suppress_second(buckets: list[dict[str, Any]]) -> None:
    """Where a facet hides exactly one bucket, hide the smallest shown one too
    (complementary suppression): the total minus the shown buckets no longer isolates the
    hidden one. Only researchers' facets hide buckets."""
    hidden = [b for b in buckets if isinstance(b["doc_count"], str)]
    shown = [b for b in buckets if isinstance(b["doc_count"], int) and b["doc_count"] > 0]
    if len(hidden) == 1 and shown:
        min(shown, key=lambda b: b["doc_count"])["doc_count"] = SUPPRESSED


def level_of(name: str) -> Level:
    level = LEVELS.get(name)
    if level is None:
        raise InvalidFilter(f"unknown level {name!r}", field="level", allowed=sorted(LEVELS))
    return level


def parse_filters(document: Any, fields: FieldRegistry | None = None) -> Node | None:
    """Check a filter (a JSON string or an already decoded document)."""
    fields = fields or registry()
    if isinstance(document, str | bytes):
        if len(document) > MAX_FILTER_BYTES:
            raise InvalidFilter(f"the filter is longer than {MAX_FILTER_BYTES} bytes", field="filters")
        if not document.strip():
            return None
        try:
            document = json.loads(document)
        except ValueError as exc:
            raise InvalidFilter(f"the filter is not valid JSON: {exc}", field="filters") from None
    elif len(json.dumps(document, default=str)) > MAX_FILTER_BYTES:
        raise InvalidFilter(f"the filter is longer than {MAX_FILTER_BYTES} bytes", field="filters")
    try:
        return parse(document, fields.spec, fields.names)
    except FilterError as exc:
        path = f"filters.{exc.path}" if exc.path else "filters"
        raise InvalidFilter(exc.message, field=path, **exc.extra) from None


def parse_facets(names: list[str] | str | None, fields: FieldRegistry | None = None) -> list[str]:
    fields = fields or registry()
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    names = list(dict.fromkeys(names or []))
    if len(names) > MAX_FACETS:
        raise InvalidFilter(f"at most {MAX_FACETS} facets", field="facets")
    allowed = [f.name for f in fields if f.facet]
    for name in names:
        f = fields.get(name)
        if f is None:
            raise InvalidFilter(f"unknown field {name!r} cannot be a facet", field="facets", allowed=allowed)
        if not f.facet:
            raise InvalidFilter(
                f"{name} is a {f.type} field: it has no buckets to count", field="facets", allowed=allowed
            )
    return names


def _site_scope(level: Level, actor: Actor) -> Any:
    sites = None if counts_only(actor) else visible_site_ids(actor)
    if sites is None:
        return sa.true()
    column = Specimen.site_id if level.key == "specimen_id" else _participant_site(level)
    return column.in_(sorted(sites))


def _participant_site(level: Level) -> Any:
    """The site of the level's participant: its own column at the participant level, else
    looked up through an alias (the outer query may read participants itself)."""
    pid = level.col("participant_id")
    if pid is Participant.id:
        return Participant.site_id
    owner = aliased(Participant)
    return sa.select(owner.site_id).where(owner.id == pid).scalar_subquery()


def matching_ids(level: Level, node: Node | None, actor: Actor) -> sa.Select:
    """SELECT of the ids of the level's rows that match (for cohorts and manifests)."""
    fields = registry()
    where = sa.and_(compiler.predicate(node, level, fields), _site_scope(level, actor))
    return level.select(level.col(level.key)).where(where)


def run_query(
    *,
    actor: Actor,
    level: str,
    filters: Any = None,
    facets: Any = None,
    size: int = 100,
    after: int | None = None,
) -> QueryResult:
    fields = registry()
    lvl = level_of(level)
    node = parse_filters(filters, fields)
    facet_names = parse_facets(facets, fields)
    scope = _site_scope(lvl, actor)
    page = 0 if counts_only(actor) or size == 0 else size + 1
    total, facet_rows, ids = planner.count(lvl, node, facet_names, scope, fields, page=page, after=after)
    result = QueryResult(level=level, total=suppress(total, actor))
    for name in facet_names:
        buckets = [
            {"key": key, "doc_count": suppress(count, actor)} for key, count in facet_rows.get(name, [])
        ]
        buckets.sort(
            key=lambda b: (-(b["doc_count"] if isinstance(b["doc_count"], int) else 0), str(b["key"]))
        )
        _suppress_second(buckets)
        result.facets[name] = {"buckets": buckets}
    if counts_only(actor):
        small = current_app.config["COUNT_SMALL_CELL"]
        base = current_app.config["COUNT_ROUNDING_BASE"]
        result.hits_withheld = (
            f"researchers see counts, under {small} shown as <{small} and "
            f"the others rounded to the nearest {base}, until a request "
            "for these samples is approved"
        )
        return result
    if len(ids) > size:
        ids = ids[:size]
        result.next_cursor = ids[-1]
    result.hits = rows_for(level, ids)
    return result


def iter_rows(
    *, actor: Actor, level: str, filters: Any = None, batch: int = 2000
) -> Iterator[dict[str, Any]]:
    """Every matching row, in id order, fetched a batch at a time (for TSV downloads).

    The filter and the actor's rights are checked now, before the first row is read."""
    if counts_only(actor):
        raise PermissionDenied("researchers see counts only until a request is approved")
    lvl = level_of(level)
    stmt = matching_ids(lvl, parse_filters(filters), actor)
    key = lvl.col(lvl.key)

    def rows() -> Iterator[dict[str, Any]]:
        after = 0
        while True:
            ids = list(db.session.scalars(stmt.where(key > after).order_by(key).limit(batch)))
            if not ids:
                return
            yield from rows_for(level, ids)
            after = ids[-1]

    return rows()


def rows_for(level: str, ids: list[int]) -> list[dict[str, Any]]:
    """Pseudonymous rows for *ids* at *level*, in the order of *ids*. Never PHI."""
    return LEVELS[level].rows(ids) if ids else []


def mapping() -> dict[str, Any]:
    fields = registry()
    return {
        "levels": [{"level": name, "description": lvl.description} for name, lvl in LEVELS.items()],
        "operators": {
            "boolean": ["and", "or"],
            "comparison": ["=", "!=", "<", "<=", ">", ">="],
            "list": ["in", "exclude", "excludeifany"],
            "missing": ["is", "not"],
        },
        "fields": [f.describe() for f in fields] + fields.families(),
    }


#: modality → (field, values): what a case or lesion must have to count as having it
MODALITIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "dermoscopy": ("images.modality", ("dermoscopy",)),
    "clinical_photo": ("images.modality", ("clinical_overview", "clinical_closeup")),
    "wsi": ("images.modality", ("wsi",)),
    "exome": ("omics.assay_kind", ("exome",)),
    "rna_seq": ("omics.assay_kind", ("rna_seq",)),
    "methylation": ("omics.assay_kind", ("methylation",)),
    "proteomics": ("omics.assay_kind", ("proteomics",)),
    "metabolomics": ("omics.assay_kind", ("metabolomics",)),
    "tissue": ("specimens.available_material_class", ("tissue",)),
    "blood": ("specimens.available_material_class", ("blood",)),
}


def completeness(*, actor: Actor, level: str, filters: Any = None) -> dict[str, Any]:
    """How many cases (or lesions) have each combination of modalities (UpSet-style).

    ``tissue`` and ``blood`` count available material only. Combinations are sorted by
    count; researchers see counts of 1–4 as "<5".
    """
    if level not in ("cases", "lesions"):
        raise InvalidFilter(
            "modality completeness is counted for cases or lesions",
            field="level",
            allowed=["cases", "lesions"],
        )
    fields = registry()
    lvl = level_of(level)
    base = sa.and_(compiler.predicate(parse_filters(filters, fields), lvl, fields), _site_scope(lvl, actor))
    key = lvl.col(lvl.key)
    members = set(db.session.scalars(lvl.select(key).where(base)))
    masks = dict.fromkeys(members, 0)
    names = list(MODALITIES)
    for bit, name in enumerate(names):
        field_name, values = MODALITIES[name]
        if fields.get(field_name) is None:
            continue  # a package that is not installed contributes no modality
        clause = Clause("in", field_name, values)
        have = compiler.predicate(clause, lvl, fields)
        for entity in db.session.scalars(lvl.select(key).where(base, have)):
            masks[entity] |= 1 << bit
    combos: dict[int, int] = {}
    for mask in masks.values():
        combos[mask] = combos.get(mask, 0) + 1
    rows = sorted(combos.items(), key=lambda kv: (-kv[1], kv[0]))
    return {
        "level": level,
        "modalities": names,
        "total": suppress(len(members), actor),
        "per_modality": {
            name: suppress(sum(1 for m in masks.values() if m >> bit & 1), actor)
            for bit, name in enumerate(names)
        },
        "combinations": [
            {
                "modalities": [n for bit, n in enumerate(names) if mask >> bit & 1],
                "count": suppress(count, actor),
            }
            for mask, count in rows
        ],
    }
