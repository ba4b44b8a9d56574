"""Biobank LIMS: specimens, storage, chain of custody, consent and cohorts."""

from __future__ import annotations

__version__ = "0.1.0"

from biobank.app import create_app

__all__ = ["__version__", "create_app"]
