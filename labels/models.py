"""Printers and print jobs."""

from __future__ import annotations

import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from biobank.db import created_at, db, intpk, str32, str64, str128, timestamp
from biobank.models.mixins import Audited, Timestamps
from biobank.models.users import User


class PrinterKind(enum.Enum):
    ZPL_TCP = "zpl_tcp"  # Zebra and compatibles: raw ZPL to port 9100
    CUPS = "cups"  # a CUPS queue, through `lp`
    PDF = "pdf"  # no device: the PDF is downloaded and printed by the user


class Printer(Audited, Timestamps, db.Model):
    __tablename__ = "printers"
    #: readings of the device, not changes to its configuration
    __audit_exclude__ = ("last_status", "last_status_at")

    id: Mapped[intpk]
    name: Mapped[str64] = mapped_column(unique=True)
    kind: Mapped[PrinterKind]
    address: Mapped[str128 | None] = mapped_column(
        comment="host:port for ZPL over TCP; [zpl:]queue[@host[:port]] for CUPS"
    )
    dpi: Mapped[int] = mapped_column(default=203)
    default_template: Mapped[str64 | None]
    site_id: Mapped[int | None] = mapped_column(sa.ForeignKey("sites.id"))
    is_active: Mapped[bool] = mapped_column(default=True)
    zpl_font: Mapped[str32 | None] = mapped_column(
        comment="TrueType font stored on a ZPL printer (e.g. E:ANMDS.TTF) for text its built-in "
        "font cannot print, such as Chinese"
    )
    asks_status: Mapped[bool] = mapped_column(
        default=True,
        server_default=sa.true(),
        comment="Ask a ZPL printer over TCP for its status (~HS) with each job",
    )
    last_status: Mapped[str128 | None] = mapped_column(
        comment="What the printer last reported: ready, or its faults (paper out, head open…)"
    )
    last_status_at: Mapped[timestamp | None]

    @property
    def takes_zpl(self) -> bool:
        """Zebra over TCP, or a raw CUPS queue (address ``zpl:<queue>``); others take PDF."""
        return self.kind is PrinterKind.ZPL_TCP or (
            self.kind is PrinterKind.CUPS and (self.address or "").startswith("zpl:")
        )

    @property
    def cups_queue(self) -> str:
        """The queue of a CUPS printer (address ``[zpl:]queue[@host[:port]]``)."""
        return (self.address or "").removeprefix("zpl:").partition("@")[0]

    @property
    def cups_server(self) -> str | None:
        """The CUPS server of a CUPS printer, or None for the local one."""
        return (self.address or "").partition("@")[2] or None


class PrintJobStatus(enum.Enum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    READY = "ready"  # a PDF waiting to be downloaded


class PrintJob(db.Model):
    """What was printed, by whom, on which printer, and whether it reached the printer."""

    __tablename__ = "print_jobs"

    id: Mapped[intpk]
    created_at: Mapped[created_at]
    actor_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"))
    printer_id: Mapped[int | None] = mapped_column(sa.ForeignKey("printers.id"), index=True)
    template: Mapped[str64]
    format: Mapped[str] = mapped_column(sa.String(8), comment="zpl or pdf")
    copies: Mapped[int] = mapped_column(default=1)
    label_count: Mapped[int]
    barcodes: Mapped[dict[str, Any]] = mapped_column(comment='{"items": [barcode, ...]}')
    reprint_reason: Mapped[str | None] = mapped_column(sa.Text)
    status: Mapped[PrintJobStatus] = mapped_column(default=PrintJobStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    sent_at: Mapped[timestamp | None]
    device_job_id: Mapped[str64 | None] = mapped_column(
        comment="the job's id at the printer's spooler (CUPS request id), once handed over"
    )
    payload: Mapped[bytes] = mapped_column(sa.LargeBinary, deferred=True)
    payload_sha256: Mapped[str] = mapped_column(sa.String(64))
    source: Mapped[str32] = mapped_column(comment="specimen, box, api, cli, …")

    actor: Mapped[User] = relationship()
    printer: Mapped[Printer | None] = relationship()


class PrintJobItem(db.Model):
    """One label of a job, indexed so that 'printed before?' is a lookup, not a scan."""

    __tablename__ = "print_job_items"
    __table_args__ = (sa.Index("ix_print_job_items_barcode_template", "barcode", "template"),)

    id: Mapped[intpk]
    job_id: Mapped[int] = mapped_column(sa.ForeignKey("print_jobs.id", ondelete="CASCADE"), index=True)
    barcode: Mapped[str64]
    template: Mapped[str64]
