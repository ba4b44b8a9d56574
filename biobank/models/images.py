"""Images of lesions and specimens: clinical photos, dermoscopy, whole-slide images."""

from __future__ import annotations

import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from biobank.db import created_at, db, intpk, str64, str255
from biobank.models.cases import Case, Lesion
from biobank.models.specimens import Specimen


class ImageModality(enum.Enum):
    DERMOSCOPY = "dermoscopy"
    CLINICAL_OVERVIEW = "clinical_overview"
    CLINICAL_CLOSEUP = "clinical_closeup"
    WSI = "wsi"

    @property
    def sop_class_uid(self) -> str:
        """DICOM SOP class of the modality (dermoscopy, VL photographic, VL whole-slide)."""
        return {"dermoscopy": "1.2.840.10008.5.1.4.1.1.77.1.7", "wsi": "1.2.840.10008.5.1.4.1.1.77.1.6"}.get(
            self.value, "1.2.840.10008.5.1.4.1.1.77.1.4"
        )


#: ISIC's image quality flags
QUALITY_FLAGS = (
    "hairy",
    "blurry",
    "marker_pen",
    "color_tint",
    "ruler",
    "dark_corner",
    "out_of_focus",
    "overexposed",
)


class Image(db.Model):
    """An image file stored by its SHA-256 under the image storage root, never overwritten.

    It belongs to a case and, where known, a lesion (dermoscopy, close-up) or a specimen (a
    slide of a block). ``acquisition_day`` is days from the case's diagnosis (negative:
    before), never a date. ``dicom`` holds acquisition attributes (SOP class, dermoscopic
    image type, device), ``clinical`` ISIC-style clinical metadata without PHI.
    """

    __tablename__ = "images"
    __table_args__ = (
        # cohort queries ask which cases and lesions have an image of a modality, and which
        # modalities a case's or lesion's images have: answered from these indexes alone
        sa.Index("ix_images_case_id", "case_id", "modality"),
        sa.Index("ix_images_lesion_id", "lesion_id", "modality"),
        sa.Index("ix_images_modality", "modality", "case_id", "lesion_id"),
    )

    id: Mapped[intpk]
    case_id: Mapped[int] = mapped_column(sa.ForeignKey("cases.id"))
    lesion_id: Mapped[int | None] = mapped_column(sa.ForeignKey("lesions.id"))
    specimen_id: Mapped[int | None] = mapped_column(sa.ForeignKey("specimens.id"), index=True)
    modality: Mapped[ImageModality]
    filename: Mapped[str255]
    uri: Mapped[str] = mapped_column(sa.Text, comment="Path under the image storage root")
    mime_type: Mapped[str64]
    size_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    sha256: Mapped[str] = mapped_column(sa.String(64), unique=True)
    width: Mapped[int | None]
    height: Mapped[int | None]
    acquisition_day: Mapped[int | None] = mapped_column(
        comment="Days from diagnosis to acquisition (negative: before diagnosis)"
    )
    dicom: Mapped[dict[str, Any]] = mapped_column(default=dict)
    clinical: Mapped[dict[str, Any]] = mapped_column(default=dict)
    quality_flags: Mapped[list[str]] = mapped_column(default=list)
    created_by: Mapped[str64]
    created_at: Mapped[created_at]

    case: Mapped[Case] = relationship()
    lesion: Mapped[Lesion | None] = relationship()
    specimen: Mapped[Specimen | None] = relationship()
