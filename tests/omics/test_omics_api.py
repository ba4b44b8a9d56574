"""Registering and ingesting VCFs through the API; variant carriers by gene, change, region."""

from __future__ import annotations

import io
import json

import sqlalchemy as sa
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from biobank.models.vocab import DiseaseGroup, Lineage, MaterialType
from omics.models import Variant, VariantCall
from tests.omics.test_vcf import COHORT, STRELKA


def _upload(client, headers, path, name=None, **query):
    for key in ("sample_map", "sample_roles"):
        if key in query:
            query[key] = json.dumps(query[key])
    # encoded in memory: the test client spools a large body to a temporary file it never
    # closes, which a later test would meet as an unraisable warning
    with open(path, "rb") as f:
        boundary, body = encode_multipart({"file": FileStorage(f, filename=name or path.name)})
    return client.post(
        "/api/v1/omics/files/",
        headers=headers,
        query_string=query,
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )


def _ingested(client, headers, path, **query):
    """Upload *path* and answer the file as its ingestion left it."""
    r = _upload(client, headers, path, kind="exome", **query)
    assert r.status_code == 201, r.json
    return client.get(f"/api/v1/omics/files/{r.json['id']}", headers=headers).json


def _tumour_dna(make, site, code):
    """A melanoma case's frozen tumour and the DNA extracted from it."""
    person = make.participant(site=site)
    case = make.case(participant=person, disease_group=DiseaseGroup.MELANOMA, icd10_code="C43.5", code=code)
    visit = make.visit(participant=person, case=case)
    tissue = make.specimen(
        participant=person, collection_event=visit, material_type=MaterialType.TISSUE_FROZEN
    )
    return make.specimen(
        participant=person,
        collection_event=visit,
        parent=tissue,
        lineage=Lineage.DERIVATIVE,
        material_type=MaterialType.DNA,
    )


def test_cohort_vcf_links_aliquots_and_answers_braf_v600e(
    client, make, site, technician, researcher, headers, db_session
):
    dna = {
        name: _tumour_dna(make, site, f"MELC-{i}") for i, name in enumerate(["MEL-A1", "MEL-A2", "MEL-A3"])
    }
    h = headers(technician)
    r = _upload(
        client,
        h,
        COHORT,
        kind="exome",
        pipeline="Mutect2 + VEP 112",
        sample_map={
            "MEL-A1": dna["MEL-A1"].barcode,
            "MEL-A2": dna["MEL-A2"].barcode,
            "MEL-A3": "NO-SUCH-TUBE",
        },
    )
    assert r.status_code == 201, r.json
    assert r.json["reference_genome"] == "GRCh38" and r.json["unmatched_samples"] == ["MEL-A3"]
    r = client.get(f"/api/v1/omics/files/{r.json['id']}", headers=h)
    assert r.json["status"] == "ingested", r.json
    # MEL-A3 is unmatched: its calls are not stored; A1 has 3 calls, A2 4
    assert (r.json["variant_count"], r.json["call_count"]) == (5, 7)

    braf = {"gene": "BRAF", "protein_change": "p.V600E"}
    r = client.get("/api/v1/omics/variants/carriers", headers=h, query_string=braf)
    assert r.status_code == 200
    assert [(c["barcode"], c["case_code"], c["genotype"], c["allele_fraction"]) for c in r.json] == [
        (dna["MEL-A1"].barcode, "MELC-0", "0/1", 0.471)
    ]
    # a researcher sees carriers only among tubes an approved request of theirs allocated
    r = client.get("/api/v1/omics/variants/carriers", headers=headers(researcher), query_string=braf)
    assert r.status_code == 200 and r.json == []
    r = client.get(
        "/api/v1/omics/variants/carriers", headers=h, query_string={"region": "chr1:114713900-114713910"}
    )
    assert [(c["protein_change"], c["barcode"]) for c in r.json] == [("p.Q61R", dna["MEL-A2"].barcode)]
    r = client.get("/api/v1/omics/files/", headers=h, query_string={"specimen_id": dna["MEL-A2"].id})
    assert [f["filename"] for f in r.json] == ["melanoma-cohort.vcf"]
    assert client.get("/api/v1/omics/variants/carriers", headers=h).status_code == 422
    r = client.get("/api/v1/omics/variants/carriers", headers=h, query_string={"region": "chr7:abc"})
    assert r.status_code == 422 and r.json["errors"][0]["field"] == "region"


def test_strelka_tumour_normal_pair_and_the_same_file_twice(
    client, make, site, technician, headers, db_session
):
    tumour = _tumour_dna(make, site, "MELC-T")
    normal = make.specimen(participant=tumour.participant, material_type=MaterialType.DNA)
    h = headers(technician)
    r = _upload(
        client,
        h,
        STRELKA,
        kind="exome",
        reference_genome="GRCh37",
        sample_map={"TUMOR": tumour.barcode, "NORMAL": normal.barcode},
    )
    assert r.status_code == 201 and r.json["status"] == "registered"
    first = r.json["id"]
    r = client.get("/api/v1/omics/variants/carriers", headers=h, query_string={"region": "7:140453136"})
    assert [(c["barcode"], c["alt_depth"], c["depth"]) for c in r.json] == [
        (tumour.barcode, 191, 260)
    ]  # the normal has no alternate reads
    calls = db_session.scalar(sa.select(sa.func.count(VariantCall.id)))
    r = _upload(client, h, STRELKA, name="renamed.vcf", kind="exome")
    assert r.status_code == 200 and r.json["id"] == first  # same content: nothing new
    assert db_session.scalar(sa.select(sa.func.count(VariantCall.id))) == calls


