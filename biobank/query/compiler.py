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

from typing import Any

import sqlalchemy as sa

from biobank.query.fields import KEYS, LIFT, Field, FieldRegistry, Level
from biobank.query.filters import BoolNode, Clause, Node


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
    if f.column is not None and f.key == level.key:
        return _direct(op, f.column(), value)
    if op == "!=":
        return sa.not_(_member(f, level, lambda v: v == value))
    if op == "excludeifany":
        return sa.not_(_member(f, level, lambda v: v.in_(value)))
    if op == "exclude":
        return sa.or_(sa.not_(_member(f, level, lambda v: v.in_(value))),
                      _member(f, level, lambda v: sa.or_(v.not_in(value), v.is_(None))))
    if op == "is":
        return sa.not_(_member(f, level, lambda v: v.is_not(None)))
    return _member(f, level, lambda v: _compare(op, v, value))


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
    """The level's rows with at least one value of *f* that meets *condition*."""
    src = f.source().subquery()
    if f.key in level.keys:
        sub = sa.select(src.c.key).where(src.c.key.is_not(None), condition(src.c.value))
        column = level.col(f.key)
        member = column.in_(sub.correlate(None))
        # an ancestor key may be NULL (a blood tube of no lesion): then it is not a member,
        # and its negation must hold, not be NULL
        return member if f.key == level.key else sa.and_(column.is_not(None), member)
    if level.key in f.also:
        sub = sa.select(src.c[level.key]).where(condition(src.c.value))
        return level.col(level.key).in_(sub.correlate(None))
    lift = _lift(f.key, level)
    sub = lift.select(lift.col(level.key)).join(src, src.c.key == lift.col(f.key)).where(
        condition(src.c.value))
    return level.col(level.key).in_(sub.correlate(None))


def _lift(key: str, level: Level) -> Level:
    if KEYS.index(key) > KEYS.index(level.key):
        raise AssertionError(f"{key} is not finer than {level.key}")
    return LIFT[key]


def facet(f: Field, level: Level, where: Any) -> sa.Select:
    """``(value, count)`` rows: how many of the level's rows matching *where* have each value."""
    src = f.source().subquery()
    if f.key in level.keys:
        stmt = level.select(src.c.value, sa.func.count(sa.distinct(level.col(level.key))))
        stmt = stmt.join(src, src.c.key == level.col(f.key))
    elif level.key in f.also:
        stmt = level.select(src.c.value, sa.func.count(sa.distinct(level.col(level.key))))
        stmt = stmt.join(src, src.c[level.key] == level.col(level.key))
    else:
        lift = _lift(f.key, level)
        ids = level.select(level.col(level.key)).where(where).correlate(None)
        stmt = lift.select(src.c.value, sa.func.count(sa.distinct(lift.col(level.key))))
        stmt = stmt.join(src, src.c.key == lift.col(f.key)).where(lift.col(level.key).in_(ids))
        return stmt.group_by(src.c.value)
    return stmt.where(where).group_by(src.c.value)
