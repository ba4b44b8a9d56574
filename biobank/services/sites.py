"""Sites."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from biobank.barcodes import SITE_CODE_PATTERN, SITE_CODE_RULE
from biobank.db import db
from biobank.errors import InvalidInput
from biobank.models import Site
from biobank.models.users import Actor
from biobank.services.common import apply_changes, ensure_unique, visible


def list_sites(*, actor: Actor) -> sa.Select:
    """Sites the actor may see."""
    return visible(sa.select(Site), Site, actor)


def network_sites() -> list[Site]:
    """Every site of the network, by name: where a tube may be sent."""
    return list(db.session.scalars(sa.select(Site).order_by(Site.name)))


def site_code(code: str) -> str:
    """*code* as stored (upper case), or ``InvalidInput``: a site code starts every barcode
    issued there, so it holds only what a barcode may hold."""
    code = (code or "").strip().upper()
    if not SITE_CODE_PATTERN.fullmatch(code):
        raise InvalidInput(f"site code {code!r}: {SITE_CODE_RULE}", field="code")
    return code


def create_site(
    *,
    actor: Actor,
    code: str,
    name: str,
    city: str | None = None,
    country: str | None = None,
    is_central: bool = False,
) -> Site:
    """Create a site (administrators only; checked by the caller's role guard)."""
    code = site_code(code)
    ensure_unique(Site, Site.code, code, field="code")
    site = Site(code=code, name=name, city=city, country=country, is_central=is_central)
    db.session.add(site)
    db.session.flush()
    return site


def update_site(site: Site, changes: dict[str, Any], *, actor: Actor) -> Site:
    """Change a site's name, city or country."""
    if "code" in changes:
        changes["code"] = site_code(changes["code"])
        ensure_unique(Site, Site.code, changes["code"], field="code", exclude_id=site.id)
    apply_changes(site, changes)
    db.session.flush()
    return site
