"""Images: register clinical photos, dermoscopy and whole-slide images; thumbnails.

A file is stored once, by its SHA-256, under the image storage root; its pixel size and
format are read from its header (Pillow), so a huge slide is never decoded to register it.
Bulk registration takes a folder and a metadata CSV and is all-or-nothing: every row is
checked (file present and readable, links existing, vocabulary known) before any is stored.
"""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import current_app
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from biobank.auth import check_site, visible_site_ids
from biobank.db import db
from biobank.errors import InvalidInput, NotFound
from biobank.importfiles import sha256_of
from biobank.models import (
    Case,
    CohortSnapshotObject,
    Image,
    ImageModality,
    Lesion,
    Participant,
    Specimen,
)
from biobank.models.images import QUALITY_FLAGS
from biobank.models.users import Actor
from biobank.models.vocab import Role
from biobank.services.cohorts import granted_snapshot_ids

DERMOSCOPIC_TYPES = ("contact_polarized", "contact_non_polarized", "non_contact_polarized")
#: ISIC clinical metadata a record may carry (nothing that identifies a patient)
CLINICAL_KEYS = (
    "diagnosis",
    "benign_malignant",
    "melanocytic",
    "anatom_site_general",
    "mel_thick_mm",
    "mel_ulcer",
    "mel_class",
    "lesion_size_mm",
    "fitzpatrick_skin_type",
)
FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "TIFF": "image/tiff"}
THUMBNAIL_SIZE = 256
CSV_COLUMNS = (
    "filename",
    "modality",
    "case",
    "lesion",
    "specimen",
    "acquisition_day",
    "dermoscopic_image_type",
    "device",
    "quality_flags",
    *CLINICAL_KEYS,
)


def storage_root() -> Path:
    root = current_app.config.get("IMAGE_STORAGE_ROOT") or Path(current_app.instance_path, "images")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def file_path(image: Image) -> Path:
    return storage_root() / image.uri


def probe(path: Path) -> tuple[str, int, int]:
    """The MIME type and pixel size from the header, or InvalidInput."""
    try:
        with PILImage.open(path) as img:
            mime = FORMATS.get(img.format or "")
            if mime is None:
                raise InvalidInput(f"{img.format} images are not accepted (JPEG, PNG, TIFF)", field="file")
            return mime, img.width, img.height
    except (UnidentifiedImageError, OSError):
        raise InvalidInput("the file is not a readable JPEG, PNG or TIFF image", field="file") from None


def resolve_links(
    actor: Actor, *, case: str | None = None, lesion: str | None = None, specimen: str | None = None
) -> tuple[Case, Lesion | None, Specimen | None]:
    """Case, lesion and specimen from their codes/barcode; they must agree."""
    spec = lez = cas = None
    if specimen:
        spec = _one(Specimen, Specimen.barcode, specimen, "specimen")
        if spec.lesion_id is not None:
            lez = spec.lesion
        elif spec.collection_event and spec.collection_event.case_id:
            cas = spec.collection_event.case
    if lesion:
        lez = _agree(
            lez,
            _one(Lesion, Lesion.code, lesion, "lesion"),
            "lesion",
            f"specimen {specimen} is of lesion {lez.code if lez else ''}, not {lesion}",
        )
    if lez is not None:
        cas = lez.case
    if case:
        cas = _agree(
            cas,
            _one(Case, Case.code, case, "case"),
            "case",
            f"the lesion or specimen is of case {cas.code if cas else ''}, not {case}",
        )
    if cas is None:
        raise InvalidInput("an image needs a case, a lesion or a specimen of a case", field="case")
    check_site(actor, cas.participant.site_id, field="case")
    return cas, lez, spec


def _one(model: Any, column: Any, value: str, field: str) -> Any:
    found = db.session.scalar(sa.select(model).where(column == value))
    if found is None:
        raise InvalidInput(f"no {field} {value!r}", field=field)
    return found


def _agree(known: Any, found: Any, field: str, message: str) -> Any:
    if known is not None and known.id != found.id:
        raise InvalidInput(message, field=field)
    return found


