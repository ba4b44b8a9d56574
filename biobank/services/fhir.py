"""HL7 FHIR R4 (4.0.1) views of specimens and participants, and their search.

A ``Specimen`` carries its barcode as identifier and accession identifier, its lifecycle as
FHIR status, its material as a SNOMED CT type (by its SPREC sample type, as the published
SPREC → SNOMED CT map gives it), its participant, its parent for aliquots and derivatives,
its collection (time, procedure, body site, first quantity), its processing (the SPREC code,
processing and freezing times) and its container (box, position, quantity left, storage
temperature). A ``Patient`` is pseudonymous: the participant code as identifier and the sex;
the identifying record (name, birth date, medical record number) only for those who may see
it, as in the rest of the API.

Every read is scoped as the API's are: a participant or specimen of another site is not
found. Search parameters are checked strictly: one the server does not support is refused
with an ``OperationOutcome`` that names it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import orm

from biobank.barcodes import LABEL_BARCODE
from biobank.db import db
from biobank.errors import BiobankError, InvalidInput
from biobank.models import (
    Case,
    Cohort,
    CohortSnapshot,
    CohortSnapshotMember,
    CollectionEvent,
    ConsentResponse,
    CustodyEvent,
    Image,
    Lesion,
    Participant,
    ParticipantPHI,
    Site,
    Specimen,
    StorageContainer,
    Study,
)
from biobank.models.users import Actor
from biobank.models.vocab import (
    CollectionProcedure,
    ConsentDecision,
    CustodyEventType,
    Laterality,
    Lineage,
    MaterialType,
    QuantityUnit,
    Sex,
    SpecimenStatus,
)
from biobank.services.barcodes import named_by
from biobank.services.cases import (
    AJCC8,
    ICD10_TITLES,
    ICDO3_MORPHOLOGY_TERMS,
    ICDO3_TOPOGRAPHY_TERMS,
)
from biobank.services.cohorts import get_snapshot, list_cohorts
from biobank.services.collection_events import record_collection
from biobank.services.common import get_visible, visible
from biobank.services.images import get_image, image_clause
from biobank.services.participants import register_participant
from biobank.services.query import counts_only
from biobank.services.specimens import register_specimen
from biobank.sprec import SNOMED_ANY_SPECIMEN, snomed_sample_type
from biobank.units import format_number
from biobank.version import __version__

FHIR_VERSION = "4.0.1"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
#: identifier systems of this biobank's own identifiers
BARCODE_SYSTEM = "urn:biobank-lims:specimen-barcode"
PARTICIPANT_SYSTEM = "urn:biobank-lims:participant-code"
MRN_SYSTEM = "urn:biobank-lims:medical-record-number"
CASE_SYSTEM = "urn:biobank-lims:case-code"
LESION_SYSTEM = "urn:biobank-lims:lesion-code"
ICD10_SYSTEM = "http://hl7.org/fhir/sid/icd-10"
NCIT_SYSTEM = "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl"
CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/condition-category"
CONSENT_SCOPE_SYSTEM = "urn:biobank-lims:consent-scope"
DUO_SYSTEM = "http://purl.obolibrary.org/obo/duo"
SNAPSHOT_SYSTEM = "urn:biobank-lims:cohort-snapshot"
ICDO3_SYSTEM = "http://terminology.hl7.org/CodeSystem/icd-o-3"
MATERIAL_SYSTEM = "https://directory.bbmri-eric.eu/api/fdp/MaterialType"
GENDER = {Sex.FEMALE: "female", Sex.MALE: "male", Sex.OTHER: "other", Sex.UNKNOWN: "unknown"}
UCUM_CODES = {
    "mL": "mL",
    "uL": "uL",
    "g": "g",
    "mg": "mg",
    "ug": "ug",
    "ng": "ng",
    "cells": "{cells}",
    "count": "1",
}
#: storage temperatures as MIABIS names them
TEMPERATURE_TEXT = {
    "RT": "room temperature",
    "2to10": "2 °C to 10 °C",
    "-18to-35": "−18 °C to −35 °C",
    "-60to-85": "−60 °C to −85 °C",
    "LN": "liquid nitrogen, −150 °C to −196 °C",
    "Other": "another temperature",
}
DEFAULT_COUNT, MAX_COUNT = 50, 500


def _instant(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    elif value.tzinfo is not dt.UTC:  # (the database's timestamps come back in UTC)
        value = value.astimezone(dt.UTC)
    return value.isoformat(timespec="seconds").replace("+00:00", "Z")


def _quantity(value: Any, unit: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    quantity: dict[str, Any] = {"value": float(format_number(value))}
    if unit is not None:
        quantity |= {"unit": unit.value, "system": UCUM, "code": UCUM_CODES[unit.value]}
    return quantity


def made_by(specimens: list[Specimen]) -> dict[int, dict[str, Any]]:
    """How each aliquot or derivative among *specimens* was made: the processing recorded
    on its parent's aliquoting or derivation (method, times, temperature, kit), by child id.
    One query for all of them."""
    children = {s.barcode: s.id for s in specimens if s.parent_id is not None}
    if not children:
        return {}
    found: dict[int, dict[str, Any]] = {}
    events = db.session.execute(
        sa.select(CustodyEvent.event_type, CustodyEvent.details).where(
            CustodyEvent.specimen_id.in_({s.parent_id for s in specimens if s.parent_id}),
            CustodyEvent.event_type.in_([CustodyEventType.DERIVED, CustodyEventType.ALIQUOTED]),
        )
    )
    for kind, details in events:
        for barcode in (details or {}).get("children", []):
            if barcode in children:
                found[children[barcode]] = {"kind": kind.value, **((details or {}).get("processing") or {})}
    return found


def _step(made: dict[str, Any]) -> dict[str, Any]:
    """A Specimen.processing entry for the step that made a tube."""
    words = [made.get("method") or made["kind"]]
    if made.get("temperature"):
        words.append(f"at {made['temperature']}")
    kit = made.get("kit") or {}
    if kit.get("gtin") or made.get("kit_lot"):
        words.append(
            f"kit {kit.get('gtin') or ''} lot {kit.get('lot') or made.get('kit_lot')}".replace(
                "kit  lot", "kit lot"
            )
        )
    step: dict[str, Any] = {"description": ", ".join(words)}
    started, ended = _datetime(made.get("started_at")), _datetime(made.get("ended_at"))
    if started and ended:
        step["timePeriod"] = {"start": _instant(started), "end": _instant(ended)}
    elif started:
        step["timeDateTime"] = _instant(started)
    return step


def specimen_resource(
    specimen: Specimen,
    visit: Any = None,
    participant_code: str | None = None,
    containers: dict[int, StorageContainer] | None = None,
    made: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One specimen as an R4 ``Specimen`` (its visit, participant code and the storage units
    by id may be given, as the bulk export reads them for many tubes at once)."""
    code, display = snomed_sample_type(specimen.material_type.value)
    resource: dict[str, Any] = {
        "resourceType": "Specimen",
        "id": str(specimen.id),
        "meta": {"lastUpdated": _instant(specimen.updated_at)},
        "identifier": [{"system": BARCODE_SYSTEM, "value": specimen.barcode}],
        "accessionIdentifier": {"system": BARCODE_SYSTEM, "value": specimen.barcode},
        "status": specimen.status.fhir_status,
        "type": {
            "coding": [
                {"system": SNOMED, "code": code, "display": display},
                {"system": MATERIAL_SYSTEM, "code": specimen.material_type.value},
            ],
            "text": specimen.material_type.value.replace("_", " ").capitalize(),
        },
        "subject": {
            "reference": f"Patient/{specimen.participant_id}",
            "identifier": {
                "system": PARTICIPANT_SYSTEM,
                "value": participant_code or specimen.participant.code,
            },
        },
    }
    if specimen.manufacturer_barcode:
        resource["identifier"].append(
            {"value": specimen.manufacturer_barcode, "type": {"text": "manufacturer's tube barcode"}}
        )
    if specimen.received_at:
        resource["receivedTime"] = _instant(specimen.received_at)
    if specimen.parent_id is not None:
        resource["parent"] = [{"reference": f"Specimen/{specimen.parent_id}"}]
    collection: dict[str, Any] = {}
    visit = visit or specimen.collection_event
    if visit is not None and specimen.parent_id is None:
        collection["collectedDateTime"] = _instant(visit.collected_at)
        collection["method"] = {"text": visit.procedure.value.replace("_", " ")}
    initial = _quantity(specimen.initial_quantity, specimen.unit)
    if initial and specimen.parent_id is None:
        collection["quantity"] = initial
    if specimen.anatomical_site is not None:
        collection["bodySite"] = {"text": specimen.anatomical_site.value.replace("_", " ")}
    if collection:
        resource["collection"] = collection
    processing = [_step(made)] if made else []
    if specimen.sprec_code:
        processing.append({"description": f"SPREC {specimen.sprec_code}"})
    if specimen.processed_at and not made:
        processing.append(
            {
                "description": "processed (centrifugation or fixation)",
                "timeDateTime": _instant(specimen.processed_at),
            }
        )
    if specimen.frozen_at:
        processing.append({"description": "frozen", "timeDateTime": _instant(specimen.frozen_at)})
    if processing:
        resource["processing"] = processing
    container: dict[str, Any] = {}
    box = (
        None
        if specimen.container_id is None
        else containers[specimen.container_id]
        if containers is not None
        else specimen.container
    )
    if box is not None:
        place = box.name
        if specimen.pos_row is not None:
            place += f" row {specimen.pos_row} column {specimen.pos_col}"
        container["description"] = place
        if box.barcode:
            container["identifier"] = [{"value": box.barcode}]
        cold = box.effective_temperature()
        if cold is not None:
            container["type"] = {"text": "stored at " + TEMPERATURE_TEXT.get(cold.value, cold.value)}
    left = _quantity(specimen.quantity, specimen.unit)
    if left:
        container["specimenQuantity"] = left
    if container:
        resource["container"] = [container]
    if specimen.status is SpecimenStatus.QUARANTINED:
        resource["condition"] = [{"text": "quarantined"}]
    return resource


