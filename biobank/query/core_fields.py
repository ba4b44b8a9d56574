"""The biobank's own query fields: participants, consent, cases, lesions, specimens, storage."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import aliased

from biobank.models import (
    Case,
    ConsentResponse,
    ConsentTier,
    Image,
    Lesion,
    Participant,
    Site,
    Specimen,
    StorageContainer,
    Study,
)
from biobank.models.images import QUALITY_FLAGS, ImageModality
from biobank.models.vocab import (
    AjccStage,
    BodySite,
    ConsentDecision,
    ConsentScope,
    DiseaseGroup,
    Laterality,
    Lineage,
    MaterialType,
    PathologyStatus,
    QuantityUnit,
    Sex,
    SpecimenStatus,
    StorageTemperature,
)
from biobank.query.fields import Field, column_field

MATERIAL_CLASSES = ("tissue", "blood", "urine", "stool", "nucleic_acid", "other")

#: a tube that can be handed out: in a freezer, not reserved, with something left
AVAILABLE_STATUSES = (SpecimenStatus.IN_STORAGE, SpecimenStatus.RECEIVED)


def _material_class() -> Any:
    whens = [(Specimen.material_type == m, m.category) for m in MaterialType if m.category != "other"]
    return sa.case(*whens, else_="other")


def _volume_ul() -> Any:
    return sa.case(
        (Specimen.unit == QuantityUnit.ML, Specimen.quantity * 1000),
        (Specimen.unit == QuantityUnit.UL, Specimen.quantity),
        else_=None,
    )


def _mass_mg() -> Any:
    return sa.case(
        (Specimen.unit == QuantityUnit.G, Specimen.quantity * 1000),
        (Specimen.unit == QuantityUnit.MG, Specimen.quantity),
        (Specimen.unit == QuantityUnit.UG, Specimen.quantity / 1000),
        else_=None,
    )


def _available() -> Any:
    return sa.and_(
        Specimen.status.in_(AVAILABLE_STATUSES), sa.or_(Specimen.quantity.is_(None), Specimen.quantity > 0)
    )


def _images(value: Any) -> sa.Select:
    """Images by lesion (a slide's lesion is recorded from its specimen when registered),
    and by case for those of no lesion in particular."""
    return sa.select(Image.lesion_id.label("key"), Image.case_id.label("case_id"), value.label("value"))


def _image_flags() -> sa.Select:
    flags = [_images(sa.literal(flag)).where(_has_flag(flag)) for flag in QUALITY_FLAGS]
    return sa.union_all(*flags).subquery().select()


def _has_flag(flag: str) -> Any:
    # JSON arrays are compared as text: portable across SQLite and PostgreSQL
    return sa.cast(Image.quality_flags, sa.Text).like(f'%"{flag}"%')


def _consent_scope() -> sa.Select:
    """Scopes a participant said yes to and has not withdrawn."""
    return (
        sa.select(ConsentResponse.participant_id.label("key"), ConsentTier.scope.label("value"))
        .join(ConsentTier, ConsentTier.id == ConsentResponse.tier_id)
        .where(ConsentResponse.decision == ConsentDecision.YES, ConsentResponse.withdrawn_at.is_(None))
    )


def _storage_temperature() -> sa.Select:
    box, rack, unit = (aliased(StorageContainer) for _ in range(3))
    return (
        sa.select(
            Specimen.id.label("key"),
            sa.func.coalesce(box.temperature, rack.temperature, unit.temperature).label("value"),
        )
        .join(box, box.id == Specimen.container_id)
        .outerjoin(rack, rack.id == box.parent_id)
        .outerjoin(unit, unit.id == rack.parent_id)
    )


def _by_code(model: Any, fk: Any, from_: Any) -> Any:
    def join(stmt: sa.Select) -> sa.Select:
        return stmt.select_from(from_).join(model, model.id == fk)

    return join


def core_fields() -> list[Field]:
    p, c, lz, s = "participant_id", "case_id", "lesion_id", "specimen_id"
    return [
        column_field(
            "participants.sex", p, Participant.sex, Participant.id, "Sex of the participant", enum_cls=Sex
        ),
        column_field(
            "participants.birth_year",
            p,
            Participant.birth_year,
            Participant.id,
            "Year of birth (the full date is never exposed)",
            type="integer",
            facet=False,
        ),
        column_field(
            "participants.study",
            p,
            Study.code,
            Participant.id,
            "Code of the study (collection protocol) the participant is enrolled in",
            join=_by_code(Study, Participant.study_id, Participant),
        ),
        column_field(
            "participants.site",
            p,
            Site.code,
            Participant.id,
            "Code of the site that enrolled the participant",
            join=_by_code(Site, Participant.site_id, Participant),
        ),
        Field(
            "consents.scope",
            "keyword",
            p,
            _consent_scope,
            "A scope the participant consented to and has not withdrawn "
            "(research_use, genetic_research, data_sharing, ...)",
            values=[m.value for m in ConsentScope],
            to_db=ConsentScope,
        ),
        column_field(
            "cases.disease_group",
            c,
            Case.disease_group,
            Case.id,
            "Disease group of the case",
            enum_cls=DiseaseGroup,
        ),
        column_field("cases.icd10_code", c, Case.icd10_code, Case.id, "ICD-10 code, e.g. C43.5", facet=False),
        column_field(
            "cases.diagnosis_date",
            c,
            Case.diagnosis_date,
            Case.id,
            "Date of diagnosis",
            type="date",
            facet=False,
        ),
        column_field(
            "cases.ajcc_stage", c, Case.ajcc_stage, Case.id, "AJCC stage of a melanoma", enum_cls=AjccStage
        ),
        column_field(
            "cases.breslow_mm",
            c,
            Case.breslow_mm,
            Case.id,
            "Breslow thickness of a melanoma",
            type="number",
            unit="mm",
            facet=False,
        ),
        column_field(
            "cases.ulceration", c, Case.ulceration, Case.id, "Ulceration of a melanoma", type="boolean"
        ),
        column_field(
            "cases.icdo3_morphology",
            c,
            Case.icdo3_morphology,
            Case.id,
            "ICD-O-3 morphology of a tumour, e.g. 8743/3 (superficial spreading melanoma)",
        ),
        column_field(
            "cases.icdo3_topography",
            c,
            Case.icdo3_topography,
            Case.id,
            "ICD-O-3 topography of a tumour, e.g. C44.5 (skin of trunk)",
        ),
        column_field(
            "lesions.body_site",
            lz,
            Lesion.body_site,
            Lesion.id,
            "Anatomical site of the lesion (ISIC general site)",
            enum_cls=BodySite,
        ),
        column_field(
            "lesions.laterality", lz, Lesion.laterality, Lesion.id, "Side of the body", enum_cls=Laterality
        ),
        column_field(
            "lesions.diameter_mm",
            lz,
            Lesion.diameter_mm,
            Lesion.id,
            "Largest diameter of the lesion",
            type="number",
            unit="mm",
            facet=False,
        ),
        column_field(
            "specimens.material_type",
            s,
            Specimen.material_type,
            Specimen.id,
            "MIABIS material type",
            enum_cls=MaterialType,
        ),
        column_field(
            "specimens.material_class",
            s,
            _material_class(),
            Specimen.id,
            "Coarse class: tissue, blood, urine, stool, nucleic_acid, other",
            values=list(MATERIAL_CLASSES),
        ),
        column_field(
            "specimens.lineage",
            s,
            Specimen.lineage,
            Specimen.id,
            "primary, aliquot or derivative",
            enum_cls=Lineage,
        ),
        column_field(
            "specimens.pathology_status",
            s,
            Specimen.pathology_status,
            Specimen.id,
            "Pathology status of the tissue (malignant, normal, ...)",
            enum_cls=PathologyStatus,
        ),
        column_field(
            "specimens.status",
            s,
            Specimen.status,
            Specimen.id,
            "Lifecycle state of the tube",
            enum_cls=SpecimenStatus,
        ),
        column_field(
            "specimens.available",
            s,
            _available(),
            Specimen.id,
            "In storage or received, not reserved, and not used up",
            type="boolean",
        ),
        column_field(
            "specimens.volume_ul",
            s,
            _volume_ul(),
            Specimen.id,
            "Volume left, for specimens measured in mL or µL",
            type="number",
            unit="µL",
            facet=False,
        ),
        column_field(
            "specimens.mass_mg",
            s,
            _mass_mg(),
            Specimen.id,
            "Mass left, for specimens measured in g, mg or µg",
            type="number",
            unit="mg",
            facet=False,
        ),
        column_field(
            "specimens.freeze_thaw_count",
            s,
            Specimen.freeze_thaw_count,
            Specimen.id,
            "Number of freeze–thaw cycles",
            type="integer",
            facet=False,
        ),
        column_field(
            "specimens.site",
            s,
            Site.code,
            Specimen.id,
            "Code of the site that holds the specimen now",
            join=_by_code(Site, Specimen.site_id, Specimen),
        ),
        column_field(
            "specimens.available_material_class",
            s,
            sa.case((_available(), _material_class()), else_=None),
            Specimen.id,
            "Material class of a specimen that is available (tissue, blood, ...)",
            values=list(MATERIAL_CLASSES),
        ),
        Field(
            "images.modality",
            "keyword",
            lz,
            lambda: _images(Image.modality),
            "An image of the lesion or case: dermoscopy, clinical_overview, "
            "clinical_closeup or wsi (whole-slide)",
            values=[m.value for m in ImageModality],
            to_db=ImageModality,
            also=("case_id",),
        ),
        Field(
            "images.quality_flag",
            "keyword",
            lz,
            _image_flags,
            "A quality flag of an image of the lesion or case (hairy, blurry, ...)",
            values=list(QUALITY_FLAGS),
            also=("case_id",),
        ),
        Field(
            "images.dermoscopic_type",
            "keyword",
            lz,
            lambda: _images(Image.dicom["dermoscopic_image_type"].as_string()),
            "Dermoscopic image type of a dermoscopy image of the lesion",
            values=["contact_polarized", "contact_non_polarized", "non_contact_polarized"],
            also=("case_id",),
        ),
        Field(
            "storage.temperature",
            "keyword",
            s,
            _storage_temperature,
            "Storage temperature range of the specimen's box or its freezer (MIABIS)",
            values=[m.value for m in StorageTemperature],
            to_db=StorageTemperature,
        ),
    ]
