"""GA4GH Beacon v2: every response validated against the Beacon v2 framework and default-model
JSON Schemas (fixtures/beacon-v2, the schemas' own repository), and what each asker learns:
anonymous callers a yes or no, researchers protected counts, staff their sites' records;
donors without consent are never counted."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from biobank.models import ConsentResponse, ConsentTier
from biobank.models.vocab import ConsentScope, DiseaseGroup, MaterialType, Sex
from tests.omics.test_omics_api import _upload

SCHEMAS = Path(__file__).parents[2] / "fixtures" / "beacon-v2"
RAW = "https://raw.githubusercontent.com/ga4gh-beacon/beacon-v2/main/"
VRS = "https://w3id.org/ga4gh/schema/vrs/1.3/vrs.json"


def _registry() -> Registry:
    """Every schema file under the address its ``$ref``s use. VRS 1.3 is not among the
    files: its Location is given as VRS defines a SequenceLocation, and its two variation
    kinds match nothing, so a ``variation`` must be Beacon's own LegacyVariation."""
    resources = []
    for path in SCHEMAS.rglob("*.json"):
        if "examples" in path.parts:
            continue
        contents = json.loads(path.read_text())
        contents.pop("$id", None)  # addressed by where the $refs look for it
        uri = RAW + path.relative_to(SCHEMAS).as_posix()
        resources.append((uri, Resource.from_contents(contents, default_specification=_draft())))
    # the default model's records refer to a ../common/info.json the model lacks: the
    # framework's (any object) is the one meant
    info = json.loads((SCHEMAS / "framework/json/common/info.json").read_text())
    info.pop("$id", None)
    resources.append(
        (
            RAW + "models/json/beacon-v2-default-model/common/info.json",
            Resource.from_contents(info, default_specification=_draft()),
        )
    )
    number = {
        "type": "object",
        "required": ["type", "value"],
        "properties": {"type": {"const": "Number"}, "value": {"type": "integer"}},
    }
    vrs = {
        "definitions": {
            "Location": {
                "type": "object",
                "required": ["type", "sequence_id", "interval"],
                "properties": {
                    "type": {"const": "SequenceLocation"},
                    "sequence_id": {"type": "string", "pattern": r"^\w[^:]+:.+$"},
                    "interval": {
                        "type": "object",
                        "required": ["type", "start", "end"],
                        "properties": {"type": {"const": "SequenceInterval"}, "start": number, "end": number},
                    },
                },
            },
            "MolecularVariation": {"not": {}},
            "SystemicVariation": {"not": {}},
        }
    }
    resources.append((VRS, Resource.from_contents(vrs, default_specification=_draft())))
    return Registry().with_resources(resources)


def _draft():
    from referencing.jsonschema import DRAFT202012

    return DRAFT202012


REGISTRY = _registry()


def valid(document, schema_path):
    """*document* checked against the schema at *schema_path* (under fixtures/beacon-v2)."""
    validator = Draft202012Validator({"$ref": RAW + schema_path}, registry=REGISTRY)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
    return document


MODEL = "models/json/beacon-v2-default-model/"
RECORD_SCHEMAS = {
    "g_variants": MODEL + "genomicVariations/defaultSchema.json",
    "individuals": MODEL + "individuals/defaultSchema.json",
    "biosamples": MODEL + "biosamples/defaultSchema.json",
}
RESPONSES = {
    "boolean": "framework/json/responses/beaconBooleanResponse.json",
    "count": "framework/json/responses/beaconCountResponse.json",
    "record": "framework/json/responses/beaconResultsetsResponse.json",
}


def ask(client, entry, headers=None, method="GET", **query):
    """A Beacon answer, checked against the framework's response schema for the
    granularity it says it returns, and each record against the default model."""
    if method == "POST":
        r = client.post(f"/beacon/v2/{entry}", headers=headers or {}, json=query)
    else:
        r = client.get(f"/beacon/v2/{entry}", headers=headers or {}, query_string=query)
    if r.status_code != 200:
        valid(r.json, "framework/json/responses/beaconErrorResponse.json")
        return r
    granularity = r.json["meta"]["returnedGranularity"]
    valid(r.json, RESPONSES[granularity])
    for result_set in r.json.get("response", {}).get("resultSets", []):
        for record in result_set["results"]:
            valid(record, RECORD_SCHEMAS[entry])
    return r


