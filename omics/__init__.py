"""Omics: registration and ingestion of exome, RNA-Seq, methylation, proteomics and
metabolomics files linked to aliquots. Its readers in ``omics.formats`` import neither Flask
nor SQLAlchemy."""

from __future__ import annotations
