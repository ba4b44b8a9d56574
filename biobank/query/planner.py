"""How a cohort query is counted: the total, every facet and one page of ids, in one
statement over the level's rows (see ``count``). Policy (who sees what, suppression, limits)
stays with the service that calls it."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import current_app

from biobank.db import db
from biobank.query import compiler
from biobank.query.fields import Field, FieldRegistry
from biobank.query.filters import BoolNode, Node, clauses, without_field
from biobank.query.levels import Level, Relation, lift, relation


def count(
    level: Level,
    node: Node | None,
    facet_names: list[str],
    scope: Any,
    fields: FieldRegistry,
    *,
    page: int = 0,
    after: int | None = None,
) -> tuple[int, dict[str, list[tuple[Any, int]]], list[int]]:
    """The total, every facet and the ids of one page (*page* rows after *after*), in one
    statement.

    Each clause of the filter is evaluated once, into a flag column of a materialized CTE of
    the level's rows; the total counts rows whose flags satisfy the whole filter, and each
    facet joins its field's values to the rows that satisfy the filter without the clauses
    on that field. So five clauses and four facets cost five clause evaluations, not 25.
    """
    fixed, flagged = _split(node, set(facet_names))
    leaves = list(clauses(flagged))
    index = {id(leaf): i for i, leaf in enumerate(leaves)}
    columns = [level.col(k).label(k) for k in level.keys]
    flags = [
        sa.type_coerce(compiler.predicate(leaf, level, fields), sa.Boolean).label(f"m{i}")
        for i, leaf in enumerate(leaves)
    ]
    prefilter = [compiler.predicate(c, level, fields) for c in fixed]
    # A facet on a column of the level's own table is read with the rows, not joined back.
    own_values = {}
    for name in facet_names:
        f = fields.get(name)
        if f is not None and relation(f, level) is Relation.OWN:
            own_values[name] = f.column().label(f"facet{len(own_values)}")
    base = level.select(*columns, *flags, *own_values.values()).where(scope, *prefilter).cte("base")
    if db.session.get_bind().dialect.name == "postgresql":
        base = base.prefix_with("MATERIALIZED")
        # enough memory for each clause's key set to be one hash table, not a rescan per row
        work_mem = int(current_app.config["QUERY_WORK_MEM_MB"])
        db.session.execute(sa.text(f"SET LOCAL work_mem = '{work_mem}MB'"))
    own = base.c[level.key]

    def holds(tree: Node | None) -> Any:
        if tree is None:
            return sa.true()
        if isinstance(tree, BoolNode):
            parts = [holds(child) for child in tree.content]
            return sa.and_(*parts) if tree.op == "and" else sa.or_(*parts)
        return base.c[f"m{index[id(tree)]}"]

    parts = [
        sa.select(
            sa.literal("").label("facet"),
            sa.cast(sa.null(), sa.String).label("key"),
            sa.func.count().label("n"),
        )
        .select_from(base)
        .where(holds(flagged))
    ]
    for name in facet_names:
        f = fields.get(name)
        assert f is not None
        joined, value = _values(f, level, base, own_values.get(name))
        # A field with a column has one value per entity: a row of the level meets at most
        # one value of its own or its ancestor's, so rows need no DISTINCT to be counted.
        single = f.column is not None and relation(f, level) in (Relation.OWN, Relation.KEY)
        parts.append(
            sa.select(
                sa.literal(name).label("facet"),
                sa.cast(value, sa.String).label("key"),
                (sa.func.count() if single else sa.func.count(sa.distinct(own))).label("n"),
            )
            .select_from(joined)
            .where(holds(without_field(flagged, name)))
            .group_by(value)
        )
    if page:
        hits = (
            sa.select(own.label("id"))
            .where(holds(flagged))
            .where(own > (after if after is not None else -1))
            .order_by(own)
            .limit(page)
            .subquery()
        )
        parts.append(
            sa.select(
                sa.literal("#hit").label("facet"), sa.cast(sa.null(), sa.String).label("key"), hits.c.id
            )
        )
    total = 0
    facets: dict[str, list[tuple[Any, int]]] = {}
    ids: list[int] = []
    for facet_name, key, n in db.session.execute(sa.union_all(*parts)):
        if not facet_name:
            total = n
        elif facet_name == "#hit":
            ids.append(n)
        elif key is not None:
            facets.setdefault(facet_name, []).append((_facet_key(fields.get(facet_name), key), n))
    return total, facets, sorted(ids)


def _split(node: Node | None, faceted: set[str]) -> tuple[list[Node], Node | None]:
    """The filter as (clauses that hold for every count, the rest). Clauses on fields no
    facet is about filter the rows once (as semi-joins); only the others become flag
    columns, since each facet drops the clauses on its own field."""
    if isinstance(node, BoolNode) and node.op == "and":
        fixed = [c for c in node.content if not any(x.field in faceted for x in clauses(c))]
        rest = tuple(c for c in node.content if c not in fixed)
        return fixed, BoolNode("and", rest) if rest else None
    if node is not None and not any(x.field in faceted for x in clauses(node)):
        return [node], None
    return [], node


def _values(f: Field, level: Level, base: Any, own_value: Any) -> tuple[Any, Any]:
    """The level's rows (*base*) joined to *f*'s values, and the value column, as
    ``relation`` says the field reaches the level (*own_value*: the field's column read
    with the rows, for a column of the level's own table)."""
    own = base.c[level.key]
    how = relation(f, level)
    if how is Relation.OWN:
        return base, base.c[own_value.name]
    src = f.source().subquery()
    if how is Relation.KEY:
        return base.join(src, src.c.key == base.c[f.key]), src.c.value
    if how is Relation.ALSO:
        return base.join(src, src.c[level.key] == own), src.c.value
    stmt, lifted_value = lift(f, level, src)
    lifted = stmt.add_columns(lifted_value.label("value")).subquery()
    return base.join(lifted, lifted.c.lifted == own), lifted.c.value


def _facet_key(f: Any, key: str) -> Any:
    if f is not None and f.type == "boolean":
        return key in ("true", "1", "t")
    return key