def _vcf(path, samples, rows):
    fields = "Allele|Consequence|IMPACT|SYMBOL|HGVSp"
    lines = [
        "##fileformat=VCFv4.2",
        "##reference=GRCh37",
        "##contig=<ID=1>",
        "##contig=<ID=7>",
        f'##INFO=<ID=CSQ,Number=.,Type=String,Description="VEP. Format: {fields}">',
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *samples]),
    ]
    for (chrom, pos, ref, alt, csq), carriers in rows:
        lines.append(
            "\t".join(
                [
                    chrom,
                    str(pos),
                    ".",
                    ref,
                    alt,
                    ".",
                    "PASS",
                    f"CSQ={csq}",
                    "GT",
                    *("0/1" if s in carriers else "0/0" for s in samples),
                ]
            )
        )
    path.write_text("\n".join(lines) + "\n")
    return path


V600E = ("7", 140453136, "A", "T", "T|missense_variant|MODERATE|BRAF|p.Val600Glu")
Q61K = ("1", 115256530, "G", "T", "T|missense_variant|MODERATE|NRAS|p.Gln61Lys")
DELETION = ("7", 140453140, "CA", "C", "-|frameshift_variant|HIGH|BRAF|.")


@pytest.fixture
def bank(client, make, site, other_site, admin, headers, db_session, tmp_path):
    """Eight melanoma donors here and three there with tumour DNA; one of those here has
    withdrawn consent to genetic research and alone carries the deletion; a psoriasis donor
    there has plasma only."""
    donors, dna = [], []
    for n in range(11):
        where = site if n < 8 else other_site
        person = make.participant(site=where, sex=Sex.FEMALE if n % 2 else Sex.MALE)
        case = make.case(
            participant=person, disease_group=DiseaseGroup.MELANOMA, icd10_code="C43.5" if n % 3 else "C43.6"
        )
        visit = make.visit(participant=person, case=case)
        donors.append(person)
        dna.append(make.specimen(participant=person, collection_event=visit, material_type=MaterialType.DNA))
    withdrawn = donors[0]
    genetic = db_session.scalar(
        sa.select(ConsentResponse)
        .join(ConsentTier)
        .where(
            ConsentResponse.participant_id == withdrawn.id, ConsentTier.scope == ConsentScope.GENETIC_RESEARCH
        )
    )
    genetic.withdrawn_at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    psoriasis = make.participant(site=other_site, sex=Sex.FEMALE)
    make.case(participant=psoriasis, disease_group=DiseaseGroup.PSORIASIS, icd10_code="L40.0")
    plasma = make.specimen(participant=psoriasis, material_type=MaterialType.PLASMA)
    db_session.commit()
    samples = [f"S{n}" for n in range(11)]
    rows = [(Q61K, {"S4", "S10"}), (V600E, {"S0", "S1", "S2", "S3", "S9"}), (DELETION, {"S0"})]
    path = _vcf(tmp_path / "beacon.vcf", samples, rows)
    r = _upload(
        client,
        headers(admin),
        path,
        kind="exome",
        reference_genome="GRCh37",
        sample_map=dict(zip(samples, [s.barcode for s in dna], strict=True)),
    )
    assert r.status_code == 201, r.json
    return {"donors": donors, "dna": dna, "withdrawn": withdrawn, "psoriasis": psoriasis, "plasma": plasma}


def test_anonymous_callers_get_a_yes_or_no(client, bank):
    r = ask(client, "g_variants", geneId="BRAF", aminoacidChange="V600E")
    assert r.json["meta"]["returnedGranularity"] == "boolean"
    assert r.json["responseSummary"] == {"exists": True}
    assert ask(client, "g_variants", geneId="KIT").json["responseSummary"] == {"exists": False}
    # asking for more gives no more
    r = ask(client, "individuals", requestedGranularity="record", filters="diseaseGroup:melanoma")
    assert r.json["responseSummary"] == {"exists": True} and "response" not in r.json
    # a sequence query in Beacon's 0-based coordinates, and one base off
    hit = {
        "referenceName": "7",
        "start": "140453135",
        "referenceBases": "A",
        "alternateBases": "T",
        "assemblyId": "GRCh37",
    }
    assert ask(client, "g_variants", **hit).json["responseSummary"]["exists"] is True
    assert (
        ask(client, "g_variants", **hit | {"start": "140453136"}).json["responseSummary"]["exists"] is False
    )
    assert (
        ask(client, "g_variants", **hit | {"assemblyId": "GRCh38"}).json["responseSummary"]["exists"] is False
    )
    # RefSeq names the build itself
    assert (
        ask(client, "g_variants", **hit | {"referenceName": "NC_000007.13"}).json["responseSummary"]["exists"]
        is True
    )
    assert (
        ask(client, "g_variants", **hit | {"referenceName": "refseq:NC_000007.14", "assemblyId": ""}).json[
            "responseSummary"
        ]["exists"]
        is False
    )


