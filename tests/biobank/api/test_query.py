"""Cohort queries: the GDC grammar over registered fields, levels, facets, paging, privacy."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import sqlalchemy as sa

from biobank.models import Case
from biobank.models.vocab import (
    ConsentDecision,
    DiseaseGroup,
    Lineage,
    MaterialType,
    PathologyStatus,
    QuantityUnit,
    SpecimenStatus,
)
from tests.omics.test_omics_api import _upload
from tests.omics.test_vcf import COHORT


def eq(field, value):
    return {"op": "=", "content": {"field": field, "value": value}}


def op(name, field, value):
    return {"op": name, "content": {"field": field, "value": value}}


def and_(*clauses):
    return {"op": "and", "content": list(clauses)}


class Biobank:
    """Four participants: two melanoma patients with frozen tumour aliquots (30 µL and 10 µL),
    one with DNA carrying BRAF V600E; a psoriasis patient with plasma; a melanoma patient who
    refused genetic research."""

    def __init__(self, make, site, other_site):
        self.p1 = make.participant(site=site)
        self.c1 = make.case(participant=self.p1, code="Q-C1", breslow_mm=Decimal("1.20"))
        self.l1 = make.lesion(case=self.c1, code="Q-L1")
        visit = make.visit(participant=self.p1, case=self.c1, lesion=self.l1)
        tumour = make.specimen(
            participant=self.p1,
            collection_event=visit,
            lesion=self.l1,
            material_type=MaterialType.TISSUE_FROZEN,
            pathology_status=PathologyStatus.MALIGNANT,
            quantity=Decimal("100"),
            unit=QuantityUnit.UL,
            container=make.box(site=site),
            pos_row=1,
            pos_col=1,
        )
        self.a1 = make.specimen(
            participant=self.p1,
            collection_event=visit,
            lesion=self.l1,
            parent=tumour,
            material_type=MaterialType.TISSUE_FROZEN,
            pathology_status=PathologyStatus.MALIGNANT,
            quantity=Decimal("30"),
            unit=QuantityUnit.UL,
            status=SpecimenStatus.IN_STORAGE,
        )
        self.dna1 = make.specimen(
            participant=self.p1,
            collection_event=visit,
            lesion=self.l1,
            parent=tumour,
            lineage=Lineage.DERIVATIVE,
            material_type=MaterialType.DNA,
        )
        self.p2 = make.participant(site=site)
        self.c2 = make.case(participant=self.p2, code="Q-C2")
        self.l2 = make.lesion(case=self.c2, code="Q-L2")
        visit = make.visit(participant=self.p2, case=self.c2, lesion=self.l2)
        tumour2 = make.specimen(
            participant=self.p2,
            collection_event=visit,
            lesion=self.l2,
            material_type=MaterialType.TISSUE_FROZEN,
            unit=QuantityUnit.UL,
        )
        self.a2 = make.specimen(
            participant=self.p2,
            collection_event=visit,
            lesion=self.l2,
            parent=tumour2,
            material_type=MaterialType.TISSUE_FROZEN,
            quantity=Decimal("10"),
            unit=QuantityUnit.UL,
            status=SpecimenStatus.IN_STORAGE,
        )
        self.p3 = make.participant(site=other_site)
        self.c3 = make.case(
            participant=self.p3, code="Q-C3", icd10_code="L40.0", disease_group=DiseaseGroup.PSORIASIS
        )
        visit = make.visit(participant=self.p3, case=self.c3)
        self.plasma = make.specimen(
            participant=self.p3, collection_event=visit, material_type=MaterialType.PLASMA
        )
        self.p4 = make.participant(site=site, consent=False)
        self.c4 = make.case(participant=self.p4, code="Q-C4")
        self.l4 = make.lesion(case=self.c4, code="Q-L4")
        visit = make.visit(participant=self.p4, case=self.c4, lesion=self.l4)
        self.a4 = make.specimen(
            participant=self.p4,
            collection_event=visit,
            lesion=self.l4,
            material_type=MaterialType.TISSUE_FROZEN,
            quantity=Decimal("50"),
            unit=QuantityUnit.UL,
            parent=make.specimen(
                participant=self.p4, collection_event=visit, material_type=MaterialType.TISSUE_FROZEN
            ),
        )


@pytest.fixture
def bank(make, site, other_site):
    return Biobank(make, site, other_site)


def query(client, headers, level, filters=None, **params):
    body = {"filters": filters, **params}
    r = client.post(f"/api/v1/query/{level}", headers=headers, json=body)
    assert r.status_code == 200, r.json
    return r.json


def ids(result, key):
    return [h[key] for h in result["hits"]]


GENETIC = op("in", "consents.scope", ["genetic_research"])
MELANOMA = eq("cases.disease_group", "melanoma")
FROZEN_20 = and_(eq("specimens.material_type", "TISSUE_FROZEN"), op(">=", "specimens.volume_ul", 20))


def test_one_query_across_entities_answers_at_each_level(client, bank, admin, headers, technician):
    h = headers(admin)
    # the VCF links BRAF V600E to p1's DNA only
    r = _upload(client, headers(technician), COHORT, kind="exome", sample_map={"MEL-A1": bank.dna1.barcode})
    assert r.status_code == 201, r.json
    braf = eq("variants.gene_aa_change", "BRAF V600E")

    lesions = query(client, h, "lesions", and_(MELANOMA, FROZEN_20, GENETIC, braf))
    assert ids(lesions, "lesion") == ["Q-L1"] and lesions["total"] == 1
    # without the variant p4's lesion still fails on consent, p2's on volume
    lesions = query(client, h, "lesions", and_(MELANOMA, FROZEN_20, GENETIC))
    assert ids(lesions, "lesion") == ["Q-L1"]
    lesions = query(client, h, "lesions", and_(MELANOMA, FROZEN_20))
    assert ids(lesions, "lesion") == ["Q-L1", "Q-L4"]
    # at the aliquot level the clauses hold for the tube itself: the 30 µL aliquot, not its parent
    aliquots = query(client, h, "aliquots", and_(MELANOMA, FROZEN_20, GENETIC))
    assert ids(aliquots, "barcode") == [bank.a1.barcode]
    specimens = query(client, h, "specimens", and_(MELANOMA, FROZEN_20, GENETIC))
    assert sorted(ids(specimens, "barcode")) == sorted([bank.a1.barcode, bank.a1.parent.barcode])
    hit = aliquots["hits"][0]
    assert (hit["case"], hit["participant"], hit["lineage"], hit["quantity"]) == (
        "Q-C1",
        bank.p1.code,
        "aliquot",
        30.0,
    )
    cases = query(client, h, "cases", braf)
    assert ids(cases, "case") == ["Q-C1"]
    participants = query(client, h, "participants", eq("cases.disease_group", "psoriasis"))
    assert ids(participants, "participant") == [bank.p3.code]
    assert "given_name" not in json.dumps(participants) and "MRN" not in json.dumps(participants)


def test_negative_operators_on_many_valued_fields(client, bank, admin, headers):
    h = headers(admin)
    cases = lambda f: sorted(ids(query(client, h, "cases", f), "case"))  # noqa: E731
    all_cases = ["Q-C1", "Q-C2", "Q-C3", "Q-C4"]
    # p4 refused everything: != and excludeifany keep cases with no such consent at all
    assert cases(op("!=", "consents.scope", "genetic_research")) == ["Q-C4"]
    assert cases(op("excludeifany", "consents.scope", ["genetic_research", "storage"])) == ["Q-C4"]
    # exclude drops only rows whose every value is listed: C3 has plasma only
    assert cases(op("exclude", "specimens.material_type", ["PLASMA"])) == ["Q-C1", "Q-C2", "Q-C4"]
    assert cases(op("exclude", "specimens.material_type", ["TISSUE_FROZEN", "PLASMA"])) == ["Q-C1"]
    assert cases(op("is", "lesions.body_site", "MISSING")) == ["Q-C3"]
    assert cases(op("not", "lesions.body_site", "MISSING")) == ["Q-C1", "Q-C2", "Q-C4"]
    assert cases(op("is", "cases.breslow_mm", "MISSING")) == ["Q-C2", "Q-C3", "Q-C4"]
    assert cases(op(">", "cases.breslow_mm", 1)) == ["Q-C1"]
    assert cases(
        {"op": "or", "content": [eq("cases.disease_group", "psoriasis"), op("<", "specimens.volume_ul", 20)]}
    ) == ["Q-C2", "Q-C3"]
    assert cases(op("!=", "cases.disease_group", "melanoma")) == ["Q-C3"]
    assert cases(None) == all_cases


def test_facets_ignore_their_own_field(client, bank, admin, headers):
    r = query(
        client,
        headers(admin),
        "cases",
        and_(MELANOMA, GENETIC),
        facets=["cases.disease_group", "specimens.material_class", "consents.scope"],
    )
    assert r["total"] == 2
    groups = {b["key"]: b["doc_count"] for b in r["facets"]["cases.disease_group"]["buckets"]}
    assert groups == {"melanoma": 2, "psoriasis": 1}  # the genetic consent filter still holds
    classes = {b["key"]: b["doc_count"] for b in r["facets"]["specimens.material_class"]["buckets"]}
    assert classes == {"tissue": 2, "nucleic_acid": 1}
    scopes = {b["key"]: b["doc_count"] for b in r["facets"]["consents.scope"]["buckets"]}
    assert scopes["genetic_research"] == 2 and scopes["storage"] == 2  # melanoma, any consent


def test_keyset_pages_and_tsv(client, bank, admin, headers):
    h = headers(admin)
    seen, after = [], None
    while True:
        r = query(client, h, "specimens", None, size=3, **({"after": after} if after else {}))
        seen += ids(r, "specimen_id")
        after = r["next_cursor"]
        if after is None:
            break
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == r["total"] == 8
    url = "/api/v1/query/aliquots?format=tsv&filters=" + json.dumps(MELANOMA)
    r = client.get(url, headers=h)
    assert r.status_code == 200 and r.mimetype == "text/tab-separated-values"
    lines = r.get_data(as_text=True).splitlines()
    assert lines[0].split("\t")[:3] == ["specimen_id", "barcode", "lineage"]
    assert sorted(line.split("\t")[1] for line in lines[1:]) == sorted(
        [bank.a1.barcode, bank.dna1.barcode, bank.a2.barcode, bank.a4.barcode]
    )


def test_researchers_see_suppressed_counts_and_no_rows(client, bank, researcher, headers):
    r = query(client, headers(researcher), "cases", MELANOMA, facets=["cases.disease_group"])
    assert r["total"] == "<5" and r["hits"] == [] and "approved" in r["hits_withheld"]
    assert {b["key"]: b["doc_count"] for b in r["facets"]["cases.disease_group"]["buckets"]} == {
        "melanoma": "<5",
        "psoriasis": "<5",
    }
    r = client.get("/api/v1/query/cases?format=tsv", headers=headers(researcher))
    assert r.status_code == 403


def test_staff_see_rows_of_their_sites_only(client, bank, technician, headers):
    r = query(client, headers(technician), "cases")
    assert sorted(ids(r, "case")) == ["Q-C1", "Q-C2", "Q-C4"]  # Q-C3 is at the other site


def test_mapping_lists_fields_of_every_package(client, admin, headers):
    r = client.get("/api/v1/query/_mapping", headers=headers(admin))
    assert r.status_code == 200
    fields = {f["field"]: f for f in r.json["fields"]}
    assert fields["cases.disease_group"]["values"] == [g.value for g in DiseaseGroup]
    assert fields["cases.disease_group"]["label"] == "Cases · disease group"
    assert fields["cases.disease_group"]["value_labels"]["melanoma"] == "Melanoma"
    material = fields["specimens.material_type"]["value_labels"]
    assert material["TISSUE_PARAFFIN_EMBEDDED"] == "Tissue, paraffin-embedded"
    assert fields["variants.gene_aa_change"]["package"] == "omics"
    assert fields["specimens.volume_ul"]["unit"] == "µL"
    assert fields["expression.<gene>"]["unit"] == "CPM"  # a family: expression.BRAF, ...
    assert {lvl["level"] for lvl in r.json["levels"]} == {
        "participants",
        "cases",
        "lesions",
        "specimens",
        "aliquots",
    }


def deep(n):
    node = MELANOMA
    for _ in range(n):
        node = and_(node)
    return node


@pytest.mark.parametrize(
    ("filters", "field", "words"),
    [
        (eq("cases.disease", "melanoma"), "filters.content.field", "did you mean cases.disease_group"),
        (
            {"op": "like", "content": {"field": "cases.icd10_code", "value": "C43%"}},
            "filters.op",
            "unknown operator",
        ),
        (eq("cases.disease_group", "melanom"), "filters.content.value", "did you mean melanoma"),
        (op(">", "cases.disease_group", "melanoma"), "filters.content.value", "needs a number"),
        (eq("specimens.volume_ul", "20"), "filters.content.value", "takes a number"),
        (eq("cases.ulceration", "yes"), "filters.content.value", "true or false"),
        (eq("cases.diagnosis_date", "2024-13-01"), "filters.content.value", "YYYY-MM-DD"),
        (op("in", "consents.scope", []), "filters.content.value", "non-empty list"),
        (
            and_(MELANOMA, {"op": "=", "content": {"field": "cases.ulceration"}}),
            "filters.content[1].content",
            "'value' is missing",
        ),
        (deep(9), "filters" + ".content[0]" * 8, "nest at most"),
        (and_(*[MELANOMA] * 65), "filters.content[64]", "at most 64 clauses"),
        (
            eq("cases.disease_group", "melanoma'; DROP TABLE cases; --"),
            "filters.content.value",
            "is not a value",
        ),
        (
            {"op": "=", "content": {"field": "cases.ulceration", "value": True}, "x": 1},
            "filters",
            "unexpected key",
        ),
        ("[1, 2", "filters", "not valid JSON"),
        (op(">", "cases.breslow_mm", 2**63), "filters.content.value", "takes numbers between"),
        (op("in", "cases.breslow_mm", [1, -(2**64)]), "filters.content.value[1]", "takes numbers"),
        (json.dumps(op(">", "cases.breslow_mm", 2**63)), "filters.content.value", "takes numbers"),
    ],
)
def test_bad_filters_are_refused_with_their_place(client, admin, headers, filters, field, words):
    h = headers(admin)
    if isinstance(filters, str):
        r = client.get("/api/v1/query/cases", headers=h, query_string={"filters": filters})
    else:
        r = client.post("/api/v1/query/cases", headers=h, json={"filters": filters})
    assert r.status_code == 400, r.json
    assert r.json["errors"][0]["field"] == field and words in r.json["detail"], r.json


def test_sql_looking_values_are_only_values(client, bank, admin, headers, db_session):
    r = query(client, headers(admin), "cases", eq("cases.icd10_code", "C43.5' OR '1'='1"))
    assert r["total"] == 0
    assert db_session.scalar(sa.select(sa.func.count()).select_from(Case)) == 4


def test_bad_levels_facets_and_sizes(client, admin, headers):
    h = headers(admin)
    r = client.post("/api/v1/query/tubes", headers=h, json={})
    assert r.status_code == 400 and "aliquots" in r.json["allowed"]
    r = client.post("/api/v1/query/cases", headers=h, json={"facets": ["cases.breslow_mm"]})
    assert r.status_code == 400 and "no buckets" in r.json["detail"]
    r = client.post("/api/v1/query/cases", headers=h, json={"size": 100000})
    assert r.status_code == 422
    r = client.get(
        "/api/v1/query/cases", headers=h, query_string={"filters": json.dumps(MELANOMA) + " " * 20000}
    )
    assert r.status_code == 400 and "longer than" in r.json["detail"]


def test_withdrawn_consent_no_longer_counts(client, bank, admin, headers, db_session):
    from biobank.db import utcnow

    for response in bank.p1.consents:
        response.withdrawn_at = utcnow()
    db_session.commit()
    r = query(client, headers(admin), "cases", GENETIC)
    assert sorted(ids(r, "case")) == ["Q-C2", "Q-C3"]
    assert ConsentDecision.YES  # decisions stay; only the withdrawal changes the answer


def test_staff_query_participants_of_their_sites_only(client, bank, technician, admin, headers):
    r = query(client, headers(technician), "participants")
    assert sorted(ids(r, "participant")) == sorted([bank.p1.code, bank.p2.code, bank.p4.code])
    r = query(client, headers(admin), "participants")
    assert bank.p3.code in ids(r, "participant")


def test_tumours_are_found_by_their_icd_o_3_codes(client, bank, admin, headers, db_session):
    bank.c1.icdo3_morphology, bank.c1.icdo3_topography = "8743/3", "C44.5"
    bank.c2.icdo3_morphology = "8721/3"
    db_session.commit()
    h = headers(admin)
    found = query(client, h, "cases", eq("cases.icdo3_morphology", "8743/3"))
    assert ids(found, "case") == ["Q-C1"]
    found = query(client, h, "cases", op("in", "cases.icdo3_morphology", ["8743/3", "8721/3"]))
    assert sorted(ids(found, "case")) == ["Q-C1", "Q-C2"]
    assert ids(query(client, h, "cases", eq("cases.icdo3_topography", "C44.5")), "case") == ["Q-C1"]
