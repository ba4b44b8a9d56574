"""Witnesses: other LIMS instances of the network keep our custody checkpoints, and we
theirs.

Sending: after a checkpoint is committed, each instance named in ``CUSTODY_WITNESSES``
(``URL=TOKEN``, comma-separated; the token is of a manager account there) receives the
checkpoint's heads summary (counts, Merkle root, its signature; not the chains) by ``POST
/api/v1/custody/witness`` and answers with a countersignature under its own custody key,
kept here as a receipt. A witness that cannot be reached is sent what it misses with the
next checkpoint.

Keeping: a witness stores what each instance sends, never changed, refuses a different
checkpoint under an id it already holds (an instance that rewrote its history cannot have it
countersigned twice), and lists what it holds for that instance to its account.

Verifying: ``verify_ledger`` asks each witness what it holds and names every checkpoint a
witness keeps that this instance lost or changed, and the events deleted since the newest.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import current_app

from biobank.db import db, transaction, utcnow
from biobank.errors import Conflict, NotFound
from biobank.jobs import enqueue
from biobank.keys import keyring
from biobank.models import CustodyCheckpoint, WitnessedCheckpoint, WitnessReceipt
from biobank.models.users import Actor

#: the Celery task that sends the checkpoints (``biobank.tasks.send_to_witnesses``)
SEND_TASK = "biobank.custody_witnesses"

#: the fields of a checkpoint a witness keeps (all but the per-bucket heads)
FIELDS = (
    "id",
    "kind",
    "created_at",
    "max_event_id",
    "specimen_count",
    "event_count",
    "root",
    "prev_hash",
    "key_id",
    "hash",
)
TIMEOUT = 10.0


@dataclass(frozen=True)
class Witness:
    url: str
    token: str


def instance_name() -> str:
    """How this instance names itself to its witnesses (``INSTANCE_NAME``, or the host)."""
    return current_app.config.get("INSTANCE_NAME") or socket.gethostname()


def configured() -> list[Witness]:
    """The witnesses of ``CUSTODY_WITNESSES``: ``URL=TOKEN`` entries, comma-separated."""
    out = []
    for entry in str(current_app.config.get("CUSTODY_WITNESSES") or "").split(","):
        url, _, token = entry.strip().partition("=")
        if not url:
            continue
        if not url.startswith(("http://", "https://")) or not token:
            raise ValueError(f"CUSTODY_WITNESSES: {url!r} is not an http(s) URL=TOKEN entry")
        out.append(Witness(url.rstrip("/"), token.strip()))
    return out


# --- keeping others' checkpoints ----------------------------------------------------------


def _countersign(key: bytes, instance: str, record: dict[str, Any], received_at: str) -> str:
    content = {"instance": instance, "received_at": received_at, **{f: record.get(f) for f in FIELDS}}
    raw = json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(key, b"custody witness\x00" + raw, hashlib.sha256).hexdigest()


def _as_record(kept: WitnessedCheckpoint) -> dict[str, Any]:
    return {
        "id": kept.checkpoint_id,
        "kind": kept.kind,
        "created_at": kept.created_at,
        "max_event_id": kept.max_event_id,
        "specimen_count": kept.specimen_count,
        "event_count": kept.event_count,
        "root": kept.root,
        "prev_hash": kept.prev_hash,
        "key_id": kept.key_id,
        "hash": kept.signature,
    }


def receipt(kept: WitnessedCheckpoint) -> dict[str, Any]:
    """What a witness answers for a checkpoint it keeps, with whether its countersignature
    still holds under its key (a row edited here no longer does)."""
    key = keyring().keys.get(kept.witness_key_id)
    received = kept.received_at.isoformat(timespec="microseconds")
    ok = key is not None and hmac.compare_digest(
        _countersign(key, kept.instance, _as_record(kept), received), kept.countersignature
    )
    return {
        "instance": kept.instance,
        "checkpoint": _as_record(kept),
        "witness": instance_name(),
        "received_at": received,
        "countersignature": kept.countersignature,
        "key_id": kept.witness_key_id,
        "countersignature_ok": ok,
    }


def keep(instance: str, record: dict[str, Any], *, actor: Actor) -> tuple[WitnessedCheckpoint, bool]:
    """Keep *instance*'s checkpoint *record* and countersign it; returns it and whether it
    is new. The same checkpoint sent again is answered as before; another one under an id
    already kept is refused, as is an instance another account sends for."""
    owner = db.session.scalar(
        sa.select(WitnessedCheckpoint.submitted_by).where(WitnessedCheckpoint.instance == instance).limit(1)
    )
    if owner is not None and owner != actor.username:
        raise Conflict(f"instance {instance!r} is witnessed here for another account", field="instance")
    kept = db.session.scalar(
        sa.select(WitnessedCheckpoint).where(
            WitnessedCheckpoint.instance == instance, WitnessedCheckpoint.checkpoint_id == record["id"]
        )
    )
    if kept is not None:
        if _as_record(kept) != {f: record.get(f) for f in FIELDS}:
            raise Conflict(
                f"checkpoint {record['id']} of {instance!r} was witnessed on "
                f"{kept.received_at:%Y-%m-%d %H:%M} UTC with other content (root "
                f"{(kept.root or '')[:12]}, {kept.event_count} events): a checkpoint "
                "is never replaced",
                field="checkpoint",
            )
        return kept, False
    ring = keyring()
    now = utcnow()
    kept = WitnessedCheckpoint(
        instance=instance,
        submitted_by=actor.username,
        checkpoint_id=record["id"],
        kind=record["kind"],
        created_at=record["created_at"],
        max_event_id=record["max_event_id"],
        specimen_count=record["specimen_count"],
        event_count=record["event_count"],
        root=record.get("root"),
        prev_hash=record.get("prev_hash"),
        signature=record["hash"],
        key_id=record.get("key_id"),
        received_at=now,
        witness_key_id=ring.current_id,
        countersignature=_countersign(ring.current, instance, record, now.isoformat(timespec="microseconds")),
    )
    db.session.add(kept)
    db.session.flush()
    return kept, True


def kept_for(instance: str, *, actor: Actor) -> list[WitnessedCheckpoint]:
    """What this instance keeps for *instance*, oldest first: to the account that sends for
    it, and to administrators."""
    rows = list(
        db.session.scalars(
            sa.select(WitnessedCheckpoint)
            .where(WitnessedCheckpoint.instance == instance)
            .order_by(WitnessedCheckpoint.checkpoint_id)
        )
    )
    if rows and rows[0].submitted_by != actor.username and not actor.is_admin:
        raise NotFound(f"no checkpoints of {instance!r} are witnessed for you")
    return rows


# --- sending ours ---------------------------------------------------------------------------


def _call(witness: Witness, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        witness.url + path,
        data=data,
        method=method,
        headers={
            "Authorization": f"Bearer {witness.token}",
            "Accept": "application/json",
            **({"Content-Type": "application/json"} if data is not None else {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        try:
            detail = json.loads(error.read()).get("detail")
        except ValueError:
            detail = None
        raise WitnessError(
            f"{witness.url} answered {error.code}" + (f": {detail}" if detail else "")
        ) from None
    except (OSError, ValueError) as error:
        raise WitnessError(f"{witness.url} could not be reached: {error}") from None


class WitnessError(Exception):
    """A witness refused a checkpoint or could not be reached."""


def send_checkpoints() -> dict[str, Any]:
    """Send each witness the checkpoints it has not countersigned yet, oldest first, and
    keep its receipts (each in its own transaction). Returns, per witness, how many were
    countersigned and the error that stopped it, if any. Run after a checkpoint commits."""
    out: dict[str, Any] = {}
    for witness in configured():
        began = not db.session().in_transaction()
        done = set(
            db.session.scalars(
                sa.select(WitnessReceipt.checkpoint_id).where(WitnessReceipt.witness == witness.url)
            )
        )
        pending = [
            c.as_record()
            for c in db.session.scalars(sa.select(CustodyCheckpoint).order_by(CustodyCheckpoint.id))
            if c.id not in done
        ]
        if began:  # hold no transaction (nor SQLite's lock) while the network answers
            db.session.rollback()
        sent, error = 0, None
        for record in pending:
            try:
                answer = _call(
                    witness,
                    "POST",
                    "/api/v1/custody/witness",
                    {"instance": instance_name(), "checkpoint": {f: record[f] for f in FIELDS}},
                )
            except WitnessError as failure:
                error = str(failure)
                current_app.logger.warning("custody witness: %s", error)
                break
            with transaction():
                db.session.add(
                    WitnessReceipt(
                        checkpoint_id=record["id"],
                        witness=witness.url,
                        received_at=answer["received_at"],
                        countersignature=answer["countersignature"],
                        witness_key_id=answer["key_id"],
                    )
                )
            sent += 1
        out[witness.url] = {"countersigned": sent, "error": error}
    return out


def dispatch() -> None:
    """Queue the sending (a Celery task; in-process on the embedded default), if this
    instance has witnesses."""
    if configured():
        enqueue(SEND_TASK)


def consult() -> list[dict[str, Any]]:
    """What each witness keeps for this instance: ``{"witness", "checkpoints"}`` or
    ``{"witness", "error"}``."""
    out = []
    for witness in configured():
        query = urllib.parse.urlencode({"instance": instance_name()})
        try:
            answer = _call(witness, "GET", f"/api/v1/custody/witness?{query}")
        except WitnessError as error:
            out.append({"witness": witness.url, "error": str(error)})
            continue
        out.append({"witness": witness.url, "checkpoints": answer})
    return out
