"""Bulk imports: one job per uploaded file, with every problem found in it."""

from __future__ import annotations

import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from biobank.db import created_at, db, intpk, str32, str64, str128, str255, timestamp


class ImportStatus(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # every row written, committed
    FAILED = "failed"  # problems found: nothing written
    VALIDATED = "validated"  # a dry run found no problem: nothing written


class ImportJob(db.Model):
    """An import of one file. A file (by SHA-256) is imported at most once: a unique index
    over succeeded jobs refuses a second import even when two uploads race."""

    __tablename__ = "import_jobs"
    __table_args__ = (
        sa.Index(
            "uq_import_jobs_sha256_succeeded",
            "sha256",
            unique=True,
            sqlite_where=sa.text("status = 'succeeded'"),
            postgresql_where=sa.text("status = 'succeeded'"),
        ),
    )

    id: Mapped[intpk]
    template: Mapped[str32] = mapped_column(comment="Import template: master, participants…")
    filename: Mapped[str255]
    sha256: Mapped[str] = mapped_column(sa.String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    dry_run: Mapped[bool] = mapped_column(default=False)
    status: Mapped[ImportStatus] = mapped_column(default=ImportStatus.QUEUED)
    rows_read: Mapped[int] = mapped_column(default=0)
    error_count: Mapped[int] = mapped_column(default=0)
    created: Mapped[dict[str, Any]] = mapped_column(
        default=dict, comment="Rows written per table, once the import has committed"
    )
    stored_path: Mapped[str | None] = mapped_column(
        sa.Text, comment="Where the uploaded file is kept until it has been processed"
    )
    task_id: Mapped[str64 | None]
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_by_name: Mapped[str64]
    created_at: Mapped[created_at]
    started_at: Mapped[timestamp | None]
    finished_at: Mapped[timestamp | None]
    runner: Mapped[str128 | None] = mapped_column(
        comment="host:pid of the process running the job, to tell an interrupted one"
    )
    heartbeat_at: Mapped[timestamp | None] = mapped_column(
        comment="Last sign of life of the running job (PostgreSQL: while it reads the file)"
    )

    problems: Mapped[list[ImportProblem]] = relationship(
        back_populates="job", cascade="all, delete-orphan", order_by="ImportProblem.id", lazy="raise"
    )


class ImportProblem(db.Model):
    """One thing wrong in an import file: its line, column and what is wrong."""

    __tablename__ = "import_problems"

    id: Mapped[intpk]
    job_id: Mapped[int] = mapped_column(sa.ForeignKey("import_jobs.id", ondelete="CASCADE"), index=True)
    line: Mapped[int] = mapped_column(comment="Line (CSV) or row (XLSX) in the file; 0: the file")
    column: Mapped[str32 | None]
    message: Mapped[str] = mapped_column(sa.Text)

    job: Mapped[ImportJob] = relationship(back_populates="problems")
