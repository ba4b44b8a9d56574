"""FHIR R4: every resource and bundle the server gives is checked by the official R4 JSON
Schema (fixtures/fhir, HL7's own) and by `fhir.resources`' R4B models, which refuse a field
R4 does not have; reads are scoped to the caller's sites and identifying data to the roles
that may see it."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from fhir.resources.R4B import get_fhir_model_class
from jsonschema import Draft6Validator

from biobank.models import Specimen
from biobank.models.vocab import AjccStage, Laterality, Sex
from tests.biobank.api.test_query import bank  # noqa: F401
from tests.biobank.api.test_scans import scan

ROOT = json.loads((Path(__file__).parents[3] / "fixtures" / "fhir" / "fhir.schema.json").read_text())
_SCHEMA = {k: v for k, v in ROOT.items() if k not in ("oneOf", "discriminator")}


def valid(resource):
    """*resource* checked by the R4 JSON Schema and the R4B models."""
    schema = {**_SCHEMA, "$ref": f"#/definitions/{resource['resourceType']}"}
    errors = sorted(Draft6Validator(schema).iter_errors(resource), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    return resource


def fhir(client, path, headers=None, **query):
    r = client.get(f"/fhir/r4/{path}", headers=headers or {}, query_string=query or None)
    assert r.mimetype == "application/fhir+json", r.data[:200]
    valid(r.json)
    return r


def test_the_validators_refuse_what_r4_does_not_have():
    with pytest.raises(AssertionError, match="not one of"):
        valid({"resourceType": "Specimen", "status": "in-freezer"})
    with pytest.raises(AssertionError, match="statuz"):
        valid({"resourceType": "Specimen", "statuz": "available"})
    with pytest.raises(ValueError, match="statuz"):
        get_fhir_model_class("Specimen").model_validate({"resourceType": "Specimen", "statuz": "available"})


def test_the_capability_statement_is_open(client):
    r = fhir(client, "metadata")
    assert r.status_code == 200
    statement = r.json
    assert statement["fhirVersion"] == "4.0.1"
    kinds = {res["type"]: res for res in statement["rest"][0]["resource"]}
    assert set(kinds) == {"Specimen", "Patient", "Condition", "BodyStructure", "Consent", "Media", "Group"}
    assert {p["name"] for p in kinds["Specimen"]["searchParam"]} >= {
        "identifier",
        "subject",
        "type",
        "collected",
        "parent",
        "status",
    }


def test_an_aliquot_as_a_specimen(client, bank, technician, headers):
    h = headers(technician)
    a1 = bank.a1
    r = fhir(client, f"Specimen/{a1.id}", h)
    assert r.status_code == 200
    specimen = r.json
    assert specimen["identifier"][0]["value"] == a1.barcode
    assert specimen["status"] == "available"
    assert specimen["type"]["coding"][0] == {
        "system": "http://snomed.info/sct",
        "code": "119376003",
        "display": "Tissue specimen",
    }
    assert specimen["subject"]["reference"] == f"Patient/{bank.p1.id}"
    assert specimen["parent"] == [{"reference": f"Specimen/{a1.parent_id}"}]
    assert specimen["container"][0]["specimenQuantity"] == {
        "value": 30.0,
        "unit": "uL",
        "system": "http://unitsofmeasure.org",
        "code": "uL",
    }
    # the parent: its collection, its place in a box of a −80 °C freezer
    parent = fhir(client, specimen["parent"][0]["reference"], h).json
    assert parent["collection"]["collectedDateTime"] == "2025-03-01T09:30:00Z"
    assert parent["collection"]["method"]["text"] == "venipuncture"
    assert parent["container"][0]["description"].endswith("row 1 column 1")
    assert parent["container"][0]["type"]["text"] == "stored at −60 °C to −85 °C"
    assert "parent" not in parent


def test_a_patient_is_pseudonymous_to_researchers(
    client,
    bank,
    technician,
    researcher,
    headers,
    db_session,
):
    bank.p1.sex = Sex.FEMALE
    db_session.commit()
    staff = fhir(client, f"Patient/{bank.p1.id}", headers(technician)).json
    assert staff["gender"] == "female" and staff["birthDate"] == "1970-01-01"
    assert staff["name"][0]["family"] == bank.p1.phi.family_name
    assert {i["value"] for i in staff["identifier"]} == {bank.p1.code, bank.p1.phi.medical_record_number}
    seen = fhir(client, f"Patient/{bank.p1.id}", headers(researcher)).json
    assert seen["identifier"] == [{"system": "urn:biobank-lims:participant-code", "value": bank.p1.code}]
    assert not {"name", "birthDate"} & set(seen)


def test_a_melanoma_case_as_a_condition_and_its_lesion(
    client,
    bank,
    technician,
    headers,
    db_session,
):
    bank.c1.ajcc_stage, bank.c1.ulceration = AjccStage.IIA, True
    bank.c1.diagnosis_date = dt.date(2025, 2, 10)
    bank.c1.icdo3_morphology, bank.c1.icdo3_topography = "8743/3", "C44.5"
    bank.l1.laterality = Laterality.LEFT
    db_session.commit()
    h = headers(technician)
    condition = fhir(client, f"Condition/{bank.c1.id}", h).json
    icdo3 = "http://terminology.hl7.org/CodeSystem/icd-o-3"
    assert condition["code"]["coding"] == [
        {
            "system": "http://hl7.org/fhir/sid/icd-10",
            "code": "C43.5",
            "display": "Malignant melanoma of skin",
        },
        {"system": icdo3, "code": "8743/3", "display": "Superficial spreading melanoma"},
    ]
    assert condition["subject"] == {"reference": f"Patient/{bank.p1.id}"}
    assert condition["stage"][0]["summary"]["coding"][0]["code"] == "C137667"
    assert condition["recordedDate"] == "2025-02-10"
    assert condition["bodySite"] == [
        {"coding": [{"system": icdo3, "code": "C44.5", "display": "Skin of trunk"}]},
        {"text": "posterior torso"},
    ]
    assert condition["note"] == [{"text": "Breslow thickness 1.2 mm; ulcerated"}]
    lesion = fhir(client, f"BodyStructure/{bank.l1.id}", h).json
    assert lesion["identifier"][0]["value"] == "Q-L1"
    assert lesion["patient"] == {"reference": f"Patient/{bank.p1.id}"}
    assert lesion["locationQualifier"] == [{"text": "left"}]

    def ids(kind, **query):
        return {e["resource"]["id"] for e in fhir(client, kind, h, **query).json.get("entry", [])}

    assert ids("Condition", code="C43") == {str(c.id) for c in (bank.c1, bank.c2, bank.c4)}
    assert ids("Condition", code="http://hl7.org/fhir/sid/icd-10|C43.5", subject=f"Patient/{bank.p2.id}") == {
        str(bank.c2.id)
    }
    assert ids("Condition", code="L40") == set()  # the psoriasis case is the other site's
    assert ids("BodyStructure", patient=f"Patient/{bank.p1.id}") == {str(bank.l1.id)}
    assert ids("BodyStructure", identifier="Q-L2") == {str(bank.l2.id)}
    r = fhir(client, "Condition", h, onset="2025")
    assert r.status_code == 400 and "'onset' is not a search parameter" in r.text


def test_searches_find_by_each_parameter(client, bank, technician, headers):
    h = headers(technician)

    def ids(**query):
        bundle = fhir(client, "Specimen", h, **query).json
        assert bundle["type"] == "searchset"
        return {int(e["resource"]["id"]) for e in bundle.get("entry", [])}

    tumour = bank.a1.parent_id
    assert ids(identifier=bank.a1.barcode) == {bank.a1.id}
    assert ids(identifier=f"urn:biobank-lims:specimen-barcode|{bank.a1.barcode}") == {bank.a1.id}
    assert ids(parent=f"Specimen/{tumour}") == {bank.a1.id, bank.dna1.id}
    assert ids(subject=f"Patient/{bank.p1.id}") == {tumour, bank.a1.id, bank.dna1.id}
    assert ids(subject=f"Patient/{bank.p1.id}", type="http://snomed.info/sct|258566005") == {bank.dna1.id}
    assert ids(patient=str(bank.p1.id), type="DNA") == {bank.dna1.id}
    assert bank.plasma.id not in ids(type="119361006")  # the other site's plasma
    assert ids(collected="2025-03-01", subject=f"Patient/{bank.p2.id}") == {
        s.id for s in (bank.a2, bank.a2.parent)
    }
    assert ids(collected="lt2025", subject=f"Patient/{bank.p2.id}") == set()
    assert ids(collected="ge2025-03", subject=f"Patient/{bank.p2.id}") != set()
    patients = fhir(client, "Patient", h, identifier=bank.p2.code).json
    assert [e["resource"]["id"] for e in patients["entry"]] == [str(bank.p2.id)]


def test_pages_follow_next_links_to_the_end(
    client,
    bank,
    technician,
    headers,
    site,
    db_session,
):

    h = headers(technician)
    bundle = fhir(client, "Specimen", h, _count=2).json
    total, seen = bundle["total"], []
    while True:
        seen += [e["resource"]["id"] for e in bundle["entry"]]
        following = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        if not following:
            break
        url = urlsplit(following[0])
        bundle = fhir(client, url.path.removeprefix("/fhir/r4/") + "?" + url.query, h).json
    here = set(db_session.scalars(sa.select(Specimen.id).where(Specimen.site_id == site.id)))
    assert len(seen) == len(set(seen)) == total == len(here) > 2
    assert {int(i) for i in seen} == here


@pytest.mark.parametrize(
    ("path", "query", "status", "words"),
    [
        ("Specimen", {"colour": "red"}, 400, "'colour' is not a search parameter of Specimen"),
        ("Specimen", {"collected": "2025-13-01"}, 400, "is not a date"),
        ("Specimen", {"collected": "yesterday"}, 400, "expected [eq|gt|lt|ge|le]YYYY"),
        ("Specimen", {"subject": "Group/1"}, 400, "expected Patient/<id>"),
        ("Specimen", {"type": "1234"}, 400, "no specimens are typed '1234'"),
        ("Specimen", {"status": "frozen"}, 400, "'frozen' is not a Specimen status"),
        ("Specimen", {"identifier": "http://other|X"}, 400, "not 'http://other'"),
        ("Specimen", {"_count": "0"}, 400, "_count: 1 to 500"),
        ("Specimen", {"_format": "xml"}, 400, "only JSON"),
        ("Patient", {"gender": "f"}, 400, "'f' is not male, female"),
        ("Patient", {"name": "Ada"}, 400, "'name' is not a search parameter of Patient"),
        ("Specimen/999999", {}, 404, "no specimen with id 999999"),
    ],
)
def test_bad_requests_are_operation_outcomes(client, technician, headers, path, query, status, words):
    r = fhir(client, path, headers(technician), **query)
    assert r.status_code == status
    [issue] = r.json["issue"]
    assert words in issue["diagnostics"], issue


def test_another_sites_and_anonymous_reads_are_refused(client, bank, technician, headers):
    r = fhir(client, f"Specimen/{bank.plasma.id}", headers(technician))
    assert r.status_code == 404 and r.json["issue"][0]["code"] == "not-found"
    r = fhir(client, f"Patient/{bank.p3.id}", headers(technician))
    assert r.status_code == 404
    r = fhir(client, "Specimen")
    assert r.status_code == 401 and r.json["issue"][0]["code"] == "login"


def test_bulk_export_writes_every_resource_as_ndjson(runner, bank, tmp_path, db_session):
    from biobank.models import Case, ConsentResponse, Lesion, Participant

    out = tmp_path / "fhir"
    result = runner.invoke(args=["export", "fhir", "--out", str(out), "--batch", "100"])
    assert result.exit_code == 0, result.output
    kinds = {
        "Patient": Participant,
        "Condition": Case,
        "BodyStructure": Lesion,
        "Consent": ConsentResponse,
        "Specimen": Specimen,
    }
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{k}.ndjson" for k in kinds)
    lines = {
        kind: [json.loads(line) for line in (out / f"{kind}.ndjson").read_text().splitlines()]
        for kind in kinds
    }
    for resources in lines.values():
        for resource in resources:
            valid(resource)
    ids = {kind: {r["id"] for r in resources} for kind, resources in lines.items()}
    for kind, model in kinds.items():
        assert ids[kind] == {str(i) for i in db_session.scalars(sa.select(model.id))}, kind
    # every reference resolves within the export
    for specimen in lines["Specimen"]:
        assert specimen["subject"]["reference"].removeprefix("Patient/") in ids["Patient"]
        for parent in specimen.get("parent", []):
            assert parent["reference"].removeprefix("Specimen/") in ids["Specimen"]
    for kind, key in (("Condition", "subject"), ("BodyStructure", "patient"), ("Consent", "patient")):
        for resource in lines[kind]:
            assert resource[key]["reference"].removeprefix("Patient/") in ids["Patient"]
    # pseudonymous whoever runs it
    text = (out / "Patient.ndjson").read_text()
    assert bank.p1.phi.family_name not in text and "birthDate" not in text
    assert f"{len(ids['Patient']):,} Patient, {len(ids['Condition']):,} Condition" in result.output


MII = Path(__file__).parents[3] / "fixtures" / "fhir" / "mii-biobank-r4"
PATIENT = {
    "resourceType": "Patient",
    "id": "mii-exa-test-data-patient-1",
    "identifier": [{"system": "https://uk-musterstadt.de/fhir/sid/patienten", "value": "42285243"}],
    "name": [{"family": "Musterfrau", "given": ["Erika"]}],
    "gender": "female",
    "birthDate": "1970-05-12",
}


def mii_bundle():
    """The MII biobank module's example Specimens (a blood draw, its plasma and buffy coat
    aliquot groups, two buffy coat aliquots and DNA from one; a tissue sample and an
    organoid from it) and their ServiceRequest, with the Patient they name."""
    entries = [
        {
            "fullUrl": "urn:uuid:7f0c3e35-1c4f-4a43-9d43-0e5b1b2c9a11",
            "resource": PATIENT,
            "request": {"method": "POST", "url": "Patient"},
        }
    ]
    for path in sorted(MII.glob("*.json")):
        resource = json.loads(path.read_text())
        entries.append({"resource": resource, "request": {"method": "POST", "url": resource["resourceType"]}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def post_bundle(client, h, bundle, **query):
    r = client.post(
        "/fhir/r4/",
        headers=h | {"Content-Type": "application/fhir+json"},
        data=json.dumps(bundle),
        query_string=query or None,
    )
    assert r.mimetype == "application/fhir+json", r.data[:300]
    valid(r.json)
    return r


def test_the_mii_examples_register_as_expected_tubes(client, technician, headers, site, make, db_session):
    from biobank.models import Participant, ParticipantPHI

    study = make.study()
    h = headers(technician)
    bundle = mii_bundle()
    valid(bundle)
    r = post_bundle(client, h, bundle, study=study.code)
    assert r.status_code == 200, r.json
    answer = r.json
    assert answer["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in answer["entry"]]
    assert statuses.count("201 Created") == 1 + 8  # the patient and eight tubes
    tubes = {
        s.barcode: s
        for s in db_session.scalars(
            sa.select(Specimen).where(
                Specimen.barcode.in_(
                    [
                        "12345",
                        "12345-PL",
                        "12345-BC",
                        "12345-BC-1",
                        "12345-BC-2",
                        "12345-DNA-1",
                        "6789",
                        "6789-ORG-1",
                    ]
                )
            )
        )
    }
    assert len(tubes) == 8
    assert {t.status.value for t in tubes.values()} == {"expected"}
    assert tubes["12345"].material_type.value == "WHOLE_BLOOD"
    assert tubes["12345"].collection_event.collected_at == dt.datetime(2018, 6, 7, 14, 54, tzinfo=dt.UTC)
    assert (tubes["12345-PL"].parent.barcode, tubes["12345-PL"].lineage.value) == ("12345", "derivative")
    assert (tubes["12345-BC-1"].parent.barcode, tubes["12345-BC-1"].lineage.value) == ("12345-BC", "aliquot")
    assert tubes["12345-DNA-1"].parent.barcode == "12345-BC-2"
    assert tubes["12345-DNA-1"].material_type.value == "DNA"
    assert tubes["6789"].material_type.value == "TISSUE_FROZEN"
    assert (tubes["6789"].quantity, tubes["6789"].unit.value) == (5, "g")
    assert tubes["6789-ORG-1"].material_type.value == "OTHER"
    [person] = {t.participant_id for t in tubes.values()}
    participant = db_session.get(Participant, person)
    phi = db_session.scalar(sa.select(ParticipantPHI).where(ParticipantPHI.participant_id == person))
    assert (participant.sex.value, participant.birth_year) == ("female", 1970)
    assert (phi.medical_record_number, phi.family_name) == ("42285243", "Musterfrau")
    assert participant.code != "42285243"  # the hospital's number is not the pseudonym
    # the same patient again, with a new tube: found by the hospital's identifier
    again = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": PATIENT},
            {
                "resource": {
                    "resourceType": "Specimen",
                    "identifier": [{"value": "12345-SER"}],
                    "type": {"coding": [{"system": "http://snomed.info/sct", "code": "119364003"}]},
                    "subject": {"reference": "Patient/mii-exa-test-data-patient-1"},
                    "collection": {"collectedDateTime": "2019-01-02T08:00:00Z"},
                }
            },
        ],
    }
    r = post_bundle(client, h, again, study=study.code)
    assert [e["response"]["status"] for e in r.json["entry"]] == ["200 OK", "201 Created"]
    assert r.json["entry"][0]["response"]["location"] == f"Patient/{person}"
    # the receiving scan takes an expected tube in
    receipt = client.post("/api/v1/scans/", headers=h, json=scan("12345-SER", "receive"))
    assert receipt.status_code in (200, 201), receipt.json


def test_a_bad_bundle_names_every_problem_and_writes_nothing(client, technician, headers, make, db_session):
    from biobank.models import Participant

    study = make.study()
    bundle = mii_bundle()
    at = [i for i, e in enumerate(bundle["entry"]) if e["resource"]["resourceType"] == "Specimen"]
    specimens = [bundle["entry"][i]["resource"] for i in at]
    specimens[0]["type"] = {"coding": [{"system": "http://snomed.info/sct", "code": "1"}]}
    specimens[1]["subject"] = {"reference": "Patient/nobody"}
    specimens[2]["container"][0]["specimenQuantity"]["code"] = "furlong"
    specimens[3]["identifier"][0]["value"] = "bad barcode!"
    bundle["entry"].append({"resource": {"resourceType": "Organization", "name": "x"}})
    before = [db_session.scalar(sa.select(sa.func.count()).select_from(m)) for m in (Participant, Specimen)]
    r = post_bundle(client, headers(technician), bundle, study=study.code)
    assert r.status_code == 400
    where = {i["expression"][0]: i["diagnostics"] for i in r.json["issue"]}
    assert len(where) == 5, where
    assert "no SNOMED CT or MIABIS sample type" in where[f"Bundle.entry[{at[0]}].resource.type"]
    assert "is no Patient of this Bundle" in where[f"Bundle.entry[{at[1]}].resource.subject"]
    assert "furlong" in where[f"Bundle.entry[{at[2]}].resource.container[0].specimenQuantity"]
    assert "is not a tube barcode" in where[f"Bundle.entry[{at[3]}].resource.identifier[0].value"]
    assert "Organization is not taken" in where[f"Bundle.entry[{len(bundle['entry']) - 1}].resource"]
    # a tube already here: refused at its entry, after the patient was written: rolled back
    make.specimen(participant=make.participant(site=make.site()), barcode="6789")
    r = post_bundle(client, headers(technician), mii_bundle(), study=study.code)
    assert r.status_code in (400, 409)
    [issue] = r.json["issue"]
    assert issue["expression"][0].startswith("Bundle.entry[") and "6789" in issue["diagnostics"]
    db_session.expire_all()
    after = [db_session.scalar(sa.select(sa.func.count()).select_from(m)) for m in (Participant, Specimen)]
    assert after == [before[0] + 1, before[1] + 1]  # only the tube made above


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"resourceType": "Patient"}, "send a FHIR Bundle"),
        ({"resourceType": "Bundle", "type": "batch", "entry": []}, "must be 'transaction'"),
        ({"resourceType": "Bundle", "type": "transaction"}, "has no entries"),
        ("not json", "not JSON"),
    ],
)
def test_what_is_not_a_transaction_is_refused(client, technician, headers, body, words):
    data = body if isinstance(body, str) else json.dumps(body)
    r = client.post(
        "/fhir/r4/", headers=headers(technician) | {"Content-Type": "application/fhir+json"}, data=data
    )
    assert r.status_code == 400 and words in r.json["issue"][0]["diagnostics"]


def test_researchers_do_not_register(client, researcher, headers):
    r = post_bundle(client, headers(researcher), mii_bundle())
    assert r.status_code == 403 and r.json["issue"][0]["code"] == "forbidden"


def test_consents_and_images(
    client,
    bank,
    technician,
    researcher,
    headers,
    db_session,
    tmp_path,
):
    from biobank.models import ConsentResponse, ConsentTier
    from biobank.models.vocab import ConsentScope
    from tests.biobank.api.test_images import picture, upload

    h = headers(technician)
    bundle = fhir(client, "Consent", h, patient=f"Patient/{bank.p1.id}").json
    consents = {
        e["resource"]["provision"]["code"][0]["coding"][0]["code"]: e["resource"] for e in bundle["entry"]
    }
    assert set(consents) == {scope.value for scope in ConsentScope}
    research = consents["research_use"]
    assert (research["status"], research["provision"]["type"]) == ("active", "permit")
    assert research["provision"]["code"][0]["coding"][1]["code"] == "DUO:0000042"
    genetic = db_session.scalars(
        sa.select(ConsentResponse)
        .join(ConsentTier)
        .where(
            ConsentResponse.participant_id == bank.p1.id, ConsentTier.scope == ConsentScope.GENETIC_RESEARCH
        )
    ).one()
    genetic.withdrawn_at = dt.datetime(2026, 1, 2, 3, 4, tzinfo=dt.UTC)
    db_session.commit()
    withdrawn = fhir(client, f"Consent/{genetic.id}", h).json
    assert withdrawn["status"] == "inactive"
    assert withdrawn["provision"]["period"] == {"end": "2026-01-02T03:04:00Z"}
    assert "entry" not in fhir(client, "Consent", h, patient=f"Patient/{bank.p4.id}").json

    r = upload(client, h, picture(tmp_path, "derm.jpg"), modality="dermoscopy", lesion="Q-L1")
    assert r.status_code == 201, r.json
    media = fhir(client, f"Media/{r.json['id']}", h).json
    assert media["subject"] == {"reference": f"Patient/{bank.p1.id}"}
    assert media["bodySite"] == {"text": "posterior torso"}
    with client.get(media["content"]["url"].removeprefix("http://localhost"), headers=h) as content:
        assert content.status_code == 200 and len(content.data) == media["content"]["size"]
    found = fhir(client, "Media", h, patient=f"Patient/{bank.p1.id}").json
    assert [e["resource"]["id"] for e in found["entry"]] == [media["id"]]
    # researchers see images only through an approved request
    assert fhir(client, f"Media/{media['id']}", headers(researcher)).status_code == 404
    assert "entry" not in fhir(client, "Media", headers(researcher)).json


def test_a_snapshot_as_a_group(
    client,
    bank,
    admin,
    manager,
    researcher,
    headers,
    make,
    other_site,
):
    from tests.biobank.api.test_cohorts import freeze, make_cohort
    from tests.biobank.api.test_query import eq

    there = make.participant(site=other_site)
    make.case(participant=there)  # a melanoma case of the other site
    mh, rh, ah = headers(manager), headers(researcher), headers(admin)
    cohort = make_cohort(client, ah, eq("cases.disease_group", "melanoma"), level="cases")
    snap = freeze(client, ah, cohort["id"])  # across the sites
    group = fhir(client, f"Group/{snap['id']}", mh).json
    assert group["quantity"] == 4  # Q-C1, Q-C2, Q-C4 and the other site's
    assert {m["entity"]["reference"] for m in group["member"]} == {
        f"Patient/{p.id}" for p in (bank.p1, bank.p2, bank.p4)
    }  # not the other site's
    assert group["characteristic"][0]["valueCodeableConcept"]["text"] == "cases"
    found = fhir(client, "Group", mh).json
    assert [e["resource"]["id"] for e in found["entry"]] == [str(snap["id"])]
    # a researcher's own snapshot: no size (counts are protected), no members
    mine = make_cohort(client, rh, eq("cases.disease_group", "melanoma"), level="cases")
    theirs = freeze(client, rh, mine["id"])
    group = fhir(client, f"Group/{theirs['id']}", rh).json
    assert "quantity" not in group and "member" not in group
    # another's cohort is not found
    assert fhir(client, f"Group/{snap['id']}", rh).status_code == 404


def test_a_derivative_carries_the_step_that_made_it(
    client, make, site, technician, headers, runner, tmp_path
):
    from biobank.models.vocab import MaterialType, QuantityUnit

    person = make.participant(site=site)
    blood = make.specimen(
        participant=person,
        material_type=MaterialType.WHOLE_BLOOD,
        unit=QuantityUnit.ML,
        collection_event=make.visit(participant=person),
    )
    h = headers(technician)
    r = client.post(
        f"/api/v1/specimens/{blood.id}/aliquots",
        headers=h,
        json={
            "count": 2,
            "quantity": "2",
            "material_type": "PLASMA",
            "unit": "mL",
            "processing": {
                "method": "centrifugation 2,000 g 10 min",
                "temperature": "4 °C",
                "started_at": "2025-03-01T10:00:00Z",
                "ended_at": "2025-03-01T10:10:00Z",
                "kit_lot": "L2203",
            },
        },
    )
    assert r.status_code == 201, r.json
    plasma = r.json[0]["id"]
    step = {
        "description": "centrifugation 2,000 g 10 min, at 4 °C, kit lot L2203",
        "timePeriod": {"start": "2025-03-01T10:00:00Z", "end": "2025-03-01T10:10:00Z"},
    }
    assert fhir(client, f"Specimen/{plasma}", h).json["processing"][0] == step
    # the same in a search page and in the bulk export
    page = fhir(client, "Specimen", h, parent=f"Specimen/{blood.id}").json
    assert [e["resource"]["processing"][0] for e in page["entry"]] == [step, step]
    assert "processing" not in fhir(client, f"Specimen/{blood.id}", h).json
    assert runner.invoke(args=["export", "fhir", "--out", str(tmp_path)]).exit_code == 0
    exported = {r["id"]: r for r in map(json.loads, (tmp_path / "Specimen.ndjson").read_text().splitlines())}
    assert exported[str(plasma)]["processing"][0] == step
