"""Rack scans: upload, difference with the records, orientation, confirmation."""

from __future__ import annotations

import io

import sqlalchemy as sa

from biobank.models import CustodyEvent, Specimen
from biobank.models.vocab import SpecimenStatus
from biobank.rackfiles import position_label


def _csv(layout: dict[tuple[int, int], str | None], rows=8, cols=12) -> bytes:
    lines = []
    for r in range(1, rows + 1):
        for c in range(1, cols + 1):
            code = layout.get((r, c))
            lines.append(f"{chr(64 + r)}{c:02d},{code or 'NO TUBE'}")
    return ("\n".join(lines) + "\n").encode()


def _upload(client, h, box, data):
    return client.post(
        f"/api/v1/rack-scans/?container_id={box.id}",
        headers=h,
        content_type="multipart/form-data",
        data={"file": (io.BytesIO(data), "rack.csv")},
    )


def _filled_box(make, site, n=10):
    box = make.box(site=site, n_rows=8, n_cols=12, barcode="RK0001")
    p = make.participant(site=site)
    tubes = {}
    for i in range(n):
        pos = (1 + i // 12, 1 + i % 12)
        tubes[pos] = make.specimen(participant=p, container=box, pos_row=pos[0], pos_col=pos[1])
    return box, p, tubes


def test_diff_then_confirm_records_moves_and_missing(client, make, site, technician, headers, db_session):
    h = headers(technician)
    box, p, tubes = _filled_box(make, site)
    other_box = make.box(site=site)
    stranger = make.specimen(participant=p, container=other_box, pos_row=1, pos_col=1)
    layout = {pos: s.barcode for pos, s in tubes.items()}
    a, b = (1, 1), (1, 2)
    layout[a], layout[b] = layout[b], layout[a]  # two tubes swapped
    gone = layout.pop((1, 5))  # one tube not in the rack
    layout[(8, 12)] = stranger.barcode  # a tube from another box
    layout[(8, 11)] = "FX99999999"  # a tube we do not know
    r = _upload(client, h, box, _csv(layout))
    assert r.status_code == 201, r.json
    diff = r.json["diff"]
    assert diff["orientation"] == "as_scanned"
    assert diff["summary"]["matched"] == 7
    assert {e["position"] for e in diff["moved"]} == {"A1", "A2"}
    assert [e["barcode"] for e in diff["unexpected"]] == [stranger.barcode]
    assert [e["barcode"] for e in diff["unknown"]] == ["FX99999999"]
    assert [e["barcode"] for e in diff["missing"]] == [gone]
    assert db_session.scalar(sa.select(sa.func.count()).select_from(CustodyEvent)) == 0

    scan_id = r.json["id"]
    r = client.post(f"/api/v1/rack-scans/{scan_id}/confirm", json={}, headers=h)
    assert r.status_code == 200, r.json
    assert r.json == {"moved": 3, "marked_missing": 1, "orientation": "as_scanned"}
    db_session.expire_all()
    assert (tubes[a].pos_row, tubes[a].pos_col) == b
    assert (
        db_session.get(Specimen, stranger.id).container_id,
        db_session.get(Specimen, stranger.id).pos_col,
    ) == (box.id, 12)
    missing = db_session.scalars(sa.select(Specimen).where(Specimen.barcode == gone)).one()
    assert missing.status is SpecimenStatus.MISSING and missing.container_id is None
    moved_event = db_session.scalars(
        sa.select(CustodyEvent).where(CustodyEvent.specimen_id == stranger.id)
    ).one()
    assert moved_event.to_location.endswith("H12")

    again = client.post(f"/api/v1/rack-scans/{scan_id}/confirm", json={}, headers=h)
    assert again.status_code == 409
    assert "already confirmed" in again.json["detail"]


def test_rotated_rack_is_detected_and_not_applied_silently(
    client, make, site, technician, headers, db_session
):
    h = headers(technician)
    box, _, tubes = _filled_box(make, site, n=14)
    rotated = {(9 - r, 13 - c): s.barcode for (r, c), s in tubes.items()}
    r = _upload(client, h, box, _csv(rotated))
    assert r.json["diff"]["orientation"] == "rotated_180"
    assert r.json["diff"]["matches_rotated_180"] == 14
    scan_id = r.json["id"]
    r = client.post(f"/api/v1/rack-scans/{scan_id}/confirm", json={}, headers=h)
    assert r.status_code == 409
    assert "rotated 180°" in r.json["detail"]
    assert db_session.scalar(sa.select(sa.func.count()).select_from(CustodyEvent)) == 0
    r = client.post(f"/api/v1/rack-scans/{scan_id}/confirm", json={"orientation": "rotated_180"}, headers=h)
    assert r.json == {"moved": 0, "marked_missing": 0, "orientation": "rotated_180"}


def test_box_changed_since_the_scan_is_refused(client, make, site, technician, headers):
    h = headers(technician)
    box, p, tubes = _filled_box(make, site, n=4)
    r = _upload(client, h, box, _csv({pos: s.barcode for pos, s in tubes.items()}))
    make.specimen(participant=p, container=box, pos_row=5, pos_col=5)
    r = client.post(f"/api/v1/rack-scans/{r.json['id']}/confirm", json={}, headers=h)
    assert r.status_code == 409
    assert "changed since it was scanned" in r.json["detail"]


def test_bad_rack_files_are_4xx_naming_the_problem(client, make, site, technician, headers, db_session):
    from biobank.models import RackScan

    h = headers(technician)
    box, _, _ = _filled_box(make, site, n=2)
    r = _upload(client, h, box, b"Sample,Volume\nS1,20\n")
    assert r.status_code == 422
    assert "unrecognised rack file" in r.json["detail"]
    r = _upload(client, h, box, b"A01,X1\nA01,X2\n")
    assert r.status_code == 422
    assert r.json["line"] == 2
    r = _upload(client, h, box, b"RK9999,A01,X1\n")
    assert r.status_code == 422
    assert "not for" in r.json["detail"]
    small = make.box(site=site, n_rows=2, n_cols=2)
    r = _upload(client, h, small, b"C03,X1\n")
    assert r.status_code == 422
    assert "outside" in r.json["detail"]
    r = client.post(
        f"/api/v1/rack-scans/?container_id={box.id}", headers=h, data={}, content_type="multipart/form-data"
    )
    assert r.status_code == 422
    assert db_session.scalar(sa.select(sa.func.count()).select_from(RackScan)) == 0
    assert position_label(8, 12) == "H12"
