"""GA4GH Phenopackets v2: a case, or every case of a frozen cohort snapshot, as the network's
rare-disease and cancer pipelines read them.

``GET /api/v1/cases/<id>/phenopacket`` gives one ``Phenopacket``: the subject by their
pseudonymous code (sex and taxonomy; never a name nor a date of birth), the diagnosis coded
in ICD-10 with its AJCC 8 pathologic stage (NCIt) and primary site (UBERON), ulceration as a
phenotypic feature (HPO), Breslow thickness as a measurement (LOINC), the case's specimens as
biosamples (SNOMED CT sample type by SPREC, sampled tissue, lineage, collection procedure,
tumour progression) with the omics files read from each, and the case's images; every file
as a DRS URI. Times are ages in whole years (the year of the event minus the year of birth,
the only part of the birth date the biobank keeps), never dates.

``GET /api/v1/cohorts/<id>/phenopackets`` gives a snapshot's cases as one ``Cohort``, to
whoever may export the snapshot's manifest (biobank managers of its sites, a researcher
whose approved request names it), with the manifest's consent rules: a case whose patient
no longer consents to research use is left out, and genetic files of a patient who does not
consent to genetic research (counted in ``X-Excluded-By-Consent``).

Who sees what otherwise follows the API: a case of the caller's sites; files and images as
DRS serves them (``omics.access``). For researchers the consent rules above apply to the
single case too.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from flask import jsonify, request
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import fields

from biobank.auth import ALL_ROLES, current_actor, roles_required
from biobank.db import db, utcnow
from biobank.errors import NotFound
from biobank.models import (
    Case,
    CohortSnapshotMember,
    CohortSnapshotObject,
    CollectionEvent,
    Image,
    Lesion,
    Specimen,
)
from biobank.models.users import Actor
from biobank.models.vocab import (
    BodySite,
    CollectionProcedure,
    ConsentScope,
    Laterality,
    Lineage,
    MaterialType,
    PathologyStatus,
    Role,
    Sex,
)
from biobank.schemas.base import BaseSchema
from biobank.services import cohorts
from biobank.services.cases import AJCC8, ICD10_TITLES, ICDO3_MORPHOLOGY_TERMS
from biobank.services.common import get_visible
from biobank.services.consents import granted_scopes_by_participant
from biobank.services.images import image_clause
from biobank.services.participants import age_at
from biobank.sprec import snomed_sample_type
from biobank.version import __version__
from omics.access import file_clause
from omics.models import OmicsFile, OmicsFileSample

blp = Blueprint(
    "phenopackets", __name__, description="GA4GH Phenopackets v2 of a case and of a cohort snapshot"
)
SCHEMA_VERSION = "2.0"
Term = dict[str, str]


def term(curie: str, label: str) -> Term:
    return {"id": curie, "label": label}


HUMAN = term("NCBITaxon:9606", "Homo sapiens")
SEX = {Sex.FEMALE: "FEMALE", Sex.MALE: "MALE", Sex.OTHER: "OTHER_SEX", Sex.UNKNOWN: "UNKNOWN_SEX"}
#: anatomical sites (ISIC's general sites) in UBERON; oral/genital has no one term
BODY_SITES = {
    BodySite.HEAD_NECK: term("UBERON:0007811", "craniocervical region"),
    BodySite.SCALP: term("UBERON:0000403", "scalp"),
    BodySite.FACE: term("UBERON:0001456", "face"),
    BodySite.ANTERIOR_TORSO: term("UBERON:0002100", "trunk"),
    BodySite.POSTERIOR_TORSO: term("UBERON:0002100", "trunk"),
    BodySite.LATERAL_TORSO: term("UBERON:0002100", "trunk"),
    BodySite.UPPER_EXTREMITY: term("UBERON:0002102", "forelimb"),
    BodySite.LOWER_EXTREMITY: term("UBERON:0002103", "hindlimb"),
    BodySite.PALMS_SOLES: term("UBERON:0002470", "autopod region"),
    BodySite.NAIL: term("UBERON:0001705", "nail"),
    BodySite.PERIPHERAL_BLOOD: term("UBERON:0000178", "blood"),
}
LATERALITY = {
    Laterality.LEFT: term("HP:0012835", "Left"),
    Laterality.RIGHT: term("HP:0012834", "Right"),
    Laterality.BILATERAL: term("HP:0012832", "Bilateral"),
}
SKIN = term("UBERON:0002097", "skin of body")
#: the tissue a material is taken from
SAMPLED_TISSUE = {
    "blood": term("UBERON:0000178", "blood"),
    "urine": term("UBERON:0001088", "urine"),
    "stool": term("UBERON:0001988", "feces"),
    "tissue": SKIN,
}
SALIVA = term("UBERON:0001836", "saliva")
#: a biosample's nature (EFO), as Beacon gives it too
MATERIAL_SAMPLE = {
    PathologyStatus.MALIGNANT: term("EFO:0009656", "neoplastic sample"),
    PathologyStatus.METASTATIC: term("EFO:0009656", "neoplastic sample"),
    PathologyStatus.NON_MALIGNANT: term("EFO:0009655", "abnormal sample"),
    PathologyStatus.NORMAL: term("EFO:0009654", "reference sample"),
}
TUMOR_PROGRESSION = {
    PathologyStatus.MALIGNANT: term("NCIT:C8509", "Primary Neoplasm"),
    PathologyStatus.METASTATIC: term("NCIT:C3261", "Metastatic Neoplasm"),
}
BIOPSY = term("NCIT:C15189", "Biopsy")
PROCEDURES = {
    CollectionProcedure.VENIPUNCTURE: term("NCIT:C28221", "Phlebotomy"),
    CollectionProcedure.PUNCH_BIOPSY: term("NCIT:C28743", "Punch Biopsy"),
    CollectionProcedure.SHAVE_BIOPSY: BIOPSY,
    CollectionProcedure.SENTINEL_NODE_BIOPSY: BIOPSY,
    CollectionProcedure.EXCISION: term("NCIT:C15329", "Surgical Procedure"),
    CollectionProcedure.WIDE_LOCAL_EXCISION: term("NCIT:C15329", "Surgical Procedure"),
}
SKIN_ULCER = term("HP:0200042", "Skin ulcer")
BRESLOW = term("LOINC:44661-7", "Tumor invasion depth in skin melanoma (Breslow thickness)")
MILLIMETRE = term("UO:0000016", "millimeter")
GENETIC_KINDS = cohorts.GENETIC_KINDS
RESOURCES = {
    "ICD10": (
        "icd10",
        "International Classification of Diseases, 10th revision",
        "2019",
        "https://icd.who.int/browse10/2019/en",
        "https://icd.who.int/browse10/2019/en#/",
    ),
    "NCIT": (
        "ncit",
        "NCI Thesaurus",
        "24.01d",
        "http://purl.obolibrary.org/obo/ncit.owl",
        "http://purl.obolibrary.org/obo/NCIT_",
    ),
    "UBERON": (
        "uberon",
        "Uber-anatomy ontology",
        "2024-01-18",
        "http://purl.obolibrary.org/obo/uberon.owl",
        "http://purl.obolibrary.org/obo/UBERON_",
    ),
    "HP": (
        "hp",
        "Human Phenotype Ontology",
        "2024-04-26",
        "http://purl.obolibrary.org/obo/hp.owl",
        "http://purl.obolibrary.org/obo/HP_",
    ),
    "NCBITaxon": (
        "ncbitaxon",
        "NCBI organismal classification",
        "2024-01-09",
        "http://purl.obolibrary.org/obo/ncbitaxon.owl",
        "http://purl.obolibrary.org/obo/NCBITaxon_",
    ),
    "SNOMED": ("snomedct", "SNOMED CT", "2024-03", "http://snomed.info/sct", "http://snomed.info/id/"),
    "EFO": (
        "efo",
        "Experimental Factor Ontology",
        "3.62.0",
        "http://www.ebi.ac.uk/efo/efo.owl",
        "http://www.ebi.ac.uk/efo/EFO_",
    ),
    "LOINC": (
        "loinc",
        "Logical Observation Identifiers Names and Codes",
        "2.77",
        "https://loinc.org",
        "https://loinc.org/",
    ),
    "ICDO": (
        "icdo",
        "International Classification of Diseases for Oncology",
        "3.2",
        "https://www.who.int/standards/classifications/other-classifications/"
        "international-classification-of-diseases-for-oncology",
        "ICDO:",
    ),
    "UO": (
        "uo",
        "Units of measurement ontology",
        "2023-05-25",
        "http://purl.obolibrary.org/obo/uo.owl",
        "http://purl.obolibrary.org/obo/UO_",
    ),
}


# --- building ------------------------------------------------------------------------------


def _age(birth_year: int | None, when: dt.date | dt.datetime | None) -> dict[str, Any] | None:
    """An age in whole years as a TimeElement (ISO 8601 duration), or nothing."""
    years = age_at(birth_year, when)
    return None if years is None else {"age": {"iso8601duration": f"P{years}Y"}}


def _icd10(code: str) -> Term:
    title = ICD10_TITLES.get(code[:3], "ICD-10 " + code[:3])
    return term(f"ICD10:{code}", title if len(code) == 3 else f"{title} ({code})")


def _sample_type(material: MaterialType) -> Term:
    code, display = snomed_sample_type(material.value)
    return term(f"SNOMED:{code}", display)


def _tissue(specimen: Specimen, lesion: Lesion | None, facts: _Facts) -> Term:
    """What the sample was taken from: its material's tissue, or for an extract (DNA, RNA,
    cells) that of the tube it was made from."""
    source = specimen
    while source.parent_id in facts.by_id and source.material_type.category not in SAMPLED_TISSUE:
        source = facts.by_id[source.parent_id]  # type: ignore[index]
    if source.material_type is MaterialType.SALIVA:
        return SALIVA
    if source.material_type.category in SAMPLED_TISSUE:
        return SAMPLED_TISSUE[source.material_type.category]
    if lesion is not None:
        return SKIN
    return BODY_SITES.get(specimen.anatomical_site, ANY_TISSUE)  # type: ignore[arg-type]


ANY_TISSUE = term("UBERON:0000479", "tissue")


def _file(
    uri_host: str, sha256: str, participant: str, sample: str | None, attributes: dict[str, str]
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "uri": f"drs://{uri_host}/{sha256}",
        "fileAttributes": {k: v for k, v in attributes.items() if v},
    }
    if sample:
        entry["individualToFileIdentifiers"] = {participant: sample}
    return entry


class _Facts:
    """What the phenopackets of some cases draw on, read in a few queries for all of them."""

    def __init__(
        self, cases: list[Case], actor: Actor, *, objects: set[tuple[str, int]] | None, consent: bool
    ) -> None:
        case_ids = [c.id for c in cases]
        self.lesions: dict[int, list[Lesion]] = defaultdict(list)
        for lesion in db.session.scalars(
            sa.select(Lesion).where(Lesion.case_id.in_(case_ids)).order_by(Lesion.id)
        ):
            self.lesions[lesion.case_id].append(lesion)
        self.specimens: dict[int, list[Specimen]] = defaultdict(list)
        for specimen in db.session.scalars(
            sa.select(Specimen).where(Specimen.case_id.in_(case_ids)).order_by(Specimen.id)
        ):
            self.specimens[specimen.case_id].append(specimen)  # type: ignore[index]
        self.by_id = {s.id: s for rows in self.specimens.values() for s in rows}
        self.barcodes = {ident: s.barcode for ident, s in self.by_id.items()}
        missing_parents = {
            s.parent_id
            for rows in self.specimens.values()
            for s in rows
            if s.parent_id and s.parent_id not in self.barcodes
        }
        if missing_parents:
            self.barcodes.update(
                dict(
                    db.session.execute(
                        sa.select(Specimen.id, Specimen.barcode).where(Specimen.id.in_(missing_parents))
                    ).all()
                )
            )
        visit_ids = {
            s.collection_event_id for rows in self.specimens.values() for s in rows if s.collection_event_id
        }
        self.visits = {
            v.id: v
            for v in db.session.scalars(sa.select(CollectionEvent).where(CollectionEvent.id.in_(visit_ids)))
        }
        self.files: dict[int, list[tuple[OmicsFile, str]]] = defaultdict(list)
        linked = sa.select(OmicsFileSample.file_id).where(
            OmicsFileSample.specimen_id.in_(list(self.barcodes))
        )
        readable = list(
            db.session.scalars(sa.select(OmicsFile.id).where(OmicsFile.id.in_(linked), file_clause(actor)))
        )
        rows = db.session.execute(
            sa.select(OmicsFileSample.id, OmicsFileSample.specimen_id, OmicsFileSample.sample_name, OmicsFile)
            .join(OmicsFile, OmicsFile.id == OmicsFileSample.file_id)
            .where(OmicsFileSample.specimen_id.in_(list(self.barcodes)), OmicsFile.id.in_(readable))
            .order_by(OmicsFile.id, OmicsFileSample.id)
        )
        for sample_id, specimen_id, sample_name, record in rows:
            # a snapshot's omics objects are the files' sample columns
            if objects is None or ("omics", sample_id) in objects:
                self.files[specimen_id].append((record, sample_name))
        self.images: dict[int, list[Image]] = defaultdict(list)
        for image in db.session.scalars(
            sa.select(Image).where(Image.case_id.in_(case_ids), image_clause(actor)).order_by(Image.id)
        ):
            if objects is None or ("image", image.id) in objects:
                self.images[image.case_id].append(image)
        self.consent = consent
        self.scopes = granted_scopes_by_participant({c.participant_id for c in cases}) if consent else {}

    def may_share(self, case: Case) -> bool:
        return not self.consent or ConsentScope.RESEARCH_USE in self.scopes.get(case.participant_id, set())

    def genetic_ok(self, case: Case) -> bool:
        return not self.consent or ConsentScope.GENETIC_RESEARCH in self.scopes.get(
            case.participant_id, set()
        )


def _disease(case: Case, lesions: list[Lesion], birth_year: int | None) -> dict[str, Any]:
    disease: dict[str, Any] = {"term": _icd10(case.icd10_code)}
    onset = _age(birth_year, case.diagnosis_date)
    if onset:
        disease["onset"] = onset
    if case.ajcc_stage is not None:
        stage = case.ajcc_stage.value
        disease["diseaseStage"] = [
            term(f"NCIT:{AJCC8[case.ajcc_stage]}", f"Pathologic Stage {stage} Cutaneous Melanoma AJCC v8")
        ]
    if lesions and lesions[0].body_site in BODY_SITES:
        disease["primarySite"] = BODY_SITES[lesions[0].body_site]
        if lesions[0].laterality in LATERALITY:
            disease["laterality"] = LATERALITY[lesions[0].laterality]
    return disease


def _biosample(specimen: Specimen, case: Case, facts: _Facts, host: str) -> dict[str, Any]:
    participant = case.participant
    lesion = next((le for le in facts.lesions[case.id] if le.id == specimen.lesion_id), None)
    visit = facts.visits.get(specimen.collection_event_id or -1)
    sample: dict[str, Any] = {
        "id": specimen.barcode,
        "individualId": participant.code,
        "description": f"{specimen.material_type.value.replace('_', ' ').lower()}, "
        f"{specimen.lineage.value}" + (f", lesion {lesion.code}" if lesion is not None else ""),
        "sampledTissue": _tissue(specimen, lesion, facts),
        "sampleType": _sample_type(specimen.material_type),
        "taxonomy": HUMAN,
    }
    if specimen.parent_id is not None:
        sample["derivedFromId"] = facts.barcodes[specimen.parent_id]
    collected = _age(participant.birth_year, visit.collected_at if visit else None)
    if collected:
        sample["timeOfCollection"] = collected
    if specimen.pathology_status in TUMOR_PROGRESSION:
        sample["tumorProgression"] = TUMOR_PROGRESSION[specimen.pathology_status]
        if case.icdo3_morphology:
            sample["histologicalDiagnosis"] = term(
                f"ICDO:{case.icdo3_morphology}",
                ICDO3_MORPHOLOGY_TERMS.get(
                    case.icdo3_morphology, f"ICD-O-3 morphology {case.icdo3_morphology}"
                ),
            )
    if specimen.pathology_status in MATERIAL_SAMPLE:
        sample["materialSample"] = MATERIAL_SAMPLE[specimen.pathology_status]
    if specimen.lineage is Lineage.PRIMARY and visit and visit.procedure in PROCEDURES:
        procedure: dict[str, Any] = {"code": PROCEDURES[visit.procedure]}
        site = specimen.anatomical_site or (lesion.body_site if lesion is not None else None)
        if site in BODY_SITES:
            procedure["bodySite"] = BODY_SITES[site]  # type: ignore[index]
        if collected:
            procedure["performed"] = collected
        sample["procedure"] = procedure
    files = [
        _file(
            host,
            record.sha256,
            participant.code,
            name,
            {
                "fileFormat": record.format,
                "genomeAssembly": record.reference_genome or "",
                "description": record.kind.value,
            },
        )
        for record, name in facts.files.get(specimen.id, [])
        if facts.genetic_ok(case) or record.kind.value not in GENETIC_KINDS
    ]
    files += [
        _image_file(image, participant.code, host)
        for image in facts.images[case.id]
        if image.specimen_id == specimen.id
    ]
    if files:
        sample["files"] = files
    return sample


def _image_file(image: Image, participant: str, host: str) -> dict[str, Any]:
    return _file(
        host,
        image.sha256,
        participant,
        None,
        {"fileFormat": image.mime_type, "description": f"{image.modality.value} image"},
    )


def _used_prefixes(document: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(document, dict):
        if set(document) == {"id", "label"} and ":" in str(document["id"]):
            found.add(str(document["id"]).split(":", 1)[0])
        for value in document.values():
            found |= _used_prefixes(value)
    elif isinstance(document, list):
        for value in document:
            found |= _used_prefixes(value)
    return found


def meta_data(document: Any, actor: Actor) -> dict[str, Any]:
    """Phenopackets metaData: who made it and when, and a resource for every prefix used."""
    resources = []
    for prefix in sorted(_used_prefixes(document)):
        ident, name, version, url, iri = RESOURCES[prefix]
        resources.append(
            {
                "id": ident,
                "name": name,
                "namespacePrefix": prefix,
                "url": url,
                "version": version,
                "iriPrefix": iri,
            }
        )
    return {
        "created": utcnow().isoformat().replace("+00:00", "Z"),
        "createdBy": f"biobank {__version__}",
        "submittedBy": actor.username,
        "resources": resources,
        "phenopacketSchemaVersion": SCHEMA_VERSION,
    }


def phenopacket(case: Case, facts: _Facts, host: str) -> dict[str, Any]:
    """One case as a Phenopacket (without metaData: see :func:`meta_data`)."""
    participant = case.participant
    specimens = facts.specimens[case.id]
    visits = [facts.visits[s.collection_event_id] for s in specimens if s.collection_event_id in facts.visits]
    last = max(
        [v.collected_at for v in visits] + ([case.diagnosis_date] if case.diagnosis_date else []),
        key=lambda d: d.year,
        default=None,
    )
    subject: dict[str, Any] = {"id": participant.code, "sex": SEX[participant.sex], "taxonomy": HUMAN}
    encounter = _age(participant.birth_year, last)
    if encounter:
        subject["timeAtLastEncounter"] = encounter
    packet: dict[str, Any] = {
        "id": case.code,
        "subject": subject,
        "diseases": [_disease(case, facts.lesions[case.id], participant.birth_year)],
    }
    if case.ulceration is not None:
        packet["phenotypicFeatures"] = [{"type": SKIN_ULCER, "excluded": not case.ulceration}]
    if case.breslow_mm is not None:
        packet["measurements"] = [
            {"assay": BRESLOW, "value": {"quantity": {"unit": MILLIMETRE, "value": float(case.breslow_mm)}}}
        ]
    if specimens:
        packet["biosamples"] = [_biosample(s, case, facts, host) for s in specimens]
    loose = [
        _image_file(image, participant.code, host)
        for image in facts.images[case.id]
        if image.specimen_id is None
    ]
    if loose:
        packet["files"] = loose
    return packet


def case_phenopacket(case: Case, actor: Actor, host: str) -> dict[str, Any]:
    researcher = actor.role is Role.RESEARCHER
    facts = _Facts([case], actor, objects=None, consent=researcher)
    if not facts.may_share(case):
        raise NotFound(f"no case with id {case.id}")
    packet = phenopacket(case, facts, host)
    packet["metaData"] = meta_data(packet, actor)
    return packet


def _snapshot_cases(snapshot: Any) -> list[Case]:
    members = sa.select(CohortSnapshotMember.entity_id).where(CohortSnapshotMember.snapshot_id == snapshot.id)
    match = {
        "participants": Case.participant_id.in_(members),
        "cases": Case.id.in_(members),
        "lesions": Case.id.in_(sa.select(Lesion.case_id).where(Lesion.id.in_(members))),
    }.get(snapshot.level, Case.id.in_(sa.select(Specimen.case_id).where(Specimen.id.in_(members))))
    return list(db.session.scalars(sa.select(Case).where(match).order_by(Case.code)))


def cohort_phenopackets(cohort: Any, snapshot: Any, actor: Actor, host: str) -> tuple[dict[str, Any], int]:
    """A snapshot's cases as a Phenopackets Cohort, and how many were left out for consent."""
    cohorts.check_may_export(snapshot, actor)
    objects = {
        (kind, ident)
        for kind, ident in db.session.execute(
            sa.select(CohortSnapshotObject.kind, CohortSnapshotObject.object_id).where(
                CohortSnapshotObject.snapshot_id == snapshot.id
            )
        )
    }
    cases = _snapshot_cases(snapshot)
    members, left_out = [], 0
    for chunk in _chunks(cases, 500):
        facts = _Facts(chunk, actor, objects=objects, consent=True)
        for case in chunk:
            if facts.may_share(case):
                members.append(phenopacket(case, facts, host))
            else:
                left_out += 1
    document: dict[str, Any] = {
        "id": f"cohort-{cohort.id}-snapshot-{snapshot.id}",
        "description": f"{cohort.name}: snapshot {snapshot.id} of {snapshot.level} "
        f"({snapshot.data_release}), {len(members)} case(s)",
        "members": members,
    }
    document["metaData"] = meta_data(document, actor)
    return document, left_out


