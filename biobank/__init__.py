"""Biobank LIMS: specimens, storage, chain of custody, consent and cohorts."""

from __future__ import annotations

from biobank.app import create_app
from biobank.version import __version__

__all__ = ["__version__", "create_app"]