def test_unreadable_files_are_refused_or_fail_without_rows(
    client, make, site, technician, headers, db_session, tmp_path, monkeypatch
):
    # batches of one record: the good records before the bad one are written first
    monkeypatch.setattr("omics.services.BATCH", 1)
    h = headers(technician)
    fake = tmp_path / "calls.vcf"
    fake.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    r = _upload(client, h, fake, kind="exome")
    assert r.status_code == 422 and "calls.vcf: not a readable VCF" in r.json["detail"]
    r = _upload(client, h, COHORT, kind="exome", sample_map={"TUMOUR-X": "A"})
    assert r.status_code == 422 and "TUMOUR-X" in r.json["detail"]
    # a record whose ALT repeats REF, after good ones: ingestion fails, no rows remain
    dna = _tumour_dna(make, site, "MELC-B")
    bad = tmp_path / "bad-alt.vcf"
    bad.write_text(COHORT.read_text().replace("\tA\tT\t.\tPASS", "\tA\tA\t.\tPASS"))
    r = _upload(client, h, bad, kind="exome", sample_map={"MEL-A2": dna.barcode})
    assert r.status_code == 422 and "line 19, column ALT: 'A' is the same as REF" in r.json["detail"], r.json
    r = _upload(client, h, bad, kind="exome", sample_map={"MEL-A2": dna.barcode}, lenient=True)
    assert r.json["warnings"] == ["line 19, column ALT: 'A' is the same as REF"]
    r = client.get(f"/api/v1/omics/files/{r.json['id']}", headers=h)
    assert r.json["status"] == "failed" and "line 19, column ALT" in r.json["error"]
    assert db_session.scalar(sa.select(sa.func.count(Variant.id))) == 0
    assert db_session.scalar(sa.select(sa.func.count(VariantCall.id))) == 0
    # a genotype longer than the database keeps (ploidy 9), on either database
    wide = tmp_path / "ploidy9.vcf"
    wide.write_text(COHORT.read_text().replace("0/1:61,47:108:0.435", "0/1/1/1/1/1/1/1/1:61,47:108:0.435"))
    r = _upload(client, h, wide, kind="exome", sample_map={"MEL-A2": dna.barcode})
    r = client.get(f"/api/v1/omics/files/{r.json['id']}", headers=h)
    assert r.json["status"] == "failed", r.json
    assert "column MEL-A2: genotype '0/1/1/1/1/1/1/1/1' is longer than 16" in r.json["error"]
    assert db_session.scalar(sa.select(sa.func.count(VariantCall.id))) == 0


def test_drs_objects_and_ranged_bytes(client, make, site, technician, researcher, headers):
    h = headers(technician)
    r = _upload(client, h, COHORT, kind="exome", ingest=False)
    sha = r.json["sha256"]
    info = client.get("/ga4gh/drs/v1/service-info").json
    assert info["type"] == {"group": "org.ga4gh", "artifact": "drs", "version": "1.2.0"}
    # a researcher with no approved request naming these samples gets nothing of them
    for url in (
        f"/ga4gh/drs/v1/objects/{sha}",
        f"/ga4gh/drs/v1/objects/{sha}/content",
        f"/ga4gh/drs/v1/objects/{sha}/access/https",
        f"/api/v1/omics/files/{r.json['id']}",
    ):
        assert client.get(url, headers=headers(researcher)).status_code == 404, url
    assert client.get("/api/v1/omics/files/", headers=headers(researcher)).json == []
    rh = h  # the technician who uploaded it
    obj = client.get(f"/ga4gh/drs/v1/objects/{sha}", headers=rh)
    assert obj.status_code == 200
    body = obj.json
    assert body["size"] == COHORT.stat().st_size and body["name"] == "melanoma-cohort.vcf"
    assert body["checksums"] == [{"checksum": sha, "type": "sha-256"}]
    assert body["self_uri"].endswith(f"/{sha}") and body["self_uri"].startswith("drs://")
    access = client.get(
        f"/ga4gh/drs/v1/objects/{sha}/access/{body['access_methods'][0]['access_id']}", headers=rh
    ).json
    path = access["url"].split("://", 1)[1].split("/", 1)[1]
    with client.get("/" + path, headers=rh) as whole:
        assert whole.status_code == 200 and whole.data == COHORT.read_bytes()
    with client.get("/" + path, headers=rh | {"Range": "bytes=2-17"}) as part:
        assert part.status_code == 206 and part.data == COHORT.read_bytes()[2:18]
        assert part.headers["Content-Range"] == f"bytes 2-17/{COHORT.stat().st_size}"
    size = COHORT.stat().st_size
    with client.get("/" + path, headers=rh | {"Range": f"bytes={size + 10}-{size + 20}"}) as r:
        assert r.status_code == 416 and r.headers["Content-Range"] == f"bytes */{size}"
    # several ranges, or a Range header that is not one: the whole object (RFC 9110)
    for asked in ("bytes=0-9,20-29", "bytes=abc", "pages=1-2"):
        with client.get("/" + path, headers=rh | {"Range": asked}) as r:
            assert r.status_code == 200 and r.data == COHORT.read_bytes(), asked
    missing = client.get("/ga4gh/drs/v1/objects/" + "0" * 64, headers=rh)
    assert missing.status_code == 404 and missing.json["status_code"] == 404
    assert "no object" in missing.json["msg"]
    assert client.get(f"/ga4gh/drs/v1/objects/{sha}/access/s3", headers=rh).status_code == 404
    assert client.get(f"/ga4gh/drs/v1/objects/{sha}").status_code == 401


