"""Authentication (session login and bearer tokens), roles and site scoping."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from flask import Flask, current_app, g, request, session
from werkzeug.security import check_password_hash, generate_password_hash

from biobank.audit import set_actor
from biobank.db import db, transaction, utcnow, writing
from biobank.errors import AuthenticationRequired, PermissionDenied, TooManyAttempts
from biobank.models.users import Actor, ApiToken, Throttle, User, UserSession, user_sites
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


def check_throttle(key: str) -> None:
    """Refuse while *key* is locked after too many failed password checks."""
    throttle = db.session.get(Throttle, key[:128])
    if throttle is not None and throttle.locked_until is not None and throttle.locked_until > utcnow():
        raise TooManyAttempts(
            "too many failed attempts: try again later", retry_after=throttle.locked_until.isoformat()
        )


def note_failure(key: str) -> None:
    """Count a failed password check for *key*; lock it after ``LOGIN_MAX_FAILURES``."""
    now = utcnow()
    throttle = db.session.get(Throttle, key[:128])
    if throttle is None:
        throttle = Throttle(key=key[:128], failures=0, updated_at=now)
        db.session.add(throttle)
    throttle.failures += 1
    throttle.updated_at = now
    if throttle.failures >= current_app.config["LOGIN_MAX_FAILURES"]:
        throttle.locked_until = now + dt.timedelta(seconds=current_app.config["LOGIN_LOCK_SECONDS"])
        throttle.failures = 0
    db.session.flush()


def clear_throttle(key: str) -> None:
    throttle = db.session.get(Throttle, key[:128])
    if throttle is not None:
        db.session.delete(throttle)


def authenticate(username: str, password: str) -> User | None:
    """Check a username and password; count failures and lock the name after too many.

    Returns ``None`` for a wrong name or password; the caller commits (so the failure count
    is kept) and then answers with one message for both cases. Failures are counted by the
    name typed, whether or not an account has it, and checked in the same time, so neither
    the answers, the lockout nor the timing reveal which usernames exist. Raises
    ``TooManyAttempts`` while the name is locked.
    """
    key = f"login:{username.strip().lower()}"
    check_throttle(key)
    user = db.session.scalar(sa.select(User).where(User.username == username))
    usable = user is not None and user.is_active and not user.is_system and user.password_hash
    if not check_password_hash(user.password_hash if usable else _DUMMY_HASH, password) or not usable:
        note_failure(key)
        return None
    clear_throttle(key)
    user.last_login_at = utcnow()
    return user


_DUMMY_HASH = generate_password_hash("not-a-password")


def start_session(user: User) -> str:
    """Record a signed-in browser for *user*; returns the secret its cookie keeps."""
    secret = secrets.token_urlsafe(32)
    now = utcnow()
    db.session.add(UserSession(id=hash_token(secret), user_id=user.id, created_at=now, last_seen_at=now))
    db.session.flush()
    return secret


def end_session(secret: str) -> None:
    """Log a browser out: its cookie no longer signs anyone in."""
    record = db.session.get(UserSession, hash_token(secret))
    if record is not None and record.ended_at is None:
        record.ended_at = utcnow()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for: the signed-in user's id, name, role and sites, read with one
    statement when the request begins. Services take it wherever they take an actor (it has
    the attributes of :class:`~biobank.models.users.User` they use); :meth:`account` loads
    the account itself for what needs it (a password check, a password change)."""

    id: int
    username: str
    full_name: str
    role: Role
    site_ids: frozenset[int]

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def may_see_phi(self) -> bool:
        """Researchers never see identifying data; everyone else at the site may."""
        return self.role is not Role.RESEARCHER

    def account(self) -> User:
        return db.session.get_one(User, self.id)


#: what a request needs of its user, one row per site the user works at (or one with none)
_PRINCIPAL_COLUMNS = (User.id, User.username, User.full_name, User.role, User.is_active, user_sites.c.site_id)


def _principal(rows: list[sa.Row[Any]]) -> Principal | None:
    """The principal of *rows* (a statement over ``_PRINCIPAL_COLUMNS`` and more), or None
    when there are none or the user is not active."""
    if not rows or not rows[0].is_active:
        return None
    first = rows[0]
    sites = frozenset(row.site_id for row in rows if row.site_id is not None)
    return Principal(first.id, first.username, first.full_name, first.role, sites)


def _with_user(stmt: sa.Select[Any], user_id: Any) -> sa.Select[Any]:
    return stmt.join(User, User.id == user_id).outerjoin(user_sites, user_sites.c.user_id == User.id)


