"""Coded vocabularies shared by the domain models (MIABIS, SPREC, DUO, ICD-10 groups)."""

from __future__ import annotations

import enum


class Role(enum.Enum):
    ADMIN = "admin"
    MANAGER = "manager"
    TECHNICIAN = "technician"
    RESEARCHER = "researcher"


class DiseaseGroup(enum.Enum):
    """The six disease groups the biobank collects for."""

    MELANOMA = "melanoma"
    OTHER_SKIN_TUMOUR = "other_skin_tumour"
    PSORIASIS = "psoriasis"
    URTICARIA = "urticaria"
    ROSACEA = "rosacea"
    ALOPECIA = "alopecia"
    LUPUS = "lupus"

    @property
    def is_tumour(self) -> bool:
        return self in (DiseaseGroup.MELANOMA, DiseaseGroup.OTHER_SKIN_TUMOUR)


class MaterialType(enum.Enum):
    """BBMRI-ERIC Directory material types (extended MIABIS 2.0)."""

    WHOLE_BLOOD = "WHOLE_BLOOD"
    PLASMA = "PLASMA"
    SERUM = "SERUM"
    BUFFY_COAT = "BUFFY_COAT"
    PERIPHERAL_BLOOD_CELLS = "PERIPHERAL_BLOOD_CELLS"
    TISSUE_FROZEN = "TISSUE_FROZEN"
    TISSUE_PARAFFIN_EMBEDDED = "TISSUE_PARAFFIN_EMBEDDED"
    TISSUE_STAINED = "TISSUE_STAINED"
    URINE = "URINE"
    FECES = "FECES"
    SALIVA = "SALIVA"
    DNA = "DNA"
    RNA = "RNA"
    CDNA = "CDNA"
    MICRO_RNA = "MICRO_RNA"
    CELL_LINES = "CELL_LINES"
    PATHOGEN = "PATHOGEN"
    NASAL_SWAB = "NASAL_SWAB"
    THROAT_SWAB = "THROAT_SWAB"
    OTHER = "OTHER"

    @property
    def category(self) -> str:
        """Coarse class used for dashboards: tissue, blood, urine, stool, nucleic_acid, other."""
        return _MATERIAL_CATEGORY.get(self, "other")


_MATERIAL_CATEGORY = {
    MaterialType.WHOLE_BLOOD: "blood",
    MaterialType.PLASMA: "blood",
    MaterialType.SERUM: "blood",
    MaterialType.BUFFY_COAT: "blood",
    MaterialType.PERIPHERAL_BLOOD_CELLS: "blood",
    MaterialType.TISSUE_FROZEN: "tissue",
    MaterialType.TISSUE_PARAFFIN_EMBEDDED: "tissue",
    MaterialType.TISSUE_STAINED: "tissue",
    MaterialType.URINE: "urine",
    MaterialType.FECES: "stool",
    MaterialType.DNA: "nucleic_acid",
    MaterialType.RNA: "nucleic_acid",
    MaterialType.CDNA: "nucleic_acid",
    MaterialType.MICRO_RNA: "nucleic_acid",
}


class QuantityUnit(enum.Enum):
    ML = "mL"
    UL = "uL"
    G = "g"
    MG = "mg"
    UG = "ug"
    NG = "ng"
    CELLS = "cells"
    COUNT = "count"


class SpecimenStatus(enum.Enum):
    """Specimen lifecycle; see DOMAIN.md. Terminal states are distributed, consumed, disposed."""

    EXPECTED = "expected"
    COLLECTED = "collected"
    RECEIVED = "received"
    IN_STORAGE = "in_storage"
    CHECKED_OUT = "checked_out"
    RESERVED = "reserved"
    IN_TRANSIT = "in_transit"
    DISTRIBUTED = "distributed"
    CONSUMED = "consumed"
    DISPOSED = "disposed"
    MISSING = "missing"
    QUARANTINED = "quarantined"

    @property
    def fhir_status(self) -> str:
        """FHIR R4 Specimen.status for this lifecycle state."""
        if self in (SpecimenStatus.QUARANTINED,):
            return "unsatisfactory"
        if self in (SpecimenStatus.IN_STORAGE, SpecimenStatus.RECEIVED, SpecimenStatus.COLLECTED):
            return "available"
        return "unavailable"


