"""Cases (diagnoses) and lesions."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from biobank.db import db
from biobank.errors import InvalidInput
from biobank.models import Case, CollectionEvent, Image, Lesion, Participant, Specimen
from biobank.models.users import Actor
from biobank.models.vocab import AjccStage, BodySite, DiseaseGroup, Laterality
from biobank.services.common import apply_changes, ensure_unique, get_by, get_visible, visible
from biobank.services.storage import with_locations

ICD10 = re.compile(r"^[A-TV-Z][0-9]{2}(\.[0-9A-Z]{1,4})?$")
MELANOMA_FIELDS = ("breslow_mm", "ulceration", "ajcc_stage")
TUMOUR_FIELDS = ("icdo3_morphology", "icdo3_topography")
#: ICD-O-3: a morphology is four digits and a behaviour (0 benign, 1 uncertain, 2 in situ,
#: 3 malignant primary, 6 metastatic, 9 uncertain whether primary or metastatic); a
#: topography is a C site with its subsite
ICDO3_MORPHOLOGY = re.compile(r"^[89][0-9]{3}/[012369]$")
ICDO3_TOPOGRAPHY = re.compile(r"^C[0-9]{2}\.[0-9]$")
#: ICD-O-3 terms of the skin tumours the biobank sees most
ICDO3_MORPHOLOGY_TERMS = {
    "8720/3": "Malignant melanoma, NOS",
    "8720/2": "Melanoma in situ",
    "8721/3": "Nodular melanoma",
    "8742/3": "Lentigo maligna melanoma",
    "8743/3": "Superficial spreading melanoma",
    "8744/3": "Acral lentiginous melanoma, malignant",
    "8745/3": "Desmoplastic melanoma, malignant",
    "8090/3": "Basal cell carcinoma, NOS",
    "8070/3": "Squamous cell carcinoma, NOS",
    "8247/3": "Merkel cell carcinoma",
    "9700/3": "Mycosis fungoides",
    "9140/3": "Kaposi sarcoma",
}
ICDO3_TOPOGRAPHY_TERMS = {
    "C44.0": "Skin of lip, NOS",
    "C44.1": "Eyelid",
    "C44.2": "External ear",
    "C44.3": "Skin of other and unspecified parts of face",
    "C44.4": "Skin of scalp and neck",
    "C44.5": "Skin of trunk",
    "C44.6": "Skin of upper limb and shoulder",
    "C44.7": "Skin of lower limb and hip",
    "C44.8": "Overlapping lesion of skin",
    "C44.9": "Skin, NOS",
}
#: ICD-10 chapters each disease group may be coded with
ICD10_PREFIXES = {
    DiseaseGroup.MELANOMA: ("C43", "D03"),
    DiseaseGroup.OTHER_SKIN_TUMOUR: ("C44", "C46", "C84", "D04", "D22", "D23", "D48"),
    DiseaseGroup.PSORIASIS: ("L40",),
    DiseaseGroup.URTICARIA: ("L50", "T78.3"),
    DiseaseGroup.ROSACEA: ("L71",),
    DiseaseGroup.ALOPECIA: ("L63", "L64", "L65", "L66"),
    DiseaseGroup.LUPUS: ("M32", "L93"),
}

#: ICD-10 (WHO) titles of the categories the disease groups are coded in
ICD10_TITLES = {
    "C43": "Malignant melanoma of skin",
    "C44": "Other malignant neoplasms of skin",
    "C46": "Kaposi sarcoma",
    "C84": "Mature T/NK-cell lymphomas",
    "D03": "Melanoma in situ",
    "D04": "Carcinoma in situ of skin",
    "D22": "Melanocytic naevi",
    "D23": "Other benign neoplasms of skin",
    "D48": "Neoplasm of uncertain or unknown behaviour of other and unspecified sites",
    "L40": "Psoriasis",
    "L50": "Urticaria",
    "T78": "Angioneurotic oedema",
    "L71": "Rosacea",
    "L63": "Alopecia areata",
    "L64": "Androgenic alopecia",
    "L65": "Other nonscarring hair loss",
    "L66": "Cicatricial alopecia [scarring hair loss]",
    "M32": "Systemic lupus erythematosus",
    "L93": "Lupus erythematosus",
}
#: AJCC 8th edition pathologic stage groups of cutaneous melanoma, as NCIt codes them
#: ("Pathologic Stage IIA Cutaneous Melanoma AJCC v8"…)
AJCC8 = {
    AjccStage.STAGE_0: "C137662",
    AjccStage.IA: "C137664",
    AjccStage.IB: "C137665",
    AjccStage.IIA: "C137667",
    AjccStage.IIB: "C137668",
    AjccStage.IIC: "C137669",
    AjccStage.IIIA: "C137671",
    AjccStage.IIIB: "C137672",
    AjccStage.IIIC: "C137673",
    AjccStage.IIID: "C137675",
    AjccStage.IV: "C137677",
}


def diagnosis_problem(group: DiseaseGroup, icd10: str, fields: dict[str, Any]) -> tuple[str, str] | None:
    """What is wrong with a diagnosis, as (field, message), or ``None``: the ICD-10 code
    against the disease group, melanoma's own fields, ICD-O-3 codes of tumours only. The
    API and the importer both ask it."""
    if not ICD10.match(icd10):
        return "icd10_code", f"{icd10!r} is not an ICD-10 code such as C43.5"
    if not icd10.startswith(ICD10_PREFIXES[group]):
        allowed = ", ".join(ICD10_PREFIXES[group])
        return ("icd10_code", f"ICD-10 {icd10} does not fit disease group {group.value} (expected {allowed})")
    if group is not DiseaseGroup.MELANOMA:
        for name in MELANOMA_FIELDS:
            if fields.get(name) is not None:
                return name, f"{name} applies to melanoma cases only"
    for name, pattern, example in (
        ("icdo3_morphology", ICDO3_MORPHOLOGY, "8720/3"),
        ("icdo3_topography", ICDO3_TOPOGRAPHY, "C44.5"),
    ):
        value = fields.get(name)
        if value is None:
            continue
        if not group.is_tumour:
            return name, f"{name} codes a tumour: not for {group.value} cases"
        if not pattern.match(value):
            return (name, f"{value!r} is not an ICD-O-3 {name.split('_')[1]} such as {example}")
    return None


def _check_diagnosis(group: DiseaseGroup, icd10: str, fields: dict[str, Any]) -> None:
    problem = diagnosis_problem(group, icd10, fields)
    if problem:
        raise InvalidInput(problem[1], field=problem[0])


def list_cases(
    *, actor: Actor, participant_id: int | None = None, disease_group: DiseaseGroup | None = None
) -> sa.Select:
    stmt = visible(sa.select(Case), Case, actor)
    if participant_id is not None:
        stmt = stmt.where(Case.participant_id == participant_id)
    if disease_group is not None:
        stmt = stmt.where(Case.disease_group == disease_group)
    return stmt


def open_case(
    *,
    actor: Actor,
    participant_id: int,
    code: str,
    disease_group: DiseaseGroup,
    icd10_code: str,
    diagnosis_date: dt.date | None = None,
    breslow_mm: Decimal | None = None,
    ulceration: bool | None = None,
    ajcc_stage: AjccStage | None = None,
    icdo3_morphology: str | None = None,
    icdo3_topography: str | None = None,
    notes: str | None = None,
) -> Case:
    """Record a diagnosis for a participant (the melanoma and tumour fields only where the
    disease group has them)."""
    participant = get_visible(Participant, participant_id, actor, field="participant_id")
    fields = {
        "code": code,
        "disease_group": disease_group,
        "icd10_code": icd10_code,
        "diagnosis_date": diagnosis_date,
        "breslow_mm": breslow_mm,
        "ulceration": ulceration,
        "ajcc_stage": ajcc_stage,
        "icdo3_morphology": icdo3_morphology,
        "icdo3_topography": icdo3_topography,
        "notes": notes,
    }
    _check_diagnosis(disease_group, icd10_code, fields)
    ensure_unique(Case, Case.code, code, field="code")
    case = Case(participant=participant, **fields)
    db.session.add(case)
    db.session.flush()
    return case


def update_case(case: Case, changes: dict[str, Any], *, actor: Actor) -> Case:
    merged = {name: getattr(case, name) for name in MELANOMA_FIELDS + TUMOUR_FIELDS} | changes
    _check_diagnosis(
        changes.get("disease_group", case.disease_group),
        changes.get("icd10_code", case.icd10_code),
        merged,
    )
    if "code" in changes:
        ensure_unique(Case, Case.code, changes["code"], field="code", exclude_id=case.id)
    apply_changes(case, changes)
    db.session.flush()
    return case


def list_lesions(*, actor: Actor, case_id: int | None = None) -> sa.Select:
    stmt = visible(sa.select(Lesion), Lesion, actor)
    if case_id is not None:
        stmt = stmt.where(Lesion.case_id == case_id)
    return stmt


def add_lesion(
    *,
    actor: Actor,
    case_id: int,
    code: str,
    body_site: BodySite,
    laterality: Laterality = Laterality.NOT_APPLICABLE,
    diameter_mm: Decimal | None = None,
    description: str | None = None,
) -> Lesion:
    """Record a lesion of a case."""
    case = get_visible(Case, case_id, actor, field="case_id")
    ensure_unique(Lesion, Lesion.code, code, field="code")
    lesion = Lesion(
        case=case,
        code=code,
        body_site=body_site,
        laterality=laterality,
        diameter_mm=diameter_mm,
        description=description,
    )
    db.session.add(lesion)
    db.session.flush()
    return lesion


def update_lesion(lesion: Lesion, changes: dict[str, Any], *, actor: Actor) -> Lesion:
    if "code" in changes:
        ensure_unique(Lesion, Lesion.code, changes["code"], field="code", exclude_id=lesion.id)
    apply_changes(lesion, changes)
    db.session.flush()
    return lesion


def lesion_record(code: str, *, actor: Actor) -> dict[str, Any]:
    """A lesion of the actor's sites with its images and its specimens: the lesion page."""
    lesion = get_by(Lesion, Lesion.code, code, actor)
    images = db.session.scalars(
        sa.select(Image).where(Image.lesion_id == lesion.id).order_by(Image.modality, Image.id)
    ).all()
    samples = db.session.scalars(
        sa.select(Specimen).where(Specimen.lesion_id == lesion.id).order_by(Specimen.id)
    ).all()
    return {"lesion": lesion, "images": images, "samples": samples}


def case_record(code: str, *, actor: Actor) -> dict[str, Any]:
    """A case of the actor's sites with the specimens of its lesions and visits (with their
    places) and its images: what the case page shows."""
    case = get_by(Case, Case.code, code, actor)
    lesion_ids = [lesion.id for lesion in case.lesions]
    visit_ids = db.session.scalars(
        sa.select(CollectionEvent.id).where(CollectionEvent.case_id == case.id)
    ).all()
    specimens = db.session.scalars(
        sa.select(Specimen)
        .where(
            sa.or_(
                Specimen.lesion_id.in_(lesion_ids or [-1]),
                Specimen.collection_event_id.in_(visit_ids or [-1]),
            )
        )
        .order_by(Specimen.id)
    ).all()
    images = db.session.scalars(
        sa.select(Image).where(Image.case_id == case.id).order_by(Image.lesion_id, Image.modality, Image.id)
    ).all()
    return {"case": case, "specimens": with_locations(list(specimens)), "images": images}