def test_researchers_get_protected_counts(client, bank, researcher, headers):
    h = headers(researcher)
    r = ask(client, "individuals", h, requestedGranularity="record", filters="diseaseGroup:melanoma")
    assert r.json["meta"]["returnedGranularity"] == "count" and "response" not in r.json
    assert r.json["responseSummary"] == {"exists": True, "numTotalResults": 10}  # 11 → 10
    r = ask(client, "individuals", h, requestedGranularity="count", filters="NCIT:C16576")
    females = sum(1 for p in bank["donors"] if p.sex is Sex.FEMALE) + 1  # and psoriasis
    assert females == 6 and r.json["responseSummary"]["numTotalResults"] == 5
    # one variant is too few to count: a yes only
    r = ask(client, "g_variants", h, requestedGranularity="count", geneId="BRAF")
    assert r.json["meta"]["returnedGranularity"] == "boolean"
    assert r.json["responseSummary"] == {"exists": True}
    assert r.json["info"] == {"countWithheld": "fewer than 5"}


def test_staff_get_the_records_of_their_own_sites(client, bank, make, site, headers):
    h = headers(make.user("beacon-manager", role="manager", sites=[site]))
    here = {s.barcode for s in bank["dna"][:8]}
    r = ask(client, "g_variants", h, requestedGranularity="record", geneId="BRAF")
    variants = r.json["response"]["resultSets"][0]["results"]
    assert r.json["responseSummary"]["numTotalResults"] == len(variants) == 1  # V600E only
    v600e = variants[0]
    assert v600e["molecularAttributes"] == {"geneIds": ["BRAF"], "aminoacidChanges": ["V600E"]}
    assert v600e["variation"]["location"]["sequence_id"] == "refseq:NC_000007.13"
    assert v600e["variation"]["location"]["interval"]["start"]["value"] == 140453135
    # S1–S3 here (S0 withdrew genetic consent; S9 is at the other site)
    carriers = {c["biosampleId"] for c in v600e["caseLevelData"]}
    assert carriers == {s.barcode for s in bank["dna"][1:4]} and carriers <= here
    r = ask(
        client,
        "biosamples",
        h,
        requestedGranularity="record",
        filters="materialType:DNA",
        limit="3",
        skip="2",
    )
    page = r.json["response"]["resultSets"][0]
    assert page["resultsCount"] == 8 and len(page["results"]) == 3
    assert {b["id"] for b in page["results"]} <= here
    # counts too are of their sites, and exact
    r = ask(client, "individuals", h, requestedGranularity="count", filters="diseaseGroup:melanoma")
    assert r.json["responseSummary"] == {"exists": True, "numTotalResults": 8}
    r = ask(client, "individuals", h, requestedGranularity="record", filters="ICD10:C43")
    codes = {i["id"] for i in r.json["response"]["resultSets"][0]["results"]}
    assert codes == {p.code for p in bank["donors"][:8]}
    exact = ask(
        client,
        "individuals",
        h,
        requestedGranularity="record",
        method="POST",
        query={
            "filters": [{"id": "ICD10:C43", "includeDescendantTerms": False}],
            "requestedGranularity": "record",
        },
    )
    assert exact.json["responseSummary"]["numTotalResults"] == 0  # C43 itself: nobody