def patient_resource(participant: Participant, actor: Actor | None) -> dict[str, Any]:
    """A participant as an R4 ``Patient``: pseudonymous unless *actor* may see the
    identifying record (without an actor, always pseudonymous)."""
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": str(participant.id),
        "meta": {"lastUpdated": _instant(participant.updated_at)},
        "identifier": [{"system": PARTICIPANT_SYSTEM, "value": participant.code}],
        "gender": GENDER[participant.sex],
    }
    phi = participant.phi if actor is not None and actor.may_see_phi() else None
    if phi is not None:
        if phi.medical_record_number:
            resource["identifier"].append(
                {
                    "system": MRN_SYSTEM,
                    "value": phi.medical_record_number,
                    "type": {
                        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]
                    },
                }
            )
        name = {
            k: v
            for k, v in (("family", phi.family_name), ("given", [phi.given_name] if phi.given_name else None))
            if v
        }
        if name:
            resource["name"] = [name]
        if phi.birth_date:
            resource["birthDate"] = phi.birth_date.isoformat()
    return resource


def condition_resource(case: Case) -> dict[str, Any]:
    """A case (diagnosis) as an R4 ``Condition``: ICD-10 code, AJCC 8 stage for melanoma,
    the lesions' body sites."""
    title = ICD10_TITLES.get(case.icd10_code[:3])
    coding: dict[str, str] = {"system": ICD10_SYSTEM, "code": case.icd10_code}
    if title:
        coding["display"] = title
    codings = [coding]
    if case.icdo3_morphology:
        morphology = {"system": ICDO3_SYSTEM, "code": case.icdo3_morphology}
        if case.icdo3_morphology in ICDO3_MORPHOLOGY_TERMS:
            morphology["display"] = ICDO3_MORPHOLOGY_TERMS[case.icdo3_morphology]
        codings.append(morphology)
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "id": str(case.id),
        "meta": {"lastUpdated": _instant(case.updated_at)},
        "identifier": [{"system": CASE_SYSTEM, "value": case.code}],
        "category": [{"coding": [{"system": CATEGORY_SYSTEM, "code": "encounter-diagnosis"}]}],
        "code": {"coding": codings, "text": case.disease_group.value.replace("_", " ").capitalize()},
        "subject": {"reference": f"Patient/{case.participant_id}"},
    }
    if case.diagnosis_date:
        resource["recordedDate"] = case.diagnosis_date.isoformat()
    if case.ajcc_stage is not None:
        resource["stage"] = [
            {
                "summary": {
                    "coding": [
                        {
                            "system": NCIT_SYSTEM,
                            "code": AJCC8[case.ajcc_stage],
                            "display": f"Pathologic Stage {case.ajcc_stage.value} Cutaneous Melanoma AJCC v8",
                        }
                    ],
                    "text": f"AJCC 8 stage {case.ajcc_stage.value}",
                }
            }
        ]
    sites: list[dict[str, Any]] = []
    if case.icdo3_topography:
        topography = {"system": ICDO3_SYSTEM, "code": case.icdo3_topography}
        if case.icdo3_topography in ICDO3_TOPOGRAPHY_TERMS:
            topography["display"] = ICDO3_TOPOGRAPHY_TERMS[case.icdo3_topography]
        sites.append({"coding": [topography]})
    sites += [
        {"text": site} for site in sorted({le.body_site.value.replace("_", " ") for le in case.lesions})
    ]
    if sites:
        resource["bodySite"] = sites
    notes = []
    if case.breslow_mm is not None:
        notes.append(f"Breslow thickness {format_number(case.breslow_mm)} mm")
    if case.ulceration is not None:
        notes.append("ulcerated" if case.ulceration else "not ulcerated")
    if notes:
        resource["note"] = [{"text": "; ".join(notes)}]
    return resource