def test_rnaseq_matrix_qc_and_one_gene_across_samples(
    client, make, site, technician, headers, db_session, tmp_path
):
    import csv

    from tests.omics.test_vcf import FIXTURES

    counts = FIXTURES / "rnaseq-counts.tsv"
    dna = {name: _tumour_dna(make, site, f"MELR-{i}") for i, name in enumerate(["MEL-R1", "MEL-R2"])}
    h = headers(technician)
    r = _upload(
        client,
        h,
        counts,
        kind="rna_seq",
        pipeline="STAR 2.7 + featureCounts",
        sample_map={k: v.barcode for k, v in dna.items()},
    )
    assert r.status_code == 201, r.json
    file_id = r.json["id"]
    r = client.get(f"/api/v1/omics/files/{file_id}", headers=h)
    assert r.json["status"] == "ingested" and r.json["feature_count"] == 8, r.json
    with counts.open() as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    qc = {s["sample_name"]: s["qc"] for s in r.json["samples"]}
    for sample in ("MEL-R1", "MEL-R2", "MEL-R3"):
        total = sum(int(row[sample]) for row in rows)
        mito = sum(int(row[sample]) for row in rows if row["gene_name"].startswith("MT-"))
        assert qc[sample]["total_counts"] == total
        assert qc[sample]["pct_counts_mt"] == round(100 * mito / total, 3)
        assert qc[sample]["n_genes_by_counts"] == sum(1 for row in rows if int(row[sample]))
    table = client.get("/api/v1/omics/qc", headers=h, query_string={"kind": "rna_seq"}).json
    assert [(row["sample_name"], row["qc"]["total_counts"]) for row in table] == [
        (name, qc[name]["total_counts"]) for name in ("MEL-R1", "MEL-R2")
    ]  # R3 is unlinked
    r = client.get(f"/api/v1/omics/files/{file_id}/features/BRAF", headers=h)
    assert r.status_code == 200
    assert [(s["sample_name"], s["barcode"], s["value"]) for s in r.json["samples"]] == [
        ("MEL-R1", dna["MEL-R1"].barcode, 812.0),
        ("MEL-R2", dna["MEL-R2"].barcode, 455.0),
        ("MEL-R3", None, 0.0),
    ]
    assert r.json["feature"] == "ENSG00000157764"
    assert client.get(f"/api/v1/omics/files/{file_id}/features/NOPE", headers=h).status_code == 404
    # eight genes are far below the QC gate: both aliquots fail, and queries know it
    assert all(
        not qc[n]["pass"] and any("genes detected < 200" in reason for reason in qc[n]["fail_reasons"])
        for n in qc
    )
    failed = {"op": "=", "content": {"field": "omics.qc_pass", "value": False}}
    r = client.post("/api/v1/query/cases", headers=h, json={"filters": failed})
    assert sorted(hit["case"] for hit in r.json["hits"]) == ["MELR-0", "MELR-1"]
    failed["content"]["value"] = True
    assert client.post("/api/v1/query/cases", headers=h, json={"filters": failed}).json["total"] == 0
    # expression in counts per million, read from the stored matrix when asked
    cpm = {n: 1e6 * v / qc[n]["total_counts"] for n, v in (("MEL-R1", 812), ("MEL-R2", 455))}
    assert cpm["MEL-R1"] != cpm["MEL-R2"]
    high, low = sorted(cpm, key=cpm.get, reverse=True)
    between = (cpm[high] + cpm[low]) / 2
    above = {"op": ">", "content": {"field": "expression.BRAF", "value": between}}
    r = client.post("/api/v1/query/aliquots", headers=h, json={"filters": above})
    assert r.status_code == 200, r.json
    assert [hit["barcode"] for hit in r.json["hits"]] == [dna[high].barcode], r.json
    above["content"]["field"] = "expression.NOSUCHGENE"
    r = client.post("/api/v1/query/aliquots", headers=h, json={"filters": above})
    assert r.json["total"] == 0, r.json
    above["content"]["field"] = "expression.BRAF'--"
    r = client.post("/api/v1/query/aliquots", headers=h, json={"filters": above})
    assert r.status_code == 400 and "unknown field" in r.json["detail"]


def test_metabolomics_mztab_and_bad_matrices(client, technician, headers, tmp_path):
    from tests.omics.test_vcf import FIXTURES

    h = headers(technician)
    r = _upload(client, h, FIXTURES / "metabolomics-example.mztab", kind="metabolomics")
    assert r.status_code == 201, r.json
    r = client.get(f"/api/v1/omics/files/{r.json['id']}", headers=h)
    assert r.json["status"] == "ingested" and len(r.json["unmatched_samples"]) == 6
    assert {s["qc"]["detection_rate"] for s in r.json["samples"]} == {1.0}
    doubled = tmp_path / "doubled.tsv"
    doubled.write_text("gene\tA\tB\tA\nG1\t1\t2\t3\n")
    r = _upload(client, h, doubled, kind="rna_seq")
    assert r.status_code == 422 and "sample A appears more than once" in r.json["detail"]
    words = tmp_path / "words.tsv"
    words.write_text("gene\tA\tB\nG1\t1\t2\nG2\t3\tlots\n")
    r = _upload(client, h, words, kind="rna_seq")
    r = client.get(f"/api/v1/omics/files/{r.json['id']}", headers=h)
    assert r.json["status"] == "failed"
    assert r.json["error"] == "words.tsv, line 3, column B: 'lots' is not a number"


def test_bam_registers_its_read_group_sample_with_read_counts(
    client, make, site, technician, headers, tmp_path
):
    from tests.omics.test_vcf import _bam

    dna = _tumour_dna(make, site, "MELC-BAM")
    bam = _bam(tmp_path / "tumour.bam")
    r = _upload(
        client, headers(technician), bam, name="tumour.bam", kind="exome", sample_map={"MEL-T1": dna.barcode}
    )
    assert r.status_code == 201, r.json
    r = client.get(f"/api/v1/omics/files/{r.json['id']}", headers=headers(technician))
    assert r.json["status"] == "ingested" and r.json["reference_genome"] == "GRCh38"
    [sample] = r.json["samples"]
    assert sample["barcode"] == dna.barcode
    # 3 of 4 reads mapped: under the 80% gate
    assert sample["qc"] == {
        "mapped_reads": 3,
        "unmapped_reads": 1,
        "mapped_by_contig": {"chr7": 2, "chr1": 1},
        "pass": False,
        "fail_reasons": ["mapped share below 80%"],
    }


def test_specimen_page_lists_its_files_and_variants(client, make, site, technician, headers):
    from tests.biobank.web.test_evacuation_page import _login

    dna = {name: _tumour_dna(make, site, f"MELP-{i}") for i, name in enumerate(["MEL-A1", "MEL-A2"])}
    _upload(
        client, headers(technician), COHORT, kind="exome", sample_map={k: v.barcode for k, v in dna.items()}
    )
    _login(client, technician.username)
    page = client.get(f"/specimens/{dna['MEL-A1'].barcode}").get_data(as_text=True)
    assert 'id="omics-panel"' in page and "melanoma-cohort.vcf" in page
    braf = page.index("p.V600E")
    assert page.index("BRAF") < braf < page.index("TERT")  # protein changes first
    other = client.get(f"/specimens/{dna['MEL-A2'].barcode}").get_data(as_text=True)
    assert "p.V600E" not in other and "p.Q61R" in other


