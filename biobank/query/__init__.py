"""Cohort queries: the GDC filters grammar over a registry of fields packages contribute."""

from __future__ import annotations

from flask import Flask

from biobank.query.core_fields import core_fields
from biobank.query.fields import (
    Field,
    column_field,
    register_family,
    register_fields,
    registry,
)

__all__ = ["Field", "column_field", "init_app", "register_family", "register_fields", "registry"]


def init_app(app: Flask) -> None:
    register_fields(app, core_fields())
