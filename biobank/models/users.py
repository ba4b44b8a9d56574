"""Users, their roles and site memberships, and API tokens (stored hashed)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Set as AbstractSet
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from biobank.db import created_at, db, intpk, str64, str128, str255, timestamp
from biobank.models.mixins import Audited, Timestamps
from biobank.models.sites import Site
from biobank.models.vocab import Role

user_sites = sa.Table(
    "user_sites",
    db.metadata,
    sa.Column("user_id", sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("site_id", sa.ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True),
)


class User(Audited, Timestamps, db.Model):
    __tablename__ = "users"
    __audit_exclude__ = ("password_hash", "failed_logins", "locked_until", "last_login_at")

    id: Mapped[intpk]
    username: Mapped[str64] = mapped_column(unique=True)
    full_name: Mapped[str128]
    email: Mapped[str255 | None]
    role: Mapped[Role]
    password_hash: Mapped[str255 | None]
    is_active: Mapped[bool] = mapped_column(default=True)
    is_system: Mapped[bool] = mapped_column(
        default=False, comment="Service account used by CLI commands and background tasks"
    )
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[timestamp | None]
    last_login_at: Mapped[timestamp | None]

    sites: Mapped[list[Site]] = relationship(secondary=user_sites, lazy="selectin")

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def site_ids(self) -> set[int]:
        return {site.id for site in self.sites}

    def may_see_phi(self) -> bool:
        """Researchers never see identifying data; everyone else at the site may."""
        return self.role is not Role.RESEARCHER

    def __repr__(self) -> str:
        return f"<User {self.username} {self.role.value}>"


class Actor(Protocol):
    """Whoever a service acts for: a :class:`User`, or a request's
    :class:`~biobank.auth.Principal` (read column by column when the request begins)."""

    @property
    def id(self) -> int: ...
    @property
    def username(self) -> str: ...
    @property
    def full_name(self) -> str: ...
    @property
    def role(self) -> Role: ...
    @property
    def is_admin(self) -> bool: ...
    @property
    def site_ids(self) -> AbstractSet[int]: ...
    def may_see_phi(self) -> bool: ...


class ApiToken(db.Model):
    __tablename__ = "api_tokens"

    id: Mapped[intpk]
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str64]
    prefix: Mapped[str] = mapped_column(sa.String(12), comment="First characters, to tell tokens apart")
    token_hash: Mapped[str] = mapped_column(
        sa.String(64), unique=True, comment="SHA-256 of the secret; the secret itself is never stored"
    )
    created_at: Mapped[created_at]
    expires_at: Mapped[timestamp | None]
    last_used_at: Mapped[timestamp | None]
    revoked_at: Mapped[timestamp | None]

    user: Mapped[User] = relationship(lazy="joined")

    @staticmethod
    def usable(revoked_at: dt.datetime | None, expires_at: dt.datetime | None, now: dt.datetime) -> bool:
        """Whether a token revoked and expiring at those times signs anyone in at *now*."""
        return revoked_at is None and (expires_at is None or expires_at > now)


class UserSession(db.Model):
    """A signed-in browser. The cookie holds only its id: logging out ends it here, so the
    old cookie no longer signs anyone in, and it ends after ``SESSION_IDLE_MINUTES`` idle."""

    __tablename__ = "user_sessions"

    id: Mapped[str] = mapped_column(
        sa.String(64), primary_key=True, comment="SHA-256 of the random id the cookie holds"
    )
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[created_at]
    last_seen_at: Mapped[timestamp]
    ended_at: Mapped[timestamp | None]


class Throttle(db.Model):
    """Failed password checks by key (``login:<name>`` for any name typed, known or not;
    ``sign:<user id>`` for e-signatures), and until when the key is locked."""

    __tablename__ = "throttles"

    key: Mapped[str128] = mapped_column(primary_key=True)
    failures: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[timestamp | None]
    updated_at: Mapped[timestamp]