def body_structure_resource(lesion: Lesion) -> dict[str, Any]:
    """A lesion as an R4 ``BodyStructure`` of its case's patient."""
    resource: dict[str, Any] = {
        "resourceType": "BodyStructure",
        "id": str(lesion.id),
        "meta": {"lastUpdated": _instant(lesion.updated_at)},
        "identifier": [{"system": LESION_SYSTEM, "value": lesion.code}],
        "location": {"text": lesion.body_site.value.replace("_", " ")},
        "patient": {"reference": f"Patient/{lesion.case.participant_id}"},
    }
    if lesion.laterality is not Laterality.NOT_APPLICABLE:
        resource["locationQualifier"] = [{"text": lesion.laterality.value}]
    text = [f"lesion of case {lesion.case.code}"]
    if lesion.diameter_mm is not None:
        text.append(f"{format_number(lesion.diameter_mm)} mm across")
    if lesion.description:
        text.append(lesion.description)
    resource["description"] = "; ".join(text)
    return resource


def consent_resource(consent: ConsentResponse) -> dict[str, Any]:
    """A participant's answer to one consent tier as an R4 research ``Consent``: permit or
    deny of the tier's scope (with its GA4GH DUO term), inactive once withdrawn."""
    tier = consent.tier
    yes = consent.decision is ConsentDecision.YES
    status = (
        "inactive"
        if consent.withdrawn_at
        else "active"
        if yes
        else "rejected"
        if consent.decision is ConsentDecision.NO
        else "proposed"
    )
    coding = [{"system": CONSENT_SCOPE_SYSTEM, "code": tier.scope.value}]
    if tier.scope.duo:
        coding.append({"system": DUO_SYSTEM, "code": tier.scope.duo})
    provision: dict[str, Any] = {
        "type": "permit" if yes else "deny",
        "code": [{"coding": coding, "text": tier.statement}],
    }
    if consent.withdrawn_at:
        provision["period"] = {"end": _instant(consent.withdrawn_at)}
    return {
        "resourceType": "Consent",
        "id": str(consent.id),
        "meta": {"lastUpdated": _instant(consent.updated_at)},
        "status": status,
        "scope": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "research"}]
        },
        "category": [
            {
                "coding": [{"system": "http://loinc.org", "code": "59284-0"}],
                "text": f"{tier.study.code}: {tier.code}",
            }
        ],
        "patient": {"reference": f"Patient/{consent.participant_id}"},
        "dateTime": consent.signed_on.isoformat(),
        "policyRule": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                    "code": "OPTIN" if yes else "OPTOUT",
                }
            ]
        },
        "provision": provision,
    }


def media_resource(image: Image, base: str) -> dict[str, Any]:
    """An image as an R4 ``Media`` (*base*: the server's URL), its bytes at the image's DRS
    object."""
    host = base.split("://", 1)[-1]
    resource: dict[str, Any] = {
        "resourceType": "Media",
        "id": str(image.id),
        "identifier": [{"system": "urn:ietf:rfc:3986", "value": f"drs://{host}/{image.sha256}"}],
        "status": "completed",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/media-type", "code": "image"}]},
        "modality": {"text": image.modality.value.replace("_", " ")},
        "subject": {"reference": f"Patient/{image.case.participant_id}"},
        "content": {
            "contentType": image.mime_type,
            "size": image.size_bytes,
            "title": image.filename,
            "url": f"{base}/ga4gh/drs/v1/objects/{image.sha256}/content",
        },
    }
    if image.lesion is not None:
        resource["bodySite"] = {"text": image.lesion.body_site.value.replace("_", " ")}
    if image.width and image.height:
        resource |= {"width": image.width, "height": image.height}
    return resource


def group_resource(snapshot: Any, actor: Actor) -> dict[str, Any]:
    """A frozen cohort snapshot as an R4 ``Group`` of Patients. Staff see its size and the
    members of their own sites; researchers, whose counts are protected, see neither."""
    cohort = snapshot.cohort
    resource: dict[str, Any] = {
        "resourceType": "Group",
        "id": str(snapshot.id),
        "identifier": [{"system": SNAPSHOT_SYSTEM, "value": f"{cohort.id}/{snapshot.id}"}],
        "type": "person",
        "actual": True,
        "name": cohort.name,
        "characteristic": [
            {"code": {"text": "level"}, "valueCodeableConcept": {"text": snapshot.level}, "exclude": False},
            {
                "code": {"text": "cohort query (GDC filters)"},
                "valueCodeableConcept": {"text": json.dumps(snapshot.filters, sort_keys=True)},
                "exclude": False,
            },
            {
                "code": {"text": "data release"},
                "valueCodeableConcept": {"text": snapshot.data_release},
                "exclude": False,
            },
        ],
    }
    if counts_only(actor):
        return resource
    resource["quantity"] = snapshot.member_count
    members = sa.select(CohortSnapshotMember.entity_id).where(CohortSnapshotMember.snapshot_id == snapshot.id)
    people = {
        "participants": sa.select(Participant.id).where(Participant.id.in_(members)),
        "cases": sa.select(Case.participant_id).where(Case.id.in_(members)),
        "lesions": sa.select(Case.participant_id)
        .join(Lesion, Lesion.case_id == Case.id)
        .where(Lesion.id.in_(members)),
    }.get(snapshot.level, sa.select(Specimen.participant_id).where(Specimen.id.in_(members)))
    mine = (
        visible(sa.select(Participant.id), Participant, actor)
        .where(Participant.id.in_(people))
        .order_by(Participant.id)
    )
    found = list(db.session.scalars(mine))
    if found:
        resource["member"] = [{"entity": {"reference": f"Patient/{pid}"}} for pid in found]
    return resource


