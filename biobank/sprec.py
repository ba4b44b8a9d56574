"""SPREC (ISBER Standard PREanalytical Code) v3: validating codes and deriving them from
recorded history (pure: no Flask, no database)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

#: SPREC type-of-sample codes for fluid and solid specimens (ISBER SPREC 2.0/3.0 tables)
FLUID_TYPES = frozenset(
    "ASC AMN BAL BLD BMA BMK BUC BUF BFF CEL CEN CLN CRD CSF CTC DWB NAS PEL PEN PFL PL1 PL2 "
    "PLP RBC SAL SEM SER SPT STL SYN TER U24 URN URM URT ZZZ".split()
)
SOLID_TYPES = frozenset("BON CEN FNA HAR LCM NAL PLC TCM TIS TTH ZZZ".split())
_ELEMENT = re.compile(r"^[A-Z0-9]{1,3}$")


def validate_sprec(code: str) -> str | None:
    """Return an error message for an invalid SPREC code, or ``None`` when it is well formed.

    Examples
    --------
    >>> validate_sprec("SER-SST-A-D-N-A-E") is None
    True
    >>> validate_sprec("XYZ-SST-A-D-N-A-E")
    "unknown SPREC sample type 'XYZ'"
    """
    parts = code.split("-")
    if len(parts) != 7:
        return f"a SPREC code has 7 elements separated by '-', got {len(parts)}"
    for i, part in enumerate(parts, start=1):
        if not _ELEMENT.match(part):
            return f"SPREC element {i} ({part!r}) must be 1–3 capital letters or digits"
    if parts[0] not in FLUID_TYPES | SOLID_TYPES:
        return f"unknown SPREC sample type {parts[0]!r}"
    return None


# -- deriving a code from what was recorded -----------------------------------------------------

FLUID_ELEMENTS = (
    "type of sample",
    "type of primary container",
    "pre-centrifugation delay",
    "centrifugation",
    "second centrifugation",
    "post-centrifugation delay",
    "long-term storage",
)
SOLID_ELEMENTS = (
    "type of sample",
    "type of collection",
    "warm ischemia time",
    "cold ischemia time",
    "fixation type",
    "fixation time",
    "long-term storage",
)

#: material (MIABIS) → SPREC sample type; DNA, RNA and other extracts are not coded by SPREC's
#: fluid and solid tables
_TYPES = {
    "WHOLE_BLOOD": "BLD",
    "SERUM": "SER",
    "PLASMA": "PL1",
    "BUFFY_COAT": "BUF",
    "PERIPHERAL_BLOOD_CELLS": "CEL",
    "URINE": "URN",
    "FECES": "STL",
    "SALIVA": "SAL",
    "TISSUE_FROZEN": "TIS",
    "TISSUE_PARAFFIN_EMBEDDED": "TIS",
    "TISSUE_STAINED": "TIS",
}
#: SNOMED CT sample types (code, display) by SPREC sample type, as the MII biobank module's
#: published ConceptMap (SPREC → SNOMED CT) gives them, and for what SPREC's fluid table
#: does not code: tissue and extracts
SNOMED_SAMPLE_TYPES = {
    "BLD": ("258580003", "Whole blood specimen"),
    "SER": ("119364003", "Serum specimen"),
    "PL1": ("119361006", "Plasma specimen"),
    "BUF": ("258587000", "Buffy coat"),
    "CEL": ("404798000", "Peripheral blood mononuclear cell"),
    "URN": ("278020009", "Spot urine sample"),
    "STL": ("119339001", "Stool specimen"),
    "SAL": ("119342007", "Saliva specimen"),
    "TIS": ("119376003", "Tissue specimen"),
    "DNA": ("258566005", "Deoxyribonucleic acid sample"),
    "RNA": ("441673008", "Ribonucleic acid sample"),
}
SNOMED_ANY_SPECIMEN = ("123038009", "Specimen")


def snomed_sample_type(material: str) -> tuple[str, str]:
    """The SNOMED CT sample type (code, display) of a MIABIS material."""
    return SNOMED_SAMPLE_TYPES.get(_TYPES.get(material, material), SNOMED_ANY_SPECIMEN)


_CENTRIFUGED = {"PL1", "PL2", "SER", "BUF", "CEL"}
_SOLID_COLLECTION = {"excision": "SRG", "wide_local_excision": "SRG", "sentinel_node_biopsy": "SRG"}
#: pre-centrifugation delay: (upper bound in hours, code at room temperature, code at 2–10 °C)
_DELAYS = (
    (2, "A", "B"),
    (4, "C", "D"),
    (8, "E", "F"),
    (12, "G", "H"),
    (24, "I", "J"),
    (48, "K", "L"),
    (float("inf"), "M", "N"),
)
#: cold ischemia: (upper bound in minutes, code)
_COLD_ISCHEMIA = ((2, "A"), (10, "B"), (20, "C"), (30, "D"), (60, "E"), (float("inf"), "F"))
_FIXATIVES = (
    ("neutral buffered", "NBF"),
    ("nbf", "NBF"),
    ("formalin", "FOR"),
    ("oct", "OCT"),
    ("ethanol", "ETH"),
    ("alcohol", "ETH"),
    ("aldehyde", "ALD"),
)


@dataclass(frozen=True)
class ProcessingStep:
    """One step from a parent to the next specimen: what it made, when, how, how warm."""

    material: str
    started_at: dt.datetime | None = None
    method: str | None = None
    temperature: str | None = None


@dataclass(frozen=True)
class SprecElement:
    name: str
    computed: str
    basis: str  # what the code was derived from, or why it is unknown
    recorded: str | None = None

    @property
    def differs(self) -> bool:
        """The stored code says something else than the records; an element unknown on
        either side (``X``) contradicts nothing."""
        return (
            self.recorded is not None
            and self.computed.strip("X") != ""
            and self.recorded.strip("X") != ""
            and self.recorded != self.computed
        )


def _temperature_class(text: str | None) -> str | None:
    if not text:
        return None
    low = text.lower().replace(" ", "")
    if any(k in low for k in ("rt", "room", "ambient", "18-25", "20°c", "22°c", "25°c")):
        return "rt"
    if any(k in low for k in ("2-10", "4°c", "4c", "ice", "fridge", "refrigerat", "cold")):
        return "cold"
    return None


def derive_sprec(
    *,
    material: str,
    collected_at: dt.datetime | None,
    procedure: str | None,
    steps: list[ProcessingStep],
    frozen_at: dt.datetime | None,
    recorded: str | None = None,
) -> list[SprecElement] | None:
    """The seven SPREC elements of a specimen, from its recorded history.

    *steps* lead from the primary specimen to this one (an aliquot is a step that keeps the
    material). An element the records do not determine is ``X`` (``XXX`` for three-letter
    elements), as SPREC codes unknown values; each element says what it was derived from.
    Returns ``None`` for materials SPREC's fluid and solid tables do not cover (DNA, RNA…).
    """
    code = _TYPES.get(material)
    if code is None:
        return None
    separations = [s for s in steps if _TYPES.get(s.material) in _CENTRIFUGED]
    if code == "PL1" and any(
        "double" in (s.method or "").lower() or "2x" in (s.method or "") for s in separations
    ):
        code = "PL2"
    given = recorded.split("-") if recorded and len(recorded.split("-")) == 7 else [None] * 7
    solid = code == "TIS"
    names = SOLID_ELEMENTS if solid else FLUID_ELEMENTS
    values: list[tuple[str, str]] = [(code, f"material {material}")]
    if solid:
        values.append(
            (
                _SOLID_COLLECTION.get(procedure or "", "XXX"),
                f"procedure {procedure}"
                if procedure in _SOLID_COLLECTION
                else "collection procedure not coded",
            )
        )
        values.append(("X", "warm ischemia is not recorded"))
        fixed = next((s.started_at for s in steps if s.started_at), None) or frozen_at
        if collected_at and fixed and fixed >= collected_at:
            minutes = (fixed - collected_at).total_seconds() / 60
            cold = next(c for bound, c in _COLD_ISCHEMIA if minutes < bound)
            values.append(
                (
                    cold,
                    f"{minutes:.0f} min from collection to "
                    f"{'freezing' if fixed is frozen_at else 'fixation'}",
                )
            )
        else:
            values.append(("X", "collection or freezing/fixation time not recorded"))
        if material == "TISSUE_FROZEN":
            values.append(("SNP", "frozen tissue (snap freezing)"))
        else:
            method = " ".join(s.method or "" for s in steps).lower()
            fixative = next((c for key, c in _FIXATIVES if key in method), "XXX")
            values.append((fixative, f"method {method!r}" if fixative != "XXX" else "fixative not recorded"))
        values.append(("X", "fixation time is not recorded"))
    else:
        if given[1] in PRIMARY_CONTAINERS and given[1] != "XXX":
            values.append((given[1], f"{PRIMARY_CONTAINERS[given[1]]} tube, recorded at collection"))
        else:
            values.append(("XXX", "primary tube type is not recorded"))
        if code in _CENTRIFUGED:
            first = separations[0] if separations else None
            temperature = _temperature_class(first.temperature if first else None)
            if collected_at and first and first.started_at and temperature:
                hours = (first.started_at - collected_at).total_seconds() / 3600
                delay = next(
                    rt if temperature == "rt" else cold for bound, rt, cold in _DELAYS if hours < bound
                )
                values.append(
                    (delay, f"{hours:.1f} h at {first.temperature} from collection to centrifugation")
                )
            else:
                values.append(("X", "collection time, centrifugation start or its temperature not recorded"))
            values.append(("X", "centrifugation settings are not coded"))
            values.append(
                (
                    "N" if code in ("PL1", "SER", "BUF", "CEL") else "X",
                    "single spin" if code != "PL2" else "second spin not coded",
                )
            )
            values.append(("X", "post-centrifugation delay is not recorded"))
        else:
            values.append(("X", "time from collection to processing is not recorded"))
            values.append(("N", "not centrifuged"))
            values.append(("N", "not centrifuged"))
            values.append(("X", "time to freezing is not recorded"))
    values.append(("X", "storage container and temperature are not coded"))
    return [
        SprecElement(name, value, basis, given[i])
        for i, (name, (value, basis)) in enumerate(zip(names, values, strict=True))
    ]


#: SPREC 4.0 primary containers a skin biobank's collection uses, with their names as the
#: published SPREC ConceptMap gives them (``XXX``: not known)
PRIMARY_CONTAINERS = {
    "PED": "Potassium EDTA",
    "SED": "Sodium EDTA",
    "SCI": "Sodium citrate",
    "HEP": "Lithium heparin",
    "LHG": "Lithium heparin and gel",
    "SHP": "Sodium heparin",
    "SST": "Serum separator tube with clot activator",
    "CAT": "Serum separator tube without clot activator",
    "ACD": "Acid citrate dextrose",
    "PAX": "PAXgene blood RNA",
    "TEM": "Tempus tube",
    "PPS": "Polypropylene tube sterile",
    "PET": "Polyethylene tube sterile",
    "ORG": "Oragene collection container or equivalent",
    "OMN": "Stool collection container with DNA stabilizer",
    "XXX": "Not known",
}


def initial_code(*, material: str, container: str | None, procedure: str | None) -> str | None:
    """The SPREC code of a primary specimen as far as its collection tells it: the sample
    type, and the primary container (fluids) or the type of collection (tissue); the
    elements later steps determine are ``X``. ``None`` for materials SPREC does not code."""
    code = _TYPES.get(material)
    if code is None:
        return None
    if code == "TIS":
        return f"TIS-{_SOLID_COLLECTION.get(procedure or '', 'XXX')}-X-X-X-X-X"
    tube = container if container in PRIMARY_CONTAINERS else "XXX"
    return f"{code}-{tube}-X-X-X-X-X"


def sprec_text(elements: list[SprecElement]) -> str:
    return "-".join(e.computed for e in elements)
