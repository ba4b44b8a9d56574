"""Verifying the custody ledger and signing checkpoints of it.

Every event carries the SHA-256 of its canonical content and the previous event's hash, so an
edited, inserted, removed or reordered event breaks its specimen's chain. Checkpoints add
what a chain cannot see about itself: they digest every chain's head (in buckets of 256
specimen ids), chain to the previous checkpoint, and are signed (HMAC-SHA256) with a key kept
outside the database, so deleting a whole chain, or rewriting one and its hashes, is found.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from flask import current_app

from biobank.db import db, read_only, utcnow
from biobank.models import CustodyCheckpoint, CustodyEvent, Specimen
from biobank.services.custody import content_hash

BUCKET = 256


@dataclass
class Finding:
    """One broken link: where, and what differs."""

    problem: str
    specimen_id: int | None = None
    barcode: str | None = None
    event_id: int | None = None
    seq: int | None = None

    def __str__(self) -> str:
        where = []
        if self.barcode or self.specimen_id:
            where.append(f"specimen {self.barcode or self.specimen_id}")
        if self.seq is not None:
            where.append(f"event #{self.seq}")
        if self.event_id is not None:
            where.append(f"(id {self.event_id})")
        return f"{' '.join(where)}: {self.problem}" if where else self.problem


@dataclass
class Report:
    events: int = 0
    specimens: int = 0
    checkpoints: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


def custody_key() -> bytes:
    """The checkpoint signing key: configured, or kept in the instance folder."""
    from pathlib import Path

    configured = current_app.config.get("CUSTODY_KEY")
    if configured:
        return configured.encode()
    path = Path(current_app.instance_path) / "custody_key"
    if not path.exists():
        import secrets

        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip().encode()


def _bucket_digests(heads: Iterator[tuple[int, int, str]]) -> dict[str, str]:
    digests: dict[str, Any] = {}
    for specimen_id, seq, head in heads:
        digests.setdefault(str(specimen_id // BUCKET), hashlib.sha256()).update(
            f"{specimen_id}:{seq}:{head}\n".encode())
    return {k: v.hexdigest() for k, v in digests.items()}


def _sign(checkpoint: CustodyCheckpoint) -> str:
    content = {"created_at": checkpoint.created_at.isoformat(timespec="microseconds"),
               "max_event_id": checkpoint.max_event_id,
               "specimen_count": checkpoint.specimen_count,
               "event_count": checkpoint.event_count, "buckets": checkpoint.buckets,
               "prev": checkpoint.prev_hash}
    raw = json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(custody_key(), raw, hashlib.sha256).hexdigest()


def _heads_as_of(max_event_id: int) -> Iterator[tuple[int, int, str]]:
    last = (sa.select(CustodyEvent.specimen_id, sa.func.max(CustodyEvent.seq).label("seq"))
            .where(CustodyEvent.id <= max_event_id).group_by(CustodyEvent.specimen_id).subquery())
    stmt = (sa.select(CustodyEvent.specimen_id, CustodyEvent.seq, CustodyEvent.hash)
            .join(last, sa.and_(CustodyEvent.specimen_id == last.c.specimen_id,
                                CustodyEvent.seq == last.c.seq))
            .order_by(CustodyEvent.specimen_id))
    yield from db.session.execute(stmt)


def create_checkpoint() -> CustodyCheckpoint:
    """Sign the current heads of every chain. Flushes; the caller commits."""
    max_id = db.session.scalar(sa.select(sa.func.max(CustodyEvent.id))) or 0
    heads = list(_heads_as_of(max_id))
    previous = db.session.scalar(
        sa.select(CustodyCheckpoint).order_by(CustodyCheckpoint.id.desc()).limit(1))
    checkpoint = CustodyCheckpoint(
        created_at=utcnow(), max_event_id=max_id, specimen_count=len(heads),
        event_count=db.session.scalar(sa.select(sa.func.count(CustodyEvent.id))
                                      .where(CustodyEvent.id <= max_id)),
        buckets=_bucket_digests(iter(heads)), prev_hash=previous.hash if previous else None)
    checkpoint.hash = _sign(checkpoint)
    db.session.add(checkpoint)
    db.session.flush()
    return checkpoint


def check_event(event: Any, *, barcode: str, prev_hash: str | None, expected_seq: int
                ) -> str | None:
    """What is wrong with one event given its chain so far, or ``None``."""
    if event.seq != expected_seq:
        return (f"sequence jumps from #{expected_seq - 1} to #{event.seq}: an event was removed "
                "or reordered")
    if event.prev_hash != prev_hash:
        return (f"previous-hash link is {(event.prev_hash or 'empty')[:12]} but the previous "
                f"event's hash is {(prev_hash or 'empty')[:12]}: an event was inserted, removed "
                "or reordered")
    recomputed = content_hash(
        barcode=barcode, seq=event.seq, event_type=event.event_type,
        occurred_at=event.occurred_at, recorded_at=event.recorded_at,
        actor_name=event.actor_name, from_location=event.from_location,
        to_location=event.to_location, details=event.details,
        client_event_id=event.client_event_id, prev_hash=event.prev_hash)
    if recomputed != event.hash:
        return (f"content does not match its hash (stored {event.hash[:12]}, recomputed "
                f"{recomputed[:12]}): the event was edited")
    return None


def verify_specimen_chain(specimen: Specimen) -> Finding | None:
    """Check one specimen's chain (for its page and timeline); ``None`` when intact."""
    events = db.session.execute(
        sa.select(*CustodyEvent.__table__.c).where(CustodyEvent.specimen_id == specimen.id)
        .order_by(CustodyEvent.seq)).all()
    prev_hash, expected = None, 1
    for event in events:
        problem = check_event(event, barcode=specimen.barcode, prev_hash=prev_hash,
                              expected_seq=expected)
        if problem:
            return Finding(problem, specimen.id, specimen.barcode, event.id, event.seq)
        prev_hash, expected = event.hash, event.seq + 1
    last = (events[-1].seq, events[-1].hash) if events else (0, None)
    if (specimen.custody_seq, specimen.custody_head) != last:
        return Finding(f"the specimen says its chain ends at #{specimen.custody_seq} but the "
                       f"ledger ends at #{last[0]}", specimen.id, specimen.barcode)
    return None


