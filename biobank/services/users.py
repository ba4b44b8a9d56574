"""Users and API tokens."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from biobank.audit import set_actor
from biobank.auth import hash_password, hash_token, new_token_secret
from biobank.db import db
from biobank.errors import Conflict, InvalidInput, NotFound
from biobank.models import ApiToken, Site, User
from biobank.models.vocab import Role


def system_actor() -> User:
    """The named service account that CLI commands, the demo and background work act as,
    created on first use; it becomes the session's actor for the audit trail."""
    user = db.session.scalar(sa.select(User).where(User.username == "system"))
    if user is None:
        user = User(username="system", full_name="Command line and background tasks",
                    role=Role.ADMIN, is_system=True)
        db.session.add(user)
        db.session.flush()
    set_actor(db.session, user)
    return user


def get_user(username: str) -> User:
    user = db.session.scalar(sa.select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user {username!r}")
    return user


def create_user(*, username: str, role: Role, full_name: str, password: str | None,
                actor: User | None, email: str | None = None,
                site_codes: list[str] | None = None) -> User:
    """Create a user with a hashed password and site memberships."""
    if db.session.scalar(sa.select(User.id).where(User.username == username)):
        raise Conflict(f"user {username!r} exists", field="username")
    if password is not None and len(password) < 8:
        raise InvalidInput("a password has at least 8 characters", field="password")
    sites = []
    for code in site_codes or []:
        site = db.session.scalar(sa.select(Site).where(Site.code == code))
        if site is None:
            raise InvalidInput(f"no site {code!r}", field="site")
        sites.append(site)
    user = User(username=username, role=role, full_name=full_name, email=email,
                password_hash=hash_password(password) if password else None, sites=sites)
    db.session.add(user)
    db.session.flush()
    return user


def create_token(user: User, *, name: str, expires_at: dt.datetime | None = None) -> str:
    """Create an API token and return its secret; only its SHA-256 is stored."""
    secret = new_token_secret()
    db.session.add(ApiToken(user=user, name=name, prefix=secret[:12],
                            token_hash=hash_token(secret), expires_at=expires_at))
    db.session.flush()
    return secret