def _chunks(items: list[Case], size: int) -> Iterable[list[Case]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- endpoints -----------------------------------------------------------------------------


class CohortArgsSchema(BaseSchema):
    snapshot = fields.Integer(metadata={"description": "A snapshot of the cohort (its latest if not given)"})


PHENOPACKET = {"type": "object", "description": "A GA4GH Phenopacket v2 (JSON)"}
COHORT = {"type": "object", "description": "A GA4GH Phenopackets v2 Cohort (JSON)"}


@blp.route("/cases/<int:case_id>/phenopacket")
class CasePhenopacketView(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.response(200, PHENOPACKET)
    def get(self, case_id: int) -> Any:
        """The case as a GA4GH Phenopacket v2

        Subject by pseudonymous code, diagnosis (ICD-10, AJCC 8 stage, primary site),
        ulceration, Breslow thickness, the case's specimens as biosamples with their omics
        files and images as DRS URIs; times as ages, never dates.
        """
        actor = current_actor()
        case = get_visible(Case, case_id, actor)
        return jsonify(case_phenopacket(case, actor, request.host))


@blp.route("/cohorts/<int:cohort_id>/phenopackets")
class CohortPhenopacketsView(MethodView):
    @roles_required(*ALL_ROLES)
    @blp.arguments(CohortArgsSchema, location="query")
    @blp.response(
        200,
        COHORT,
        headers={
            "X-Excluded-By-Consent": {
                "description": "Cases left out because their patient no longer consents to research use",
                "schema": {"type": "integer"},
            }
        },
    )
    def get(self, args: dict[str, Any], cohort_id: int) -> Any:
        """A frozen snapshot's cases as a GA4GH Phenopackets v2 Cohort

        To whoever may export the snapshot's manifest; its consent rules apply.
        """
        actor = current_actor()
        cohort = cohorts.get_cohort(cohort_id, actor)
        snapshot = cohorts.snapshot_of(cohort, args.get("snapshot"), actor)
        document, left_out = cohort_phenopackets(cohort, snapshot, actor, request.host)
        response = jsonify(document)
        response.headers["X-Excluded-By-Consent"] = str(left_out)
        return response