class Lineage(enum.Enum):
    PRIMARY = "primary"
    ALIQUOT = "aliquot"
    DERIVATIVE = "derivative"


class PathologyStatus(enum.Enum):
    MALIGNANT = "malignant"
    METASTATIC = "metastatic"
    NON_MALIGNANT = "non_malignant"
    NORMAL = "normal"
    NOT_APPLICABLE = "not_applicable"
    NOT_SPECIFIED = "not_specified"


class BodySite(enum.Enum):
    """Anatomical sites for skin lesions and specimens (ISIC ``anatom_site_general`` style)."""

    HEAD_NECK = "head_neck"
    SCALP = "scalp"
    FACE = "face"
    ANTERIOR_TORSO = "anterior_torso"
    POSTERIOR_TORSO = "posterior_torso"
    LATERAL_TORSO = "lateral_torso"
    UPPER_EXTREMITY = "upper_extremity"
    LOWER_EXTREMITY = "lower_extremity"
    PALMS_SOLES = "palms_soles"
    ORAL_GENITAL = "oral_genital"
    NAIL = "nail"
    PERIPHERAL_BLOOD = "peripheral_blood"
    NOT_APPLICABLE = "not_applicable"


class Laterality(enum.Enum):
    LEFT = "left"
    RIGHT = "right"
    MIDLINE = "midline"
    BILATERAL = "bilateral"
    NOT_APPLICABLE = "not_applicable"


class Sex(enum.Enum):
    FEMALE = "female"
    MALE = "male"
    OTHER = "other"
    UNKNOWN = "unknown"


class AjccStage(enum.Enum):
    """AJCC 8th edition melanoma stage groups."""

    STAGE_0 = "0"
    IA = "IA"
    IB = "IB"
    IIA = "IIA"
    IIB = "IIB"
    IIC = "IIC"
    IIIA = "IIIA"
    IIIB = "IIIB"
    IIIC = "IIIC"
    IIID = "IIID"
    IV = "IV"


class ConsentScope(enum.Enum):
    """Coded consent scopes; ``duo`` gives the GA4GH Data Use Ontology term where one fits."""

    STORAGE = "storage"
    RESEARCH_USE = "research_use"
    GENETIC_RESEARCH = "genetic_research"
    DATA_SHARING = "data_sharing"
    RECONTACT = "recontact"
    COMMERCIAL = "commercial"

    @property
    def duo(self) -> str | None:
        return _DUO.get(self)


_DUO = {
    ConsentScope.RESEARCH_USE: "DUO:0000042",  # general research use
    ConsentScope.GENETIC_RESEARCH: "DUO:0000016",  # genetic studies only
    ConsentScope.COMMERCIAL: "DUO:0000046",  # non-commercial use only (when refused)
    ConsentScope.DATA_SHARING: "DUO:0000019",  # publication required
}


class ConsentDecision(enum.Enum):
    YES = "yes"
    NO = "no"
    NOT_SPECIFIED = "not_specified"


class CollectionProcedure(enum.Enum):
    VENIPUNCTURE = "venipuncture"
    PUNCH_BIOPSY = "punch_biopsy"
    SHAVE_BIOPSY = "shave_biopsy"
    EXCISION = "excision"
    WIDE_LOCAL_EXCISION = "wide_local_excision"
    SENTINEL_NODE_BIOPSY = "sentinel_node_biopsy"
    URINE_COLLECTION = "urine_collection"
    STOOL_COLLECTION = "stool_collection"
    SALIVA_COLLECTION = "saliva_collection"
    OTHER = "other"