def test_a_second_file_reuses_the_variants_it_shares(
    client, make, site, technician, headers, db_session, tmp_path
):
    """Variants are shared across files: a second cohort file calling the same sites adds
    calls, not variants, and carriers come from both files."""
    first = {
        name: _tumour_dna(make, site, f"MELF-{i}") for i, name in enumerate(["MEL-A1", "MEL-A2", "MEL-A3"])
    }
    second = {
        name: _tumour_dna(make, site, f"MELS-{i}") for i, name in enumerate(["MEL-A1", "MEL-A2", "MEL-A3"])
    }
    h = headers(technician)
    r = _upload(client, h, COHORT, kind="exome", sample_map={n: s.barcode for n, s in first.items()})
    assert r.status_code == 201, r.json
    variants = {(v.chrom, v.pos, v.ref, v.alt): v.id for v in db_session.scalars(sa.select(Variant))}
    calls = db_session.scalar(sa.select(sa.func.count(VariantCall.id)))
    # Another release of the same calls (one more header line: other content, same sites).
    text = COHORT.read_text().replace("##fileformat=VCFv4.2\n", "##fileformat=VCFv4.2\n##release=2\n", 1)
    assert text != COHORT.read_text()
    again = tmp_path / "melanoma-cohort-release2.vcf"
    again.write_text(text)
    r = _upload(client, h, again, kind="exome", sample_map={n: s.barcode for n, s in second.items()})
    assert r.status_code == 201, r.json
    r = client.get(f"/api/v1/omics/files/{r.json['id']}", headers=h)
    assert r.json["status"] == "ingested", r.json
    assert {(v.chrom, v.pos, v.ref, v.alt): v.id for v in db_session.scalars(sa.select(Variant))} == variants
    assert db_session.scalar(sa.select(sa.func.count(VariantCall.id))) == 2 * calls
    r = client.get(
        "/api/v1/omics/variants/carriers",
        headers=h,
        query_string={"gene": "BRAF", "protein_change": "p.V600E"},
    )
    assert sorted(c["barcode"] for c in r.json) == sorted(s["MEL-A1"].barcode for s in (first, second))


def test_ambiguous_calls_are_refused_with_their_lines(
    client, make, site, technician, headers, db_session, tmp_path
):
    """A variant called twice for one aliquot cannot be stored: a repeated record, or two
    sample columns mapped to the same aliquot. An allele fraction that is not a number is
    refused too. Each names where, and nothing is kept."""
    h = headers(technician)
    dna = _tumour_dna(make, site, "MELD-1")
    other = _tumour_dna(make, site, "MELD-2")
    lines = COHORT.read_text().splitlines(keepends=True)
    braf = next(i for i, line in enumerate(lines) if "\t140753336\t" in line)
    repeated = tmp_path / "repeated.vcf"
    repeated.write_text("".join([*lines, lines[braf]]))
    # refused by the validator, naming the line; kept when lenient, and then ingestion
    # refuses the repeated call, naming both lines
    r = _upload(client, h, repeated, kind="exome", sample_map={"MEL-A1": dna.barcode})
    assert r.status_code == 422 and f"line {len(lines) + 1}, column " in r.json["detail"]
    failed = _ingested(client, h, repeated, sample_map={"MEL-A1": dna.barcode}, lenient=True)
    assert failed["status"] == "failed", failed
    assert (
        f"line {len(lines) + 1}, column MEL-A1: chr7:140753336 A>T is called for sample "
        f"MEL-A1 on line {braf + 1} too"
    ) in failed["error"]
    nan = tmp_path / "nan.vcf"
    nan.write_text(COHORT.read_text().replace("0/1:61,47:108:0.435", "0/1:61,47:108:nan"))
    failed = _ingested(client, h, nan, sample_map={"MEL-A2": dna.barcode})
    assert failed["status"] == "failed", failed
    assert "column MEL-A2: sample MEL-A2: allele fraction" in failed["error"]
    assert "not a finite number" in failed["error"]
    r = _upload(
        client,
        h,
        COHORT,
        kind="exome",
        sample_map={"MEL-A1": dna.barcode, "MEL-A2": other.barcode, "MEL-A3": dna.barcode},
    )
    assert r.status_code == 422, r.json
    assert f"samples MEL-A1 and MEL-A3 are both mapped to {dna.barcode}" in r.json["detail"], r.json
    assert db_session.scalar(sa.select(sa.func.count(Variant.id))) == 0
    assert db_session.scalar(sa.select(sa.func.count(VariantCall.id))) == 0


def test_a_repeat_far_from_its_first_record_fails_the_file(
    client, make, site, technician, headers, db_session, tmp_path, monkeypatch
):
    """Chunks of two records: the repeat of the first record, seven lines on, is caught by
    the database's unique key and reported as a bad file with the lines of its chunk; a
    repeat right after its record, across two chunks, is named with both lines."""
    monkeypatch.setattr("omics.services.BATCH", 2)
    h = headers(technician)
    dna = _tumour_dna(make, site, "MELR-1")
    lines = COHORT.read_text().splitlines(keepends=True)
    first = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    repeated = tmp_path / "unsorted.vcf"
    repeated.write_text("".join([*lines, lines[first]]))
    failed = _ingested(client, h, repeated, sample_map={"MEL-A2": dna.barcode}, lenient=True)
    assert failed["status"] == "failed", failed
    assert (
        f"line {len(lines) + 1}: a variant on lines {len(lines) + 1}–{len(lines) + 1} is called again"
    ) in failed["error"], failed
    # a repeat on the next line, in the next chunk: named with both lines
    monkeypatch.setattr("omics.services.BATCH", 1)
    braf = next(i for i, line in enumerate(lines) if "\t140753336\t" in line)
    adjacent = tmp_path / "adjacent.vcf"
    adjacent.write_text("".join([*lines[: braf + 1], lines[braf], *lines[braf + 1 :]]))
    failed = _ingested(client, h, adjacent, sample_map={"MEL-A1": dna.barcode}, lenient=True)
    assert (
        f"line {braf + 2}, column MEL-A1: chr7:140753336 A>T is called for sample MEL-A1 "
        f"on line {braf + 1} too"
    ) in failed["error"], failed
    assert db_session.scalar(sa.select(sa.func.count(VariantCall.id))) == 0


