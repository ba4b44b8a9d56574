"""Specimens: primaries, aliquots and derivatives, with their place in storage."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from biobank.db import db, intpk, quantity, str32, str64, timestamp
from biobank.models.cases import Lesion
from biobank.models.collection_events import CollectionEvent
from biobank.models.mixins import Audited, Timestamps
from biobank.models.participants import Participant
from biobank.models.sites import Site
from biobank.models.storage import StorageContainer
from biobank.models.vocab import (
    BodySite,
    Lineage,
    MaterialType,
    PathologyStatus,
    QuantityUnit,
    SpecimenStatus,
)


class Specimen(Audited, Timestamps, db.Model):
    __tablename__ = "specimens"
    #: the custody chain's head is derived from custody events, which are their own record
    __audit_exclude__ = ("custody_head", "custody_seq", "case_id")
    __table_args__ = (
        # At most one specimen per grid position: the database, not the code, enforces it,
        # so two technicians racing for one slot cannot both win.
        sa.UniqueConstraint("container_id", "pos_row", "pos_col", name="uq_specimens_position"),
        sa.CheckConstraint("(pos_row IS NULL) = (pos_col IS NULL)", name="position_both_or_neither"),
        sa.CheckConstraint("pos_row IS NULL OR container_id IS NOT NULL", name="position_needs_container"),
        sa.CheckConstraint("pos_row IS NULL OR pos_row >= 1", name="pos_row_positive"),
        sa.CheckConstraint("pos_col IS NULL OR pos_col >= 1", name="pos_col_positive"),
        sa.CheckConstraint("quantity IS NULL OR quantity >= 0", name="quantity_non_negative"),
        sa.CheckConstraint("freeze_thaw_count >= 0", name="freeze_thaw_non_negative"),
        sa.CheckConstraint("(parent_id IS NULL) = (lineage = 'primary')", name="lineage_matches_parent"),
        sa.Index("ix_specimens_site_id_id", "site_id", "id"),
        sa.Index("ix_specimens_material_type_status", "material_type", "status"),
        # the dashboard's counts by site, material and status read only this
        sa.Index("ix_specimens_site_material_status", "site_id", "material_type", "status"),
        # Cohort queries read these instead of the table (index-only scans): a case's or a
        # lesion's tubes with what filters and facets ask of them, a tube's ancestors by id.
        sa.Index("ix_specimens_case_id", "case_id", "material_type", "status", "unit", "quantity"),
        sa.Index("ix_specimens_lesion_id", "lesion_id", "material_type", "status", "unit", "quantity"),
        sa.Index("ix_specimens_id_ancestors", "id", "case_id", "lesion_id", "participant_id"),
    )

    id: Mapped[intpk]
    barcode: Mapped[str32] = mapped_column(unique=True, comment="Value encoded on the tube label")
    label: Mapped[str64 | None] = mapped_column(index=True, comment="Human-readable label text")
    manufacturer_barcode: Mapped[str64 | None] = mapped_column(
        unique=True, comment="Pre-printed 2D code of a manufacturer-barcoded tube"
    )
    participant_id: Mapped[int] = mapped_column(sa.ForeignKey("participants.id"), index=True)
    collection_event_id: Mapped[int | None] = mapped_column(sa.ForeignKey("collection_events.id"), index=True)
    lesion_id: Mapped[int | None] = mapped_column(sa.ForeignKey("lesions.id"))
    case_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("cases.id"),
        comment="Case of its lesion, else of its visit: kept in step by the database session "
        "(and set by bulk writers), so cohort queries reach a case in one step",
    )
    site_id: Mapped[int] = mapped_column(
        sa.ForeignKey("sites.id"), comment="Site that holds the specimen now"
    )
    parent_id: Mapped[int | None] = mapped_column(sa.ForeignKey("specimens.id"), index=True)
    lineage: Mapped[Lineage] = mapped_column(default=Lineage.PRIMARY)
    material_type: Mapped[MaterialType]
    pathology_status: Mapped[PathologyStatus] = mapped_column(default=PathologyStatus.NOT_SPECIFIED)
    anatomical_site: Mapped[BodySite | None]
    status: Mapped[SpecimenStatus] = mapped_column(default=SpecimenStatus.COLLECTED, index=True)
    initial_quantity: Mapped[quantity | None]
    quantity: Mapped[quantity | None] = mapped_column(comment="Quantity available now, in `unit`")
    unit: Mapped[QuantityUnit | None]
    concentration_ng_ul: Mapped[Decimal | None] = mapped_column(
        sa.Numeric(10, 3), comment="Nucleic acid concentration in ng/µL"
    )
    freeze_thaw_count: Mapped[int] = mapped_column(default=0)
    sprec_code: Mapped[str | None] = mapped_column(
        sa.String(40), comment="SPREC v3 code, seven elements joined by '-'"
    )
    received_at: Mapped[timestamp | None]
    processed_at: Mapped[timestamp | None] = mapped_column(comment="Centrifugation or fixation start")
    frozen_at: Mapped[timestamp | None]
    container_id: Mapped[int | None] = mapped_column(sa.ForeignKey("storage_containers.id"), index=True)
    pos_row: Mapped[int | None]
    pos_col: Mapped[int | None]
    custody_head: Mapped[str | None] = mapped_column(
        sa.String(64), comment="Hash of the latest custody event of this specimen"
    )
    custody_seq: Mapped[int] = mapped_column(
        default=0, comment="Number of custody events recorded for this specimen"
    )

    participant: Mapped[Participant] = relationship(lazy="joined")
    collection_event: Mapped[CollectionEvent | None] = relationship()
    lesion: Mapped[Lesion | None] = relationship()
    site: Mapped[Site] = relationship()
    container: Mapped[StorageContainer | None] = relationship()
    parent: Mapped[Specimen | None] = relationship(remote_side="Specimen.id", back_populates="children")
    children: Mapped[list[Specimen]] = relationship(back_populates="parent", order_by="Specimen.id")

    @property
    def position_label(self) -> str | None:
        if self.container is None or self.pos_row is None or self.pos_col is None:
            return None
        return self.container.position_label(self.pos_row, self.pos_col)

    @property
    def location_text(self) -> str | None:
        if self.container is None:
            return None
        path = " › ".join(c.name for c in self.container.path())
        label = self.position_label
        return f"{path} › {label}" if label else path

    @property
    def collected_at(self) -> dt.datetime | None:
        return self.collection_event.collected_at if self.collection_event else None

    def __repr__(self) -> str:
        return f"<Specimen {self.barcode} {self.status.value}>"


def case_of(connection: sa.Connection, lesion_id: int | None, collection_event_id: int | None) -> int | None:
    """The case a specimen belongs to: its lesion's, else its visit's."""
    if lesion_id is not None:
        case = connection.scalar(sa.select(Lesion.case_id).where(Lesion.id == lesion_id))
        if case is not None:
            return case
    if collection_event_id is not None:
        return connection.scalar(
            sa.select(CollectionEvent.case_id).where(CollectionEvent.id == collection_event_id)
        )
    return None


@sa.event.listens_for(Specimen, "before_insert")
def _case_on_insert(_mapper: sa.orm.Mapper, connection: sa.Connection, target: Specimen) -> None:
    parent = sa.inspect(target).dict.get("parent")  # only if loaded: no query in a flush
    if (
        parent is not None
        and parent.case_id is not None
        and target.lesion_id == parent.lesion_id
        and target.collection_event_id == parent.collection_event_id
    ):
        target.case_id = parent.case_id  # an aliquot: no query
    else:
        target.case_id = case_of(connection, target.lesion_id, target.collection_event_id)


@sa.event.listens_for(Specimen, "before_update")
def _case_on_update(_mapper: sa.orm.Mapper, connection: sa.Connection, target: Specimen) -> None:
    state = sa.inspect(target)
    if state.attrs.lesion_id.history.has_changes() or state.attrs.collection_event_id.history.has_changes():
        target.case_id = case_of(connection, target.lesion_id, target.collection_event_id)


def _follow(column: str) -> Callable[..., None]:
    """A visit or lesion whose case changes takes its specimens along."""

    def listener(_mapper: sa.orm.Mapper, connection: sa.Connection, target: Any) -> None:
        state = sa.inspect(target)
        if not state.attrs.case_id.history.has_changes() and not (
            column == "collection_event_id" and state.attrs.lesion_id.history.has_changes()
        ):
            return
        rows = connection.execute(
            sa.select(Specimen.id, Specimen.lesion_id, Specimen.collection_event_id).where(
                getattr(Specimen, column) == target.id
            )
        ).all()
        for ident, lesion_id, event_id in rows:
            connection.execute(
                sa.update(Specimen)
                .where(Specimen.id == ident)
                .values(case_id=case_of(connection, lesion_id, event_id))
            )

    return listener


sa.event.listen(CollectionEvent, "after_update", _follow("collection_event_id"))
sa.event.listen(Lesion, "after_update", _follow("lesion_id"))
