"""Images: registration by SHA-256, links, metadata, bulk folders, thumbnails, DRS, queries."""

from __future__ import annotations

import io
import random

import pytest
from PIL import Image as PILImage

from biobank.demo_images import draw_lesion, draw_slide
from tests.biobank.api.test_query import Biobank, eq, query


@pytest.fixture
def bank(make, site, other_site):
    return Biobank(make, site, other_site)


def picture(tmp_path, name, *, seed=1, melanoma=True, fmt="JPEG"):
    path = tmp_path / name
    img = (
        draw_slide(random.Random(seed))
        if fmt == "TIFF"
        else draw_lesion(random.Random(seed), melanoma=melanoma, flags=["hairy"])
    )
    # deflated: an upload under 500 kB is not spooled to a temporary file by the test client
    img.save(path, format=fmt, **({"compression": "tiff_deflate"} if fmt == "TIFF" else {}))
    return path


def upload(client, headers, path, **form):
    with open(path, "rb") as f:
        return client.post(
            "/api/v1/images/",
            headers=headers,
            content_type="multipart/form-data",
            query_string=form,
            data={"file": (f, path.name)},
        )


def test_register_link_and_serve_an_image(client, bank, technician, admin, headers, tmp_path):
    h = headers(technician)
    path = picture(tmp_path, "derm.jpg")
    r = upload(
        client,
        h,
        path,
        modality="dermoscopy",
        lesion="Q-L1",
        acquisition_day="-3",
        dermoscopic_image_type="contact_polarized",
        quality_flags="hairy;ruler",
        clinical='{"diagnosis": "melanoma", "benign_malignant": "malignant"}',
    )
    assert r.status_code == 201, r.json
    image = r.json
    assert (image["case"], image["lesion"], image["width"], image["height"]) == ("Q-C1", "Q-L1", 256, 256)
    assert image["dicom"]["sop_class_uid"] == "1.2.840.10008.5.1.4.1.1.77.1.7"
    assert image["quality_flags"] == ["hairy", "ruler"] and image["acquisition_day"] == -3
    again = upload(client, h, path, modality="dermoscopy", lesion="Q-L1")
    assert again.status_code == 200 and again.json["id"] == image["id"]

    r = client.get(f"/ga4gh/drs/v1/objects/{image['sha256']}", headers=h)
    assert r.status_code == 200 and r.json["mime_type"] == "image/jpeg"
    assert r.json["size"] == path.stat().st_size
    r = client.get(f"/ga4gh/drs/v1/objects/{image['sha256']}/content", headers=h)
    assert r.data == path.read_bytes()
    r.close()
    r = client.get(f"/api/v1/images/{image['id']}/thumbnail", headers=h)
    thumb = PILImage.open(io.BytesIO(r.data))
    assert r.mimetype == "image/png" and max(thumb.size) <= 256
    r.close()

    # queries see it at the lesion, the case and the lesion's specimens
    a = headers(admin)
    derm = eq("images.modality", "dermoscopy")
    assert [h["lesion"] for h in query(client, a, "lesions", derm)["hits"]] == ["Q-L1"]
    assert [h["case"] for h in query(client, a, "cases", derm)["hits"]] == ["Q-C1"]
    hairy = query(client, a, "specimens", eq("images.quality_flag", "hairy"))
    assert {h["lesion"] for h in hairy["hits"]} == {"Q-L1"}
    no_derm = query(
        client, a, "specimens", {"op": "!=", "content": {"field": "images.modality", "value": "dermoscopy"}}
    )
    assert bank.plasma.barcode in {h["barcode"] for h in no_derm["hits"]}  # no lesion at all


