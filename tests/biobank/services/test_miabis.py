"""MIABIS on FHIR and the BBMRI-ERIC Directory: `biobank export miabis`, read back by
BBMRI-ERIC's own library (`miabis-on-fhir`) and checked by HL7's R4 JSON Schema and the
R4B models; only consenting donors' held samples go out, pseudonymously."""

from __future__ import annotations

import csv
import json

import pytest
from miabis_model import Biobank, Collection, Gender, Sample, SampleDonor, StorageTemperature

from biobank.models.vocab import Sex
from tests.biobank.api.test_fhir import valid
from tests.biobank.api.test_query import bank  # noqa: F401

SETTINGS = {
    "MIABIS_BIOBANK_ID": "bbmri-eric:ID:CN_SKIN",
    "MIABIS_BIOBANK_NAME": "Skin biobank",
    "MIABIS_COUNTRY": "CN",
    "MIABIS_CONTACT_NAME": "Mei",
    "MIABIS_CONTACT_SURNAME": "Lin",
    "MIABIS_CONTACT_EMAIL": "biobank@example.org",
    "MIABIS_JURISTIC_PERSON": "The Hospital",
}


@pytest.fixture
def described(app, monkeypatch):
    for key, value in SETTINGS.items():
        monkeypatch.setitem(app.config, key, value)


def export(runner, tmp_path):
    out = tmp_path / "miabis"
    result = runner.invoke(args=["export", "miabis", "--out", str(out)])
    assert result.exit_code == 0, result.output
    bundle = json.loads((out / "miabis-transaction.json").read_text())
    with (out / "collections.tsv").open(newline="") as f:
        table = list(csv.DictReader(f, delimiter="\t"))
    return result, bundle, table


def test_the_export_reads_back_with_bbmri_erics_library(
    runner,
    bank,
    described,
    tmp_path,
    db_session,
):
    bank.p1.sex = Sex.FEMALE
    bank.p1.birth_year = 1970
    db_session.commit()
    result, bundle, table = export(runner, tmp_path)
    assert bundle["type"] == "transaction"
    by_id = {}
    for entry in bundle["entry"]:
        resource = entry["resource"]
        valid(resource)
        assert entry["request"] == {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"}
        by_id[resource["id"]] = resource

    biobank = Biobank.from_json(by_id["biobank"], by_id["juristic-person"])
    assert (biobank.identifier, biobank.country, biobank.contact_email) == (
        "bbmri-eric:ID:CN_SKIN",
        "CN",
        "biobank@example.org",
    )

    donor = SampleDonor.from_json(by_id[f"donor-{bank.p1.id}"])
    assert (donor.identifier, donor.gender) == (bank.p1.code, Gender.FEMALE)
    # Q-C4's donor refused research use: neither they nor their tubes go out
    assert f"donor-{bank.p4.id}" not in by_id
    assert f"sample-{bank.a4.id}" not in by_id

    observations = [
        r
        for r in by_id.values()
        if r["resourceType"] == "Observation"
        and r["specimen"]["reference"] == f"Specimen/sample-{bank.a1.parent_id}"
    ]
    tumour = Sample.from_json(by_id[f"sample-{bank.a1.parent_id}"], observations, bank.p1.code)
    assert tumour.identifier == bank.a1.parent.barcode
    assert tumour.material_type == "TissueFreshFrozen"
    assert tumour.storage_temperature is StorageTemperature.TEMPERATURE_MINUS_60_TO_MINUS_85
    assert tumour.sample_collection_id == "bbmri-eric:ID:CN_SKIN:collection:melanoma"
    assert [code for code, _ in tumour.diagnoses_icd10_code_with_observed_datetime] == ["C43.5"]
    dna = Sample.from_json(by_id[f"sample-{bank.dna1.id}"], [], bank.p1.code)
    assert dna.material_type == "DNA"

    melanoma_samples = [
        r["identifier"][0]["value"]
        for r in by_id.values()
        if r["resourceType"] == "Specimen"
        and r["extension"][0]["valueIdentifier"]["value"].endswith(":melanoma")
    ]
    melanoma = Collection.from_json(
        by_id["collection-melanoma"],
        by_id["collection-organization-melanoma"],
        "bbmri-eric:ID:CN_SKIN",
        melanoma_samples,
    )
    assert melanoma.diagnoses == ["C43.5"]
    assert set(melanoma.material_types) == {"TissueFrozen", "DNA"}
    assert melanoma.age_range_low == melanoma.age_range_high == 55
    assert melanoma.number_of_subjects is None  # two donors: a count under 5 is not published
    assert melanoma.identifier == "bbmri-eric:ID:CN_SKIN:collection:melanoma"

    rows = {row["id"]: row for row in table}
    assert set(rows) == {
        "bbmri-eric:ID:CN_SKIN:collection:melanoma",
        "bbmri-eric:ID:CN_SKIN:collection:psoriasis",
    }
    assert rows["bbmri-eric:ID:CN_SKIN:collection:melanoma"]["number_of_donors"] == "<5"
    assert rows["bbmri-eric:ID:CN_SKIN:collection:psoriasis"]["diagnosis_available"] == "urn:miriam:icd:L40.0"
    assert "2 collections" in result.output

    text = json.dumps(bundle)
    for phi in (bank.p1.phi.family_name, bank.p1.phi.medical_record_number, "birthDate"):
        assert phi not in text


def test_larger_collections_publish_rounded_counts(runner, make, site, described, tmp_path):
    people = [make.participant(site=site) for _ in range(7)]
    for person in people:
        case = make.case(participant=person)
        make.specimen(participant=person, collection_event=make.visit(participant=person, case=case))
    _, bundle, table = export(runner, tmp_path)
    [row] = table
    assert row["number_of_donors"] == "5"  # 7, rounded to the nearest 5
    group = next(e["resource"] for e in bundle["entry"] if e["resource"]["id"] == "collection-melanoma")
    # every sample is a member of its collection
    assert json.dumps(group).count('"Specimen/sample-') == 7


def test_an_undescribed_biobank_is_refused_by_name(runner, tmp_path):
    result = runner.invoke(args=["export", "miabis", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "set BIOBANK_MIABIS_BIOBANK_ID" in result.output
    assert not (tmp_path / "x" / "miabis-transaction.json").exists()
