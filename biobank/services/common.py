"""Helpers shared by services: visibility by site, lookups that raise domain errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa

from biobank.auth import visible_site_ids
from biobank.db import db
from biobank.errors import Conflict, InvalidInput, NotFound
from biobank.models import (
    Case,
    CollectionEvent,
    ConsentResponse,
    Lesion,
    Participant,
    RackScan,
    Site,
    Specimen,
    StorageContainer,
    Study,
)
from biobank.models.users import Actor

M = TypeVar("M")


class ScopeUndeclared(RuntimeError):
    """A query of a model that has not said how it belongs to a site: refusing is safer than
    returning every site's rows."""


#: model → how a row reaches its site: ``(column, joins)``, built lazily; ``None`` marks data
#: every site shares (studies, reference data). Packages register their own models.
_SITE_PATHS: dict[type, Callable[[], tuple[Any, list[tuple[Any, Any]]]] | None] = {}


def register_site_path(model: type, path: Callable[[], tuple[Any, list[tuple[Any, Any]]]] | None) -> None:
    """Declare how rows of *model* belong to a site (``None``: shared by every site)."""
    _SITE_PATHS[model] = path


def _participant_path(model: Any) -> Callable[[], tuple[Any, list[tuple[Any, Any]]]]:
    return lambda: (Participant.site_id, [(Participant, model.participant_id == Participant.id)])


register_site_path(Site, lambda: (Site.id, []))
for _model in (Participant, CollectionEvent, Specimen, StorageContainer):
    register_site_path(_model, lambda m=_model: (m.site_id, []))
register_site_path(Case, _participant_path(Case))
register_site_path(ConsentResponse, _participant_path(ConsentResponse))
register_site_path(
    Lesion,
    lambda: (
        Participant.site_id,
        [(Case, Lesion.case_id == Case.id), (Participant, Case.participant_id == Participant.id)],
    ),
)
register_site_path(
    RackScan,
    lambda: (StorageContainer.site_id, [(StorageContainer, RackScan.container_id == StorageContainer.id)]),
)
register_site_path(Study, None)


def site_column(model: type) -> tuple[Any, list[tuple[Any, Any]]]:
    """The column holding a row's site for *model*, and the joins needed to reach it;
    ``(None, [])`` for data every site shares. Raises ``ScopeUndeclared`` for a model that
    declared nothing."""
    if model not in _SITE_PATHS:
        raise ScopeUndeclared(
            f"{model.__name__} does not declare how it belongs to a site "
            "(register_site_path): its rows cannot be scoped"
        )
    path = _SITE_PATHS[model]
    return path() if path is not None else (None, [])


def visible(stmt: sa.Select, model: type, actor: Actor) -> sa.Select:
    """Restrict *stmt* over *model* to the actor's sites (administrators see everything)."""
    column, joins = site_column(model)
    sites = visible_site_ids(actor)
    if sites is None or column is None:
        return stmt
    for target, onclause in joins:
        stmt = stmt.join(target, onclause)
    return stmt.where(column.in_(sorted(sites)))


def get_visible(
    model: type[M], ident: Any, actor: Actor, *, field: str | None = None, lock: bool = False
) -> M:
    """Load one row the actor may see, or raise ``NotFound`` (another site's row is 'not found'
    too, so ids of other sites' data are not revealed). With *field*, a missing reference is
    an ``InvalidInput`` naming that field instead."""
    stmt = visible(sa.select(model).where(model.id == ident), model, actor)  # type: ignore[attr-defined]
    if lock:
        stmt = stmt.with_for_update(of=model)
    obj = db.session.scalars(stmt).first()
    if obj is None:
        name = model.__name__.lower()  # type: ignore[attr-defined]
        if field:
            raise InvalidInput(f"no {name} with id {ident}", field=field)
        raise NotFound(f"no {name} with id {ident}")
    return obj


def get_by(model: type[M], column: Any, value: Any, actor: Actor) -> M:
    """Load one row by a unique column (barcode, code) the actor may see."""
    stmt = visible(sa.select(model).where(column == value), model, actor)
    obj = db.session.scalars(stmt).first()
    if obj is None:
        raise NotFound(f"no {model.__name__.lower()} with {column.key} {value!r}")  # type: ignore[attr-defined]
    return obj


def apply_changes(obj: Any, changes: dict[str, Any]) -> None:
    for key, value in changes.items():
        setattr(obj, key, value)


def ensure_unique(model: type, column: Any, value: Any, *, field: str, exclude_id: int | None = None) -> None:
    """Raise a 409 naming *field* when *value* is taken (the unique constraint still decides
    races; this gives the common case a precise message without a failed flush)."""
    stmt = sa.select(model.id).where(column == value)  # type: ignore[attr-defined]
    if exclude_id is not None:
        stmt = stmt.where(model.id != exclude_id)  # type: ignore[attr-defined]
    if db.session.scalar(stmt.limit(1)) is not None:
        raise Conflict(f"{field} {value!r} is already in use", field=field)


def count_of(stmt: sa.Select) -> int:
    """How many rows *stmt* (a plain filtered select: no DISTINCT, GROUP BY or LIMIT) finds.
    Counted as ``count(*)`` over its own FROM and WHERE, so that the database may read an
    index instead of the table."""
    return db.session.scalar(
        stmt.with_only_columns(sa.func.count(), maintain_column_froms=True).order_by(None)
    )
