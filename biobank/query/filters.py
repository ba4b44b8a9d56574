"""The GDC filters grammar: parse and type-check a filter against the field catalogue.

Pure: no Flask, no SQLAlchemy. A filter is a tree of ``{"op": ..., "content": ...}``
objects. Boolean nodes (``and``, ``or``) hold a list of nodes; a clause holds
``{"field": name, "value": v}``::

    {"op": "and", "content": [
        {"op": "=", "content": {"field": "cases.disease_group", "value": "melanoma"}},
        {"op": ">=", "content": {"field": "specimens.quantity_ul", "value": 20}}]}

Semantics of each operator where a row has several values of a field (a case with many
specimens, a participant with many consents):

- ``= < <= > >= in``: some value satisfies the comparison;
- ``!=`` and ``excludeifany``: no value is equal to (any of) the value(s);
- ``exclude``: not every value is among the values (rows that *only* match are dropped);
- ``is`` ``"MISSING"``: no value at all; ``not`` ``"MISSING"``: some value.

Every problem is a ``FilterError`` whose ``path`` says where in the document it is
(``content[1].content.value``), so a client can point at it.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

BOOLEAN_OPS = ("and", "or")
COMPARISON_OPS = ("=", "!=", "<", "<=", ">", ">=")
LIST_OPS = ("in", "exclude", "excludeifany")
MISSING_OPS = ("is", "not")
ALL_OPS = BOOLEAN_OPS + COMPARISON_OPS + LIST_OPS + MISSING_OPS
ORDERED_OPS = ("<", "<=", ">", ">=")

#: field types; ordered comparisons only make sense on numbers and dates
TYPES = ("keyword", "integer", "number", "boolean", "date")
#: largest magnitude of a number in a filter
MAX_NUMBER = 10**15
ORDERED_TYPES = ("integer", "number", "date")

MAX_DEPTH = 8
MAX_CLAUSES = 64
MAX_VALUES = 1000
MAX_STRING = 200


class FilterError(ValueError):
    def __init__(self, message: str, path: str = "", **extra: Any) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.message = message
        self.path = path
        self.extra = extra


@dataclass(frozen=True)
class FieldSpec:
    """What the grammar needs to know of a field: its type and, if closed, its values."""

    name: str
    type: str
    values: Sequence[str] | None = None


@dataclass(frozen=True)
class Clause:
    op: str
    field: str
    value: Any  # coerced: a scalar, a tuple for list operators, None for is/not


@dataclass(frozen=True)
class BoolNode:
    op: str
    content: tuple[Node, ...] = field(default_factory=tuple)


Node = Clause | BoolNode


def clauses(node: Node | None) -> Iterator[Clause]:
    if node is None:
        return
    if isinstance(node, Clause):
        yield node
        return
    for child in node.content:
        yield from clauses(child)


def without_field(node: Node | None, name: str) -> Node | None:
    """The filter with every clause on *name* removed (for that field's facet)."""
    if node is None:
        return None
    if isinstance(node, Clause):
        return None if node.field == name else node
    kept = tuple(c for c in (without_field(child, name) for child in node.content) if c is not None)
    if not kept:
        return None
    return BoolNode(node.op, kept)


def parse(
    document: Any, lookup: Callable[[str], FieldSpec | None], names: Callable[[], Sequence[str]]
) -> Node | None:
    """Check *document* and return its tree, or raise ``FilterError``.

    *lookup* returns a field by name (``None`` if unknown), *names* lists every field so an
    unknown name can be answered with the closest ones. An empty document (``None``, ``{}``)
    is no filter.
    """
    if document is None or document == {}:
        return None
    counter = [0]
    return _node(document, "", 1, counter, lookup, names)


def _node(
    doc: Any,
    path: str,
    depth: int,
    counter: list[int],
    lookup: Callable[[str], FieldSpec | None],
    names: Callable[[], Sequence[str]],
) -> Node:
    if depth > MAX_DEPTH:
        raise FilterError(f"filters nest at most {MAX_DEPTH} levels deep", path)
    if not isinstance(doc, Mapping):
        raise FilterError(f"expected an object with 'op' and 'content', got {_kind(doc)}", path)
    extra = sorted(set(doc) - {"op", "content"})
    if extra:
        raise FilterError(
            f"unexpected key(s) {', '.join(map(repr, extra))}: only 'op' and 'content' are allowed", path
        )
    op = doc.get("op")
    here = f"{path}.op" if path else "op"
    if not isinstance(op, str) or op not in ALL_OPS:
        raise FilterError(f"unknown operator {op!r}", here, allowed=list(ALL_OPS))
    content = doc.get("content")
    cpath = f"{path}.content" if path else "content"
    if op in BOOLEAN_OPS:
        if not isinstance(content, list) or not content:
            raise FilterError(f"'{op}' takes a non-empty list of filters", cpath)
        children = tuple(
            _node(child, f"{cpath}[{i}]", depth + 1, counter, lookup, names)
            for i, child in enumerate(content)
        )
        return BoolNode(op, children)
    counter[0] += 1
    if counter[0] > MAX_CLAUSES:
        raise FilterError(f"a filter holds at most {MAX_CLAUSES} clauses", path)
    if not isinstance(content, Mapping):
        raise FilterError(f"'{op}' takes an object with 'field' and 'value', got {_kind(content)}", cpath)
    extra = sorted(set(content) - {"field", "value"})
    if extra:
        raise FilterError(
            f"unexpected key(s) {', '.join(map(repr, extra))}: only 'field' and 'value' are allowed", cpath
        )
    name = content.get("field")
    if not isinstance(name, str) or not name:
        raise FilterError("'field' must be a field name", f"{cpath}.field")
    spec = lookup(name)
    if spec is None:
        close = difflib.get_close_matches(name, list(names()), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise FilterError(
            f"unknown field {name!r}{hint} (GET /api/v1/query/_mapping lists them)",
            f"{cpath}.field",
            suggestions=close,
        )
    if "value" not in content:
        raise FilterError("'value' is missing", cpath)
    vpath = f"{cpath}.value"
    return Clause(op, name, _value(op, spec, content["value"], vpath))


def _value(op: str, spec: FieldSpec, raw: Any, path: str) -> Any:
    if op in MISSING_OPS:
        if raw != "MISSING":
            raise FilterError(f"'{op}' takes the value \"MISSING\"", path)
        return None
    if op in ORDERED_OPS and spec.type not in ORDERED_TYPES:
        raise FilterError(
            f"'{op}' needs a number or a date; {spec.name} is a {spec.type}",
            path,
            allowed=["=", "!=", "in", "exclude", "excludeifany", "is", "not"],
        )
    if op in LIST_OPS:
        if not isinstance(raw, list) or not raw:
            raise FilterError(f"'{op}' takes a non-empty list of values", path)
        if len(raw) > MAX_VALUES:
            raise FilterError(f"at most {MAX_VALUES} values in one list", path)
        return tuple(_scalar(spec, item, f"{path}[{i}]") for i, item in enumerate(raw))
    return _scalar(spec, raw, path)


def _scalar(spec: FieldSpec, raw: Any, path: str) -> Any:
    kind = spec.type
    if kind == "boolean":
        if not isinstance(raw, bool):
            raise FilterError(f"{spec.name} takes true or false, got {_kind(raw)}", path)
        return raw
    if kind in ("integer", "number"):
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise FilterError(f"{spec.name} takes a number, got {_kind(raw)}", path)
        if isinstance(raw, float) and not math.isfinite(raw):
            raise FilterError(f"{spec.name} takes a finite number", path)
        if abs(raw) > MAX_NUMBER:
            # Beyond what the databases compare exactly (SQLite and PostgreSQL integers stop
            # at 2**63): no recorded value comes near it.
            raise FilterError(
                f"{spec.name} takes numbers between -{MAX_NUMBER:.0e} and {MAX_NUMBER:.0e}, got {raw}", path
            )
        if kind == "integer" and isinstance(raw, float) and not raw.is_integer():
            raise FilterError(f"{spec.name} takes a whole number, got {raw}", path)
        return int(raw) if kind == "integer" else raw
    if kind == "date":
        if not isinstance(raw, str):
            raise FilterError(f"{spec.name} takes a date as YYYY-MM-DD, got {_kind(raw)}", path)
        try:
            return dt.date.fromisoformat(raw)
        except ValueError:
            raise FilterError(f"{spec.name} takes a date as YYYY-MM-DD, got {raw!r}", path) from None
    if not isinstance(raw, str):
        raise FilterError(f"{spec.name} takes a string, got {_kind(raw)}", path)
    if len(raw) > MAX_STRING:
        raise FilterError(f"values are at most {MAX_STRING} characters", path)
    if spec.values is not None and raw not in spec.values:
        close = difflib.get_close_matches(raw, list(spec.values), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise FilterError(f"{raw!r} is not a value of {spec.name}{hint}", path, allowed=list(spec.values))
    return raw


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__