# --- search --------------------------------------------------------------------------------


@dataclass
class Page:
    resources: list[dict[str, Any]]
    total: int
    next_cursor: int | None


_DATE = re.compile(r"^(eq|ne|gt|lt|ge|le)?(\d{4}(-\d{2}(-\d{2})?)?)$")


def _token(value: str, system: str, param: str) -> str:
    """The code of a ``[system|]code`` token of the given *system*."""
    if "|" in value:
        given, code = value.split("|", 1)
        if given and given != system:
            raise InvalidInput(f"{param}: this server knows {system!r}, not {given!r}", field=param)
        return code
    return value


def _reference(value: str, kind: str, param: str) -> int:
    ident = value.removeprefix(f"{kind}/")
    if not ident.isdigit() or len(ident) > 18:
        raise InvalidInput(f"{param}: expected {kind}/<id>, got {value!r}", field=param)
    return int(ident)


def _date_clause(column: Any, value: str, param: str) -> Any:
    match = _DATE.match(value)
    if not match:
        raise InvalidInput(f"{param}: expected [eq|gt|lt|ge|le]YYYY[-MM[-DD]], got {value!r}", field=param)
    prefix, text = match.group(1) or "eq", match.group(2)
    parts = [int(p) for p in text.split("-")]
    try:
        start = dt.datetime(
            parts[0], parts[1] if len(parts) > 1 else 1, parts[2] if len(parts) > 2 else 1, tzinfo=dt.UTC
        )
    except ValueError as exc:
        raise InvalidInput(f"{param}: {value!r} is not a date ({exc})", field=param) from None
    if len(parts) == 3:
        end = start + dt.timedelta(days=1)
    elif len(parts) == 2:
        end = (start + dt.timedelta(days=32)).replace(day=1)
    else:
        end = start.replace(year=start.year + 1)
    return {
        "eq": sa.and_(column >= start, column < end),
        "ne": sa.or_(column < start, column >= end),
        "gt": column >= end,
        "ge": column >= start,
        "lt": column < start,
        "le": column < end,
    }[prefix]


SPECIMEN_PARAMS = ("identifier", "subject", "patient", "type", "collected", "parent", "status", "container")


def search_specimens(params: dict[str, list[str]], actor: Actor, *, count: int, cursor: int | None) -> Page:
    stmt = visible(sa.select(Specimen), Specimen, actor)
    for name, values in params.items():
        for value in values:
            stmt = _specimen_filter(stmt, name, value)
    return _page(stmt, Specimen, count, cursor, specimen_resource, made_by)


def _specimen_filter(stmt: sa.Select, name: str, value: str) -> sa.Select:
    if name == "identifier":
        code = _token(value, BARCODE_SYSTEM, name)
        return stmt.where(named_by(code))
    if name in ("subject", "patient"):
        return stmt.where(Specimen.participant_id == _reference(value, "Patient", name))
    if name == "parent":
        return stmt.where(Specimen.parent_id == _reference(value, "Specimen", name))
    if name == "type":
        code = value.split("|", 1)[-1]
        materials = list(_MATERIALS_BY_CODE.get(code, ())) or (
            [MaterialType(code)] if code in _MATERIALS else []
        )
        if not materials:
            raise InvalidInput(
                f"type: no specimens are typed {value!r} (a SNOMED CT sample type or a MIABIS material)",
                field="type",
            )
        return stmt.where(Specimen.material_type.in_(materials))
    if name == "status":
        states = [s for s in SpecimenStatus if s.fhir_status == value]
        if value not in ("available", "unavailable", "unsatisfactory", "entered-in-error"):
            raise InvalidInput(f"status: {value!r} is not a Specimen status", field="status")
        return stmt.where(Specimen.status.in_(states))
    if name == "collected":
        visits = sa.select(CollectionEvent.id).where(_date_clause(CollectionEvent.collected_at, value, name))
        return stmt.where(Specimen.collection_event_id.in_(visits))
    if name == "container":
        return stmt.where(Specimen.container_id == _reference(value, "Container", name))
    raise InvalidInput(
        f"{name!r} is not a search parameter of Specimen here (supported: {', '.join(SPECIMEN_PARAMS)})",
        field=name,
    )


def _materials() -> tuple[dict[str, list[Any]], set[str]]:
    by_code: dict[str, list[Any]] = {}
    for material in MaterialType:
        by_code.setdefault(snomed_sample_type(material.value)[0], []).append(material)
    return by_code, {m.value for m in MaterialType}


_MATERIALS_BY_CODE, _MATERIALS = _materials()
PATIENT_PARAMS = ("identifier", "gender", "_id")


def search_patients(params: dict[str, list[str]], actor: Actor, *, count: int, cursor: int | None) -> Page:
    stmt = visible(sa.select(Participant), Participant, actor)
    for name, values in params.items():
        for value in values:
            if name == "identifier":
                stmt = stmt.where(Participant.code == _token(value, PARTICIPANT_SYSTEM, name))
            elif name == "gender":
                sexes = [s for s, g in GENDER.items() if g == value]
                if not sexes:
                    raise InvalidInput(f"gender: {value!r} is not male, female, other or unknown", field=name)
                stmt = stmt.where(Participant.sex.in_(sexes))
            elif name == "_id":
                stmt = stmt.where(Participant.id == _reference(value, "Patient", name))
            else:
                raise InvalidInput(
                    f"{name!r} is not a search parameter of Patient here "
                    f"(supported: {', '.join(PATIENT_PARAMS)})",
                    field=name,
                )
    return _page(stmt, Participant, count, cursor, lambda p: patient_resource(p, actor))


CONDITION_PARAMS = ("identifier", "subject", "patient", "code")


def search_conditions(params: dict[str, list[str]], actor: Actor, *, count: int, cursor: int | None) -> Page:
    stmt = visible(sa.select(Case), Case, actor)
    for name, values in params.items():
        for value in values:
            if name == "identifier":
                stmt = stmt.where(Case.code == _token(value, CASE_SYSTEM, name))
            elif name in ("subject", "patient"):
                stmt = stmt.where(Case.participant_id == _reference(value, "Patient", name))
            elif name == "code":
                code = _token(value, ICD10_SYSTEM, name)
                # a category takes its subcodes (C43 finds C43.5)
                stmt = stmt.where(sa.or_(Case.icd10_code == code, Case.icd10_code.startswith(code + ".")))
            else:
                raise InvalidInput(
                    f"{name!r} is not a search parameter of Condition here "
                    f"(supported: {', '.join(CONDITION_PARAMS)})",
                    field=name,
                )
    return _page(stmt, Case, count, cursor, condition_resource)


