"""The storage tree: site → freezer → rack → box, with grid dimensions and temperature."""

from __future__ import annotations

import enum
import re

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from biobank.db import created_at, db, intpk, str32, str64, str128
from biobank.models.mixins import Audited, Timestamps
from biobank.models.sites import Site
from biobank.models.vocab import ContainerKind, StorageTemperature

_LETTER_NUMBER = re.compile(r"^([A-Z]{1,2})0*([0-9]{1,3})$")
_ROW_COLUMN = re.compile(r"^0*([0-9]{1,3})\s*[/:,-]\s*0*([0-9]{1,3})$")


def row_letters(row: int) -> str:
    """1 → A, 26 → Z, 27 → AA."""
    letters = ""
    while row:
        row, rem = divmod(row - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


class PositionScheme(enum.Enum):
    """How the positions of a grid are named."""

    LETTER_NUMBER = "letter_number"  # A1, A2 … I9: row letter(s), column number
    NUMBER = "number"  # 1, 2 … 81, counted in the container's fill order
    ROW_COLUMN = "row_column"  # 1/1, 1/2 … 9/9: row number / column number


class FillOrder(enum.Enum):
    """The order in which positions are filled (and numbered, for the number scheme)."""

    ROW_MAJOR = "row_major"  # along the first row, then the next
    COLUMN_MAJOR = "column_major"  # down the first column, then the next


def position_name(
    scheme: PositionScheme | None,
    fill_order: FillOrder | None,
    n_rows: int | None,
    n_cols: int | None,
    row: int,
    col: int,
) -> str:
    """The name of grid position (*row*, *col*) in a container of that scheme and shape
    (read from its columns alone, where no container object is loaded)."""
    scheme = scheme or PositionScheme.LETTER_NUMBER
    if scheme is PositionScheme.NUMBER and n_rows and n_cols:
        if (fill_order or FillOrder.ROW_MAJOR) is FillOrder.COLUMN_MAJOR:
            return str((col - 1) * n_rows + row)
        return str((row - 1) * n_cols + col)
    if scheme is PositionScheme.ROW_COLUMN:
        return f"{row}/{col}"
    return f"{row_letters(row)}{col}"


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
    parent_id: Mapped[int | None] = mapped_column(sa.ForeignKey("storage_containers.id"), index=True)
    kind: Mapped[ContainerKind]
    name: Mapped[str128]
    barcode: Mapped[str32 | None] = mapped_column(unique=True)
    n_rows: Mapped[int | None] = mapped_column(comment="Grid rows; NULL for dimensionless units")
    n_cols: Mapped[int | None] = mapped_column(comment="Grid columns; NULL for dimensionless units")
    temperature: Mapped[StorageTemperature | None] = mapped_column(
        comment="MIABIS range; inherited from the parent when NULL"
    )
    position_scheme: Mapped[PositionScheme] = mapped_column(
        default=PositionScheme.LETTER_NUMBER, server_default=PositionScheme.LETTER_NUMBER.value
    )
    fill_order: Mapped[FillOrder] = mapped_column(
        default=FillOrder.ROW_MAJOR, server_default=FillOrder.ROW_MAJOR.value
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
        """The name of a grid position in this container's scheme."""
        return position_name(self.position_scheme, self.fill_order, self.n_rows, self.n_cols, row, col)

    def parse_position(self, label: str) -> tuple[int, int]:
        """(row, column) of a position named in this container's scheme; ``ValueError`` names
        the positions that exist when *label* is not one of them. A1-style names are always
        understood, whatever the scheme."""
        text = label.strip().upper()
        position = None
        if self.n_rows and self.n_cols:
            if match := _LETTER_NUMBER.match(text):
                row = 0
                for char in match[1]:
                    row = row * 26 + (ord(char) - 64)
                position = (row, int(match[2]))
            elif self.position_scheme is PositionScheme.NUMBER and text.isdigit():
                n = int(text) - 1
                if self.fill_order is FillOrder.COLUMN_MAJOR:
                    position = (n % self.n_rows + 1, n // self.n_rows + 1)
                else:
                    position = (n // self.n_cols + 1, n % self.n_cols + 1)
            elif self.position_scheme is PositionScheme.ROW_COLUMN and (match := _ROW_COLUMN.match(text)):
                position = (int(match[1]), int(match[2]))
        if position is None or not (
            1 <= position[0] <= self.n_rows  # type: ignore[operator]
            and 1 <= position[1] <= self.n_cols
        ):  # type: ignore[operator]
            raise ValueError(f"{label!r} is not a position of {self.name} ({self.position_range()})")
        return position

    def position_range(self) -> str:
        if not (self.n_rows and self.n_cols):
            return "no positions"
        first = self.position_label(1, 1)
        last = self.position_label(self.n_rows, self.n_cols)
        return f"positions {first}–{last}"

    def positions_in_fill_order(self) -> list[tuple[int, int]]:
        """Every (row, column) of the grid in the order they are filled."""
        if not (self.n_rows and self.n_cols):
            return []
        if self.fill_order is FillOrder.COLUMN_MAJOR:
            return [(r, c) for c in range(1, self.n_cols + 1) for r in range(1, self.n_rows + 1)]
        return [(r, c) for r in range(1, self.n_rows + 1) for c in range(1, self.n_cols + 1)]

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
    container_id: Mapped[int] = mapped_column(sa.ForeignKey("storage_containers.id", ondelete="CASCADE"))
    pos_row: Mapped[int]
    pos_col: Mapped[int]
    kind: Mapped[PositionHoldKind]
    reason: Mapped[str | None] = mapped_column(sa.Text)
    created_by: Mapped[str64]
    created_at: Mapped[created_at]

    container: Mapped[StorageContainer] = relationship()
