"""Cohort queries: GDC filters at the level asked for, facets, keyset pages, JSON or TSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from flask import Response, stream_with_context
from flask.views import MethodView
from flask_smorest import Blueprint

from biobank.auth import ALL_ROLES, current_actor, roles_required
from biobank.query.levels import LEVELS
from biobank.schemas.query import (
    CompletenessArgsSchema,
    CompletenessSchema,
    MappingSchema,
    QueryArgsSchema,
    QueryBodySchema,
    QueryResultSchema,
)
from biobank.services import query

blp = Blueprint(
    "query",
    __name__,
    description="Cohort queries over cases, lesions, specimens and aliquots (GDC filters grammar)",
)

LEVEL_DOC = (
    "`level` is participants, cases, lesions, specimens or aliquots. Researchers get "
    'counts and facets with counts of 1–4 shown as "<5"; staff also get '
    "pseudonymous rows of their sites. An unknown field, operator or ill-typed value "
    "answers 400 naming it (`errors[0].field` is its path in the filter) and listing "
    "what is allowed."
)


@blp.route("/_mapping")
class MappingView(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.response(200, MappingSchema)
    def get(self) -> Any:
        """Every queryable field with its type, entity, allowed values and unit"""
        return query.mapping()


def _answer(level: str, args: dict[str, Any]) -> Any:
    actor = current_actor()
    if args.get("format") == "tsv":
        rows = query.iter_rows(actor=actor, level=level, filters=args.get("filters"))
        return Response(
            stream_with_context(_tsv(level, rows)),
            mimetype="text/tab-separated-values",
            headers={"Content-Disposition": f'attachment; filename="{level}.tsv"'},
        )
    return query.run_query(
        actor=actor,
        level=level,
        filters=args.get("filters"),
        facets=args.get("facets"),
        size=args["size"],
        after=args.get("after"),
    )


def _tsv(level: str, rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    columns = LEVELS[level].row_columns
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns, delimiter="\t", lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for i, row in enumerate(rows, 1):
        writer.writerow(row)
        if i % 1000 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


@blp.route("/<string:level>/completeness")
class CompletenessView(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.arguments(CompletenessArgsSchema, location="query")
    @blp.response(200, CompletenessSchema)
    def get(self, args: dict[str, Any], level: str) -> Any:
        """How many cases or lesions have each combination of modalities

        Modalities: dermoscopy, clinical photo, whole-slide image, exome, RNA-Seq,
        methylation, proteomics, metabolomics, available tissue, available blood. The
        optional `filters` restricts the cases or lesions counted.
        """
        return query.completeness(actor=current_actor(), level=level, filters=args.get("filters"))


@blp.route("/<string:level>")
class QueryView(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.arguments(QueryArgsSchema, location="query")
    @blp.response(200, QueryResultSchema)
    def get(self, args: dict[str, Any], level: str) -> Any:
        """Query with the filter in the URL (`filters` is JSON text)"""
        return _answer(level, args)

    @roles_required(*ALL_ROLES)
    @blp.arguments(QueryBodySchema)
    @blp.response(200, QueryResultSchema)
    def post(self, args: dict[str, Any], level: str) -> Any:
        """Query with the filter in the body (no URL length limit)"""
        return _answer(level, args)


QueryView.get.__doc__ = f"{QueryView.get.__doc__}\n\n{LEVEL_DOC}"
QueryView.post.__doc__ = f"{QueryView.post.__doc__}\n\n{LEVEL_DOC}"
