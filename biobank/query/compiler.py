"""Compile a checked filter tree into SQLAlchemy expressions at a level.

Each clause becomes set membership: the level's row is kept when its key is among the keys
of the field's source rows that satisfy the comparison (or, for ``!=``, ``exclude``,
``excludeifany`` and ``is MISSING``, when it is not). A field on a coarser entity than the
level (a case's diagnosis for a specimen) is matched through the row's own ancestor key; a
field on a finer entity (a specimen's material for a case) is lifted to the level's key
through the entity hierarchy, so "a case with a frozen tumour aliquot" means exactly that.
Values are always bound parameters: nothing of the filter is ever spliced into SQL.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa

from biobank.query.fields import Field, FieldRegistry
from biobank.query.filters import BoolNode, Clause, Node
from biobank.query.levels import Level, Relation, lift, relation


def predicate(node: Node | None, level: Level, fields: FieldRegistry) -> Any:
    """A WHERE expression for *node* at *level* (``true()`` for no filter)."""
    if node is None:
        return sa.true()
    if isinstance(node, BoolNode):
        parts = [predicate(child, level, fields) for child in node.content]
        return sa.and_(*parts) if node.op == "and" else sa.or_(*parts)
    f = fields.get(node.field)
    assert f is not None  # the parser checked it
    return _clause(node, f, level)


def _clause(clause: Clause, f: Field, level: Level) -> Any:
    value = f.db_value(clause.value)
    op = clause.op
    if relation(f, level) is Relation.OWN:
        return _direct(op, f.column(), value)

    def equal(values: tuple[Any, ...]) -> Any:
        """Equality to any of *values*, on the parts a field splits its values into (an
        indexed gene and protein change rather than their concatenation) when it can."""
        parts = [f.split(v) if f.split else None for v in values]
        if all(parts):
            return lambda src: sa.or_(*[sa.and_(*[src.c[k] == x for k, x in p.items()]) for p in parts])
        return lambda src: src.c.value.in_(values) if len(values) > 1 else (src.c.value == values[0])

    if op == "!=":
        return sa.not_(_member(f, level, equal((value,))))
    if op == "excludeifany":
        return sa.not_(_member(f, level, equal(value)))
    if op == "exclude":
        return sa.or_(
            sa.not_(_member(f, level, equal(value))),
            _member(f, level, lambda src: sa.or_(src.c.value.not_in(value), src.c.value.is_(None))),
        )
    if op == "is":
        return sa.not_(_member(f, level, lambda src: src.c.value.is_not(None)))
    if op in ("=", "in"):
        return _member(f, level, equal(value if op == "in" else (value,)))
    return _member(f, level, lambda src: _compare(op, src.c.value, value))


def _compare(op: str, column: Any, value: Any) -> Any:
    match op:
        case "=":
            return column == value
        case "<":
            return column < value
        case "<=":
            return column <= value
        case ">":
            return column > value
        case ">=":
            return column >= value
        case "in":
            return column.in_(value)
        case "not":
            return column.is_not(None)
    raise AssertionError(op)


def _direct(op: str, column: Any, value: Any) -> Any:
    """A single-valued column of the level's own table."""
    match op:
        case "!=":
            return sa.or_(column != value, column.is_(None))
        case "excludeifany" | "exclude":
            return sa.or_(column.not_in(value), column.is_(None))
        case "is":
            return column.is_(None)
    return _compare(op, column, value)


def _member(f: Field, level: Level, condition: Any) -> Any:
    """The level's rows with at least one value of *f* that meets *condition* (a function
    of the source subquery)."""
    src = f.source().subquery()
    how = relation(f, level)
    if how is Relation.LIFT:
        stmt, value = lift(f, level, src)
        # a column of the finer entity's own table stands as the source's `value`
        values = src if f.column is None else SimpleNamespace(c=SimpleNamespace(value=value))
        return level.col(level.key).in_(stmt.where(condition(values)).correlate(None))
    if how is Relation.ALSO:
        sub = sa.select(src.c[level.key]).where(condition(src))
        return level.col(level.key).in_(sub.correlate(None))
    sub = sa.select(src.c.key).where(src.c.key.is_not(None), condition(src))
    column = level.col(f.key)
    member = column.in_(sub.correlate(None))
    # an ancestor key may be NULL (a blood tube of no lesion): then it is not a member,
    # and its negation must hold, not be NULL
    return member if f.key == level.key else sa.and_(column.is_not(None), member)