def check_metadata(
    *,
    modality: str,
    acquisition_day: Any = None,
    dermoscopic_image_type: str | None = None,
    device: str | None = None,
    quality_flags: Iterable[str] = (),
    clinical: dict[str, Any] | None = None,
) -> dict[str, Any]:
    try:
        mod = ImageModality(modality)
    except ValueError:
        raise InvalidInput(
            f"unknown modality {modality!r}", field="modality", allowed=[m.value for m in ImageModality]
        ) from None
    if acquisition_day in ("", None):
        day = None
    else:
        try:
            day = int(acquisition_day)
        except (TypeError, ValueError):
            raise InvalidInput(
                f"acquisition_day must be a whole number of days, got {acquisition_day!r}",
                field="acquisition_day",
            ) from None
        if abs(day) > 36_500:
            raise InvalidInput("acquisition_day is more than 100 years", field="acquisition_day")
    flags = sorted({f.strip() for f in quality_flags if f.strip()})
    unknown = [f for f in flags if f not in QUALITY_FLAGS]
    if unknown:
        raise InvalidInput(
            f"unknown quality flag(s) {', '.join(unknown)}",
            field="quality_flags",
            allowed=list(QUALITY_FLAGS),
        )
    if dermoscopic_image_type and mod is not ImageModality.DERMOSCOPY:
        raise InvalidInput("dermoscopic_image_type is for dermoscopy images", field="dermoscopic_image_type")
    if dermoscopic_image_type and dermoscopic_image_type not in DERMOSCOPIC_TYPES:
        raise InvalidInput(
            f"unknown dermoscopic_image_type {dermoscopic_image_type!r}",
            field="dermoscopic_image_type",
            allowed=list(DERMOSCOPIC_TYPES),
        )
    clinical = {k: v for k, v in (clinical or {}).items() if v not in (None, "")}
    extra = sorted(set(clinical) - set(CLINICAL_KEYS))
    if extra:
        raise InvalidInput(
            f"unknown clinical field(s) {', '.join(extra)}", field="clinical", allowed=list(CLINICAL_KEYS)
        )
    dicom = {"sop_class_uid": mod.sop_class_uid, "modality": "SM" if mod is ImageModality.WSI else "XC"}
    if dermoscopic_image_type:
        dicom["dermoscopic_image_type"] = dermoscopic_image_type
    if device:
        dicom["device"] = device[:128]
    return {
        "modality": mod,
        "acquisition_day": day,
        "quality_flags": flags,
        "dicom": dicom,
        "clinical": clinical,
    }


def register_image(
    *, actor: Actor, path: Path, filename: str, links: dict[str, Any], metadata: dict[str, Any]
) -> tuple[Image, bool]:
    """Store and record one image; the same bytes again return the existing record."""
    case, lesion, specimen = resolve_links(actor, **links)
    fields = check_metadata(**metadata)
    mime, width, height = probe(path)
    digest = sha256_of(path)
    existing = db.session.scalar(sa.select(Image).where(Image.sha256 == digest))
    if existing is not None:
        return existing, False
    suffix = {"image/jpeg": ".jpg", "image/png": ".png", "image/tiff": ".tiff"}[mime]
    uri = f"{digest[:2]}/{digest}{suffix}"
    target = storage_root() / uri
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(".part")
        shutil.copyfile(path, partial)
        partial.replace(target)
    image = Image(
        case_id=case.id,
        lesion_id=lesion.id if lesion else None,
        specimen_id=specimen.id if specimen else None,
        filename=filename[:255],
        uri=uri,
        mime_type=mime,
        size_bytes=path.stat().st_size,
        sha256=digest,
        width=width,
        height=height,
        created_by=actor.username,
        **fields,
    )
    db.session.add(image)
    db.session.flush()
    return image, True


