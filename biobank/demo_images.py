"""Demo images drawn by code: dermoscopy and close-ups of lesions, overviews, slides.

Each lesion of a skin-tumour case gets a polarized dermoscopy image and, mostly, a clinical
close-up; some cases an overview photo; some frozen or FFPE tumour blocks a small
whole-slide-like TIFF. The drawings are schematic (a pigmented blob on skin, darker and
more irregular for melanoma; pink tissue with purple nuclei for slides), deterministic for
a seed, and carry quality flags (hair, ruler) where they were drawn with them.
"""

from __future__ import annotations

import math
import random
import tempfile
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from PIL import Image, ImageDraw, ImageFilter

from biobank.db import db, transaction
from biobank.models import Case, Lesion, Specimen
from biobank.models.vocab import DiseaseGroup, MaterialType, PathologyStatus
from biobank.services import images
from biobank.services.users import system_actor

SIZE = 256


def draw_lesion(rng: random.Random, *, melanoma: bool, flags: list[str], scale: float = 1.0) -> Any:
    skin = tuple(int(c + rng.uniform(-15, 15)) for c in (224, 180, 150))
    img = Image.new("RGB", (SIZE, SIZE), skin)
    draw = ImageDraw.Draw(img)
    cx, cy = SIZE / 2 + rng.uniform(-15, 15), SIZE / 2 + rng.uniform(-15, 15)
    radius = rng.uniform(40, 70) * scale
    points = []
    for i in range(36):
        angle = 2 * math.pi * i / 36
        wobble = rng.uniform(0.6, 1.25) if melanoma else rng.uniform(0.9, 1.08)
        points.append((cx + radius * wobble * math.cos(angle), cy + radius * wobble * 0.85 * math.sin(angle)))
    draw.polygon(points, fill=(110, 70, 45) if not melanoma else (70, 40, 30))
    for _ in range(6 if melanoma else 2):  # darker blotches
        x, y = cx + rng.uniform(-radius / 2, radius / 2), cy + rng.uniform(-radius / 2, radius / 2)
        r = rng.uniform(5, 18) * scale
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(35, 20, 20) if melanoma else (90, 55, 35))
    img = img.filter(ImageFilter.GaussianBlur(2))
    draw = ImageDraw.Draw(img)
    if "hairy" in flags:
        for _ in range(12):
            x0, y0 = rng.uniform(0, SIZE), rng.uniform(0, SIZE)
            draw.line(
                (x0, y0, x0 + rng.uniform(-90, 90), y0 + rng.uniform(-90, 90)), fill=(40, 30, 25), width=1
            )
    if "ruler" in flags:
        draw.rectangle((0, SIZE - 18, SIZE, SIZE), fill=(240, 240, 235))
        for x in range(0, SIZE, 8):
            draw.line((x, SIZE - 18, x, SIZE - (12 if x % 40 else 4)), fill=(20, 20, 20))
    return img


def draw_slide(rng: random.Random) -> Any:
    img = Image.new("RGB", (SIZE * 2, SIZE * 2), (246, 240, 244))
    draw = ImageDraw.Draw(img)
    draw.ellipse((40, 60, SIZE * 2 - 50, SIZE * 2 - 40), fill=(232, 160, 190))
    for _ in range(900):
        x, y = rng.uniform(60, SIZE * 2 - 70), rng.uniform(80, SIZE * 2 - 60)
        r = rng.uniform(1.5, 3.5)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(90, 50, 140))
    return img


def load_demo_images(*, seed: int = 20261123, limit: int = 120) -> dict[str, int]:
    """Draw and register the demo images as the system account."""
    rng = random.Random(seed)
    with transaction():
        lesions = list(
            db.session.execute(
                sa.select(Lesion.code, Case.code, Case.disease_group)
                .join(Case, Case.id == Lesion.case_id)
                .where(Case.disease_group.in_([DiseaseGroup.MELANOMA, DiseaseGroup.OTHER_SKIN_TUMOUR]))
                .order_by(Lesion.id)
                .limit(limit)
            )
        )
        blocks = list(
            db.session.scalars(
                sa.select(Specimen.barcode)
                .where(
                    Specimen.material_type.in_(
                        [MaterialType.TISSUE_FROZEN, MaterialType.TISSUE_PARAFFIN_EMBEDDED]
                    ),
                    Specimen.pathology_status == PathologyStatus.MALIGNANT,
                    Specimen.parent_id.is_(None),
                    Specimen.lesion_id.is_not(None),
                )
                .order_by(Specimen.id)
                .limit(limit // 4)
            )
        )
    planned: list[tuple[str, Any, dict[str, Any], dict[str, Any]]] = []
    for lesion, case, group in lesions:
        melanoma = group is DiseaseGroup.MELANOMA
        diagnosis = "melanoma" if melanoma else "basal cell carcinoma"
        clinical = {
            "diagnosis": diagnosis,
            "benign_malignant": "malignant",
            "melanocytic": "true" if melanoma else "false",
        }
        flags = [f for f in ("hairy", "ruler") if rng.random() < 0.25]
        planned.append(
            (
                f"{lesion}-dermoscopy.jpg",
                draw_lesion(rng, melanoma=melanoma, flags=flags),
                {"lesion": lesion},
                {
                    "modality": "dermoscopy",
                    "acquisition_day": rng.randint(-30, 0),
                    "dermoscopic_image_type": "contact_polarized",
                    "device": "Demo dermatoscope",
                    "quality_flags": flags,
                    "clinical": clinical,
                },
            )
        )
        if rng.random() < 0.8:
            planned.append(
                (
                    f"{lesion}-closeup.jpg",
                    draw_lesion(rng, melanoma=melanoma, flags=[], scale=0.5),
                    {"lesion": lesion},
                    {
                        "modality": "clinical_closeup",
                        "acquisition_day": rng.randint(-30, 0),
                        "clinical": clinical,
                    },
                )
            )
        if rng.random() < 0.3:
            planned.append(
                (
                    f"{case}-overview.jpg",
                    draw_lesion(rng, melanoma=False, flags=[], scale=0.15),
                    {"case": case},
                    {"modality": "clinical_overview", "acquisition_day": rng.randint(-60, 0)},
                )
            )
    for barcode in blocks:
        planned.append(
            (
                f"{barcode}-slide.tiff",
                draw_slide(rng),
                {"specimen": barcode},
                {"modality": "wsi", "acquisition_day": rng.randint(1, 20), "device": "Demo slide scanner"},
            )
        )
    created = 0
    with tempfile.TemporaryDirectory() as tmp, transaction():
        actor = system_actor()
        for name, picture, links, metadata in planned:
            path = Path(tmp) / name
            if name.endswith(".tiff"):
                picture.save(path, format="TIFF", compression="tiff_deflate")
            else:
                picture.save(path, format="JPEG", quality=88)
            _image, new = images.register_image(
                actor=actor, path=path, filename=name, links=links, metadata=metadata
            )
            created += new
    return {"images": created}
