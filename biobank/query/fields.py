"""The registry of queryable fields (the levels a query answers at are in ``levels``).

Every package contributes fields at start-up (``register_fields(app, [...])``): the biobank
its participants, cases, lesions, specimens, consents and storage; omics its assays and
variant calls; images their modalities and quality flags. A field names the finest entity
its values hang on (``key``: a specimen, lesion, case or participant) and a ``source``: a
SELECT of that key and a ``value`` column. The compiler then relates any field to any
level through the entity hierarchy, so a package adds a field without touching the engine.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app

from biobank.models.vocab import code_text
from biobank.query.filters import FieldSpec
from biobank.query.levels import KEYS

_EXTENSION = "biobank.query_fields"


@dataclass(frozen=True)
class Field:
    """One queryable field.

    ``source()`` returns a SELECT with two labelled columns: ``key`` (the id of the entity
    named by ``key``) and ``value``. ``column``, when given, is the same value as a column of
    the entity's own table, used directly when the query is at that entity's level.
    """

    name: str
    type: str
    key: str
    source: Callable[[], sa.Select]
    description: str
    values: Sequence[str] | None = None
    to_db: Callable[[Any], Any] | None = None
    column: Callable[[], Any] | None = None
    unit: str | None = None
    facet: bool = True
    group: str = "biobank"
    #: coarser keys the source also selects (labelled by key name), for rows that have no
    #: value of ``key``: an image of a case taken of no particular lesion
    also: tuple[str, ...] = ()
    #: a value as equalities on other columns of the source (``"BRAF V600E"`` →
    #: gene and protein change), so that ``=`` and ``in`` use their index; None: cannot
    split: Callable[[Any], dict[str, Any] | None] | None = None

    def __post_init__(self) -> None:
        if self.key not in KEYS:
            raise ValueError(f"field {self.name}: key must be one of {KEYS}")

    @property
    def spec(self) -> FieldSpec:
        return FieldSpec(self.name, self.type, self.values)

    def db_value(self, value: Any) -> Any:
        if self.to_db is None or value is None:
            return value
        if isinstance(value, tuple):
            return tuple(self.to_db(v) for v in value)
        return self.to_db(value)

    def describe(self) -> dict[str, Any]:
        table, _, column = self.name.partition(".")
        return {
            "field": self.name,
            "label": f"{table.replace('_', ' ').capitalize()} · {column.replace('_', ' ')}",
            "value_labels": {v: code_text(v) for v in self.values} if self.values else None,
            "type": self.type,
            "description": self.description,
            "entity": self.key.removesuffix("_id"),
            "values": list(self.values or []) or None,
            "unit": self.unit,
            "facet": self.facet,
            "package": self.group,
        }


def column_field(
    name: str,
    key: str,
    column: Any,
    key_column: Any,
    description: str,
    *,
    type: str | None = None,
    enum_cls: type[enum.Enum] | None = None,
    join: Callable[[sa.Select], sa.Select] | None = None,
    **kwargs: Any,
) -> Field:
    """A field that is one column of an entity's table."""

    def source() -> sa.Select:
        stmt = sa.select(key_column.label("key"), column.label("value"))
        return join(stmt) if join else stmt

    if enum_cls is not None:
        kwargs.setdefault("values", [m.value for m in enum_cls])
        kwargs.setdefault("to_db", enum_cls)
    return Field(
        name=name,
        type=type or "keyword",
        key=key,
        source=source,
        description=description,
        column=None if join else (lambda: column),
        **kwargs,
    )


class FieldRegistry:
    def __init__(self) -> None:
        self._fields: dict[str, Field] = {}
        #: prefix → (builder of a field from its full name, its catalogue entry)
        self._families: dict[str, tuple[Callable[[str], Field | None], dict[str, Any]]] = {}

    def add_family(self, prefix: str, build: Callable[[str], Field | None], describe: dict[str, Any]) -> None:
        """Fields named ``<prefix><something>``, built when asked for (``expression.BRAF``)."""
        self._families[prefix] = (build, describe)

    def families(self) -> list[dict[str, Any]]:
        return [entry for _build, entry in self._families.values()]

    def add(self, fields: Iterable[Field]) -> None:
        for f in fields:
            if f.name in self._fields and self._fields[f.name] != f:
                raise ValueError(f"query field {f.name} registered twice")
            self._fields[f.name] = f

    def get(self, name: str) -> Field | None:
        found = self._fields.get(name)
        if found is None:
            for prefix, (build, _entry) in self._families.items():
                if name.startswith(prefix) and len(name) > len(prefix):
                    return build(name)
        return found

    def names(self) -> list[str]:
        return sorted(self._fields)

    def spec(self, name: str) -> FieldSpec | None:
        f = self.get(name)
        return f.spec if f else None

    def __iter__(self) -> Any:
        return iter(sorted(self._fields.values(), key=lambda f: f.name))

    def __len__(self) -> int:
        return len(self._fields)


@dataclass
class _Holder:
    registry: FieldRegistry = field(default_factory=FieldRegistry)


def register_fields(app: Flask, fields: Iterable[Field]) -> None:
    """Add a package's fields to *app*'s registry (called from the package's ``init_app``)."""
    app.extensions.setdefault(_EXTENSION, _Holder()).registry.add(fields)


def register_family(
    app: Flask, prefix: str, build: Callable[[str], Field | None], describe: dict[str, Any]
) -> None:
    app.extensions.setdefault(_EXTENSION, _Holder()).registry.add_family(prefix, build, describe)


def registry() -> FieldRegistry:
    holder = current_app.extensions.get(_EXTENSION)
    return holder.registry if holder else FieldRegistry()