def test_donors_without_consent_are_not_counted(client, bank, admin, headers):
    h = headers(admin)
    # the deletion's only carrier withdrew consent to genetic research
    r = ask(
        client,
        "g_variants",
        h,
        requestedGranularity="count",
        referenceName="7",
        start="140453000",
        end="140454000",
    )
    assert r.json["responseSummary"] == {"exists": True, "numTotalResults": 1}
    r = ask(
        client, "g_variants", h, referenceName="7", start="140453139", alternateBases="C", referenceBases="CA"
    )
    assert r.json["responseSummary"]["exists"] is False
    # but still counts as an individual: consent to research use stands
    r = ask(client, "individuals", h, requestedGranularity="count")
    assert r.json["responseSummary"]["numTotalResults"] == 12


def test_post_asks_what_get_asks(client, bank, researcher, headers):
    h = headers(researcher)
    got = ask(
        client, "individuals", h, requestedGranularity="count", filters="diseaseGroup:melanoma,NCIT:C20197"
    )
    posted = ask(
        client,
        "individuals",
        h,
        method="POST",
        meta={"apiVersion": "v2.0"},
        query={
            "filters": [{"id": "diseaseGroup:melanoma"}, {"id": "NCIT:C20197"}],
            "requestedGranularity": "count",
        },
    )
    assert posted.json["responseSummary"] == got.json["responseSummary"]
    assert posted.json["meta"]["receivedRequestSummary"]["filters"] == [
        "diseaseGroup:melanoma",
        "NCIT:C20197",
    ]


@pytest.mark.parametrize(
    ("entry", "query", "words"),
    [
        ("g_variants", {}, "needs a geneId or a referenceName"),
        ("g_variants", {"referenceName": "7"}, "needs a start"),
        ("g_variants", {"referenceName": "7", "start": "10,20", "end": "30,40"}, "bracket"),
        ("g_variants", {"referenceName": "7", "start": "90", "end": "10"}, "not after start"),
        ("g_variants", {"geneId": "BRAF", "variantType": "XYZ"}, "variantType 'XYZ'"),
        ("individuals", {"filters": "OMIM:123"}, "unknown filter 'OMIM:123'"),
        ("individuals", {"filters": "materialType:DNA"}, "not individuals"),
        ("biosamples", {"requestedGranularity": "all"}, "requestedGranularity must be"),
        ("biosamples", {"limit": "5000"}, "limit must be a whole number from 0 to 1000"),
    ],
)
def test_bad_requests_are_refused_in_the_beacon_form(client, bank, entry, query, words):
    r = ask(client, entry, **query)
    assert r.status_code == 400 and words in r.json["error"]["errorMessage"], r.json
    assert r.json["error"]["errorCode"] == 400


def test_credentials_that_do_not_hold_and_a_closed_beacon_refuse(client, app, bank):
    r = ask(client, "individuals", {"Authorization": "Bearer nonsense"})
    assert r.status_code == 401 and "token" in r.json["error"]["errorMessage"]
    app.config["BEACON_ANONYMOUS"] = False
    try:
        assert ask(client, "individuals").status_code == 401
        # the description stays open
        assert client.get("/beacon/v2/info").status_code == 200
    finally:
        app.config["BEACON_ANONYMOUS"] = True


def test_the_informational_endpoints_follow_the_framework(client, bank):
    for path, schema in [
        ("info", "beaconInfoResponse"),
        ("", "beaconInfoResponse"),
        ("map", "beaconMapResponse"),
        ("configuration", "beaconConfigurationResponse"),
        ("entry_types", "beaconEntryTypesResponse"),
        ("filtering_terms", "beaconFilteringTermsResponse"),
    ]:
        r = client.get(f"/beacon/v2/{path}")
        assert r.status_code == 200, path
        valid(r.json, f"framework/json/responses/{schema}.json")
    terms = {t["id"] for t in client.get("/beacon/v2/filtering_terms").json["response"]["filteringTerms"]}
    assert {
        "ICD10:C43.5",
        "ICD10:L40.0",
        "NCIT:C16576",
        "diseaseGroup:psoriasis",
        "materialType:DNA",
    } <= terms
    info = client.get("/beacon/v2/service-info").json
    valid(info, "framework/json/responses/ga4gh-service-info-1-0-0-schema.json")
    assert info["type"]["artifact"] == "beacon"
    endpoints = client.get("/beacon/v2/map").json["response"]["endpointSets"]
    for entry_type in endpoints.values():
        path = "/" + entry_type["rootUrl"].split("/", 3)[3]
        assert client.get(path, query_string={"geneId": "BRAF"}).status_code == 200
