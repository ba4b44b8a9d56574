"""API tokens: each user lists, names, expires and revokes their own; administrators any."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from biobank.auth import hash_token
from biobank.db import db, utcnow
from biobank.errors import InvalidInput, NotFound
from biobank.models import ApiToken, User
from biobank.models.users import Actor
from biobank.services.users import create_token

#: the longest a token may live, in days
MAX_TOKEN_DAYS = 3650


def list_tokens(owner: User) -> list[ApiToken]:
    """*owner*'s tokens, newest first, revoked and expired ones included."""
    return list(
        db.session.scalars(
            sa.select(ApiToken).where(ApiToken.user_id == owner.id).order_by(ApiToken.id.desc())
        )
    )


def issue_token(owner: User, *, name: str, days: int | None) -> tuple[ApiToken, str]:
    """A new token for *owner*; returns it and its secret, which is shown only this once."""
    name = (name or "").strip()
    if not name:
        raise InvalidInput("name the token after what will use it", field="name")
    if days is not None and not 1 <= days <= MAX_TOKEN_DAYS:
        raise InvalidInput(f"a token lives 1 to {MAX_TOKEN_DAYS} days", field="days")
    expires = utcnow() + dt.timedelta(days=days) if days else None
    secret = create_token(owner, name=name[:64], expires_at=expires)
    token = db.session.scalars(sa.select(ApiToken).where(ApiToken.token_hash == hash_token(secret))).one()
    return token, secret


def get_token(token_id: int, *, actor: Actor) -> ApiToken:
    """One of *actor*'s tokens (any token, for an administrator)."""
    token = db.session.get(ApiToken, token_id)
    if token is None or (token.user_id != actor.id and not actor.is_admin):
        raise NotFound(f"no token {token_id}")
    return token


def revoke_token(token: ApiToken) -> ApiToken:
    """Revoke *token*: the next request that carries it answers 401."""
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        db.session.flush()
    return token
