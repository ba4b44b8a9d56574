"""Studies and their consent tiers."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from biobank.db import db
from biobank.errors import InvalidInput
from biobank.models import ConsentTier, Study
from biobank.models.users import Actor
from biobank.models.vocab import ConsentScope
from biobank.services.common import apply_changes, ensure_unique


def list_studies(*, actor: Actor) -> sa.Select:
    """Studies are visible to every user: they hold no participant data."""
    return sa.select(Study)


def create_study(
    *,
    actor: Actor,
    code: str,
    title: str,
    description: str | None = None,
    principal_investigator: str | None = None,
    ethics_reference: str | None = None,
    consent_tiers: list[dict[str, Any]] | None = None,
) -> Study:
    """Create a study with its consent tiers (each a ``code``, ``scope`` and ``statement``)."""
    ensure_unique(Study, Study.code, code, field="code")
    study = Study(
        code=code,
        title=title,
        description=description,
        principal_investigator=principal_investigator,
        ethics_reference=ethics_reference,
    )
    codes = [tier["code"] for tier in consent_tiers or []]
    duplicates = {c for c in codes if codes.count(c) > 1}
    if duplicates:
        raise InvalidInput(
            f"consent tier codes must be unique: {', '.join(sorted(duplicates))}",
            field="consent_tiers",
        )
    for position, tier in enumerate(consent_tiers or []):
        study.consent_tiers.append(ConsentTier(position=position, **tier))
    db.session.add(study)
    db.session.flush()
    return study


def add_consent_tier(
    study: Study, *, actor: Actor, code: str, scope: ConsentScope, statement: str
) -> ConsentTier:
    """Add a statement to a study's consent form."""
    if any(t.code == code for t in study.consent_tiers):
        raise InvalidInput(f"study {study.code} already has tier {code}", field="code")
    tier = ConsentTier(position=len(study.consent_tiers), code=code, scope=scope, statement=statement)
    study.consent_tiers.append(tier)
    db.session.flush()
    return tier


def update_study(study: Study, changes: dict[str, Any], *, actor: Actor) -> Study:
    """Change a study's descriptive fields."""
    if "code" in changes:
        ensure_unique(Study, Study.code, changes["code"], field="code", exclude_id=study.id)
    apply_changes(study, changes)
    db.session.flush()
    return study
