"""Authentication (session login and bearer tokens), roles and site scoping."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import secrets
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import sqlalchemy as sa
from flask import Flask, current_app, g, request, session
from sqlalchemy.orm import joinedload
from werkzeug.security import check_password_hash, generate_password_hash

from biobank.audit import set_actor
from biobank.db import db, utcnow
from biobank.errors import AuthenticationRequired, PermissionDenied, TooManyAttempts
from biobank.models.users import ApiToken, User
from biobank.models.vocab import Role

F = TypeVar("F", bound=Callable[..., Any])

ALL_ROLES = tuple(Role)
STAFF = (Role.ADMIN, Role.MANAGER, Role.TECHNICIAN)
MANAGERS = (Role.ADMIN, Role.MANAGER)
TOKEN_PREFIX = "bbk_"


def hash_password(password: str) -> str:
    return generate_password_hash(password)


def hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_token_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def authenticate(username: str, password: str) -> User | None:
    """Check a username and password; count failures and lock the account after too many.

    Returns ``None`` for a wrong name or password; the caller commits (so the failure count
    is kept) and then answers with one message for both cases, so the response does not
    reveal which usernames exist. Raises ``TooManyAttempts`` while the account is locked.
    """
    now = utcnow()
    user = db.session.scalar(sa.select(User).where(User.username == username))
    if user is None or not user.is_active or user.is_system or not user.password_hash:
        # Spend the same time as a real check so that timing does not reveal usernames.
        check_password_hash(_DUMMY_HASH, password)
        return None
    if user.locked_until is not None and user.locked_until > now:
        raise TooManyAttempts(
            "too many failed logins: try again later", retry_after=user.locked_until.isoformat()
        )
    if not check_password_hash(user.password_hash, password):
        user.failed_logins += 1
        if user.failed_logins >= current_app.config["LOGIN_MAX_FAILURES"]:
            user.locked_until = now + dt.timedelta(seconds=current_app.config["LOGIN_LOCK_SECONDS"])
            user.failed_logins = 0
        return None
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    return user


_DUMMY_HASH = generate_password_hash("not-a-password")


def user_for_token(secret: str) -> User | None:
    # The token, its user and the user's sites in one query: every API call starts here.
    token = db.session.scalars(
        sa.select(ApiToken).where(ApiToken.token_hash == hash_token(secret))
        .options(joinedload(ApiToken.user).joinedload(User.sites))).unique().first()
    if token is None or not token.is_usable(utcnow()) or not token.user.is_active:
        return None
    return token.user


def _load_actor() -> None:
    g.actor = None
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        user = user_for_token(header[7:].strip())
        if user is None:
            g.auth_error = "invalid, expired or revoked token"
        g.actor = user
    elif "user_id" in session:
        user = db.session.get(User, session["user_id"])
        unsafe = request.method not in ("GET", "HEAD", "OPTIONS")
        if unsafe and request.path.startswith("/api/") and (
            not session.get("csrf") or request.headers.get("X-CSRF-Token") != session["csrf"]
        ):
            # Cookie-authenticated writes must prove they come from our own pages.
            g.auth_error = "send the page's CSRF token in X-CSRF-Token, or use a bearer token"
        elif user is not None and user.is_active:
            g.actor = user
    if g.actor is not None:
        set_actor(db.session, g.actor, reason=request.headers.get("X-Change-Reason") or None)


def current_actor() -> User:
    """The authenticated user of this request; raises if there is none."""
    actor = g.get("actor")
    if actor is None:
        raise AuthenticationRequired(g.get("auth_error") or "log in or send a bearer token")
    return actor


def roles_required(*roles: Role) -> Callable[[F], F]:
    """Declare which roles may call a view; the check runs before the view body."""

    def decorator(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            actor = current_actor()
            if actor.role not in roles:
                allowed = ", ".join(r.value for r in roles)
                raise PermissionDenied(f"this action needs one of the roles: {allowed}")
            return func(*args, **kwargs)

        wrapper._roles = tuple(roles)  # type: ignore[attr-defined]
        doc = (func.__doc__ or "").strip()
        roles_text = ", ".join(r.value for r in roles)
        wrapper.__doc__ = f"{doc}\n\nRoles: {roles_text}." if doc else f"Roles: {roles_text}."
        return wrapper  # type: ignore[return-value]

    return decorator


def visible_site_ids(actor: User) -> set[int] | None:
    """Site ids whose data *actor* may see; ``None`` means all (administrators)."""
    return None if actor.is_admin else actor.site_ids


def check_site(actor: User, site_id: int, *, field: str = "site_id") -> None:
    """Refuse to act on another site's data."""
    sites = visible_site_ids(actor)
    if sites is not None and site_id not in sites:
        raise PermissionDenied("you are not a member of this site", field=field)


def scope(stmt: sa.Select, column: Any, actor: User) -> sa.Select:
    """Restrict *stmt* to rows whose *column* (a site id) the actor may see."""
    sites = visible_site_ids(actor)
    if sites is None:
        return stmt
    return stmt.where(column.in_(sorted(sites)))


def has_role(actor: User, roles: Iterable[Role]) -> bool:
    return actor.role in tuple(roles)


def init_app(app: Flask) -> None:
    app.before_request(_load_actor)
