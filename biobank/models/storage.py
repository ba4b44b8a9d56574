"""The storage tree: site → freezer → rack → box, with grid dimensions and temperature."""

from __future__ import annotations

import enum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from biobank.db import created_at, db, intpk, str32, str64, str128
from biobank.models.mixins import Audited, Timestamps
from biobank.models.sites import Site
from biobank.models.vocab import ContainerKind, StorageTemperature


class StorageContainer(Audited, Timestamps, db.Model):
    __tablename__ = "storage_containers"
    __table_args__ = (
        sa.CheckConstraint("(n_rows IS NULL) = (n_cols IS NULL)", name="grid_both_or_neither"),
        sa.CheckConstraint("n_rows IS NULL OR (n_rows BETWEEN 1 AND 100)", name="rows_range"),
        sa.CheckConstraint("n_cols IS NULL OR (n_cols BETWEEN 1 AND 100)", name="cols_range"),
        sa.UniqueConstraint("parent_id", "name"),
    )

    id: Mapped[intpk]
    site_id: Mapped[int] = mapped_column(sa.ForeignKey("sites.id"), index=True)
    parent_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("storage_containers.id"), index=True
    )
    kind: Mapped[ContainerKind]
    name: Mapped[str128]
    barcode: Mapped[str32 | None] = mapped_column(unique=True)
    n_rows: Mapped[int | None] = mapped_column(comment="Grid rows; NULL for dimensionless units")
    n_cols: Mapped[int | None] = mapped_column(comment="Grid columns; NULL for dimensionless units")
    temperature: Mapped[StorageTemperature | None] = mapped_column(
        comment="MIABIS range; inherited from the parent when NULL"
    )

    site: Mapped[Site] = relationship(lazy="joined")
    parent: Mapped[StorageContainer | None] = relationship(
        remote_side="StorageContainer.id", back_populates="children"
    )
    children: Mapped[list[StorageContainer]] = relationship(
        back_populates="parent", order_by="StorageContainer.name"
    )

    @property
    def has_grid(self) -> bool:
        return self.n_rows is not None

    @property
    def capacity(self) -> int | None:
        return self.n_rows * self.n_cols if self.n_rows and self.n_cols else None

    def effective_temperature(self) -> StorageTemperature | None:
        node: StorageContainer | None = self
        while node is not None:
            if node.temperature is not None:
                return node.temperature
            node = node.parent
        return None

    def path(self) -> list[StorageContainer]:
        """Containers from the top of the tree down to this one."""
        chain: list[StorageContainer] = []
        node: StorageContainer | None = self
        while node is not None:
            chain.append(node)
            node = node.parent
        return chain[::-1]

    def position_label(self, row: int, col: int) -> str:
        """A1-style label: row letter(s), column number."""
        letters = ""
        n = row
        while n:
            n, rem = divmod(n - 1, 26)
            letters = chr(65 + rem) + letters
        return f"{letters}{col}"

    def __repr__(self) -> str:
        return f"<StorageContainer {self.kind.value} {self.name}>"


class PositionHoldKind(enum.Enum):
    RESERVED = "reserved"  # kept free for something expected (a planned aliquot, a return)
    BLOCKED = "blocked"  # not usable (broken slot, damaged box)


class PositionHold(Audited, db.Model):
    """A grid position kept free: reserved or blocked. One hold per position."""

    __tablename__ = "position_holds"
    __table_args__ = (sa.UniqueConstraint("container_id", "pos_row", "pos_col"),)

    id: Mapped[intpk]
    container_id: Mapped[int] = mapped_column(
        sa.ForeignKey("storage_containers.id", ondelete="CASCADE"))
    pos_row: Mapped[int]
    pos_col: Mapped[int]
    kind: Mapped[PositionHoldKind]
    reason: Mapped[str | None] = mapped_column(sa.Text)
    created_by: Mapped[str64]
    created_at: Mapped[created_at]

    container: Mapped[StorageContainer] = relationship()
