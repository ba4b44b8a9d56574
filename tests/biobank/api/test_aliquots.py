"""Splitting a specimen into aliquots and derivatives, with labels for the new tubes."""

from __future__ import annotations

import os
import shutil
from decimal import Decimal

import pytest
import sqlalchemy as sa

from biobank.models import CustodyEvent, Specimen
from biobank.models.vocab import MaterialType, QuantityUnit, SpecimenStatus
from labels.models import PrintJob
from tests.labels.test_printing import ZebraListener, _wait_for


def _parent(make, site, qty="4.0"):
    return make.specimen(
        participant=make.participant(site=site),
        material_type=MaterialType.PLASMA,
        quantity=Decimal(qty),
        unit=QuantityUnit.ML,
        status=SpecimenStatus.IN_STORAGE,
    )


def test_split_takes_quantity_and_places_in_fill_order(client, make, site, technician, headers, db_session):
    parent = _parent(make, site)
    box = make.box(site=site, n_rows=2, n_cols=3)
    make.specimen(participant=parent.participant, container=box, pos_row=1, pos_col=1)
    r = client.post(
        f"/api/v1/specimens/{parent.id}/aliquots",
        headers=headers(technician),
        json={"count": 4, "quantity": "0.5", "container_id": box.id},
    )
    assert r.status_code == 201, r.json
    assert [a["position"] for a in r.json] == ["A2", "A3", "B1", "B2"]
    assert {a["lineage"] for a in r.json} == {"aliquot"}
    assert {a["status"] for a in r.json} == {"in_storage"}
    db_session.expire_all()
    assert db_session.get(Specimen, parent.id).quantity == Decimal("2.000")
    event = db_session.scalars(sa.select(CustodyEvent).where(CustodyEvent.specimen_id == parent.id)).one()
    assert event.details["children"] == [a["barcode"] for a in r.json]


def test_positions_chosen_on_the_grid_are_each_checked(
    client, make, site, other_site, technician, headers, db_session
):
    parent = _parent(make, site)
    box, other = make.box(site=site, n_rows=2, n_cols=3), make.box(site=site, n_rows=2, n_cols=2)
    make.specimen(participant=parent.participant, container=box, pos_row=1, pos_col=1)
    url, h = f"/api/v1/specimens/{parent.id}/aliquots", headers(technician)

    def at(*places):
        return [{"container_id": c.id, "pos_row": r, "pos_col": k} for c, r, k in places]

    def refused(body, status, field, words):
        r = client.post(url, headers=h, json={"count": 2, "quantity": "0.5", **body})
        assert r.status_code == status, r.json
        assert r.json["errors"][0]["field"] == field and words in r.json["detail"], r.json
        assert db_session.scalar(sa.select(sa.func.count()).select_from(Specimen)) == 2

    refused({"placements": at((box, 2, 3))}, 422, "placements", "1 positions chosen for 2")
    refused({"placements": at((box, 2, 3), (box, 2, 3))}, 422, "placements", "chosen twice")
    refused({"placements": at((box, 2, 3), (box, 1, 1))}, 409, "pos_row", "A1")
    refused({"placements": at((box, 2, 3), (box, 3, 1))}, 422, "pos_row", "row 3 is outside")
    refused(
        {"placements": at((box, 2, 3), (other, 1, 1)), "container_id": box.id}, 422, "placements", "not both"
    )
    elsewhere = make.box(site=other_site)
    refused(
        {"placements": at((box, 2, 3), (elsewhere, 1, 1))},
        422,
        "container_id",
        f"no storagecontainer with id {elsewhere.id}",
    )
    r = client.post(
        url, headers=h, json={"count": 2, "quantity": "0.5", "placements": at((box, 2, 3), (other, 1, 2))}
    )
    assert r.status_code == 201, r.json
    assert [(a["container_id"], a["position"]) for a in r.json] == [(box.id, "B3"), (other.id, "A2")]


def test_asking_for_more_than_the_parent_holds_is_refused(
    client, make, site, technician, headers, db_session
):
    parent = _parent(make, site, qty="1.0")
    r = client.post(
        f"/api/v1/specimens/{parent.id}/aliquots",
        headers=headers(technician),
        json={"count": 3, "quantity": "0.5"},
    )
    assert r.status_code == 422
    assert "holds 1 mL" in r.json["detail"]
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Specimen)) == 1


