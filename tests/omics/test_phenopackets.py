"""GA4GH Phenopackets v2 of a case and of a cohort snapshot, each parsed by the `phenopackets`
package (the schema's own protobuf classes: an unknown or misspelt field is refused), and
what they hold and never hold."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa
from google.protobuf.json_format import ParseError
from phenopackets import Cohort, Phenopacket

from biobank.models import ConsentResponse, ConsentTier
from biobank.models.vocab import AjccStage, ConsentScope, Laterality
from tests.biobank.api.test_cohorts import bank, freeze, make_cohort  # noqa: F401
from tests.biobank.api.test_query import eq
from tests.biobank.api.test_requests import approved


def parsed(document, message):
    """*document* read by the Phenopackets schema's own classes, field names checked."""
    from google.protobuf.json_format import Parse

    return Parse(json.dumps(document), message())


def resources_cover_every_prefix(document):
    used = set()

    def walk(node):
        if isinstance(node, dict):
            if set(node) == {"id", "label"}:
                used.add(node["id"].split(":", 1)[0])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk({k: v for k, v in document.items() if k != "metaData"})
    declared = {r["namespacePrefix"] for r in document["metaData"]["resources"]}
    assert used <= declared, used - declared


def packet(client, h, case_id):
    r = client.get(f"/api/v1/cases/{case_id}/phenopacket", headers=h)
    if r.status_code == 200:
        parsed(r.json, Phenopacket)
        resources_cover_every_prefix(r.json)
    return r


def test_the_parser_refuses_what_the_schema_does_not_know():
    with pytest.raises(ParseError, match="dateOfBirthday"):
        parsed({"id": "x", "subject": {"id": "P", "dateOfBirthday": "1970-01-01"}}, Phenopacket)


def test_a_melanoma_case_as_a_phenopacket(client, bank, technician, headers, db_session):
    p1, c1 = bank.p1, bank.c1
    p1.birth_year = 1970
    c1.diagnosis_date = dt.date(2025, 2, 10)
    c1.ajcc_stage, c1.ulceration = AjccStage.IIA, True
    c1.icdo3_morphology = "8743/3"
    bank.l1.laterality = Laterality.LEFT
    db_session.commit()
    r = packet(client, headers(technician), c1.id)
    assert r.status_code == 200, r.json
    doc = r.json
    assert doc["id"] == "Q-C1"
    assert doc["subject"] == {
        "id": p1.code,
        "sex": "UNKNOWN_SEX",
        "taxonomy": {"id": "NCBITaxon:9606", "label": "Homo sapiens"},
        "timeAtLastEncounter": {"age": {"iso8601duration": "P55Y"}},
    }
    [disease] = doc["diseases"]
    assert disease["term"] == {"id": "ICD10:C43.5", "label": "Malignant melanoma of skin (C43.5)"}
    assert disease["onset"] == {"age": {"iso8601duration": "P55Y"}}
    assert disease["diseaseStage"] == [
        {"id": "NCIT:C137667", "label": "Pathologic Stage IIA Cutaneous Melanoma AJCC v8"}
    ]
    assert disease["primarySite"]["id"] == "UBERON:0002100"  # posterior torso: trunk
    assert disease["laterality"]["id"] == "HP:0012835"
    assert doc["phenotypicFeatures"] == [
        {"type": {"id": "HP:0200042", "label": "Skin ulcer"}, "excluded": False}
    ]
    [breslow] = doc["measurements"]
    assert breslow["value"]["quantity"]["value"] == 1.2
    assert breslow["value"]["quantity"]["unit"]["id"] == "UO:0000016"

    samples = {s["id"]: s for s in doc["biosamples"]}
    tumour = bank.a1.parent
    assert set(samples) == {tumour.barcode, bank.a1.barcode, bank.dna1.barcode}
    assert samples[bank.a1.barcode]["derivedFromId"] == tumour.barcode
    assert samples[bank.dna1.barcode]["derivedFromId"] == tumour.barcode
    assert samples[tumour.barcode]["sampleType"]["id"] == "SNOMED:119376003"
    assert samples[tumour.barcode]["tumorProgression"]["id"] == "NCIT:C8509"
    assert samples[tumour.barcode]["histologicalDiagnosis"] == {
        "id": "ICDO:8743/3",
        "label": "Superficial spreading melanoma",
    }
    assert samples[tumour.barcode]["procedure"]["code"]["id"] == "NCIT:C28221"
    assert samples[tumour.barcode]["timeOfCollection"] == {"age": {"iso8601duration": "P55Y"}}
    # the DNA: its own sample type, the skin it was extracted from, and the VCF read from it
    dna = samples[bank.dna1.barcode]
    assert dna["sampleType"]["id"] == "SNOMED:258566005"
    assert dna["sampledTissue"]["id"] == "UBERON:0002097"
    [vcf] = dna["files"]
    sha = db_session.execute(sa.text("SELECT sha256 FROM omics_files")).scalar_one()
    assert vcf["uri"] == f"drs://localhost/{sha}"
    assert vcf["individualToFileIdentifiers"] == {p1.code: "MEL-A1"}
    assert vcf["fileAttributes"]["fileFormat"] == "vcf"
    # the lesion's dermoscopy image belongs to no tube: it is the case's own file
    [image] = doc["files"]
    assert image["fileAttributes"]["description"] == "dermoscopy image"
    assert (
        client.get(
            image["uri"].replace("drs://localhost", "/ga4gh/drs/v1/objects"), headers=headers(technician)
        ).status_code
        == 200
    )