@dataclass
class Chains:
    """What checking the chains of a range of specimens found (picklable: worker processes
    send it back)."""

    events: int = 0
    specimens: int = 0
    findings: list[Finding] = field(default_factory=list)
    #: digests of the chains' heads as of the latest checkpoint, by bucket of specimen ids
    buckets: dict[str, str] = field(default_factory=dict)
    events_as_of_latest: int = 0


def check_chains(low: int, high: int, *, max_event_id: int | None, stop_at_first: bool = False,
                 progress: Callable[[int], None] | None = None) -> Chains:
    """Check the chains of the specimens with ``low <= id < high``: every event's sequence,
    link and hash, and each specimen's recorded head. *max_event_id* is the latest
    checkpoint's: heads as of it are digested for the comparison with that checkpoint."""
    result = Chains()
    as_of_latest: list[tuple[int, int, str]] = []

    def found(finding: Finding) -> bool:
        result.findings.append(finding)
        return stop_at_first

    def rows() -> Iterator[Any]:
        # Windows of specimen ids keep memory bounded without a server-side cursor.
        step = 2000
        for start in range(low, high, step):
            # Plain rows on the session's connection: no ORM loading, nothing accumulates.
            for row in db.session.connection().execute(
                sa.select(*CustodyEvent.__table__.c, Specimen.barcode, Specimen.custody_seq,
                          Specimen.custody_head)
                .join(Specimen, Specimen.id == CustodyEvent.specimen_id)
                .where(CustodyEvent.specimen_id >= start,
                       CustodyEvent.specimen_id < min(start + step, high))
                .order_by(CustodyEvent.specimen_id, CustodyEvent.seq)):
                yield row, row.barcode, row.custody_seq, row.custody_head

    current: int | None = None
    prev_hash: str | None = None
    expected_seq = 1
    head_row: tuple[Any, ...] | None = None
    latest_head: tuple[int, int, str] | None = None

    def close_chain() -> bool:
        if head_row is None:
            return False
        last_event, barcode, custody_seq, custody_head = head_row
        if (custody_seq, custody_head) != (last_event.seq, last_event.hash):
            return found(Finding(
                f"the specimen says its chain ends at #{custody_seq} ({(custody_head or '')[:12]}) "
                f"but the ledger ends at #{last_event.seq} ({last_event.hash[:12]})",
                last_event.specimen_id, barcode, last_event.id, last_event.seq))
        return False

    def finish() -> Chains:
        result.buckets = _bucket_digests(iter(as_of_latest))
        return result

    for event, barcode, custody_seq, custody_head in rows():
        if event.specimen_id != current:
            if close_chain():
                return finish()
            if latest_head is not None:
                as_of_latest.append(latest_head)
            current, prev_hash, expected_seq, latest_head = event.specimen_id, None, 1, None
            result.specimens += 1
        result.events += 1
        if progress and result.events % 100_000 == 0:
            progress(result.events)
        head_row = (event, barcode, custody_seq, custody_head)
        if max_event_id is not None and event.id <= max_event_id:
            latest_head = (event.specimen_id, event.seq, event.hash)
            result.events_as_of_latest += 1
        problem = check_event(event, barcode=barcode, prev_hash=prev_hash, expected_seq=expected_seq)
        if problem and found(Finding(problem, event.specimen_id, barcode, event.id, event.seq)):
            return finish()
        prev_hash = event.hash
        expected_seq = event.seq + 1
    if close_chain():
        return finish()
    if latest_head is not None:
        as_of_latest.append(latest_head)
    return finish()


def _check_chains_in_worker(database_url: str, low: int, high: int, max_event_id: int | None,
                            stop_at_first: bool) -> Chains:
    """:func:`check_chains` in a worker process, with an application of its own."""
    from biobank import create_app

    app = create_app({"DATABASE_URL": database_url})
    with app.app_context(), read_only():
        try:
            return check_chains(low, high, max_event_id=max_event_id, stop_at_first=stop_at_first)
        finally:
            db.session.remove()
            db.engine.dispose()