def test_too_few_free_positions_is_a_conflict(client, make, site, technician, headers, db_session):
    parent = _parent(make, site)
    box = make.box(site=site, n_rows=1, n_cols=2)
    r = client.post(
        f"/api/v1/specimens/{parent.id}/aliquots",
        headers=headers(technician),
        json={"count": 3, "quantity": "0.1", "container_id": box.id},
    )
    assert r.status_code == 409
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Specimen)) == 1


def test_derivative_of_another_material(client, make, site, technician, headers):
    parent = _parent(make, site)
    r = client.post(
        f"/api/v1/specimens/{parent.id}/aliquots",
        headers=headers(technician),
        json={"count": 1, "quantity": "50", "material_type": "DNA"},
    )
    assert r.status_code == 201
    assert r.json[0]["lineage"] == "derivative"
    assert r.json[0]["material_type"] == "DNA"


def test_labels_for_new_aliquots_are_printed_after_commit(
    client, make, site, technician, headers, db_session
):
    from labels.models import Printer, PrinterKind

    zebra = ZebraListener()
    try:
        printer = make._save(
            Printer(name="Aliquot bench", kind=PrinterKind.ZPL_TCP, address=f"127.0.0.1:{zebra.port}")
        )
        parent = _parent(make, site)
        r = client.post(
            f"/api/v1/specimens/{parent.id}/aliquots",
            headers=headers(technician),
            json={
                "count": 2,
                "quantity": "0.5",
                "print": {"template": "cryovial-2d", "printer_id": printer.id},
            },
        )
        assert r.status_code == 201, r.json
        _wait_for(zebra, 1)
        zpl = zebra.jobs[0].decode()
        assert all(f"^FD{a['barcode']}^FS" in zpl for a in r.json)
        job = db_session.scalars(sa.select(PrintJob)).one()
        assert job.source == "aliquot creation"
    finally:
        zebra.close()


def test_a_bad_print_request_creates_no_aliquots(client, make, site, technician, headers, db_session):
    parent = _parent(make, site)
    r = client.post(
        f"/api/v1/specimens/{parent.id}/aliquots",
        headers=headers(technician),
        json={"count": 2, "quantity": "0.5", "print": {"template": "nope"}},
    )
    assert r.status_code == 422
    assert r.json["errors"][0]["field"] == "template"
    db_session.expire_all()
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Specimen)) == 1
    assert db_session.get(Specimen, parent.id).quantity == Decimal("4.000")


def test_derivatives_record_unit_concentration_and_processing(
    client, make, site, technician, headers, db_session
):
    p = make.participant(site=site)
    tissue = make.specimen(
        participant=p,
        material_type=MaterialType.TISSUE_FROZEN,
        quantity=Decimal("60"),
        initial_quantity=Decimal("60"),
        unit=QuantityUnit.MG,
    )
    h = headers(technician)
    body = {
        "count": 2,
        "quantity": "50",
        "material_type": "DNA",
        "unit": "uL",
        "concentration_ng_ul": "182.5",
        "quantity_used": "25",
        "processing": {
            "method": "column extraction (QIAamp DNA Mini)",
            "started_at": "2026-11-20T09:00:00Z",
            "ended_at": "2026-11-20T11:30:00Z",
            "temperature": "RT",
            "kit_lot": "L-2231",
        },
    }
    r = client.post(f"/api/v1/specimens/{tissue.id}/aliquots", headers=h, json=body)
    assert r.status_code == 201, r.json
    assert [(d["material_type"], d["unit"], d["quantity"], d["lineage"]) for d in r.json] == [
        ("DNA", "uL", 50, "derivative")
    ] * 2
    dna = db_session.get(Specimen, r.json[0]["id"])
    assert dna.concentration_ng_ul == Decimal("182.5")
    assert dna.processed_at.isoformat() == "2026-11-20T09:00:00+00:00"
    db_session.refresh(tissue)
    assert tissue.quantity == Decimal("35")  # 25 mg went into the extraction
    event = db_session.scalars(sa.select(CustodyEvent).where(CustodyEvent.specimen_id == tissue.id)).one()
    assert event.details["processing"]["method"] == "column extraction (QIAamp DNA Mini)"
    assert event.details["used"] == "25.000" and event.details["unit"] == "uL"

    # plasma cannot come from frozen tissue; an extraction cannot use more than is there
    r = client.post(
        f"/api/v1/specimens/{tissue.id}/aliquots",
        headers=h,
        json={"count": 1, "quantity": "1", "material_type": "PLASMA"},
    )
    assert r.status_code == 422 and "cannot be processed into PLASMA" in r.json["detail"]
    r = client.post(f"/api/v1/specimens/{tissue.id}/aliquots", headers=h, json=body | {"quantity_used": "40"})
    assert r.status_code == 422 and r.json["errors"][0]["field"] == "quantity_used"
    r = client.post(
        f"/api/v1/specimens/{tissue.id}/aliquots",
        headers=h,
        json=body
        | {
            "processing": {
                "method": "x",
                "started_at": "2026-11-20T11:00:00Z",
                "ended_at": "2026-11-20T10:00:00Z",
            }
        },
    )
    assert r.status_code == 422
    # aliquots stay in the parent's unit
    r = client.post(
        f"/api/v1/specimens/{tissue.id}/aliquots", headers=h, json={"count": 1, "quantity": "5", "unit": "uL"}
    )
    assert r.status_code == 422 and r.json["errors"][0]["field"] == "unit"