def test_slide_of_a_specimen_and_overview_of_a_case(client, bank, technician, admin, headers, tmp_path):
    h = headers(technician)
    r = upload(
        client,
        h,
        picture(tmp_path, "slide.tiff", fmt="TIFF"),
        modality="wsi",
        specimen=bank.a1.parent.barcode,
    )
    assert r.status_code == 201 and r.json["lesion"] == "Q-L1", r.json
    assert r.json["mime_type"] == "image/tiff" and r.json["dicom"]["modality"] == "SM"
    r = upload(
        client,
        h,
        picture(tmp_path, "overview.png", seed=2, fmt="PNG"),
        modality="clinical_overview",
        case="Q-C2",
    )
    assert r.status_code == 201 and r.json["lesion"] is None
    a = headers(admin)
    overview = eq("images.modality", "clinical_overview")
    assert [x["case"] for x in query(client, a, "cases", overview)["hits"]] == ["Q-C2"]
    assert query(client, a, "lesions", overview)["hits"] == []  # of no lesion in particular
    completeness = client.get("/api/v1/query/cases/completeness", headers=a).json
    assert completeness["per_modality"]["wsi"] == 1
    assert completeness["per_modality"]["clinical_photo"] == 1
    combos = {tuple(c["modalities"]): c["count"] for c in completeness["combinations"]}
    assert combos[("wsi", "tissue")] == 1  # Q-C1: a slide and its available 30 µL aliquot


@pytest.mark.parametrize(
    ("form", "field", "words"),
    [
        ({"modality": "xray", "lesion": "Q-L1"}, "modality", "Must be one of"),
        ({"modality": "dermoscopy"}, "case", "needs a case"),
        ({"modality": "dermoscopy", "lesion": "NOPE"}, "lesion", "no lesion"),
        ({"modality": "dermoscopy", "lesion": "Q-L1", "case": "Q-C2"}, "case", "not Q-C2"),
        (
            {"modality": "dermoscopy", "lesion": "Q-L1", "quality_flags": "smudge"},
            "quality_flags",
            "unknown quality flag",
        ),
        (
            {"modality": "wsi", "lesion": "Q-L1", "dermoscopic_image_type": "contact_polarized"},
            "dermoscopic_image_type",
            "for dermoscopy",
        ),
        (
            {"modality": "dermoscopy", "lesion": "Q-L1", "clinical": '{"patient_name": "Ada"}'},
            "clinical",
            "unknown clinical",
        ),
    ],
)
def test_bad_image_registrations(client, bank, technician, headers, tmp_path, form, field, words):
    r = upload(client, headers(technician), picture(tmp_path, "x.jpg"), **form)
    assert r.status_code == 422, r.json
    assert r.json["errors"][0]["field"] == field and words in str(r.json), r.json


def test_not_an_image_and_another_sites_case(client, bank, technician, headers, tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("this is not a picture")
    r = upload(client, headers(technician), bad, modality="dermoscopy", lesion="Q-L1")
    assert r.status_code == 422 and "not a readable JPEG" in r.json["detail"]
    r = upload(client, headers(technician), picture(tmp_path, "x.jpg"), modality="dermoscopy", case="Q-C3")
    assert r.status_code == 403


def test_bulk_folder_is_all_or_nothing(runner, app, bank, tmp_path, db_session):
    from biobank.models import Image

    folder = tmp_path / "shoot"
    folder.mkdir()
    picture(folder, "a.jpg", seed=1)
    picture(folder, "b.jpg", seed=2)
    meta = tmp_path / "meta.csv"
    meta.write_text(
        "filename,modality,lesion,case,acquisition_day,quality_flags,diagnosis\n"
        "a.jpg,dermoscopy,Q-L1,,-2,hairy,melanoma\n"
        "b.jpg,dermoscopy,Q-L9,,x,,melanoma\n"
        "c.jpg,clinical_closeup,Q-L2,,,,\n"
    )
    r = runner.invoke(args=["import-images", str(folder), "--metadata", str(meta)])
    assert r.exit_code == 1
    assert "line 3, lesion: no lesion 'Q-L9'" in r.output
    assert "line 4, filename: c.jpg is not in the folder" in r.output
    assert db_session.query(Image).count() == 0
    meta.write_text(
        "filename,modality,lesion,case,acquisition_day,quality_flags,diagnosis\n"
        "a.jpg,dermoscopy,Q-L1,,-2,hairy,melanoma\n"
        "b.jpg,clinical_overview,,Q-C2,,,\n"
    )
    r = runner.invoke(args=["import-images", str(folder), "--metadata", str(meta)])
    assert r.exit_code == 0, r.output
    assert "2 image(s) registered" in r.output
    images = db_session.query(Image).order_by(Image.filename).all()
    assert [(i.filename, i.clinical.get("diagnosis")) for i in images] == [
        ("a.jpg", "melanoma"),
        ("b.jpg", None),
    ]