def test_omics_files_are_seen_only_by_the_sites_of_all_their_samples(
    client, make, site, other_site, admin, manager, headers, db_session
):
    tumour = _tumour_dna(make, site, "MELC-S1")
    normal = make.specimen(participant=tumour.participant, material_type=MaterialType.DNA)
    r = _upload(
        client,
        headers(admin),
        STRELKA,
        kind="exome",
        reference_genome="GRCh37",
        sample_map={"TUMOR": tumour.barcode, "NORMAL": normal.barcode},
    )
    assert r.status_code == 201, r.json
    file_id, sha = r.json["id"], r.json["sha256"]
    elsewhere = headers(make.user("nrt-tech", role="technician", sites=[other_site]))
    urls = (
        f"/api/v1/omics/files/{file_id}",
        f"/ga4gh/drs/v1/objects/{sha}",
        f"/ga4gh/drs/v1/objects/{sha}/content",
    )
    for url in urls:
        with client.get(url, headers=elsewhere) as r:
            assert r.status_code == 404, (url, "elsewhere")
    assert client.get("/api/v1/omics/files/", headers=elsewhere).json == []
    mine = headers(manager)  # the site of both samples, not the uploader
    for url in urls:
        with client.get(url, headers=mine) as r:
            assert r.status_code == 200, (url, "mine")
    # one sample moves to the other site (shipped and received there): the file would show it
    normal.site_id = other_site.id
    db_session.commit()  # (a refused request rolls back what is not committed)
    for url in urls:
        with client.get(url, headers=mine) as r:
            assert r.status_code == 404, (url, "moved")


def test_valid_vcfs_once_refused_register_and_ingest(
    client, make, site, technician, headers, db_session, tmp_path
):
    """Single breakends, records without GT, repeated symbolic alleles, sites-only records
    and a trailing blank line; a plain-gzip file; a long ##reference kept whole."""
    from tests.omics.test_vcfcheck import _vcf

    h = headers(technician)
    dna = _tumour_dna(make, site, "MELV-1")
    valid = _vcf(
        tmp_path,
        "valid.vcf",
        [
            "7\t100\tbnd1\tA\t.A\t.\tPASS\t.\tGT\t0/1",
            "7\t200\t.\tC\tT\t.\tPASS\t.\tAD\t5,4",
            "7\t300\t.\tG\t<DUP>,<DUP>\t.\tPASS\t.\tGT\t1/2",
            "7\t400\t.\tG\t<INS>\t.\tPASS\t.\tGT\t0/1",
            "7\t400\t.\tG\t<INS>\t.\tPASS\t.\tGT\t0/1",
            "7\t500\t.\tT\tA\t.\tPASS\tDP=3",
            "",
        ],
        header=[
            "##reference=file:///references/GRCh37/human_g1k_v37_decoy_plus_extra.fasta",
            '##ALT=<ID=DUP,Description="Duplication">',
            '##ALT=<ID=INS,Description="Insertion">',
        ],
    )
    done = _ingested(client, h, valid, sample_map={"S1": dna.barcode})
    assert done["status"] == "ingested" and done["warnings"] == [], done
    assert done["reference"] == "file:///references/GRCh37/human_g1k_v37_decoy_plus_extra.fasta"
    assert done["reference_genome"] == "GRCh37"  # the build, recognised in the reference
    stored = db_session.execute(
        sa.select(Variant.pos, Variant.alt, VariantCall.genotype, VariantCall.alt_depth)
        .join(VariantCall, VariantCall.variant_id == Variant.id)
        .where(VariantCall.file_id == done["id"])
        .order_by(Variant.pos)
    ).all()
    assert [tuple(row) for row in stored] == [
        (100, ".A", "0/1", None),
        (200, "T", None, 4),
        (300, "<DUP>", "1/2", None),
        (400, "<INS>", "0/1", None),
    ]  # one call per aliquot and variant; the file keeps both
    # gzip (not bgzip): the same calls as the plain file
    import gzip

    other = _tumour_dna(make, site, "MELV-2")
    plain = tmp_path / "cohort-gzip.vcf.gz"
    plain.write_bytes(gzip.compress(COHORT.read_bytes()))
    done = _ingested(client, h, plain, sample_map={"MEL-A2": other.barcode})
    assert done["status"] == "ingested" and done["call_count"] == sum(
        1
        for line in COHORT.read_text().splitlines()
        if not line.startswith("#") and line.split("\t")[10].split(":")[0] not in ("0/0", "./.")
    )


def test_a_vcf_breaking_the_specification_is_refused_or_kept_leniently(
    client, make, site, technician, headers
):
    h = headers(technician)
    tumour = _tumour_dna(make, site, "MELM-1")
    mutect = COHORT.parent / "test_mutect.vcf"
    r = _upload(client, h, mutect, kind="exome", sample_map={"TUMOR": tumour.barcode})
    assert r.status_code == 422, r.json
    assert r.json["detail"].startswith(
        "test_mutect.vcf is not a valid VCF: line 4, column FORMAT: ##FORMAT AD is reserved"
    )
    assert "lenient=true" in r.json["detail"] and "/tmp" not in r.json["detail"]
    done = _ingested(client, h, mutect, sample_map={"TUMOR": tumour.barcode}, lenient=True)
    assert done["status"] == "ingested" and done["call_count"] > 0
    assert done["warnings"][0].startswith("line 4, column FORMAT: ##FORMAT AD is reserved")