BODY_STRUCTURE_PARAMS = ("identifier", "patient")


def search_body_structures(
    params: dict[str, list[str]], actor: Actor, *, count: int, cursor: int | None
) -> Page:
    stmt = visible(sa.select(Lesion), Lesion, actor)
    for name, values in params.items():
        for value in values:
            if name == "identifier":
                stmt = stmt.where(Lesion.code == _token(value, LESION_SYSTEM, name))
            elif name == "patient":
                stmt = stmt.where(
                    Lesion.case_id.in_(
                        sa.select(Case.id).where(Case.participant_id == _reference(value, "Patient", name))
                    )
                )
            else:
                raise InvalidInput(
                    f"{name!r} is not a search parameter of BodyStructure here "
                    f"(supported: {', '.join(BODY_STRUCTURE_PARAMS)})",
                    field=name,
                )
    return _page(stmt, Lesion, count, cursor, body_structure_resource)


def search_consents(params: dict[str, list[str]], actor: Actor, *, count: int, cursor: int | None) -> Page:
    stmt = visible(sa.select(ConsentResponse), ConsentResponse, actor)
    for name, values in params.items():
        for value in values:
            if name == "patient":
                stmt = stmt.where(ConsentResponse.participant_id == _reference(value, "Patient", name))
            else:
                raise InvalidInput(
                    f"{name!r} is not a search parameter of Consent here (supported: patient)", field=name
                )
    return _page(stmt, ConsentResponse, count, cursor, consent_resource)


def search_media(
    params: dict[str, list[str]], actor: Actor, *, count: int, cursor: int | None, base: str
) -> Page:
    stmt = sa.select(Image).where(image_clause(actor))
    for name, values in params.items():
        for value in values:
            if name in ("patient", "subject"):
                stmt = stmt.where(
                    Image.case_id.in_(
                        sa.select(Case.id).where(Case.participant_id == _reference(value, "Patient", name))
                    )
                )
            else:
                raise InvalidInput(
                    f"{name!r} is not a search parameter of Media here (supported: patient, subject)",
                    field=name,
                )
    return _page(stmt, Image, count, cursor, lambda image: media_resource(image, base))


def search_groups(params: dict[str, list[str]], actor: Actor, *, count: int, cursor: int | None) -> Page:
    """The snapshots of the cohorts *actor* may see (their own; managers every one)."""
    if params:
        name = next(iter(params))
        raise InvalidInput(f"{name!r} is not a search parameter of Group here (none are)", field=name)
    cohorts = [c.id for c in list_cohorts(actor)]
    stmt = sa.select(CohortSnapshot).join(Cohort).where(Cohort.id.in_(cohorts))
    return _page(stmt, CohortSnapshot, count, cursor, lambda snap: group_resource(snap, actor))


def _page(
    stmt: sa.Select,
    model: Any,
    count: int,
    cursor: int | None,
    build: Any,
    made: Callable[[list[Any]], dict[int, Any]] | None = None,
) -> Page:
    total = db.session.scalar(sa.select(sa.func.count()).select_from(stmt.subquery()))
    if cursor is not None:
        stmt = stmt.where(model.id > cursor)
    rows = list(db.session.scalars(stmt.order_by(model.id).limit(count + 1)))
    more = len(rows) > count
    rows = rows[:count]
    if made is None:
        resources = [build(row) for row in rows]
    else:  # what each row needs of others, read once for the page
        steps = made(rows)
        resources = [build(row, made=steps.get(row.id)) for row in rows]
    return Page(resources, total or 0, rows[-1].id if more else None)


def read_specimen(ident: int, actor: Actor) -> dict[str, Any]:
    specimen = get_visible(Specimen, ident, actor)
    return specimen_resource(specimen, made=made_by([specimen]).get(specimen.id))


def read_patient(ident: int, actor: Actor) -> dict[str, Any]:
    return patient_resource(get_visible(Participant, ident, actor), actor)


def read_condition(ident: int, actor: Actor) -> dict[str, Any]:
    return condition_resource(get_visible(Case, ident, actor))


def read_body_structure(ident: int, actor: Actor) -> dict[str, Any]:
    return body_structure_resource(get_visible(Lesion, ident, actor))


def read_consent(ident: int, actor: Actor) -> dict[str, Any]:
    return consent_resource(get_visible(ConsentResponse, ident, actor))


def read_media(ident: int, actor: Actor, base: str) -> dict[str, Any]:
    return media_resource(get_image(ident, actor), base)


def read_group(ident: int, actor: Actor) -> dict[str, Any]:
    return group_resource(get_snapshot(ident, actor), actor)


def capability_statement(base: str) -> dict[str, Any]:
    """What this server supports, as R4's ``CapabilityStatement``."""

    def resource(kind: str, params: tuple[str, ...], types: dict[str, str]) -> dict[str, Any]:
        return {
            "type": kind,
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "versioning": "no-version",
            "readHistory": False,
            "updateCreate": False,
            "searchParam": [{"name": p, "type": types.get(p, "token")} for p in params],
        }

    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": dt.date.today().isoformat(),
        "kind": "instance",
        "software": {"name": "Biobank LIMS", "version": __version__},
        "implementation": {"description": "Biobank LIMS FHIR R4 endpoint", "url": base},
        "fhirVersion": FHIR_VERSION,
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "interaction": [
                    {
                        "code": "transaction",
                        "documentation": "a connected hospital's Patients, Specimens and "
                        "ServiceRequests, registered all or nothing as "
                        "participants, visits and expected tubes",
                    }
                ],
                "security": {
                    "description": "Bearer API token or a signed-in session; "
                    "reads are limited to the caller's sites"
                },
                "resource": [
                    resource(
                        "Specimen",
                        SPECIMEN_PARAMS,
                        {
                            "subject": "reference",
                            "patient": "reference",
                            "parent": "reference",
                            "container": "reference",
                            "collected": "date",
                        },
                    ),
                    resource("Patient", PATIENT_PARAMS, {}),
                    resource("Condition", CONDITION_PARAMS, {"subject": "reference", "patient": "reference"}),
                    resource("BodyStructure", BODY_STRUCTURE_PARAMS, {"patient": "reference"}),
                    resource("Consent", ("patient",), {"patient": "reference"}),
                    resource(
                        "Media", ("patient", "subject"), {"patient": "reference", "subject": "reference"}
                    ),
                    resource("Group", (), {}),
                ],
            }
        ],
    }