@functools.cache
def _session_statement() -> sa.Select[Any]:
    """A browser session's state and its user, by the hash of its secret (built once: every
    page starts here)."""
    return _with_user(
        sa.select(UserSession.ended_at, UserSession.last_seen_at, *_PRINCIPAL_COLUMNS).where(
            UserSession.id == sa.bindparam("key")
        ),
        UserSession.user_id,
    )


@functools.cache
def _token_statement() -> sa.Select[Any]:
    """A token's state and its user, by the hash of its secret (built once: every API call
    starts here)."""
    return _with_user(
        sa.select(
            ApiToken.id.label("token_id"),
            ApiToken.expires_at,
            ApiToken.revoked_at,
            ApiToken.last_used_at,
            *_PRINCIPAL_COLUMNS,
        ).where(ApiToken.token_hash == sa.bindparam("key")),
        ApiToken.user_id,
    )


def user_for_session(secret: str) -> Principal | None:
    """The user a session cookie signs in, if the session is live: not ended, and not idle
    for longer than ``SESSION_IDLE_MINUTES`` (its last use is kept, once a minute)."""
    key = hash_token(str(secret))
    rows = db.session.connection().execute(_session_statement(), {"key": key}).all()
    now = utcnow()
    idle = dt.timedelta(minutes=current_app.config["SESSION_IDLE_MINUTES"])
    if not rows or rows[0].ended_at is not None or rows[0].last_seen_at < now - idle:
        return None
    principal = _principal(rows)
    if principal is not None and now - rows[0].last_seen_at > dt.timedelta(minutes=1):
        _bookkeep(UserSession.__table__, UserSession.id == key, last_seen_at=now)
    return principal


def user_for_token(secret: str) -> Principal | None:
    """The user a bearer token signs in, if the token is neither revoked nor expired: the
    token, its user and the user's sites in one statement."""
    rows = db.session.connection().execute(_token_statement(), {"key": hash_token(secret)}).all()
    now = utcnow()
    if not rows:
        return None
    token = rows[0]
    if not ApiToken.usable(token.revoked_at, token.expires_at, now):
        return None
    principal = _principal(rows)
    if principal is not None and (
        token.last_used_at is None or now - token.last_used_at > dt.timedelta(minutes=1)
    ):
        # Kept to the minute, so a busy scanner does not write on every request.
        _bookkeep(ApiToken.__table__, ApiToken.id == token.token_id, last_used_at=now)
    return principal


def _bookkeep(table: sa.Table, where: Any, **values: Any) -> None:
    """Update *table*'s row and commit it on its own, before the request's work: the read
    transaction begun to find the row ends first, and the write takes the write lock as it
    begins."""
    db.session.commit()  # nothing to write yet: it ends the read
    with writing(), transaction():
        db.session.execute(sa.update(table).where(where).values(**values))


def _load_actor() -> None:
    g.actor = None
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        user = user_for_token(header[7:].strip())
        if user is None:
            g.auth_error = "invalid, expired or revoked token"
        g.actor = user
    elif "sid" in session:
        user = user_for_session(session["sid"])
        if user is None:
            session.clear()  # ended (logged out, idle) or unknown: signed out
        unsafe = request.method not in ("GET", "HEAD", "OPTIONS")
        if (
            unsafe
            and request.path.startswith("/api/")
            and (not session.get("csrf") or request.headers.get("X-CSRF-Token") != session["csrf"])
        ):
            # Cookie-authenticated writes must prove they come from our own pages.
            g.auth_error = "send the page's CSRF token in X-CSRF-Token, or use a bearer token"
        elif user is not None:
            g.actor = user
    if g.actor is not None:
        set_actor(db.session, g.actor, reason=request.headers.get("X-Change-Reason") or None)


def current_actor() -> Principal:
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


def visible_site_ids(actor: Actor) -> set[int] | None:
    """Site ids whose data *actor* may see; ``None`` means all (administrators)."""
    return None if actor.is_admin else actor.site_ids


def check_site(actor: Actor, site_id: int, *, field: str = "site_id") -> None:
    """Refuse to act on another site's data."""
    sites = visible_site_ids(actor)
    if sites is not None and site_id not in sites:
        raise PermissionDenied("you are not a member of this site", field=field)


def scope(stmt: sa.Select, column: Any, actor: Actor) -> sa.Select:
    """Restrict *stmt* to rows whose *column* (a site id) the actor may see."""
    sites = visible_site_ids(actor)
    if sites is None:
        return stmt
    return stmt.where(column.in_(sorted(sites)))


def has_role(actor: Actor, roles: Iterable[Role]) -> bool:
    return actor.role in tuple(roles)


def init_app(app: Flask) -> None:
    app.before_request(_load_actor)
