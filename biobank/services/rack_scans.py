"""Rack scans: compare a scanned box with the records, then record the moves it shows."""

from __future__ import annotations

import hashlib
from typing import Any

import sqlalchemy as sa

from biobank.auth import check_site
from biobank.db import db, utcnow
from biobank.errors import Conflict, InvalidInput, InvalidState
from biobank.models import RackScan, RackScanStatus, Specimen, StorageContainer
from biobank.models.users import Actor
from biobank.models.vocab import CustodyEventType, SpecimenStatus
from biobank.rackfiles import (
    UNREADABLE,
    RackFile,
    RackFileError,
    parse_position,
    position_label,
    read_rack_file,
)
from biobank.services.custody import record_custody_events
from biobank.services.storage import occupancy

#: states in which a tube found in the rack may simply be put there
PLACEABLE = {
    SpecimenStatus.IN_STORAGE,
    SpecimenStatus.RECEIVED,
    SpecimenStatus.COLLECTED,
    SpecimenStatus.RESERVED,
    SpecimenStatus.QUARANTINED,
    SpecimenStatus.MISSING,
    SpecimenStatus.CHECKED_OUT,
}


def _rotate(pos: tuple[int, int], rows: int, cols: int) -> tuple[int, int]:
    return rows + 1 - pos[0], cols + 1 - pos[1]


def _compare(container: StorageContainer, scanned: dict[tuple[int, int], str | None]) -> dict[str, Any]:
    recorded = occupancy(container)
    by_barcode = {s.barcode: (pos, s) for pos, s in recorded.items()}
    found_codes = [code for code in scanned.values() if code not in (None, UNREADABLE)]
    elsewhere = {
        s.barcode: s
        for s in db.session.scalars(
            sa.select(Specimen).where(
                sa.or_(Specimen.barcode.in_(found_codes), Specimen.manufacturer_barcode.in_(found_codes))
            )
        )
    }
    for s in list(elsewhere.values()):
        if s.manufacturer_barcode:
            elsewhere[s.manufacturer_barcode] = s
    diff: dict[str, list[dict[str, Any]]] = {
        k: []
        for k in (
            "matched",
            "moved",
            "unexpected",
            "unknown",
            "missing",
            "checked_out",
            "empty",
            "unreadable",
        )
    }
    seen_ids = set()
    for row, col in sorted(set(scanned) | set(recorded)):
        label = position_label(row, col)
        code = scanned.get((row, col))
        if code == UNREADABLE:
            diff["unreadable"].append({"position": label})
            continue
        if code is None:
            if (row, col) not in recorded:
                diff["empty"].append({"position": label})
            continue
        specimen = elsewhere.get(code)
        if specimen is None:
            diff["unknown"].append({"position": label, "barcode": code})
            continue
        seen_ids.add(specimen.id)
        entry = {"position": label, "barcode": specimen.barcode, "specimen_id": specimen.id}
        if specimen.barcode in by_barcode:
            old = by_barcode[specimen.barcode][0]
            if old == (row, col):
                diff["matched"].append(entry)
            else:
                diff["moved"].append(entry | {"from": position_label(*old)})
        else:
            where = specimen.location_text or "no recorded location"
            diff["unexpected"].append(entry | {"from": where, "status": specimen.status.value})
    for pos, specimen in sorted(recorded.items()):
        if specimen.id in seen_ids or scanned.get(pos) == UNREADABLE:
            continue
        entry = {"position": position_label(*pos), "barcode": specimen.barcode, "specimen_id": specimen.id}
        key = "checked_out" if specimen.status is SpecimenStatus.CHECKED_OUT else "missing"
        diff[key].append(entry)
    return diff


def _orientation(
    container: StorageContainer, scanned: dict[tuple[int, int], str | None]
) -> tuple[str, int, int]:
    recorded = {s.barcode: pos for pos, s in occupancy(container).items()}
    rows, cols = container.n_rows or 0, container.n_cols or 0
    straight = sum(1 for pos, code in scanned.items() if recorded.get(code) == pos)
    rotated = sum(1 for pos, code in scanned.items() if recorded.get(code) == _rotate(pos, rows, cols))
    if rotated > straight and rotated >= 3:
        return "rotated_180", straight, rotated
    return "as_scanned", straight, rotated


def upload_rack_scan(container: StorageContainer, data: bytes, *, actor: Actor) -> RackScan:
    """Read a rack-scanner file for a box and store its comparison with the records."""
    check_site(actor, container.site_id, field="container_id")
    if not container.has_grid:
        raise InvalidInput(f"{container.name} has no grid to scan", field="container_id")
    try:
        rack = read_rack_file(data)
    except RackFileError as error:
        raise InvalidInput(str(error), field="file", line=error.line) from None
    _check_fits(container, rack)
    orientation, straight, rotated = _orientation(container, rack.positions)
    diff = _compare(container, rack.positions)
    summary = {k: len(v) for k, v in diff.items()}
    scan = RackScan(
        container=container,
        actor_id=actor.id,
        file_format=rack.format,
        file_sha256=hashlib.sha256(data).hexdigest(),
        rack_barcode=rack.rack_barcode,
        positions={position_label(*p): code for p, code in sorted(rack.positions.items())},
        diff={
            "orientation": orientation,
            "matches_as_scanned": straight,
            "matches_rotated_180": rotated,
            "summary": summary,
            **diff,
        },
    )
    db.session.add(scan)
    db.session.flush()
    return scan