# --- bulk export ---------------------------------------------------------------------------


def _patients_after(
    last: int, batch: int, _containers: dict[int, StorageContainer]
) -> list[tuple[int, dict[str, Any]]]:
    rows = db.session.scalars(
        sa.select(Participant)
        .options(
            orm.lazyload(Participant.study),
            orm.lazyload(Participant.site),
            orm.lazyload(Participant.consents),
        )
        .where(Participant.id > last)
        .order_by(Participant.id)
        .limit(batch)
    )
    return [(row.id, patient_resource(row, None)) for row in rows]


def _conditions_after(
    last: int, batch: int, _containers: dict[int, StorageContainer]
) -> list[tuple[int, dict[str, Any]]]:
    rows = db.session.scalars(
        sa.select(Case)
        .options(orm.lazyload(Case.participant), orm.selectinload(Case.lesions))
        .where(Case.id > last)
        .order_by(Case.id)
        .limit(batch)
    )
    return [(row.id, condition_resource(row)) for row in rows]


def _body_structures_after(
    last: int, batch: int, _containers: dict[int, StorageContainer]
) -> list[tuple[int, dict[str, Any]]]:
    rows = db.session.scalars(
        sa.select(Lesion)
        .options(orm.joinedload(Lesion.case).lazyload(Case.participant))
        .where(Lesion.id > last)
        .order_by(Lesion.id)
        .limit(batch)
    )
    return [(row.id, body_structure_resource(row)) for row in rows]


def _consents_after(
    last: int, batch: int, _containers: dict[int, StorageContainer]
) -> list[tuple[int, dict[str, Any]]]:
    rows = db.session.scalars(
        sa.select(ConsentResponse).where(ConsentResponse.id > last).order_by(ConsentResponse.id).limit(batch)
    )
    return [(row.id, consent_resource(row)) for row in rows]


def _specimens_after(
    last: int, batch: int, containers: dict[int, StorageContainer]
) -> list[tuple[int, dict[str, Any]]]:
    rows = list(
        db.session.scalars(
            sa.select(Specimen)
            .options(orm.lazyload(Specimen.participant), orm.lazyload(Specimen.collection_event))
            .where(Specimen.id > last)
            .order_by(Specimen.id)
            .limit(batch)
        )
    )
    # what each tube needs of its participant and visit, in one query each for the batch
    codes = dict(
        db.session.execute(
            sa.select(Participant.id, Participant.code).where(
                Participant.id.in_({r.participant_id for r in rows})
            )
        ).all()
    )
    visits = {
        v.id: v
        for v in db.session.execute(
            sa.select(CollectionEvent.id, CollectionEvent.collected_at, CollectionEvent.procedure).where(
                CollectionEvent.id.in_({r.collection_event_id for r in rows if r.collection_event_id})
            )
        )
    }
    steps = made_by(rows)
    return [
        (
            row.id,
            specimen_resource(
                row,
                visits.get(row.collection_event_id or 0),
                codes[row.participant_id],
                containers,
                steps.get(row.id),
            ),
        )
        for row in rows
    ]


def export_ndjson(
    out: Path, *, batch: int = 5000, progress: Callable[[str, int], None] | None = None
) -> dict[str, int]:
    """Every participant, case, lesion, consent answer and specimen as pseudonymous
    ``Patient``, ``Condition``, ``BodyStructure``, ``Consent`` and ``Specimen`` resources,
    one per line in ``<type>.ndjson`` under *out* (the FHIR Bulk Data layout), read in
    batches by id so that memory stays flat. Each file is written beside its final name and
    renamed when complete."""
    out.mkdir(parents=True, exist_ok=True)
    # every storage unit read once: a tube's box and freezer by id, not a query per tube
    containers = {c.id: c for c in db.session.scalars(sa.select(StorageContainer))}
    counts = {}
    for kind, read in (
        ("Patient", _patients_after),
        ("Condition", _conditions_after),
        ("BodyStructure", _body_structures_after),
        ("Consent", _consents_after),
        ("Specimen", _specimens_after),
    ):
        partial = out / f".{kind}.ndjson.part"
        written = last = 0
        with partial.open("w", encoding="utf-8") as f:
            while resources := read(last, batch, containers):
                f.writelines(
                    json.dumps(resource, ensure_ascii=False, separators=(",", ":")) + "\n"
                    for _, resource in resources
                )
                written += len(resources)
                last = resources[-1][0]
                if progress:
                    progress(kind, written)
        partial.replace(out / f"{kind}.ndjson")
        counts[kind] = written
    return counts


# --- intake of a hospital's transaction Bundle ---------------------------------------------

#: SNOMED CT sample types and MIABIS detailed sample types a hospital may send, by material
#: (a sample type shared by several materials names the first: frozen tissue, RNA)
_SNOMED_MATERIALS = {
    code: materials[0] for code, materials in _MATERIALS_BY_CODE.items() if code != SNOMED_ANY_SPECIMEN[0]
} | {
    "122555007": MaterialType.WHOLE_BLOOD,  # venous blood specimen
    "119297000": MaterialType.WHOLE_BLOOD,  # blood specimen
    "122575003": MaterialType.URINE,  # urine specimen
}
_MIABIS_MATERIALS = {
    "WholeBlood": MaterialType.WHOLE_BLOOD,
    "Plasma": MaterialType.PLASMA,
    "Serum": MaterialType.SERUM,
    "BuffyCoat": MaterialType.BUFFY_COAT,
    "PBMC": MaterialType.PERIPHERAL_BLOOD_CELLS,
    "TissueFreshFrozen": MaterialType.TISSUE_FROZEN,
    "TissueFixed": MaterialType.TISSUE_PARAFFIN_EMBEDDED,
    "Urine": MaterialType.URINE,
    "Faeces": MaterialType.FECES,
    "Saliva": MaterialType.SALIVA,
    "DNA": MaterialType.DNA,
    "RNA": MaterialType.RNA,
    "ImmortalizedCellLine": MaterialType.CELL_LINES,
    "CancerCellLine": MaterialType.CELL_LINES,
    "IsolatedMicrobe": MaterialType.PATHOGEN,
    "Swab": MaterialType.NASAL_SWAB,
    "Organoid": MaterialType.OTHER,
    "Other": MaterialType.OTHER,
}
_UNITS = {"ml": "mL", "ul": "uL", "µl": "uL", "g": "g", "mg": "mg", "ug": "ug", "µg": "ug", "ng": "ng"}
_INTAKE_TYPES = ("Patient", "Specimen", "ServiceRequest")


