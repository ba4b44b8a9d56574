"""Sites."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from biobank.db import db
from biobank.models import Site, User
from biobank.services.common import apply_changes, ensure_unique, visible


def list_sites(*, actor: User) -> sa.Select:
    """Sites the actor may see."""
    return visible(sa.select(Site), Site, actor)


def create_site(*, actor: User, **fields: Any) -> Site:
    """Create a site (administrators only; checked by the caller's role guard)."""
    ensure_unique(Site, Site.code, fields["code"], field="code")
    site = Site(**fields)
    db.session.add(site)
    db.session.flush()
    return site


def update_site(site: Site, changes: dict[str, Any], *, actor: User) -> Site:
    """Change a site's name, city or country."""
    if "code" in changes:
        ensure_unique(Site, Site.code, changes["code"], field="code", exclude_id=site.id)
    apply_changes(site, changes)
    db.session.flush()
    return site