def test_a_failed_or_stuck_file_is_ingested_again_with_a_new_sample_map(
    client, make, site, technician, headers, db_session, tmp_path, monkeypatch
):
    h = headers(technician)
    a1, a2, a3 = (_tumour_dna(make, site, f"MELF-{n}") for n in (1, 2, 3))
    # MEL-A2's cell cannot be stored: linked, the file fails; linked again without it, the
    # same content is ingested
    wide = tmp_path / "ploidy9.vcf"
    wide.write_text(COHORT.read_text().replace("0/1:61,47:108:0.435", "0/1/1/1/1/1/1/1/1:61,47:108:0.435"))
    failed = _ingested(client, h, wide, sample_map={"MEL-A2": a2.barcode})
    assert failed["status"] == "failed"
    with wide.open("rb") as f:  # the sample map in the body this time
        r = client.post(
            "/api/v1/omics/files/",
            headers=h,
            query_string={"kind": "exome"},
            data={
                "file": (f, wide.name),
                "sample_map": json.dumps({"MEL-A1": a1.barcode, "MEL-A3": a3.barcode}),
            },
            content_type="multipart/form-data",
        )
    assert r.status_code == 200 and r.json["id"] == failed["id"], r.json
    again = client.get(f"/api/v1/omics/files/{failed['id']}", headers=h).json
    assert again["status"] == "ingested" and again["error"] is None, again
    assert {s["sample_name"]: s["barcode"] for s in again["samples"]} == {
        "MEL-A1": a1.barcode,
        "MEL-A2": None,
        "MEL-A3": a3.barcode,
    }
    # registered without ingestion (or left by a stopped worker), then posted again
    stuck = _upload(client, h, STRELKA, kind="exome", ingest="false").json
    assert stuck["status"] == "registered"
    r = _upload(client, h, STRELKA, kind="exome", sample_map={"TUMOR": a1.barcode})
    assert r.status_code == 200 and r.json["id"] == stuck["id"]
    assert client.get(f"/api/v1/omics/files/{stuck['id']}", headers=h).json["status"] == "ingested"

    # an ingestion that stops on anything unexpected marks the file failed, saying so
    def stop(record):
        raise RuntimeError("the database went away")

    monkeypatch.setattr("omics.services.ingest_file", stop)
    done = _ingested(client, h, COHORT, sample_map={"MEL-A1": a2.barcode})
    assert done["status"] == "failed"
    assert done["error"].startswith("ingestion stopped (RuntimeError): the database went away")


def test_a_sample_map_of_any_size_goes_in_the_body(client, make, site, technician, headers, tmp_path):
    from tests.omics.test_vcfcheck import _vcf

    h = headers(technician)
    person = make.participant(site=site)
    names = [f"SAMPLE-{n:03d}" for n in range(100)]
    aliquots = {
        name: make.specimen(participant=person, material_type=MaterialType.DNA).barcode for name in names
    }
    path = _vcf(
        tmp_path,
        "hundred.vcf",
        ["7\t100\t.\tA\tT\t.\tPASS\t.\tGT\t" + "\t".join("0/1" for _ in names)],
        samples=names,
    )
    with path.open("rb") as f:
        r = client.post(
            "/api/v1/omics/files/",
            headers=h,
            query_string={"kind": "exome", "sample_map": json.dumps(aliquots)},
            data={"file": (f, path.name), "sample_map": json.dumps(aliquots)},
            content_type="multipart/form-data",
        )
    assert r.status_code == 422 and "not both" in r.json["detail"], r.json
    with path.open("rb") as f:
        r = client.post(
            "/api/v1/omics/files/",
            headers=h,
            query_string={"kind": "exome"},
            data={"file": (f, path.name), "sample_map": json.dumps(aliquots)},
            content_type="multipart/form-data",
        )
    assert r.status_code == 201 and r.json["unmatched_samples"] == [], r.json
    done = client.get(f"/api/v1/omics/files/{r.json['id']}", headers=h).json
    assert done["status"] == "ingested" and done["call_count"] == 100