def _scanned_kit_label(tmp_path, gs1):
    """A reagent-kit label printed by the LIMS and read back by zbar, as a scanner at the
    bench would send it (GS1-128: ]C1, then the data with GS separators)."""
    import subprocess

    from labels.render import load_template
    from labels.render.pdf import render_pdf

    pdf = tmp_path / "kit.pdf"
    pdf.write_bytes(render_pdf(load_template("reagent-kit"), [{"gs1": gs1, "text": "QIAamp DNA Mini Kit"}]))
    subprocess.run(["pdftoppm", "-r", "300", "-png", str(pdf), str(tmp_path / "kit")], check=True)
    read = subprocess.run(
        ["zbarimg", "-q", "--nodbus", "--raw", str(tmp_path / "kit-1.png")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.rstrip("\n")
    return "]C1" + read


def test_a_scanned_kit_label_records_gtin_lot_and_expiry_and_an_expired_kit_is_refused(
    client, make, site, technician, headers, db_session, tmp_path
):
    if not (shutil.which("pdftoppm") and shutil.which("zbarimg")) and not os.environ.get("CI"):
        pytest.skip("needs pdftoppm and zbarimg (CI installs them)")
    tissue = make.specimen(
        participant=make.participant(site=site),
        material_type=MaterialType.TISSUE_FROZEN,
        quantity=Decimal("60"),
        initial_quantity=Decimal("60"),
        unit=QuantityUnit.MG,
    )
    h = headers(technician)
    scan = _scanned_kit_label(tmp_path, "(01)09501101530003(10)LOT42A(17)271231")
    assert "\x1d" in scan  # the lot is variable-length: a separator follows it
    body = {
        "count": 1,
        "quantity": "50",
        "material_type": "DNA",
        "unit": "uL",
        "quantity_used": "20",
        "processing": {
            "method": "column extraction (QIAamp DNA Mini)",
            "started_at": "2026-11-20T09:00:00Z",
            "kit_barcode": scan,
        },
    }
    r = client.post(f"/api/v1/specimens/{tissue.id}/aliquots", headers=h, json=body)
    assert r.status_code == 201, r.json
    event = db_session.scalars(sa.select(CustodyEvent).where(CustodyEvent.specimen_id == tissue.id)).one()
    assert event.details["processing"]["kit"] == {
        "gtin": "09501101530003",
        "lot": "LOT42A",
        "expiry": "2027-12-31",
    }

    expired = _scanned_kit_label(tmp_path, "(01)09501101530003(17)261119(10)OLD7")
    for processing, field, words in (
        ({"kit_barcode": expired}, "processing.kit_barcode", "expired on 2026-11-19"),
        ({"kit_barcode": scan, "kit_lot": "LOT41"}, "processing.kit_lot", "LOT42A"),
        (
            {"kit_barcode": "]C1CTRPL0000001"},
            "processing.kit_barcode",
            "expected an application identifier at character 1",
        ),
    ):
        r = client.post(
            f"/api/v1/specimens/{tissue.id}/aliquots",
            headers=h,
            json=body | {"processing": body["processing"] | processing},
        )
        assert r.status_code == 422, r.json
        assert r.json["errors"][0]["field"] == field and words in r.json["detail"]
    db_session.expire_all()
    assert db_session.get(Specimen, tissue.id).quantity == Decimal("40")  # nothing more used
