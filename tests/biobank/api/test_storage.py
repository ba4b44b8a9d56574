"""Container templates and free-space search."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from biobank.models import StorageContainer
from biobank.models.vocab import ContainerKind, StorageTemperature


def test_whole_freezer_in_one_call(client, site, manager, technician, headers, db_session):
    r = client.post(
        "/api/v1/containers/from-template",
        headers=headers(manager),
        json={"template": "upright-freezer-80", "name": "Freezer A", "site_id": site.id},
    )
    assert r.status_code == 201, r.json
    assert r.json["kind"] == "freezer" and r.json["temperature"] == "-60to-85"
    boxes = db_session.scalars(
        sa.select(StorageContainer).where(StorageContainer.kind == ContainerKind.BOX)
    ).all()
    assert len(boxes) == 5 * 4 * 13
    assert {(b.n_rows, b.n_cols) for b in boxes} == {(9, 9)}
    assert boxes[0].effective_temperature() is StorageTemperature.MINUS_60_85
    assert boxes[0].path()[0].name == "Freezer A"
    r = client.post(
        "/api/v1/containers/from-template",
        headers=headers(technician),
        json={"template": "ln2-tank", "name": "T", "site_id": site.id},
    )
    assert r.status_code == 403
    r = client.post(
        "/api/v1/containers/from-template",
        headers=headers(manager),
        json={"template": "walk-in-cold-room", "name": "X", "site_id": site.id},
    )
    assert r.status_code == 422
    assert "upright-freezer-80" in r.json["detail"]


def test_free_space_prefers_one_box_in_storage_order(client, make, site, technician, headers):
    freezer = make.container(
        site=site, kind=ContainerKind.FREEZER, temperature=StorageTemperature.MINUS_60_85
    )
    rack = make.container(site=site, kind=ContainerKind.RACK, parent=freezer)
    emptier = make.box(site=site, parent=rack, n_rows=4, n_cols=4)
    fuller = make.box(site=site, parent=rack, n_rows=4, n_cols=4)
    p = make.participant(site=site)
    for col in (1, 2, 3):
        make.specimen(participant=p, container=fuller, pos_row=1, pos_col=col)
    make.specimen(participant=p, container=emptier, pos_row=1, pos_col=1)
    h = headers(technician)
    r = client.get(
        "/api/v1/containers/free-space", headers=h, query_string={"count": 14, "temperature": "-60to-85"}
    )
    assert r.status_code == 200, r.json
    assert [e["container"]["id"] for e in r.json] == [emptier.id]  # the only box with room
    r = client.get(
        "/api/v1/containers/free-space", headers=h, query_string={"count": 12, "temperature": "-60to-85"}
    )
    assert [e["container"]["id"] for e in r.json] == [emptier.id]  # both fit: the first box
    assert [x["label"] for x in r.json[0]["positions"]][:2] == ["A2", "A3"]
    r = client.get(
        "/api/v1/containers/free-space", headers=h, query_string={"count": 16, "temperature": "-60to-85"}
    )
    assert [e["container"]["id"] for e in r.json] == [emptier.id, fuller.id]
    r = client.get(
        "/api/v1/containers/free-space", headers=h, query_string={"count": 20, "temperature": "-60to-85"}
    )
    assert sum(len(e["positions"]) for e in r.json) == 20
    r = client.get("/api/v1/containers/free-space", headers=h, query_string={"count": 5, "temperature": "LN"})
    assert r.status_code == 409
    r = client.get(
        "/api/v1/containers/free-space", headers=h, query_string={"count": 40, "temperature": "-60to-85"}
    )
    assert r.status_code == 409
    assert "only 28 free positions" in r.json["detail"]


def test_reserved_and_blocked_positions_are_kept_free(client, make, site, technician, headers, db_session):
    h = headers(technician)
    box = make.box(site=site, n_rows=1, n_cols=3)
    p = make.participant(site=site)
    r = client.post(
        f"/api/v1/containers/{box.id}/holds",
        headers=h,
        json={"pos_row": 1, "pos_col": 1, "kind": "blocked", "reason": "cracked slot"},
    )
    assert r.status_code == 201, r.json
    hold_id = r.json["id"]
    client.post(
        f"/api/v1/containers/{box.id}/holds",
        headers=h,
        json={"pos_row": 1, "pos_col": 2, "kind": "reserved", "reason": "aliquots of request 7"},
    )
    r = client.post(
        "/api/v1/specimens/",
        headers=h,
        json={
            "participant_id": p.id,
            "material_type": "PLASMA",
            "container_id": box.id,
            "pos_row": 1,
            "pos_col": 1,
        },
    )
    assert r.status_code == 409
    assert "blocked: cracked slot" in r.json["detail"]
    r = client.get("/api/v1/containers/free-space", headers=h, query_string={"count": 1})
    assert [x["label"] for x in r.json[0]["positions"]] == ["A3"]
    r = client.get("/api/v1/containers/free-space", headers=h, query_string={"count": 2})
    assert r.status_code == 409
    assert client.delete(f"/api/v1/containers/{box.id}/holds/{hold_id}", headers=h).status_code == 204
    r = client.get("/api/v1/containers/free-space", headers=h, query_string={"count": 2})
    assert [x["label"] for x in r.json[0]["positions"]] == ["A1", "A3"]
    make.specimen(participant=p, container=box, pos_row=1, pos_col=3)
    r = client.post(
        f"/api/v1/containers/{box.id}/holds", headers=h, json={"pos_row": 1, "pos_col": 3, "kind": "reserved"}
    )
    assert r.status_code == 409


def test_moving_a_rack_moves_its_boxes_and_records_custody_per_specimen(
    client, make, site, technician, headers, db_session
):
    from biobank.models import CustodyEvent

    h = headers(technician)
    old_freezer = make.container(site=site, kind=ContainerKind.FREEZER, name="Old freezer")
    new_freezer = make.container(site=site, kind=ContainerKind.FREEZER, name="New freezer")
    rack = make.container(site=site, kind=ContainerKind.RACK, parent=old_freezer, name="R7")
    box = make.box(site=site, parent=rack, name="B1")
    p = make.participant(site=site)
    tubes = [make.specimen(participant=p, container=box, pos_row=1, pos_col=c) for c in (1, 2, 3)]
    r = client.post(f"/api/v1/containers/{rack.id}/move", headers=h, json={"parent_id": new_freezer.id})
    assert r.status_code == 200, r.json
    assert r.json["specimens_moved"] == 3
    for tube in tubes:
        event = db_session.scalars(sa.select(CustodyEvent).where(CustodyEvent.specimen_id == tube.id)).one()
        assert event.from_location.startswith("Old freezer › R7 › B1")
        assert event.to_location.startswith("New freezer › R7 › B1")
    r = client.post(f"/api/v1/containers/{rack.id}/move", headers=h, json={"parent_id": box.id})
    assert r.status_code == 422


def test_freezer_failure_plan_then_evacuation(client, make, site, technician, manager, headers, db_session):
    from biobank.models import CustodyEvent, Specimen

    failing = make.container(
        site=site, kind=ContainerKind.FREEZER, name="Failing", temperature=StorageTemperature.MINUS_60_85
    )
    healthy = make.container(
        site=site, kind=ContainerKind.FREEZER, name="Healthy", temperature=StorageTemperature.MINUS_60_85
    )
    warm = make.container(
        site=site, kind=ContainerKind.REFRIGERATOR, name="Fridge", temperature=StorageTemperature.FRIDGE
    )
    src = make.box(
        site=site,
        parent=make.container(site=site, kind=ContainerKind.RACK, parent=failing),
        n_rows=2,
        n_cols=2,
    )
    dst = make.box(
        site=site,
        parent=make.container(site=site, kind=ContainerKind.RACK, parent=healthy),
        n_rows=2,
        n_cols=2,
    )
    make.box(
        site=site, parent=make.container(site=site, kind=ContainerKind.RACK, parent=warm), n_rows=9, n_cols=9
    )
    p = make.participant(site=site)
    tubes = [make.specimen(participant=p, container=src, pos_row=1, pos_col=c) for c in (1, 2)]
    make.specimen(participant=p, container=dst, pos_row=1, pos_col=1)
    h = headers(technician)
    plan = client.get(f"/api/v1/containers/{failing.id}/evacuation-plan", headers=h).json
    assert plan["count"] == 2
    assert [m["to"].split(" › ")[0] for m in plan["moves"]] == ["Healthy", "Healthy"]
    assert [m["to"][-2:] for m in plan["moves"]] == ["A2", "B1"]
    r = client.post(
        f"/api/v1/containers/{failing.id}/evacuate", headers=h, json={"plan_sha256": plan["plan_sha256"]}
    )
    assert r.status_code == 403  # managers execute
    r = client.post(
        f"/api/v1/containers/{failing.id}/evacuate", headers=headers(manager), json={"plan_sha256": "0" * 64}
    )
    assert r.status_code == 409
    r = client.post(
        f"/api/v1/containers/{failing.id}/evacuate",
        headers=headers(manager),
        json={"plan_sha256": plan["plan_sha256"]},
    )
    assert r.status_code == 200, r.json
    db_session.expire_all()
    assert {db_session.get(Specimen, t.id).container_id for t in tubes} == {dst.id}
    events = db_session.scalars(
        sa.select(CustodyEvent).where(CustodyEvent.specimen_id.in_([t.id for t in tubes]))
    ).all()
    assert {e.details["evacuation_of"] for e in events} == {"Failing"}
    make.specimen(participant=p, container=src, pos_row=2, pos_col=2)
    make.specimen(participant=p, container=src, pos_row=2, pos_col=1)
    r = client.get(f"/api/v1/containers/{failing.id}/evacuation-plan", headers=h)
    assert r.status_code == 409
    assert "no free position" in r.json["detail"]


def test_position_schemes_and_fill_orders(client, make, site, technician, manager, headers):
    from biobank.models import FillOrder, PositionScheme
    from biobank.models.vocab import MaterialType, SpecimenStatus

    h = headers(manager)
    cabinet = make.container(site=site, kind=ContainerKind.CABINET, temperature=StorageTemperature.RT)
    r = client.post(
        "/api/v1/containers/",
        headers=h,
        json={
            "parent_id": cabinet.id,
            "kind": "drawer",
            "name": "Block drawer",
            "n_rows": 3,
            "n_cols": 4,
            "position_scheme": "number",
            "fill_order": "column_major",
        },
    )
    assert r.status_code == 201, r.json
    assert r.json["position_range"] == "positions 1–12"
    drawer = make.session.get(StorageContainer, r.json["id"])
    # numbered down the columns: 1 2 3 in the first column, 4 in the second
    assert [drawer.position_label(r_, 1) for r_ in (1, 2, 3)] == ["1", "2", "3"]
    assert drawer.position_label(1, 2) == "4"
    assert drawer.parse_position("5") == (2, 2) and drawer.parse_position("B2") == (2, 2)
    assert drawer.positions_in_fill_order()[:4] == [(1, 1), (2, 1), (3, 1), (1, 2)]
    for bad in ("13", "0", "D1", "x"):
        with pytest.raises(ValueError, match="positions 1–12"):
            drawer.parse_position(bad)

    grid = make.box(site=site, n_rows=2, n_cols=3)
    grid.position_scheme, grid.fill_order = PositionScheme.ROW_COLUMN, FillOrder.ROW_MAJOR
    make.session.commit()
    assert grid.position_label(2, 3) == "2/3" and grid.parse_position("02/03") == (2, 3)
    assert grid.position_range() == "positions 1/1–2/3"

    # a scan names the position in the drawer's own scheme; the label comes back the same way
    p = make.participant(site=site)
    block = make.specimen(
        participant=p, material_type=MaterialType.TISSUE_PARAFFIN_EMBEDDED, status=SpecimenStatus.RECEIVED
    )
    r = client.post(
        "/api/v1/scans/",
        headers=headers(technician),
        json={
            "barcode": block.barcode,
            "action": "store",
            "client_event_id": "scheme-1",
            "scanned_at": "2026-11-20T08:00:00Z",
            "location": {"container_id": drawer.id, "position": "7"},
        },
    )
    assert r.status_code == 201, r.json
    assert (block.pos_row, block.pos_col) == (1, 3)
    r = client.get(f"/api/v1/specimens/{block.id}", headers=headers(technician))
    assert r.json["position"] == "7"
    r = client.post(
        "/api/v1/scans/",
        headers=headers(technician),
        json={
            "barcode": block.barcode,
            "action": "move",
            "client_event_id": "scheme-2",
            "scanned_at": "2026-11-20T08:01:00Z",
            "location": {"container_id": drawer.id, "position": "13"},
        },
    )
    assert r.status_code == 422 and "positions 1–12" in r.json["detail"]

    # aliquots fill a column-major box down the first column
    parent = make.specimen(participant=p, quantity=5, initial_quantity=5)
    r = client.post(
        f"/api/v1/specimens/{parent.id}/aliquots",
        headers=headers(technician),
        json={"count": 3, "quantity": "1", "container_id": drawer.id},
    )
    assert r.status_code == 201, r.json
    assert [a["position"] for a in r.json] == ["1", "2", "3"]