def _check_fits(container: StorageContainer, rack: RackFile) -> None:
    if rack.rack_barcode and container.barcode and rack.rack_barcode != container.barcode:
        raise InvalidInput(
            f"this file is for rack {rack.rack_barcode}, not for {container.name} ({container.barcode})",
            field="file",
        )
    for row, col in rack.positions:
        if row > container.n_rows or col > container.n_cols:  # type: ignore[operator]
            raise InvalidInput(
                f"position {position_label(row, col)} is outside "
                f"{container.name} ({container.n_rows} × {container.n_cols})",
                field="file",
            )


def confirm_rack_scan(scan: RackScan, *, actor: Actor, orientation: str | None = None) -> dict:
    """Record every move the scan shows, in the caller's one transaction.

    A scan that looks rotated 180° is refused unless the caller says which orientation is
    right. Tubes recorded in the box but absent from the scan are marked missing.
    """
    container = scan.container
    check_site(actor, container.site_id, field="container_id")
    if scan.status is RackScanStatus.CONFIRMED:
        raise InvalidState("this rack scan was already confirmed", field="id")
    detected = scan.diff["orientation"]
    if orientation is None and detected == "rotated_180":
        raise Conflict(
            f"the rack looks rotated 180° ({scan.diff['matches_rotated_180']} tubes match if "
            f"turned, {scan.diff['matches_as_scanned']} as scanned): turn it and scan again, or "
            "confirm with orientation 'rotated_180' or 'as_scanned'",
            field="orientation",
        )
    rows, cols = container.n_rows or 0, container.n_cols or 0

    scanned = {parse_position(label): code for label, code in scan.positions.items()}
    if (orientation or detected) == "rotated_180":
        scanned = {_rotate(pos, rows, cols): code for pos, code in scanned.items()}
    diff = _compare(container, scanned)
    as_scanned = (orientation or detected) == "as_scanned"
    if as_scanned and {k: len(v) for k, v in diff.items()} != scan.diff["summary"]:
        raise Conflict("the box changed since it was scanned: scan it again", field="id")
    blocked = [e for e in diff["unexpected"] if SpecimenStatus(e["status"]) not in PLACEABLE]
    if blocked:
        names = ", ".join(f"{e['barcode']} ({e['status']})" for e in blocked)
        raise Conflict(f"these tubes cannot be stored: {names}", field="file")
    moving = diff["moved"] + diff["unexpected"]
    specimens = {
        s.id: s
        for s in db.session.scalars(
            sa.select(Specimen).where(Specimen.id.in_([e["specimen_id"] for e in moving]))
        )
    }
    for entry in moving:
        check_site(actor, specimens[entry["specimen_id"]].site_id, field="file")
    befores = {sid: s.location_text for sid, s in specimens.items()}
    # Clear every moving tube first, so that swaps inside the box never collide.
    for specimen in specimens.values():
        specimen.container, specimen.pos_row, specimen.pos_col = None, None, None
    db.session.flush()
    for entry in moving:
        specimen = specimens[entry["specimen_id"]]
        specimen.container = container
        specimen.pos_row, specimen.pos_col = parse_position(entry["position"])
        if specimen.status in (
            SpecimenStatus.RECEIVED,
            SpecimenStatus.COLLECTED,
            SpecimenStatus.MISSING,
            SpecimenStatus.CHECKED_OUT,
        ):
            specimen.status = SpecimenStatus.IN_STORAGE
    db.session.flush()
    events = [
        (
            specimens[entry["specimen_id"]],
            CustodyEventType.MOVED,
            {
                "from_location": befores[entry["specimen_id"]],
                "to_location": specimens[entry["specimen_id"]].location_text,
                "details": {"rack_scan": scan.id},
            },
        )
        for entry in moving
    ]
    for entry in diff["missing"]:
        specimen = db.session.get(Specimen, entry["specimen_id"])
        events.append(
            (
                specimen,
                CustodyEventType.MARKED_MISSING,
                {"from_location": specimen.location_text, "details": {"rack_scan": scan.id}},
            )
        )
        specimen.container, specimen.pos_row, specimen.pos_col = None, None, None
        specimen.status = SpecimenStatus.MISSING
    record_custody_events(events, actor=actor)
    scan.status = RackScanStatus.CONFIRMED
    scan.confirmed_at = utcnow()
    db.session.flush()
    return {
        "moved": len(moving),
        "marked_missing": len(diff["missing"]),
        "orientation": orientation or detected,
    }
