"""A specimen's history in time order: custody, locations, consent and record changes."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from biobank.db import db
from biobank.models import AuditRecord, ConsentResponse, Specimen
from biobank.services.custody import list_custody_events
from biobank.services.ledger import verify_specimen_chain


def specimen_timeline(specimen: Specimen) -> dict[str, Any]:
    """Entries sorted by time, and whether the specimen's custody chain verifies."""
    entries: list[dict[str, Any]] = []
    for event in list_custody_events(specimen):
        entries.append(
            {
                "at": event.occurred_at,
                "kind": "custody",
                "actor": event.actor_name,
                "summary": event.event_type.value.replace("_", " "),
                "details": {
                    "seq": event.seq,
                    "from": event.from_location,
                    "to": event.to_location,
                    **(event.details or {}),
                },
            }
        )
        if event.to_location or (event.from_location and not event.to_location):
            entries.append(
                {
                    "at": event.occurred_at,
                    "kind": "location",
                    "actor": event.actor_name,
                    "summary": event.to_location or "left storage",
                    "details": {"from": event.from_location},
                }
            )
    consent_ids = [str(c.id) for c in specimen.participant.consents]
    audit = db.session.scalars(
        sa.select(AuditRecord).where(
            sa.or_(
                sa.and_(AuditRecord.entity == "specimens", AuditRecord.entity_id == str(specimen.id)),
                sa.and_(
                    AuditRecord.entity == ConsentResponse.__tablename__,
                    AuditRecord.entity_id.in_(consent_ids or ["-"]),
                ),
            )
        )
    )
    tiers = {str(c.id): c.tier for c in specimen.participant.consents}
    for record in audit:
        if record.entity == "specimens":
            summary = f"record {record.action.value}"
            if record.action.value == "update":
                summary += ": " + ", ".join(sorted(record.changes))
            entries.append(
                {
                    "at": record.occurred_at,
                    "kind": "audit",
                    "actor": record.actor_name,
                    "summary": summary,
                    "details": {"changes": record.changes, "reason": record.reason},
                }
            )
        else:
            tier = tiers[record.entity_id]
            changes = record.changes
            if record.action.value == "insert":
                summary = f"consent {tier.scope.value}: {changes.get('decision')}"
            elif "withdrawn_at" in changes and changes["withdrawn_at"][1]:
                summary = f"consent {tier.scope.value} withdrawn"
            else:
                summary = f"consent {tier.scope.value} changed"
            entries.append(
                {
                    "at": record.occurred_at,
                    "kind": "consent",
                    "actor": record.actor_name,
                    "summary": summary,
                    "details": {"changes": changes, "reason": record.reason},
                }
            )
    entries.sort(key=lambda e: e["at"])
    finding = verify_specimen_chain(specimen)
    return {
        "barcode": specimen.barcode,
        "chain": {
            "intact": finding is None,
            "events": specimen.custody_seq,
            "problem": str(finding) if finding else None,
        },
        "entries": entries,
    }
