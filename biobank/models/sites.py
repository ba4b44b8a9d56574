"""Sites: the hospitals and laboratories that collect and store specimens."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from biobank.db import db, intpk, str16, str128, str255
from biobank.models.mixins import Audited, Timestamps


class Site(Audited, Timestamps, db.Model):
    __tablename__ = "sites"

    id: Mapped[intpk]
    code: Mapped[str16] = mapped_column(unique=True, comment="Short code used in barcodes and IDs")
    name: Mapped[str255]
    city: Mapped[str128 | None]
    country: Mapped[str | None] = mapped_column(sa.String(2), comment="ISO 3166-1 alpha-2")
    is_central: Mapped[bool] = mapped_column(default=False, comment="The central biobank site")

    def __repr__(self) -> str:
        return f"<Site {self.code}>"
