"""Users and API tokens."""

from __future__ import annotations

import datetime as dt
import secrets

import sqlalchemy as sa
from werkzeug.security import check_password_hash

from biobank.audit import set_actor, set_reason
from biobank.auth import clear_throttle, hash_password, hash_token, new_token_secret
from biobank.db import db, utcnow
from biobank.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from biobank.models import ApiToken, Site, User, UserSession
from biobank.models.users import Actor
from biobank.models.vocab import Role

#: the shortest password accepted
MIN_PASSWORD = 8


def system_actor() -> User:
    """The named service account that CLI commands, the demo and background work act as,
    created on first use; it becomes the session's actor for the audit trail."""
    user = db.session.scalar(sa.select(User).where(User.username == "system"))
    if user is None:
        user = User(
            username="system", full_name="Command line and background tasks", role=Role.ADMIN, is_system=True
        )
        db.session.add(user)
        db.session.flush()
    set_actor(db.session, user)
    return user


def get_user(username: str) -> User:
    user = db.session.scalar(sa.select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user {username!r}")
    return user


def create_user(
    *,
    username: str,
    role: Role,
    full_name: str,
    password: str | None,
    actor: Actor | None,
    email: str | None = None,
    site_codes: list[str] | None = None,
) -> User:
    """Create a user with a hashed password and site memberships."""
    if db.session.scalar(sa.select(User.id).where(User.username == username)):
        raise Conflict(f"user {username!r} exists", field="username")
    if password is not None:
        _check_password(password)
    user = User(
        username=username,
        role=role,
        full_name=full_name,
        email=email,
        password_hash=hash_password(password) if password else None,
        sites=_sites(site_codes or []),
    )
    db.session.add(user)
    db.session.flush()
    return user


def create_token(user: User, *, name: str, expires_at: dt.datetime | None = None) -> str:
    """Create an API token and return its secret; only its SHA-256 is stored."""
    secret = new_token_secret()
    db.session.add(
        ApiToken(
            user_id=user.id,
            name=name,
            prefix=secret[:12],
            token_hash=hash_token(secret),
            expires_at=expires_at,
        )
    )
    db.session.flush()
    return secret


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"a password has at least {MIN_PASSWORD} characters", field="password")


def _sites(codes: list[str]) -> list[Site]:
    sites = []
    for code in codes:
        site = db.session.scalar(sa.select(Site).where(Site.code == code))
        if site is None:
            raise InvalidInput(f"no site {code!r}", field="sites")
        sites.append(site)
    return sites


def _administrator(actor: Actor) -> None:
    if actor.role is not Role.ADMIN:
        raise PermissionDenied("users are managed by administrators")


def users_query(*, actor: Actor, role: Role | None = None, active: bool | None = None) -> sa.Select:
    """Every account but the system's, by username (administrators only), of one role and
    active or locked if asked."""
    _administrator(actor)
    stmt = sa.select(User).where(User.is_system.is_(False)).order_by(User.username)
    if role is not None:
        stmt = stmt.where(User.role == role)
    if active is not None:
        stmt = stmt.where(User.is_active.is_(active))
    return stmt


def list_users(*, actor: Actor) -> list[User]:
    return list(db.session.scalars(users_query(actor=actor)))


def get_account(user_id: int, *, actor: Actor) -> User:
    _administrator(actor)
    user = db.session.get(User, user_id)
    if user is None or user.is_system:
        raise NotFound(f"no user {user_id}")
    return user


def _other_active_admins(user: User) -> int:
    return (
        db.session.scalar(
            sa.select(sa.func.count(User.id)).where(
                User.role == Role.ADMIN,
                User.is_active.is_(True),
                User.is_system.is_(False),
                User.id != user.id,
            )
        )
        or 0
    )


def open_account(
    *,
    actor: Actor,
    username: str,
    role: Role,
    full_name: str,
    email: str | None = None,
    site_codes: list[str] | None = None,
) -> tuple[User, str]:
    """A new account with a random temporary password, answered once to tell its owner."""
    _administrator(actor)
    password = secrets.token_urlsafe(12)
    user = create_user(
        username=username,
        role=role,
        full_name=full_name,
        password=password,
        actor=actor,
        email=email or None,
        site_codes=site_codes,
    )
    return user, password


def update_user(
    user: User,
    *,
    actor: Actor,
    role: Role | None = None,
    full_name: str | None = None,
    email: str | None = None,
    site_codes: list[str] | None = None,
) -> User:
    """Change an account's role, name, e-mail or sites. The last active administrator keeps
    the role, so that someone can always manage the others."""
    _administrator(actor)
    if role is not None and role is not user.role:
        if user.role is Role.ADMIN and not _other_active_admins(user):
            raise Conflict(f"{user.username} is the last active administrator", field="role")
        user.role = role
    if full_name is not None:
        user.full_name = full_name
    if email is not None:
        user.email = email or None
    if site_codes is not None:
        user.sites = _sites(site_codes)
    db.session.flush()
    return user


def _end_sessions(user: User) -> None:
    db.session.execute(
        sa.update(UserSession)
        .where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
        .values(ended_at=utcnow())
    )


def lock_user(user: User, *, actor: Actor, reason: str) -> User:
    """Lock an account (someone left, a password leaked): its browsers are signed out and
    its API tokens answer 401 until it is unlocked. The reason goes on the audit trail."""
    _administrator(actor)
    if not (reason or "").strip():
        raise InvalidInput("say why the account is locked", field="reason")
    if user.id == actor.id:
        raise InvalidInput("you cannot lock your own account", field="user")
    if user.role is Role.ADMIN and not _other_active_admins(user):
        raise Conflict(f"{user.username} is the last active administrator", field="user")
    set_reason(db.session, reason.strip())
    user.is_active = False
    _end_sessions(user)
    db.session.flush()
    set_reason(db.session, None)
    return user


def unlock_user(user: User, *, actor: Actor) -> User:
    """Unlock an account, and lift a lockout after failed sign-ins."""
    _administrator(actor)
    user.is_active = True
    user.failed_logins = 0
    user.locked_until = None
    clear_throttle(f"login:{user.username.strip().lower()}")
    db.session.flush()
    return user


def reset_password(user: User, *, actor: Actor) -> str:
    """Give an account a new random password, answered once to tell its owner, who then
    chooses their own on the account page; the account's browsers are signed out."""
    _administrator(actor)
    password = secrets.token_urlsafe(12)
    user.password_hash = hash_password(password)
    _end_sessions(user)
    unlock_user(user, actor=actor)
    return password


def change_password(user: User, *, current: str, new: str) -> None:
    """One's own password, given the current one."""
    if not user.password_hash or not check_password_hash(user.password_hash, current):
        raise InvalidInput("the current password is wrong", field="current_password")
    _check_password(new)
    if new == current:
        raise InvalidInput("choose a password other than the current one", field="password")
    user.password_hash = hash_password(new)
    db.session.flush()
