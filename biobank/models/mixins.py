"""Mixins shared by domain models."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Mapped

from biobank.db import created_at, updated_at


class Audited:
    """Marks a model whose inserts, updates and deletes are written to the audit trail."""

    #: attribute names never copied into audit records (secrets, derived blobs)
    __audit_exclude__: tuple[str, ...] = ()


class Timestamps:
    created_at: Mapped[created_at]
    updated_at: Mapped[updated_at]

    def touch(self) -> dt.datetime:
        """Return the last modification time (ETag and cache headers)."""
        return self.updated_at