class ContainerKind(enum.Enum):
    FREEZER = "freezer"
    REFRIGERATOR = "refrigerator"
    LN2_TANK = "ln2_tank"
    CABINET = "cabinet"
    SHELF = "shelf"
    RACK = "rack"
    CANISTER = "canister"
    DRAWER = "drawer"
    BOX = "box"
    BAG = "bag"


class StorageTemperature(enum.Enum):
    """MIABIS storage temperature ranges."""

    RT = "RT"
    FRIDGE = "2to10"
    MINUS_18_35 = "-18to-35"
    MINUS_60_85 = "-60to-85"
    LN = "LN"
    OTHER = "Other"


class CustodyEventType(enum.Enum):
    COLLECTED = "collected"
    RECEIVED = "received"
    PROCESSED = "processed"
    STORED = "stored"
    MOVED = "moved"
    CHECKED_OUT = "checked_out"
    CHECKED_IN = "checked_in"
    THAWED = "thawed"
    ALIQUOTED = "aliquoted"
    DERIVED = "derived"
    RESERVED = "reserved"
    SHIPPED = "shipped"
    RECEIVED_AT_DESTINATION = "received_at_destination"
    CONSUMED = "consumed"
    DISPOSED = "disposed"
    MARKED_MISSING = "marked_missing"
    QUARANTINED = "quarantined"
    #: a manager's correction of an earlier event recorded by mistake: the ledger keeps both
    CORRECTED = "corrected"


class AuditAction(enum.Enum):
    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"


#: what people read for a vocabulary's codes (MIABIS and ISBER terms); codes not listed read
#: as their words ("checked_out" → "Checked out")
DISPLAY_NAMES: dict[enum.Enum, str] = {
    MaterialType.WHOLE_BLOOD: "Whole blood",
    MaterialType.PLASMA: "Plasma",
    MaterialType.SERUM: "Serum",
    MaterialType.BUFFY_COAT: "Buffy coat",
    MaterialType.PERIPHERAL_BLOOD_CELLS: "Peripheral blood cells",
    MaterialType.TISSUE_FROZEN: "Tissue, frozen",
    MaterialType.TISSUE_PARAFFIN_EMBEDDED: "Tissue, paraffin-embedded",
    MaterialType.TISSUE_STAINED: "Tissue, stained sections or slides",
    MaterialType.FECES: "Faeces",
    MaterialType.DNA: "DNA",
    MaterialType.RNA: "RNA",
    MaterialType.CDNA: "cDNA / mRNA",
    MaterialType.MICRO_RNA: "microRNA",
    MaterialType.CELL_LINES: "Cell lines",
    StorageTemperature.RT: "Room temperature",
    StorageTemperature.FRIDGE: "2 to 10 °C",
    StorageTemperature.MINUS_18_35: "−18 to −35 °C",
    StorageTemperature.MINUS_60_85: "−60 to −85 °C",
    StorageTemperature.LN: "Liquid nitrogen",
    StorageTemperature.OTHER: "Other temperature",
    QuantityUnit.UL: "µL",
    QuantityUnit.UG: "µg",
}


def display_name(value: enum.Enum | None) -> str:
    """The name people read for a vocabulary's code: ``TISSUE_PARAFFIN_EMBEDDED`` →
    "Tissue, paraffin-embedded", ``-60to-85`` → "−60 to −85 °C"; ``None`` → "—"."""
    if value is None:
        return "—"
    return DISPLAY_NAMES.get(value) or code_text(str(value.value))


_BY_CODE = {str(member.value): name for member, name in DISPLAY_NAMES.items()}


def code_text(code: str) -> str:
    """The name people read for a vocabulary code given as text (a query field's value):
    its display name, else its words (``checked_out`` → "Checked out", ``DNA`` stays)."""
    if code in _BY_CODE:
        return _BY_CODE[code]
    words = code.replace("_", " ")
    return words if words.isupper() and len(words) <= 4 else words.capitalize()