def register_folder(*, actor: Actor, folder: Path, metadata_csv: Path) -> dict[str, int]:
    """Register every image a metadata CSV lists, or none: all problems are reported."""
    problems: list[dict[str, Any]] = []
    planned: list[tuple[int, Path, dict[str, Any], dict[str, Any]]] = []
    try:
        text = metadata_csv.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"the metadata CSV is not UTF-8 (byte {exc.start})", field="metadata") from None
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    missing = [c for c in ("filename", "modality") if c not in header]
    unknown = [c for c in header if c not in CSV_COLUMNS]
    if missing or unknown:
        raise InvalidInput(
            "metadata columns: "
            + "; ".join(
                ([f"missing {', '.join(missing)}"] if missing else [])
                + ([f"unknown {', '.join(unknown)}"] if unknown else [])
            ),
            field="metadata",
            allowed=list(CSV_COLUMNS),
        )
    seen: dict[str, int] = {}
    root = folder.resolve()
    for line, row in enumerate(reader, start=2):
        name = (row.get("filename") or "").strip()
        path = (root / name).resolve()
        try:
            if not name or root not in path.parents:
                raise InvalidInput(f"filename {name!r} is not a file inside the folder", field="filename")
            if name in seen:
                raise InvalidInput(f"{name} is listed twice (line {seen[name]})", field="filename")
            seen[name] = line
            if not path.is_file():
                raise InvalidInput(f"{name} is not in the folder", field="filename")
            links = {k: (row.get(k) or "").strip() or None for k in ("case", "lesion", "specimen")}
            resolve_links(actor, **links)
            metadata = {
                "modality": (row.get("modality") or "").strip(),
                "acquisition_day": (row.get("acquisition_day") or "").strip() or None,
                "dermoscopic_image_type": (row.get("dermoscopic_image_type") or "").strip() or None,
                "device": (row.get("device") or "").strip() or None,
                "quality_flags": (row.get("quality_flags") or "").split(";"),
                "clinical": {k: row.get(k, "").strip() for k in CLINICAL_KEYS if k in row},
            }
            check_metadata(**metadata)
            probe(path)
        except InvalidInput as exc:
            problems.append({"line": line, "column": exc.field, "message": exc.message})
            continue
        planned.append((line, path, links, metadata))
    if problems:
        raise InvalidInput(
            f"{len(problems)} problem(s) in the metadata: nothing registered",
            field="metadata",
            problems=problems[:200],
        )
    created = existing = 0
    for _line, path, links, metadata in planned:
        _image, new = register_image(
            actor=actor, path=path, filename=path.name, links=links, metadata=metadata
        )
        created += new
        existing += not new
    return {"registered": created, "already_registered": existing}


def image_clause(actor: Actor) -> Any:
    """A WHERE clause over ``images``: those *actor* may see. Administrators see all, staff
    the images of their sites' cases, researchers only the images of a snapshot an approved
    request of theirs names, while its data access lasts."""
    if actor.role is Role.ADMIN:
        return sa.true()
    if actor.role is Role.RESEARCHER:
        return Image.id.in_(
            sa.select(CohortSnapshotObject.object_id).where(
                CohortSnapshotObject.kind == "image",
                CohortSnapshotObject.snapshot_id.in_(granted_snapshot_ids(actor)),
            )
        )
    sites = sorted(visible_site_ids(actor) or set())
    return Image.case_id.in_(
        sa.select(Case.id)
        .join(Participant, Participant.id == Case.participant_id)
        .where(Participant.site_id.in_(sites))
    )


def get_image(image_id: int, actor: Actor) -> Image:
    """An image *actor* may see; any other is 'not found'."""
    image = db.session.scalar(sa.select(Image).where(Image.id == image_id, image_clause(actor)))
    if image is None:
        raise NotFound(f"no image {image_id}")
    return image


def list_images(
    *,
    actor: Actor,
    case_id: int | None = None,
    lesion_id: int | None = None,
    specimen_id: int | None = None,
    modality: str | None = None,
    limit: int = 200,
) -> list[Image]:
    stmt = sa.select(Image).where(image_clause(actor))
    for column, value in (
        (Image.case_id, case_id),
        (Image.lesion_id, lesion_id),
        (Image.specimen_id, specimen_id),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if modality:
        stmt = stmt.where(Image.modality == ImageModality(modality))
    return list(db.session.scalars(stmt.order_by(Image.id).limit(limit)))


def thumbnail(image: Image) -> Path:
    """A PNG of at most 256×256 pixels, made once and kept beside the images."""
    target = storage_root() / "thumbnails" / f"{image.sha256}.png"
    if target.exists():
        return target
    source = file_path(image)
    if not source.is_file():
        # The record outlived its file (storage restored from an older backup, a volume
        # not mounted): say so instead of failing.
        raise NotFound(f"the file of image {image.id} ({image.filename}) is missing from the image storage")
    target.parent.mkdir(parents=True, exist_ok=True)
    with PILImage.open(source) as img:
        img.draft("RGB", (THUMBNAIL_SIZE * 2, THUMBNAIL_SIZE * 2))  # JPEG: decode at 1/n scale
        img.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        partial = target.with_suffix(".part")
        img.convert("RGB").save(partial, format="PNG")
    partial.replace(target)
    return target