class IntakeRefused(InvalidInput):
    """A Bundle the intake does not take, with every problem and where it is."""

    status = 400

    def __init__(self, issues: list[tuple[str, str]]) -> None:
        super().__init__(
            "; ".join(f"{where}: {what}" for where, what in issues[:3])
            + (f" (and {len(issues) - 3} more)" if len(issues) > 3 else ""),
            field=issues[0][0],
            issues=issues,
        )
        self.issues = issues


@dataclass
class _Tube:
    index: int
    keys: list[str]
    barcode: str
    material: MaterialType
    patient: str
    parent: str | None
    collected: dt.datetime | None
    quantity: Any
    unit: Any


def _material(coding: list[dict[str, Any]]) -> MaterialType | None:
    for code in coding:
        system, value = code.get("system", ""), code.get("code")
        if "miabis" in system and value in _MIABIS_MATERIALS:
            return _MIABIS_MATERIALS[value]
        if system == SNOMED and value in _SNOMED_MATERIALS:
            return _SNOMED_MATERIALS[value]
    return None


def _datetime(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _keys(entry: dict[str, Any], resource: dict[str, Any]) -> list[str]:
    keys = [f"{resource['resourceType']}/{resource['id']}"] if resource.get("id") else []
    if entry.get("fullUrl"):
        keys.append(entry["fullUrl"])
    return keys


def _read_bundle(
    bundle: Any,
) -> tuple[dict[str, tuple[int, dict[str, Any]]], list[_Tube], dict[str, dt.datetime]]:
    """Everything the Bundle says, checked; the problems with their FHIRPath."""
    issues: list[tuple[str, str]] = []
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise IntakeRefused([("Bundle", "send a FHIR Bundle")])
    if bundle.get("type") != "transaction":
        raise IntakeRefused([("Bundle.type", f"must be 'transaction', not {bundle.get('type')!r}")])
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not entries:
        raise IntakeRefused([("Bundle.entry", "the Bundle has no entries")])
    patients: dict[str, tuple[int, dict[str, Any]]] = {}
    specimens: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
    ordered: dict[str, dt.datetime] = {}
    for i, entry in enumerate(entries):
        where = f"Bundle.entry[{i}].resource"
        resource = entry.get("resource") if isinstance(entry, dict) else None
        kind = resource.get("resourceType") if isinstance(resource, dict) else None
        if kind not in _INTAKE_TYPES:
            issues.append(
                (where, f"a {kind or 'missing resource'} is not taken here ({', '.join(_INTAKE_TYPES)})")
            )
            continue
        if kind == "Patient":
            for key in _keys(entry, resource):
                patients[key] = (i, resource)
            if not _patient_identifier(resource):
                issues.append((f"{where}.identifier", "a Patient needs an identifier"))
        elif kind == "Specimen":
            specimens.append((i, entry, resource))
        else:  # a ServiceRequest: when the samples were ordered, for a visit without a time
            authored = _datetime(resource.get("authoredOn"))
            subject = (resource.get("subject") or {}).get("reference")
            if authored and subject:
                ordered[subject] = authored
    tubes: list[_Tube] = []
    seen: dict[str, int] = {}
    for i, entry, resource in specimens:
        where = f"Bundle.entry[{i}].resource"
        identifiers = resource.get("identifier") or []
        barcode = identifiers[0].get("value") if identifiers and isinstance(identifiers[0], dict) else None
        if not isinstance(barcode, str) or not LABEL_BARCODE.match(barcode):
            issues.append(
                (
                    f"{where}.identifier[0].value",
                    f"{barcode!r} is not a tube barcode (3–32 letters, digits, '.', '_' or '-')",
                )
            )
        elif barcode in seen:
            issues.append(
                (f"{where}.identifier[0].value", f"barcode {barcode} is also entry {seen[barcode]}'s")
            )
        else:
            seen[barcode] = i
        material = _material(((resource.get("type") or {}).get("coding")) or [])
        if material is None:
            issues.append((f"{where}.type", "no SNOMED CT or MIABIS sample type this biobank knows"))
        subject = (resource.get("subject") or {}).get("reference")
        if subject not in patients:
            issues.append((f"{where}.subject", f"{subject!r} is no Patient of this Bundle"))
        parents = [p.get("reference") for p in resource.get("parent") or []]
        if len(parents) > 1:
            issues.append((f"{where}.parent", "one parent per sample"))
        collection = resource.get("collection") or {}
        collected = _datetime(
            collection.get("collectedDateTime") or (collection.get("collectedPeriod") or {}).get("start")
        )
        if collection.get("collectedDateTime") and collected is None:
            issues.append((f"{where}.collection.collectedDateTime", "not a date and time"))
        amount = (resource.get("container") or [{}])[0].get("specimenQuantity") or collection.get("quantity")
        quantity = unit = None
        if amount:
            unit = _UNITS.get(str(amount.get("code") or amount.get("unit") or "").lower())
            quantity = amount.get("value")
            if unit is None or not isinstance(quantity, (int, float)) or quantity < 0:
                issues.append(
                    (
                        f"{where}.container[0].specimenQuantity",
                        f"{amount.get('value')!r} {amount.get('code')!r} is not a "
                        "quantity in mL, µL, g, mg, µg or ng",
                    )
                )
        tubes.append(
            _Tube(
                i,
                _keys(entry, resource) or [f"#{i}"],
                barcode or "",
                material or MaterialType.OTHER,
                subject or "",
                parents[0] if parents else None,
                collected,
                quantity,
                unit,
            )
        )
    keys = {key: tube for tube in tubes for key in tube.keys}
    for tube in tubes:
        if tube.parent is not None and tube.parent not in keys:
            issues.append(
                (
                    f"Bundle.entry[{tube.index}].resource.parent",
                    f"{tube.parent!r} is no Specimen of this Bundle",
                )
            )
    if issues:
        raise IntakeRefused(issues)
    return patients, _parents_first(tubes, keys), ordered


def _parents_first(tubes: list[_Tube], keys: dict[str, _Tube]) -> list[_Tube]:
    done: list[_Tube] = []
    placed: set[str] = set()
    for tube in tubes:
        chain, seen = [], set()
        while tube is not None and tube.keys[0] not in placed:
            if tube.keys[0] in seen:
                raise IntakeRefused(
                    [
                        (
                            f"Bundle.entry[{tube.index}].resource.parent",
                            "samples that descend from each other in a circle",
                        )
                    ]
                )
            seen.add(tube.keys[0])
            chain.append(tube)
            tube = keys.get(tube.parent) if tube.parent else None
        for link in reversed(chain):
            placed.add(link.keys[0])
            done.append(link)
    return done


def _patient_identifier(resource: dict[str, Any]) -> tuple[str, str] | None:
    for identifier in resource.get("identifier") or []:
        if isinstance(identifier, dict) and isinstance(identifier.get("value"), str):
            return identifier.get("system") or "", identifier["value"]
    return None


def intake_bundle(
    bundle: Any, *, actor: Actor, study_code: str | None, site_code: str | None
) -> dict[str, Any]:
    """Register a connected hospital's participants, visits and expected tubes from a FHIR
    transaction Bundle of Patients and Specimens (and ServiceRequests), all or nothing.

    A Patient is the participant of the biobank's code (identifier system
    ``urn:biobank-lims:participant-code``) or of the hospital's identifier kept as the
    medical record number, registered if new; its name and birth date go to the identifying
    record. Each primary sample's collection is a visit; aliquots and derivatives follow
    their parent (aliquot for the same material, derivative for another). Every tube is
    ``expected``, so that the receiving scan takes it in. Answers a ``transaction-response``
    Bundle."""
    patients, tubes, ordered = _read_bundle(bundle)
    study = _one(Study, Study.code, study_code, "study")
    site = _one(Site, Site.code, site_code, "site", among=actor.site_ids if not actor.is_admin else None)
    responses: dict[int, dict[str, str]] = {}
    participants: dict[str, Participant] = {}
    by_entry: dict[int, Participant] = {}
    for key, (index, resource) in patients.items():
        if index not in by_entry:
            by_entry[index] = _participant(index, resource, actor, study, site, responses)
        participants[key] = by_entry[index]
    made: dict[str, Specimen] = {}
    visits: dict[tuple[int, dt.datetime], int] = {}
    for tube in tubes:
        participant = participants[tube.patient]
        fields: dict[str, Any] = {
            "barcode": tube.barcode,
            "material_type": tube.material,
            "status": SpecimenStatus.EXPECTED,
        }
        if tube.quantity is not None:
            fields |= {"quantity": tube.quantity, "unit": QuantityUnit(tube.unit)}
        parent = made.get(tube.parent) if tube.parent else None
        if parent is not None:
            fields |= {
                "parent_id": parent.id,
                "lineage": Lineage.ALIQUOT if parent.material_type is tube.material else Lineage.DERIVATIVE,
            }
        else:
            when = tube.collected or ordered.get(tube.patient)
            if when is None:
                raise IntakeRefused(
                    [
                        (
                            f"Bundle.entry[{tube.index}].resource.collection.collectedDateTime",
                            "a primary sample needs its collection time",
                        )
                    ]
                )
            visit = visits.get((participant.id, when))
            if visit is None:
                with _at(tube.index):
                    visit = record_collection(
                        actor=actor,
                        participant_id=participant.id,
                        site_id=site.id,
                        collected_at=when,
                        procedure=CollectionProcedure.OTHER,
                    ).id
                visits[(participant.id, when)] = visit
            fields["collection_event_id"] = visit
        with _at(tube.index):
            specimen = register_specimen(
                actor=actor, participant_id=participant.id, site_id=site.id, **fields
            )
        for key in tube.keys:
            made[key] = specimen
        responses[tube.index] = {"status": "201 Created", "location": f"Specimen/{specimen.id}"}
    entries = bundle["entry"]
    return {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": [{"response": responses.get(i, {"status": "200 OK"})} for i in range(len(entries))],
    }


def _participant(
    index: int,
    resource: dict[str, Any],
    actor: Actor,
    study: Any,
    site: Any,
    responses: dict[int, dict[str, str]],
) -> Participant:
    """The participant a Patient names: found by the biobank's code or the hospital's
    identifier (as the medical record number), else registered."""
    system, value = _patient_identifier(resource)  # type: ignore[misc]
    birth = resource.get("birthDate")
    try:
        born = dt.date.fromisoformat(birth) if isinstance(birth, str) and len(birth) == 10 else None
    except ValueError:
        raise IntakeRefused(
            [(f"Bundle.entry[{index}].resource.birthDate", f"{birth!r} is not a date")]
        ) from None
    ours = system == PARTICIPANT_SYSTEM
    stmt = visible(sa.select(Participant), Participant, actor)
    found = db.session.scalar(
        stmt.where(Participant.code == value)
        if ours
        else stmt.join(ParticipantPHI, ParticipantPHI.participant_id == Participant.id).where(
            ParticipantPHI.medical_record_number == value
        )
    )
    if found is not None:
        responses[index] = {"status": "200 OK", "location": f"Patient/{found.id}"}
        return found
    names = (resource.get("name") or [{}])[0]
    phi = {
        "medical_record_number": None if ours else value,
        "family_name": names.get("family"),
        "given_name": " ".join(names.get("given") or []) or None,
        "birth_date": born,
    }
    sex = {g: s for s, g in GENDER.items()}.get(resource.get("gender"), Sex.UNKNOWN)
    with _at(index):
        found = register_participant(
            actor=actor,
            study_id=study.id,
            site_id=site.id,
            sex=sex,
            birth_year=born.year if born else None,
            code=value if ours else None,
            phi={k: v for k, v in phi.items() if v} or None,
        )
    responses[index] = {"status": "201 Created", "location": f"Patient/{found.id}"}
    return found


@contextmanager
def _at(index: int) -> Iterator[None]:
    """A domain error raised inside, placed at the Bundle entry it came from."""
    try:
        yield
    except IntakeRefused:
        raise
    except BiobankError as error:
        where = f"Bundle.entry[{index}].resource"
        field = {"barcode": ".identifier[0].value", "code": ".identifier"}.get(error.field or "", "")
        raise IntakeRefused([(where + field, error.message)]) from None


def _one(model: Any, column: Any, code: str | None, name: str, among: set[int] | None = None) -> Any:
    """The study or site named by *code*, or the only one there is (of *among*)."""
    stmt = sa.select(model)
    if among is not None:
        stmt = stmt.where(model.id.in_(sorted(among)))
    if code:
        found = db.session.scalar(stmt.where(column == code))
        if found is None:
            raise InvalidInput(f"{name}: no {name} {code!r} here", field=name)
        return found
    rows = list(db.session.scalars(stmt.limit(2)))
    if len(rows) != 1:
        raise InvalidInput(f"{name}: name the {name} (?{name}=CODE): there is not only one", field=name)
    return rows[0]