def test_no_identifying_data_and_no_dates(client, bank, admin, headers, db_session):
    bank.p1.birth_year = 1970
    db_session.commit()
    text = packet(client, headers(admin), bank.c1.id).get_data(as_text=True)
    phi = bank.p1.phi
    for secret in (phi.given_name, phi.family_name, phi.medical_record_number, "1970", "2025-03-01"):
        assert secret not in text
    assert "dateOfBirth" not in text and "timestamp" not in text


def test_researchers_see_only_consenting_patients(client, bank, researcher, technician, headers):
    # Q-C4's patient never consented: staff of the site read the case, researchers do not
    assert packet(client, headers(technician), bank.c4.id).status_code == 200
    assert packet(client, headers(researcher), bank.c4.id).status_code == 404
    assert packet(client, headers(researcher), bank.c1.id).status_code == 200
    # an omics file is a researcher's only through an approved request
    assert "files" not in json.dumps(packet(client, headers(researcher), bank.c1.id).json["biosamples"])
    # another site's case (Q-C3) is not found
    assert packet(client, headers(technician), bank.c3.id).status_code == 404


def test_a_snapshot_as_a_cohort(
    client,
    bank,
    manager,
    researcher,
    admin,
    headers,
    db_session,
):
    mh, rh = headers(manager), headers(researcher)
    cohort = make_cohort(client, rh, eq("cases.disease_group", "melanoma"), level="cases")
    snap = freeze(client, rh, cohort["id"])
    url = f"/api/v1/cohorts/{cohort['id']}/phenopackets"
    assert client.get(url, headers=rh).status_code == 403  # no approved request yet
    approved(client, rh, mh, cohort["id"], snapshot_id=snap["id"])
    r = client.get(url, headers=rh, query_string={"snapshot": snap["id"]})
    assert r.status_code == 200, r.json
    parsed(r.json, Cohort)
    resources_cover_every_prefix(r.json)
    # Q-C1 and Q-C2; Q-C4's patient does not consent and is counted out
    assert [m["id"] for m in r.json["members"]] == ["Q-C1", "Q-C2"]
    assert r.headers["X-Excluded-By-Consent"] == "1"

    # the VCF of Q-C1's DNA holds other people's genotypes too: not the researcher's to
    # read (as through DRS), nor a manager's (unlinked columns); an administrator's
    def dna(document):
        return next(s for s in document["members"][0]["biosamples"] if s["id"] == bank.dna1.barcode)

    assert "files" not in dna(r.json)
    r = client.get(url, headers=mh, query_string={"snapshot": snap["id"]})
    assert r.status_code == 200 and "files" not in dna(r.json)
    ah = headers(admin)
    r = client.get(url, headers=ah, query_string={"snapshot": snap["id"]})
    assert dna(r.json)["files"][0]["individualToFileIdentifiers"] == {bank.p1.code: "MEL-A1"}

    # withdrawn genetic consent takes the VCF out, not the case
    genetic = db_session.scalars(
        sa.select(ConsentResponse)
        .join(ConsentTier)
        .where(
            ConsentResponse.participant_id == bank.p1.id, ConsentTier.scope == ConsentScope.GENETIC_RESEARCH
        )
    ).one()
    genetic.withdrawn_at = dt.datetime.now(dt.UTC)
    db_session.commit()
    r = client.get(url, headers=ah, query_string={"snapshot": snap["id"]})
    assert r.status_code == 200
    member = r.json["members"][0]
    assert member["id"] == "Q-C1" and "files" not in json.dumps(member["biosamples"])


def test_a_cohort_never_frozen_or_not_ones_own(client, bank, manager, researcher, headers):
    mh = headers(manager)
    cohort = make_cohort(client, mh, eq("cases.disease_group", "melanoma"), level="cases")
    url = f"/api/v1/cohorts/{cohort['id']}/phenopackets"
    assert client.get(url, headers=mh).status_code == 409
    assert client.get(url, headers=headers(researcher)).status_code == 404
    freeze(client, mh, cohort["id"])
    assert client.get(url, headers=mh, query_string={"snapshot": "x"}).status_code == 422
    assert client.get(url, headers=mh).status_code == 200
