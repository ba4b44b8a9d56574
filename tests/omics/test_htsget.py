"""htsget 1.3: tickets for regions of stored BAM and VCF files, their pieces put together as a
client does, and the records of each region compared with what samtools and bcftools read
from the stored file. The PyPI htsget client downloads from a served instance."""

from __future__ import annotations

import base64
import os
import random
import shutil
import subprocess
from urllib.parse import urlparse

import pysam
import pytest

from tests.omics.test_omics_api import _upload


def _tool(name):
    if shutil.which(name) is None:
        if os.environ.get("BIOBANK_REQUIRE_BCFTOOLS"):
            pytest.fail(f"{name} is required here (apt-get install {name})")
        pytest.skip(f"{name} is not installed; CI installs it")
    return name


def _vcf(path, *, records=12_000, seed=7):
    """A sorted VCF over chromosomes 1 and 7, big enough for many BGZF blocks."""
    rng = random.Random(seed)
    lines = [
        "##fileformat=VCFv4.2",
        "##contig=<ID=1,length=3000000>",
        "##contig=<ID=7,length=3000000>",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tHTS-S1",
    ]
    for contig in ("1", "7"):
        for pos in sorted(rng.sample(range(1, 2_900_000), records // 2)):
            lines.append(f"{contig}\t{pos}\t.\tA\tG\t50\tPASS\t.\tGT\t0/1")
    path.write_text("\n".join(lines) + "\n")
    return path


def _bam(path, *, reads=20_000, unmapped=30, seed=11):
    """A coordinate-sorted BAM on chr1 and chr7 with unplaced reads at its end."""
    rng = random.Random(seed)
    header = {
        "HD": {"VN": "1.6", "SO": "coordinate"},
        "SQ": [{"SN": "chr1", "LN": 2_000_000}, {"SN": "chr7", "LN": 3_000_000}],
        "RG": [{"ID": "rg1", "SM": "HTS-S1", "PL": "ILLUMINA"}],
    }
    raw = path.with_name("unsorted-" + path.name)
    with pysam.AlignmentFile(str(raw), "wb", header=header) as out:
        for i in range(reads + unmapped):
            read = pysam.AlignedSegment(out.header)
            read.query_name = f"read{i}"
            read.query_sequence = "".join(rng.choice("ACGT") for _ in range(60))
            read.query_qualities = pysam.qualitystring_to_array("I" * 60)
            if i < reads:
                read.reference_id = rng.randint(0, 1)
                read.reference_start = rng.randint(0, 1_900_000)
                read.cigarstring, read.mapping_quality = "60M", 40
            else:
                read.flag = 4
            read.set_tag("RG", "rg1")
            out.write(read)
    pysam.sort("-o", str(path), str(raw))
    return path


def _fetch(client, ticket, headers):
    """The bytes a client gets from a ticket: data URLs decoded, the others fetched whole or
    by the range in their headers."""
    body = bytearray()
    for entry in ticket["urls"]:
        url = entry["url"]
        if url.startswith("data:"):
            body += base64.b64decode(url.split(",", 1)[1])
            continue
        parts = urlparse(url)
        with client.get(parts.path, headers=headers | entry.get("headers", {})) as r:
            assert r.status_code == (206 if "Range" in entry.get("headers", {}) else 200)
            body += r.data
    return bytes(body)


def _download(client, headers, datatype, sha, tmp_path, name, **query):
    r = client.get(f"/htsget/{datatype}/{sha}", headers=headers, query_string=query)
    assert r.status_code == 200, r.json
    assert r.mimetype == "application/vnd.ga4gh.htsget.v1.3.0+json"
    ticket = r.json["htsget"]
    data = _fetch(client, ticket, headers)
    out = tmp_path / name
    out.write_bytes(data)
    return ticket, out


def _run(*args):
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout


def _bcftools_records(path, region=None):
    pysam.tabix_index(str(path), preset="vcf", force=True, keep_original=True)
    return _run(_tool("bcftools"), "view", "-H", str(path), *([] if region is None else ["-r", region]))


@pytest.mark.parametrize("stored", ["plain", "bgzipped"])
def test_a_region_of_a_vcf_holds_the_records_bcftools_finds(client, admin, headers, tmp_path, stored):
    plain = _vcf(tmp_path / "calls.vcf")
    upload = plain
    if stored == "bgzipped":
        upload = tmp_path / "calls.vcf.gz"
        pysam.tabix_compress(str(plain), str(upload), force=True)
    h = headers(admin)
    r = _upload(client, h, upload, kind="exome", reference_genome="GRCh38")
    assert r.status_code == 201, r.json
    sha = r.json["sha256"]
    reference = tmp_path / "reference.vcf.gz"
    pysam.tabix_compress(str(plain), str(reference), force=True)
    whole_size = reference.stat().st_size
    for name, start, end in [
        ("1", 100_000, 200_000),
        ("7", 0, 5_000),
        ("7", 2_000_000, 2_900_000),
        ("chr1", 1_500_000, 1_500_400),
        ("1", 2_950_000, 3_000_000),
    ]:
        region = f"{name.removeprefix('chr')}:{start + 1}-{end}"
        ticket, got = _download(
            client,
            h,
            "variants",
            sha,
            tmp_path,
            f"{name}-{start}.vcf.gz",
            referenceName=name,
            start=start,
            end=end,
        )
        assert ticket["format"] == "VCF"
        assert _bcftools_records(got, region) == _bcftools_records(reference, region)
        if end - start <= 100_000:  # a region is its part of the file, not the file
            assert got.stat().st_size < whole_size / 5
    # no region: every record; class=header: the header and no record
    _, whole = _download(client, h, "variants", sha, tmp_path, "whole.vcf.gz")
    assert _bcftools_records(whole) == _bcftools_records(reference)
    _, header = _download(client, h, "variants", sha, tmp_path, "header.vcf.gz", **{"class": "header"})
    assert _run("bcftools", "view", "-h", "--no-version", str(header)) == _run(
        "bcftools", "view", "-h", "--no-version", str(reference)
    )
    assert _run("bcftools", "view", "-H", str(header)) == ""


def test_a_bcf_is_served_whole_for_a_region_and_cut_for_its_header(client, admin, headers, tmp_path):
    bcftools = _tool("bcftools")
    bcf = tmp_path / "calls.bcf"
    _run(bcftools, "view", "-Ob", "-o", str(bcf), str(_vcf(tmp_path / "calls.vcf", records=400)))
    _run(bcftools, "index", str(bcf))
    h = headers(admin)
    r = _upload(client, h, bcf, kind="exome", reference_genome="GRCh38")
    assert r.status_code == 201, r.json
    sha = r.json["sha256"]
    ticket, got = _download(
        client,
        h,
        "variants",
        sha,
        tmp_path,
        "region.bcf",
        referenceName="7",
        start=0,
        end=1_000_000,
        format="BCF",
    )
    assert ticket["format"] == "BCF" and len(ticket["urls"]) == 1
    _run(bcftools, "index", str(got))
    assert _run(bcftools, "view", "-H", "-r", "7:1-1000000", str(got)) == _run(
        bcftools, "view", "-H", "-r", "7:1-1000000", str(bcf)
    )
    _, header = _download(
        client, h, "variants", sha, tmp_path, "header.bcf", format="BCF", **{"class": "header"}
    )
    assert _run(bcftools, "view", "-h", "--no-version", str(header)) == _run(
        bcftools, "view", "-h", "--no-version", str(bcf)
    )
    assert _run(bcftools, "view", "-H", str(header)) == ""
    r = client.get(f"/htsget/variants/{sha}", headers=h, query_string={"format": "VCF"})
    assert r.status_code == 400 and "calls.bcf is BCF, not VCF" in r.json["htsget"]["message"]


def test_a_region_of_a_bam_holds_the_reads_samtools_finds(client, admin, headers, tmp_path):
    bam = _bam(tmp_path / "reads.bam")
    pysam.index(str(bam))
    h = headers(admin)
    r = _upload(client, h, bam, kind="exome", reference_genome="GRCh38")
    assert r.status_code == 201, r.json
    sha, samtools = r.json["sha256"], _tool("samtools")
    for name, start, end in [
        ("chr1", 100_000, 200_000),
        ("chr7", 0, 5_000),
        ("7", 1_000_000, 1_900_000),
        ("chr1", 1_990_000, 2_000_000),
    ]:
        region = f"chr{name.removeprefix('chr')}:{start + 1}-{end}"
        _, got = _download(
            client, h, "reads", sha, tmp_path, f"{name}-{start}.bam", referenceName=name, start=start, end=end
        )
        _run(samtools, "index", str(got))
        assert _run(samtools, "view", str(got), region) == _run(samtools, "view", str(bam), region)
        assert int(_run(samtools, "view", "-c", str(got))) < 20_000 / 2
    _, unplaced = _download(client, h, "reads", sha, tmp_path, "unplaced.bam", referenceName="*")
    reads = _run(samtools, "view", str(unplaced)).splitlines()
    assert len(reads) == 30 and all(line.split("\t")[2] == "*" for line in reads)
    _, header = _download(client, h, "reads", sha, tmp_path, "header.bam", **{"class": "header"})
    assert _run(samtools, "view", "-H", "--no-PG", str(header)) == _run(
        samtools, "view", "-H", "--no-PG", str(bam)
    )
    assert _run(samtools, "view", "-c", str(header)).strip() == "0"


@pytest.mark.parametrize(
    ("datatype", "query", "status", "kind", "words"),
    [
        ("variants", {"format": "BAM"}, 400, "UnsupportedFormat", "'BAM' is not served"),
        ("reads", {}, 400, "UnsupportedFormat", "is a vcf file, not reads"),
        (
            "variants",
            {"referenceName": "1", "start": "9", "end": "3"},
            400,
            "InvalidRange",
            "start 9 is after end 3",
        ),
        ("variants", {"start": "10"}, 400, "InvalidInput", "need a referenceName"),
        ("variants", {"referenceName": "1", "start": "ten"}, 400, "InvalidInput", "'ten'"),
        (
            "variants",
            {"referenceName": "1", "class": "header"},
            400,
            "InvalidInput",
            "class=header takes no referenceName",
        ),
        ("variants", {"referenceName": "22"}, 404, "NotFound", "no reference '22'"),
    ],
)
def test_refusals_are_in_the_htsget_form(
    client, admin, headers, tmp_path, datatype, query, status, kind, words
):
    h = headers(admin)
    sha = _upload(
        client, h, _vcf(tmp_path / "small.vcf", records=20), kind="exome", reference_genome="GRCh38"
    ).json["sha256"]
    r = client.get(f"/htsget/{datatype}/{sha}", headers=h, query_string=query)
    assert r.status_code == status and r.mimetype == "application/json"
    assert r.json["htsget"]["error"] == kind and words in r.json["htsget"]["message"]


def test_who_may_not_read_the_file_gets_htsget_errors(client, make, admin, other_site, headers, tmp_path):
    sha = _upload(client, headers(admin), _vcf(tmp_path / "theirs.vcf", records=20), kind="exome").json[
        "sha256"
    ]
    r = client.get(f"/htsget/variants/{sha}")
    assert r.status_code == 401 and r.json["htsget"]["error"] == "InvalidAuthentication"
    elsewhere = make.user("htsget-elsewhere", role="technician", sites=[other_site])
    for path in (f"/htsget/variants/{sha}", f"/htsget/variants/{sha}/bgzf"):
        r = client.get(path, headers=headers(elsewhere))
        assert r.status_code == 404 and r.json["htsget"]["error"] == "NotFound"


def test_an_unsorted_bam_is_refused_as_having_no_regions(client, admin, headers, tmp_path):
    unsorted = _bam(tmp_path / "x.bam", reads=200, unmapped=0).with_name("unsorted-x.bam")
    sha = _upload(client, headers(admin), unsorted, kind="exome").json["sha256"]
    r = client.get(f"/htsget/reads/{sha}", headers=headers(admin), query_string={"referenceName": "chr1"})
    assert r.status_code == 400 and r.json["htsget"]["error"] == "UnsupportedFormat"
    assert "coordinate-sorted" in r.json["htsget"]["message"]
    assert "/" not in r.json["htsget"]["message"].split("(")[0]  # no server folder named
    # the whole file needs no index
    r = client.get(f"/htsget/reads/{sha}", headers=headers(admin))
    assert r.status_code == 200 and len(r.json["htsget"]["urls"]) == 1


def test_service_info_names_the_datatype_and_formats(client):
    for datatype, formats in (("reads", ["BAM", "CRAM"]), ("variants", ["VCF", "BCF"])):
        info = client.get(f"/htsget/{datatype}/service-info").json
        assert info["type"] == {"group": "org.ga4gh", "artifact": "htsget", "version": "1.3.0"}
        assert info["htsget"]["datatype"] == datatype and info["htsget"]["formats"] == formats


def test_the_htsget_client_downloads_regions_from_a_served_instance(tmp_path):
    """The PyPI htsget client, over HTTP, against `biobank serve`."""
    import htsget
    import requests

    from tests.biobank.test_cli import _env
    from tests.biobank.test_cli import _run as cli
    from tests.biobank.test_serve import serving

    samtools, bcftools = _tool("samtools"), _tool("bcftools")
    env = _env(tmp_path)
    cli(env, "db", "upgrade")
    cli(env, "create-user", "genomics", "--role", "admin", "--password", "long-enough-pw")
    token = cli(env, "create-token", "genomics").strip()
    bam = _bam(tmp_path / "client.bam")
    pysam.index(str(bam))
    vcf = _vcf(tmp_path / "client.vcf")
    reference = tmp_path / "client-reference.vcf.gz"
    pysam.tabix_compress(str(vcf), str(reference), force=True)
    pysam.tabix_index(str(reference), preset="vcf", force=True)
    with serving(env) as base:
        shas = {}
        for path in (bam, vcf):
            with path.open("rb") as f:
                r = requests.post(
                    f"{base}/api/v1/omics/files/",
                    params={"kind": "exome"},
                    files={"file": (path.name, f)},
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=60,
                )
            assert r.status_code == 201, r.text
            shas[path.suffix] = r.json()["sha256"]
        got_bam = tmp_path / "got.bam"
        with got_bam.open("wb") as out:
            htsget.get(
                f"{base}/htsget/reads/{shas['.bam']}",
                out,
                reference_name="chr7",
                start=250_000,
                end=400_000,
                bearer_token=token,
                max_retries=0,
            )
        got_vcf = tmp_path / "got.vcf.gz"
        with got_vcf.open("wb") as out:
            htsget.get(
                f"{base}/htsget/variants/{shas['.vcf']}",
                out,
                reference_name="1",
                start=600_000,
                end=700_000,
                data_format="VCF",
                bearer_token=token,
                max_retries=0,
            )
        with (
            pytest.raises(htsget.exceptions.ClientError, match="NotFound"),
            (tmp_path / "none.bam").open("wb") as out,
        ):
            htsget.get(f"{base}/htsget/reads/{'0' * 64}", out, bearer_token=token, max_retries=0)
    _run(samtools, "index", str(got_bam))
    region = "chr7:250001-400000"
    assert _run(samtools, "view", str(got_bam), region) == _run(samtools, "view", str(bam), region)
    pysam.tabix_index(str(got_vcf), preset="vcf", force=True)
    region = "1:600001-700000"
    assert _run(bcftools, "view", "-H", "-r", region, str(got_vcf)) == _run(
        bcftools, "view", "-H", "-r", region, str(reference)
    )
