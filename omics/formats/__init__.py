"""Readers of omics file formats (pure: no Flask, no SQLAlchemy), chosen through a registry.

``read(path)`` picks the reader for a file by its content and name; every reader raises
:class:`FormatError` naming the file, and the line or column where it can, for input it
cannot read.
"""

from __future__ import annotations

from omics.formats import alignments, bedmethyl, maf, matrix, vcf  # noqa: F401  (readers)
from omics.formats.errors import FormatError
from omics.formats.registry import REGISTRY, detect, open_reader, register

__all__ = ["REGISTRY", "FormatError", "detect", "open_reader", "register"]
