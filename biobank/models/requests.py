"""Researchers' sample requests and the electronic signatures that decide them."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from biobank.db import (
    UTCDateTime,
    created_at,
    db,
    intpk,
    str32,
    str64,
    str128,
    str255,
    updated_at,
)
from biobank.models.cohorts import Cohort, CohortSnapshot
from biobank.models.sites import Site
from biobank.models.specimens import Specimen
from biobank.models.users import User


class RequestStatus(enum.Enum):
    SUBMITTED = "submitted"  # waiting for a manager's decision
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"  # by the researcher, before a decision
    ALLOCATED = "allocated"  # tubes reserved for it
    SHIPPED = "shipped"  # on its way to the researcher
    RECEIVED = "received"  # reconciled by the receiving lab


class SampleRequest(db.Model):
    """A researcher's request for material from the cases of a cohort.

    ``requirements`` say what each case must give (material, minimum quantity and unit,
    aliquots per case, pathology status, most freeze–thaw cycles); ``consent_scopes`` what
    every participant must have consented to. ``feasibility`` is the answer computed when
    the request was submitted (and again at the decision).
    """

    __tablename__ = "sample_requests"

    id: Mapped[intpk]
    code: Mapped[str32] = mapped_column(unique=True)
    title: Mapped[str255]
    purpose: Mapped[str] = mapped_column(sa.Text)
    ethics_reference: Mapped[str64] = mapped_column(comment="Ethics committee approval number")
    requester_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    cohort_id: Mapped[int] = mapped_column(sa.ForeignKey("cohorts.id"))
    snapshot_id: Mapped[int | None] = mapped_column(sa.ForeignKey("cohort_snapshots.id"))
    requirements: Mapped[dict[str, Any]]
    consent_scopes: Mapped[list[str]]
    feasibility: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[RequestStatus] = mapped_column(default=RequestStatus.SUBMITTED, index=True)
    decision_reason: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[created_at]
    updated_at: Mapped[updated_at]

    requester: Mapped[User] = relationship(foreign_keys=[requester_id])
    cohort: Mapped[Cohort] = relationship()
    snapshot: Mapped[CohortSnapshot | None] = relationship()
    signatures: Mapped[list[RequestSignature]] = relationship(
        back_populates="request", order_by="RequestSignature.id"
    )
    allocations: Mapped[list[Allocation]] = relationship(back_populates="request", order_by="Allocation.id")
    shipments: Mapped[list[Shipment]] = relationship(back_populates="request", order_by="Shipment.id")


class RequestSignature(db.Model):
    """An electronic signature (21 CFR Part 11 §11.50): who signed, when, and its meaning.

    The signer re-entered their password; ``content_sha256`` is the hash of the request as
    signed, so a later change to the request no longer matches its signature.
    """

    __tablename__ = "request_signatures"

    id: Mapped[intpk]
    request_id: Mapped[int] = mapped_column(sa.ForeignKey("sample_requests.id"), index=True)
    signer_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    signer_name: Mapped[str128] = mapped_column(comment="Printed name of the signer")
    meaning: Mapped[str32] = mapped_column(comment="approved or rejected")
    reason: Mapped[str | None] = mapped_column(sa.Text)
    content_sha256: Mapped[str] = mapped_column(sa.String(64))
    signed_at: Mapped[created_at]

    request: Mapped[SampleRequest] = relationship(back_populates="signatures")
    signer: Mapped[User] = relationship()


class Allocation(db.Model):
    """A tube reserved for a request. At most one live allocation per tube: a partial unique
    index decides when two requests race for the last aliquot. ``needs_processing``: the
    tube is a primary an aliquot must be made from first (a processing task)."""

    __tablename__ = "allocations"
    __table_args__ = (
        sa.Index(
            "uq_allocations_specimen_id_live",
            "specimen_id",
            unique=True,
            sqlite_where=sa.text("released_at IS NULL"),
            postgresql_where=sa.text("released_at IS NULL"),
        ),
    )

    id: Mapped[intpk]
    request_id: Mapped[int] = mapped_column(sa.ForeignKey("sample_requests.id"), index=True)
    specimen_id: Mapped[int] = mapped_column(sa.ForeignKey("specimens.id"))
    case_id: Mapped[int] = mapped_column(sa.ForeignKey("cases.id"))
    needs_processing: Mapped[bool] = mapped_column(default=False)
    allocated_by: Mapped[str64]
    created_at: Mapped[created_at]
    picked_at: Mapped[dt.datetime | None] = mapped_column(
        UTCDateTime(), comment="When its barcode was scanned at the freezer"
    )
    picked_by: Mapped[str64 | None]
    received_condition: Mapped[str32 | None] = mapped_column(
        comment="At the destination: acceptable, damaged, thawed, leaking; NULL: not received"
    )
    released_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    shipment_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("shipments.id"), index=True, comment="The parcel it left in"
    )

    request: Mapped[SampleRequest] = relationship(back_populates="allocations")
    specimen: Mapped[Specimen] = relationship()
    shipment: Mapped[Shipment | None] = relationship(back_populates="allocations")


class Shipment(db.Model):
    """The parcel of one site's picked tubes of a request, from that site to the researcher's
    lab: each site of a request ships its own tubes, once; the request is shipped when every
    site has shipped, received when every parcel is reconciled."""

    __tablename__ = "shipments"
    __table_args__ = (sa.UniqueConstraint("request_id", "site_id"),)

    id: Mapped[intpk]
    request_id: Mapped[int] = mapped_column(sa.ForeignKey("sample_requests.id"), index=True)
    site_id: Mapped[int] = mapped_column(sa.ForeignKey("sites.id"), comment="The site the parcel leaves from")
    destination: Mapped[str255] = mapped_column(comment="Receiving lab and address")
    courier: Mapped[str128]
    tracking_number: Mapped[str64 | None]
    temperature: Mapped[str32] = mapped_column(comment="ambient, 2-8C, dry_ice or liquid_nitrogen")
    shipped_by: Mapped[str64]
    shipped_at: Mapped[created_at]
    received_by: Mapped[str64 | None]
    received_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    reconciliation: Mapped[dict[str, Any]] = mapped_column(
        default=dict, comment="missing, damaged and extra barcodes found at the destination"
    )

    request: Mapped[SampleRequest] = relationship(back_populates="shipments")
    site: Mapped[Site] = relationship()
    allocations: Mapped[list[Allocation]] = relationship(back_populates="shipment", order_by="Allocation.id")
