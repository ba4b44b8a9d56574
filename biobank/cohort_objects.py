"""The kinds of data object a cohort snapshot holds besides images (omics samples, …),
registered by each package at start-up like the query fields: biobank's cohort services
reach them through this registry, never by importing the package.

A kind answers three questions over its own tables:

* ``of_specimens(match, parent)``: a SELECT of its object ids whose specimen satisfies
  *match* (an expression over ``Specimen`` and *parent*, an alias of the specimen's parent,
  both to be joined by the kind);
* ``rows(ids)``: each object's manifest facts, rows with ``id``, ``modality``, ``name``,
  ``size_bytes``, ``sha256``, ``barcode``, ``lineage``, ``parent_barcode``,
  ``participant_id``, ``case_id`` and ``lesion_id``;
* ``site_ids(ids)``: a SELECT of the sites of the participants whose objects *ids* (a
  SELECT of object ids) are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app

_EXTENSION = "cohort_objects"


@dataclass(frozen=True)
class ObjectKind:
    #: the name snapshots store with each object (``omics``)
    name: str
    of_specimens: Callable[[sa.ColumnElement[bool], Any], sa.Select[Any]]
    rows: Callable[[list[int]], Iterable[Any]]
    site_ids: Callable[[sa.Select[Any]], sa.Select[Any]]


def register_object_kind(app: Flask, kind: ObjectKind) -> None:
    """Add a package's object kind to *app* (called from the package's ``init_app``)."""
    kinds: dict[str, ObjectKind] = app.extensions.setdefault(_EXTENSION, {})
    kinds[kind.name] = kind


def object_kinds() -> list[ObjectKind]:
    """The kinds registered on the current app, in registration order."""
    return list(current_app.extensions.get(_EXTENSION, {}).values())