def test_carriers_come_in_pages_with_a_cursor_and_a_total(client, make, site, technician, headers):
    h = headers(technician)
    tumour = _tumour_dna(make, site, "MELP-T")
    normal = make.specimen(participant=tumour.participant, material_type=MaterialType.DNA)
    done = _ingested(client, h, STRELKA, sample_map={"TUMOR": tumour.barcode, "NORMAL": normal.barcode})
    whole = client.get("/api/v1/omics/variants/carriers", headers=h, query_string={"region": "1:1-300000000"})
    assert whole.status_code == 200 and "X-Next-Cursor" not in whole.headers
    total = int(whole.headers["X-Total-Count"])
    assert total == len(whole.json) > 0
    seen, query, pages = [], {"region": "1:1-300000000", "limit": 7}, 0
    while True:
        r = client.get("/api/v1/omics/variants/carriers", headers=h, query_string=query)
        assert r.status_code == 200 and int(r.headers["X-Total-Count"]) == total
        seen += [(c["chrom"], c["pos"], c["alt"], c["barcode"]) for c in r.json]
        pages += 1
        if "X-Next-Cursor" not in r.headers:
            break
        assert len(r.json) == 7 and 'rel="next"' in r.headers["Link"]
        query["after"] = r.headers["X-Next-Cursor"]
    assert pages == -(-total // 7)
    assert seen == [(c["chrom"], c["pos"], c["alt"], c["barcode"]) for c in whole.json]
    assert [c["pos"] for c in whole.json] == sorted(c["pos"] for c in whole.json)
    for cursor in ("nonsense", "7:1:99999999999999999999", ":1:2", "7:-1:5"):
        r = client.get(
            "/api/v1/omics/variants/carriers",
            headers=h,
            query_string={"region": "1:1-300000000", "after": cursor},
        )
        assert r.status_code == 422 and "X-Next-Cursor" in r.json["detail"], cursor
    assert done["status"] == "ingested"


def test_a_gene_model_places_raw_caller_variants_in_genes(
    client, make, site, technician, headers, db_session, runner, app
):
    """Strelka writes no CSQ/ANN: BRAF V600E is found by gene once the build's gene model
    (a GENCODE GTF excerpt with real GRCh37 coordinates) is registered, for the file already
    ingested and for one ingested later; other builds and VEP annotations are untouched."""
    from omics.models import GeneModel

    h = headers(technician)
    tumour = _tumour_dna(make, site, "MELG-1")
    normal = make.specimen(participant=tumour.participant, material_type=MaterialType.DNA)
    strelka = _ingested(
        client,
        h,
        STRELKA,
        reference_genome="GRCh37",
        sample_map={"TUMOR": tumour.barcode, "NORMAL": normal.barcode},
    )
    assert strelka["status"] == "ingested"
    braf = {"gene": "BRAF", "protein_change": "p.V600E"}
    assert client.get("/api/v1/omics/variants/carriers", headers=h, query_string={"gene": "BRAF"}).json == []
    with (COHORT.parent / "gencode-v19-excerpt.gtf").open("rb") as f:
        r = client.post(
            "/api/v1/omics/gene-models/",
            headers=h,
            query_string={"reference_genome": "GRCh37"},
            data={"file": (f, "gencode-v19-excerpt.gtf")},
            content_type="multipart/form-data",
        )
    assert r.status_code == 201, r.json
    assert r.json["gene_count"] == 7 and r.json["annotated_variants"] > 0
    found = client.get("/api/v1/omics/variants/carriers", headers=h, query_string={"gene": "BRAF"}).json
    assert (tumour.barcode, 7, 140453136, "A", "T") in [
        (c["barcode"], int(c["chrom"]), c["pos"], c["ref"], c["alt"]) for c in found
    ]
    assert all(140424943 <= c["pos"] <= 140624564 for c in found)
    # exactly the calls inside the gene's span, counted independently from the file
    inside = {
        int(line.split("\t")[1])
        for line in STRELKA.read_text().splitlines()
        if not line.startswith("#")
        and line.split("\t")[0] == "7"
        and 140424943 <= int(line.split("\t")[1]) <= 140624564
    }
    assert {c["pos"] for c in found} <= inside and 140453136 in inside
    # the cohort file (GRCh38, VEP CSQ) keeps its own annotation; no GRCh38 model applies
    dna = _tumour_dna(make, site, "MELG-2")
    cohort = _ingested(client, h, COHORT, sample_map={"MEL-A1": dna.barcode})
    assert cohort["reference_genome"] == "GRCh38"
    r = client.get("/api/v1/omics/variants/carriers", headers=h, query_string=braf)
    assert {c["barcode"] for c in r.json} == {dna.barcode}  # protein change: CSQ only
    # the CLI replaces a build's model (a GFF3 for GRCh38 here) and lists them
    result = runner.invoke(
        args=[
            "omics",
            "gene-model",
            "add",
            str(COHORT.parent / "ensembl-grch38-excerpt.gff3"),
            "--build",
            "GRCh38",
        ]
    )
    assert result.exit_code == 0, result.output
    assert "GRCh38: 7 genes from ensembl-grch38-excerpt.gff3" in result.output
    listed = runner.invoke(args=["omics", "gene-model", "list"]).output
    assert "GRCh37" in listed and "GRCh38" in listed
    db_session.expire_all()
    assert db_session.scalar(sa.select(sa.func.count(GeneModel.id))) == 2
    # a malformed gene model is refused with its line
    bad = COHORT.parent / "gencode-v19-excerpt.gtf"
    text = bad.read_text().replace("\t140424943\t140624564\t", "\t140624564\t140424943\t")
    r = client.post(
        "/api/v1/omics/gene-models/",
        headers=h,
        query_string={"reference_genome": "GRCh37"},
        data={"file": (io.BytesIO(text.encode()), "bad.gtf")},
        content_type="multipart/form-data",
    )
    assert r.status_code == 422 and "bad.gtf, line 6, column start:" in r.json["detail"], r.json


def test_a_maf_links_tumour_and_normal_and_answers_protein_changes(
    client, make, site, technician, headers, tmp_path
):
    h = headers(technician)
    maf = COHORT.parent / "melanoma-somatic.maf"
    t1, t2 = _tumour_dna(make, site, "MELMAF-1"), _tumour_dna(make, site, "MELMAF-2")
    n1 = make.specimen(participant=t1.participant, material_type=MaterialType.DNA)
    done = _ingested(
        client, h, maf, sample_map={"MEL-T1": t1.barcode, "MEL-T2": t2.barcode, "MEL-N1": n1.barcode}
    )
    assert done["format"] == "maf" and done["status"] == "ingested", done
    assert done["reference_genome"] == "GRCh37" and done["unmatched_samples"] == ["MEL-N2"]
    rows = [line.split("\t") for line in maf.read_text().splitlines()[2:]]
    assert done["call_count"] == len(rows) == 5
    r = client.get(
        "/api/v1/omics/variants/carriers",
        headers=h,
        query_string={"gene": "BRAF", "protein_change": "p.V600E"},
    )
    assert [(c["barcode"], c["depth"], c["alt_depth"], c["genotype"]) for c in r.json] == [
        (t1.barcode, 120, 50, "0/1")
    ]
    r = client.get("/api/v1/omics/variants/carriers", headers=h, query_string={"gene": "CDKN2A"})
    assert [(c["barcode"], c["ref"], c["alt"], c["protein_change"]) for c in r.json] == [
        (t2.barcode, "G", "-", "p.P80fs")
    ]
    # a row that is not a variant is refused at registration, naming line and column
    bad = tmp_path / "bad.maf"
    bad.write_text(maf.read_text().replace("\t140453136\t140453136\t", "\tsix\t140453136\t"))
    r = _upload(client, h, bad, kind="exome")
    assert r.status_code == 422, r.json
    assert "bad.maf, line 3, column Start_Position: 'six' is not a count" in r.json["detail"]


def test_carriers_are_somatic_tumour_carriers_unless_all_calls_are_asked(
    client, make, site, technician, headers
):
    """Strelka's NORMAL column has alternate reads at some sites: those calls are not
    carriers by default. Roles come from the names, or from sample_roles."""
    h = headers(technician)
    tumour = _tumour_dna(make, site, "MELS-T")
    normal = make.specimen(participant=tumour.participant, material_type=MaterialType.DNA)
    done = _ingested(
        client,
        h,
        STRELKA,
        reference_genome="GRCh37",
        sample_map={"TUMOR": tumour.barcode, "NORMAL": normal.barcode},
    )
    assert {s["sample_name"]: s["role"] for s in done["samples"]} == {"NORMAL": "normal", "TUMOR": "tumour"}
    # the normal's carrying calls, counted from the file: tier-1 alternate reads above 0
    text = STRELKA.read_text().splitlines()
    at = next(line for line in text if line.startswith("#CHROM")).split("\t").index("NORMAL")
    lines = [line.split("\t") for line in text if not line.startswith("#")]

    def normal_alt_reads(cols):
        cell = dict(zip(cols[8].split(":"), cols[at].split(":"), strict=True))
        tier1 = cell[f"{cols[4]}U"] if len(cols[3]) == len(cols[4]) == 1 else cell["TIR"]
        return int(tier1.split(",")[0])

    normal_reads = sum(1 for cols in lines if normal_alt_reads(cols) > 0)
    assert normal_reads > 0
    query = {"region": "1:1-300000000"}
    for chrom in sorted({cols[0] for cols in lines}):
        query["region"] = f"{chrom}:1-300000000"
        somatic = client.get("/api/v1/omics/variants/carriers", headers=h, query_string=query)
        every = client.get(
            "/api/v1/omics/variants/carriers", headers=h, query_string=query | {"all_calls": "true"}
        )
        assert {c["barcode"] for c in somatic.json} <= {tumour.barcode}
        assert all(c["role"] == "tumour" and c["somatic"] is True for c in somatic.json)
        normal_reads -= sum(1 for c in every.json if c["barcode"] == normal.barcode)
    assert normal_reads == 0  # every normal call is there when all calls are asked
    # roles given in the body win over the names; a role that is not one is refused
    a, b = _tumour_dna(make, site, "MELS-A"), _tumour_dna(make, site, "MELS-B")
    with COHORT.open("rb") as f:
        r = client.post(
            "/api/v1/omics/files/",
            headers=h,
            query_string={"kind": "exome"},
            data={
                "file": (f, COHORT.name),
                "sample_map": json.dumps({"MEL-A1": a.barcode, "MEL-A2": b.barcode}),
                "sample_roles": json.dumps({"MEL-A1": "tumour", "MEL-A2": "normal"}),
            },
            content_type="multipart/form-data",
        )
    assert r.status_code == 201, r.json
    assert {s["sample_name"]: s["role"] for s in r.json["samples"]} == {
        "MEL-A1": "tumour",
        "MEL-A2": "normal",
        "MEL-A3": None,
    }
    nras = client.get(
        "/api/v1/omics/variants/carriers", headers=h, query_string={"gene": "NRAS", "all_calls": "true"}
    ).json
    assert b.barcode in {c["barcode"] for c in nras}
    assert b.barcode not in {
        c["barcode"]
        for c in client.get("/api/v1/omics/variants/carriers", headers=h, query_string={"gene": "NRAS"}).json
    }
    # cohort queries count carriers the same way: the normal's aliquot does not carry NRAS
    r = client.post(
        "/api/v1/query/aliquots",
        headers=h,
        json={"filters": {"op": "=", "content": {"field": "variants.gene", "value": "NRAS"}}},
    )
    assert r.status_code == 200, r.json
    assert b.barcode not in {hit["barcode"] for hit in r.json["hits"]}
    r = client.post(
        "/api/v1/query/aliquots",
        headers=h,
        json={"filters": {"op": "=", "content": {"field": "variants.gene", "value": "BRAF"}}},
    )
    assert a.barcode in {hit["barcode"] for hit in r.json["hits"]}  # the tumour's does
    r = _upload(
        client,
        h,
        COHORT.parent / "test_mutect.vcf",
        kind="exome",
        lenient="true",
        sample_roles={"TUMOR": "metastasis"},
    )
    assert r.status_code == 422 and "metastasis is not one of" in r.json["detail"], r.json


def test_variants_know_their_build_and_one_name_per_contig(
    client, make, site, technician, headers, db_session, tmp_path
):
    h = headers(technician)
    first, second = _tumour_dna(make, site, "MELB-1"), _tumour_dna(make, site, "MELB-2")
    done = _ingested(client, h, COHORT, sample_map={"MEL-A1": first.barcode})
    stored = db_session.scalar(sa.select(sa.func.count(Variant.id)))
    # the same calls written 7 rather than chr7: the same variants, not new ones
    bare = tmp_path / "cohort-no-chr.vcf"
    bare.write_text(COHORT.read_text().replace("chr", ""))  # contig lines and records alike
    again = _ingested(client, h, bare, sample_map={"MEL-A1": second.barcode})
    assert done["status"] == again["status"] == "ingested", again
    assert db_session.scalar(sa.select(sa.func.count(Variant.id))) == stored
    assert set(db_session.scalars(sa.select(Variant.chrom))) <= {"1", "4", "5", "7", "17"}
    for region in ("chr7:140753336", "7:140753336"):
        r = client.get("/api/v1/omics/variants/carriers", headers=h, query_string={"region": region})
        assert {(c["barcode"], c["reference_genome"]) for c in r.json} == {
            (first.barcode, "GRCh38"),
            (second.barcode, "GRCh38"),
        }, region
    # a GRCh37 file with a call at the same coordinates: a region needs its build
    grch37 = tmp_path / "grch37.vcf"
    grch37.write_text(
        "\n".join(
            [
                "##fileformat=VCFv4.2",
                "##reference=file:///refs/human_g1k_v37.fasta",
                "##contig=<ID=7>",
                '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
                "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tT37",
                "7\t140753336\t.\tA\tT\t.\tPASS\t.\tGT\t0/1",
                "",
            ]
        )
    )
    old = _tumour_dna(make, site, "MELB-3")
    done37 = _ingested(client, h, grch37, sample_map={"T37": old.barcode})
    assert done37["reference_genome"] == "GRCh37"
    r = client.get("/api/v1/omics/variants/carriers", headers=h, query_string={"region": "7:140753336"})
    assert r.status_code == 422 and "GRCh37, GRCh38" in r.json["detail"], r.json
    for build in ("GRCh37", "hg19"):
        r = client.get(
            "/api/v1/omics/variants/carriers",
            headers=h,
            query_string={"region": "7:140753336", "reference_genome": build},
        )
        assert [c["barcode"] for c in r.json] == [old.barcode], build
    # a file cannot be registered under a build other than the one it names
    copy = tmp_path / "cohort-copy.vcf"
    copy.write_text(COHORT.read_text().replace("##reference=GRCh38", "##reference=GRCh38.p14"))
    r = _upload(client, h, copy, kind="exome", reference_genome="GRCh37")
    assert r.status_code == 422 and "cannot be registered as GRCh37" in r.json["detail"], r.json