#: fewer specimens than this are checked in one process: a worker takes seconds to start
MIN_PARALLEL_SPECIMENS = 50_000


def verify_ledger(*, stop_at_first: bool = False,
                  progress: Callable[[int], None] | None = None, workers: int = 1,
                  min_parallel_specimens: int = MIN_PARALLEL_SPECIMENS) -> Report:
    """Check every chain, every specimen's head and every checkpoint.

    With *workers* > 1 and at least *min_parallel_specimens* specimen ids, the chains are
    split into that many ranges of specimen ids, checked in parallel by worker processes
    (each chain is independent of the others); what they find is merged in id order, so the
    first finding is the same as one process would report.
    """
    report = Report()
    checkpoints = list(db.session.scalars(sa.select(CustodyCheckpoint)
                                          .order_by(CustodyCheckpoint.id)))
    latest = checkpoints[-1] if checkpoints else None
    max_event_id = latest.max_event_id if latest else None
    low = db.session.scalar(sa.select(sa.func.min(CustodyEvent.specimen_id)))
    high = (db.session.scalar(sa.select(sa.func.max(CustodyEvent.specimen_id))) or 0) + 1
    url = db.engine.url
    in_memory = url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")
    if low is None:
        parts: list[Chains] = [Chains()]
    elif workers <= 1 or high - low < min_parallel_specimens or in_memory:
        parts = [check_chains(low, high, max_event_id=max_event_id,
                              stop_at_first=stop_at_first, progress=progress)]
    else:
        parts = _check_in_parallel(url.render_as_string(hide_password=False), low, high,
                                   workers=workers, max_event_id=max_event_id,
                                   stop_at_first=stop_at_first, progress=progress)
    buckets: dict[str, str] = {}
    events_as_of_latest = 0
    for part in parts:
        report.events += part.events
        report.specimens += part.specimens
        report.findings += part.findings
        buckets.update(part.buckets)
        events_as_of_latest += part.events_as_of_latest
    if stop_at_first and report.findings:
        del report.findings[1:]
        return report

    def found(finding: Finding) -> bool:
        report.findings.append(finding)
        return stop_at_first

    orphaned = db.session.execute(
        sa.select(Specimen.id, Specimen.barcode, Specimen.custody_seq)
        .where(Specimen.custody_seq > 0,
               ~sa.exists().where(CustodyEvent.specimen_id == Specimen.id))).all()
    for specimen_id, barcode, seq in orphaned:
        if found(Finding(f"its {seq} custody events are gone: the whole chain was deleted",
                         specimen_id, barcode)):
            return report

    _verify_checkpoints(checkpoints, buckets, events_as_of_latest, report, found)
    return report


def _check_in_parallel(database_url: str, low: int, high: int, *, workers: int,
                       max_event_id: int | None, stop_at_first: bool,
                       progress: Callable[[int], None] | None) -> list[Chains]:
    """Ranges of specimen ids checked by *workers* processes, in id order. Range bounds are
    multiples of the checkpoint bucket, so each bucket's digest comes from one range."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    size = -(-(high - low) // workers)
    size = -(-size // BUCKET) * BUCKET
    first = low // BUCKET * BUCKET
    bounds = [(max(a, low), min(a + size, high)) for a in range(first, high, size)]
    done = 0
    with ProcessPoolExecutor(max_workers=workers,
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_check_chains_in_worker, database_url, a, b, max_event_id,
                               stop_at_first) for a, b in bounds]
        parts = []
        for future in futures:
            parts.append(future.result())
            done += parts[-1].events
            if progress:
                progress(done)
    return parts


def _verify_checkpoints(checkpoints: list[CustodyCheckpoint], now: dict[str, str],
                        event_count: int, report: Report,
                        found: Callable[[Finding], bool]) -> None:
    previous = None
    for checkpoint in checkpoints:
        report.checkpoints += 1
        if checkpoint.prev_hash != (previous.hash if previous else None) and found(Finding(
                f"checkpoint {checkpoint.id} does not link to the checkpoint before it: a "
                "checkpoint was removed or replaced")):
            return
        if not hmac.compare_digest(_sign(checkpoint), checkpoint.hash) and found(Finding(
                f"checkpoint {checkpoint.id} has an invalid signature: it was edited, or "
                "signed with another custody key")):
            return
        previous = checkpoint
    if not checkpoints:
        return
    latest = checkpoints[-1]
    if event_count != latest.event_count and found(Finding(
            f"checkpoint {latest.id} covered {latest.event_count} events; {event_count} of "
            "them remain: events were deleted")):
        return
    for bucket in sorted(set(now) | set(latest.buckets), key=int):
        low, high = int(bucket) * BUCKET, int(bucket) * BUCKET + BUCKET - 1
        if now.get(bucket) != latest.buckets.get(bucket) and found(Finding(
                f"the chains of specimens {low}–{high} differ from checkpoint {latest.id}: a "
                "chain was deleted or rewritten")):
            return
