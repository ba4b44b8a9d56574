"""The pysam VCF reader (pure): samples, calls, annotations, and files it must refuse."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pysam
import pytest

from omics.formats import FormatError, detect, open_reader
from omics.formats.vcf import short_protein_change

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "omics"
STRELKA = FIXTURES / "test_strelka.vcf"
COHORT = FIXTURES / "melanoma-cohort.vcf"


def test_strelka_braf_v600e_calls_from_allele_counts():
    with open_reader(STRELKA) as reader:
        assert reader.samples == ["NORMAL", "TUMOR"]
        variants = list(reader.variants())
    braf = next(v for v in variants if (v.chrom, v.pos) == ("7", 140453136))
    assert (braf.ref, braf.alt, braf.filters, braf.line) == ("A", "T", ("PASS",), 160)
    normal, tumour = braf.calls
    assert (normal.depth, normal.alt_depth, normal.carries) == (102, 0, False)
    assert (tumour.depth, tumour.alt_depth, tumour.carries) == (260, 191, True)
    assert tumour.allele_fraction == pytest.approx(191 / 260, abs=1e-4)


def test_csq_gives_gene_consequence_and_one_letter_protein_change():
    with open_reader(COHORT) as reader:
        assert reader.reference == "GRCh38"
        by_gene = {(v.annotation.gene, v.annotation.protein_change): v for v in reader.variants()}
    braf = by_gene[("BRAF", "p.V600E")]
    assert [c.sample for c in braf.calls if c.carries] == ["MEL-A1"]
    assert braf.calls[0].genotype == "0/1" and braf.calls[0].allele_fraction == pytest.approx(0.471)
    assert ("NF1", "p.R1362*") in by_gene and ("NRAS", "p.Q61K") in by_gene
    assert ("TERT", None) in by_gene  # a promoter variant has no protein change
    assert short_protein_change("p.Leu379%3D") == "p.L379="


@pytest.mark.parametrize(
    ("hgvsp", "short"),
    [
        ("ENSP00000288602.6:p.Val600Glu", "p.V600E"),
        ("p.Arg1362Ter", "p.R1362*"),
        ("p.Leu576=", "p.L576="),
        ("p.Sec5Pyl", "p.U5O"),
        # an unknown code stays as written, whichever side it is on
        ("p.Xyz5Glu", "p.Xyz5E"),
        ("p.Val5Xyz", "p.V5Xyz"),
        # changes of more than one residue
        ("p.Lys100AsnfsTer5", "p.K100Nfs*5"),
        ("p.Glu746_Ala750del", "p.E746_A750del"),
        ("p.Ter100TrpextTer5", "p.*100Wext*5"),
        ("p.Met1?", "p.M1?"),
        ("c.1799T>A", None),
        ("", None),
    ],
)
def test_protein_changes_in_one_letter_codes(hgvsp, short):
    assert short_protein_change(hgvsp) == short


def test_vep_without_hgvs_gives_the_change_from_amino_acids_and_position(tmp_path):
    fields = "Allele|Consequence|IMPACT|SYMBOL|Amino_acids|Protein_position"
    path = tmp_path / "vep-no-hgvs.vcf"
    path.write_text(
        "\n".join(
            [
                "##fileformat=VCFv4.2",
                "##contig=<ID=7>",
                f'##INFO=<ID=CSQ,Number=.,Type=String,Description="VEP. Format: {fields}">',
                '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
                "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tT1",
                "7\t140453136\t.\tA\tT\t.\tPASS\tCSQ=T|missense_variant|MODERATE|BRAF|V/E|600\tGT\t0/1",
                "7\t140453137\t.\tC\tT\t.\tPASS\tCSQ=T|synonymous_variant|LOW|BRAF|V|599\tGT\t0/1",
                "7\t140453140\t.\tCA\tC\t.\tPASS\tCSQ=-|frameshift_variant|HIGH|BRAF|VK/X|598-599\tGT\t0/1",
                "",
            ]
        )
    )
    with open_reader(path) as reader:
        changes = [(v.pos, v.annotation.protein_change) for v in reader.carriers()]
    assert changes == [(140453136, "p.V600E"), (140453137, "p.V599="), (140453140, None)]


def test_the_same_calls_as_bcftools(tmp_path):
    """Non-reference calls per sample agree with `bcftools query -i 'GT="alt"'`."""
    if shutil.which("bcftools") is None:
        if os.environ.get("BIOBANK_REQUIRE_BCFTOOLS"):
            pytest.fail("bcftools is required here (apt-get install bcftools)")
        pytest.skip("bcftools is not installed (apt-get install bcftools); CI installs it")
    out = subprocess.run(
        ["bcftools", "query", "-i", 'GT="alt"', "-f", r"[%SAMPLE\t%CHROM\t%POS\t%REF\t%ALT\n]", str(COHORT)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    expected = {tuple(line.split("\t")) for line in out.splitlines()}
    with open_reader(COHORT) as reader:
        ours = {
            (c.sample, v.chrom, str(v.pos), v.ref, v.alt)
            for v in reader.variants()
            for c in v.calls
            if c.carries
        }
    assert ours == expected and len(ours) == 10


def test_region_query_through_the_index(tmp_path):
    indexed = tmp_path / "cohort.vcf.gz"
    pysam.tabix_compress(str(COHORT), str(indexed))
    pysam.tabix_index(str(indexed), preset="vcf")
    assert detect(indexed) == "vcf"
    with open_reader(indexed) as reader:
        hits = list(reader.fetch("chr7:140753000-140754000"))
    assert [(v.pos, v.annotation.protein_change) for v in hits] == [(140753336, "p.V600E")]


def test_files_it_must_refuse(tmp_path):
    # a PNG named .vcf
    fake = tmp_path / "photo.vcf"
    fake.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    with pytest.raises(FormatError, match=r"photo\.vcf: not a readable VCF"):
        open_reader(fake)
    # a bgzipped VCF cut off halfway
    whole = tmp_path / "whole.vcf.gz"
    pysam.tabix_compress(str(STRELKA), str(whole))
    cut = tmp_path / "cut.vcf.gz"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(FormatError, match=r"cut\.vcf\.gz: .*truncated"):
        open_reader(cut)
    # a record whose ALT repeats its REF (pysam reads it without complaint)
    bad = tmp_path / "alt_is_ref.vcf"
    text = COHORT.read_text().replace("\tA\tT\t.\tPASS", "\tA\tA\t.\tPASS")
    bad.write_text(text)
    reader = open_reader(bad)
    with pytest.raises(FormatError, match=r"alt_is_ref\.vcf, line 19, column ALT"):
        list(reader.variants())
    reader.close()
    # a depth no 32-bit VCF integer can hold, in a carrier's cell
    huge = tmp_path / "huge_depth.vcf"
    huge.write_text(COHORT.read_text().replace("0/1:61,47:108:0.435", "0/1:61,47:3000000000:0.435"))
    with (
        open_reader(huge) as reader,
        pytest.raises(FormatError, match=r"huge_depth\.vcf, line \d+, column MEL-A2: .*outside 0–2147483647"),
    ):
        list(reader.carriers())
    with pytest.raises(FormatError, match="no reader"):
        detect(tmp_path / "matrix.xyz")


def test_pyvcf3_reader_gives_the_same_variants_and_calls():
    def digest(fmt):
        with open_reader(COHORT, fmt) as reader:
            return [
                (
                    v.key,
                    v.filters,
                    v.annotation,
                    [(c.sample, c.genotype, c.depth, c.alt_depth, c.carries) for c in v.calls],
                )
                for v in reader.variants()
            ]

    assert digest("vcf-pyvcf3") == digest("vcf")
    assert detect(COHORT) == "vcf"  # pyvcf3 is chosen by name only


def _carriers_checked(path: Path) -> list[tuple[str, tuple]]:
    """Each variant's key and carrying calls as ``carriers()`` reads them, checked against
    the carrying calls of pysam's records."""
    with open_reader(path) as reader:
        slow = [(v.key, tuple(c for c in v.calls if c.carries)) for v in reader.variants()]
    with open_reader(path) as reader:
        fast = [(v.key, v.calls) for v in reader.carriers()]
    assert fast == [entry for entry in slow if entry[1]]
    return fast


def test_fast_carrier_path_matches_the_pysam_records(tmp_path):
    bgzipped = tmp_path / "cohort.vcf.gz"
    pysam.tabix_compress(str(COHORT), str(bgzipped))
    for path in (COHORT, bgzipped):
        with open_reader(path) as reader:
            slow = [
                (v.key, v.line, v.annotation, tuple(c for c in v.calls if c.carries))
                for v in reader.variants()
            ]
        with open_reader(path) as reader:
            fast = [(v.key, v.line, v.annotation, v.calls) for v in reader.carriers()]
        assert fast == [entry for entry in slow if entry[3]]
    # genotypes that name a second ALT only, three alleles, one allele, no other field
    tricky = tmp_path / "tricky.vcf"
    tricky.write_text(
        "\n".join(
            [
                "##fileformat=VCFv4.2",
                "##contig=<ID=chr1,length=1000>",
                '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
                '##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths">',
                '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">',
                "\t".join(
                    [
                        "#CHROM",
                        "POS",
                        "ID",
                        "REF",
                        "ALT",
                        "QUAL",
                        "FILTER",
                        "INFO",
                        "FORMAT",
                        "A",
                        "B",
                        "C",
                        "D",
                    ]
                ),
                "chr1\t100\t.\tA\tT,G\t.\tPASS\t.\tGT:AD:DP\t0/0:10,0,0:10\t./2:0,0,7:7\t"
                "0/1:5,5,0:10\t1|2:0,4,4:8",
                "chr1\t200\t.\tC\tT\t.\tPASS\t.\tGT:AD:DP\t0/0/1:9,3:12\t0:10,0:10\t1:0,8:8\t./.",
                "chr1\t300\t.\tG\tA\t.\tPASS\t.\tGT\t0\t.\t0/0\t0|1",
                "",
            ]
        )
    )
    fast = _carriers_checked(tricky)
    assert [(key, [(c.sample, c.genotype, c.alt_depth) for c in calls]) for key, calls in fast] == [
        ("chr1-100-A-T", [("C", "0/1", 5), ("D", "1|2", 4)]),
        ("chr1-100-A-G", [("B", "./2", 7), ("D", "1|2", 4)]),
        ("chr1-200-C-T", [("A", "0/0/1", 3), ("C", "1", 8)]),
        ("chr1-300-G-A", [("D", "0|1", None)]),
    ]
    # without genotypes (Strelka) carriers come from the allele counts
    with open_reader(STRELKA) as reader:
        braf = next(v for v in reader.carriers() if v.pos == 140453136)
    assert [c.sample for c in braf.calls] == ["TUMOR"]


def _gatk_style(path: Path, records: list[str]) -> Path:
    header = [
        "##fileformat=VCFv4.2",
        "##contig=<ID=chr7,length=159345973>",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        '##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths">',
        '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">',
        '##FORMAT=<ID=GQ,Number=1,Type=Integer,Description="Genotype quality">',
        '##FORMAT=<ID=PL,Number=G,Type=Integer,Description="Phred likelihoods">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tA\tB\tC\tD",
    ]
    path.write_text("\n".join([*header, *records, ""]))
    return path


def test_cells_of_biallelic_records_read_in_one_search_match_pysam(tmp_path):
    # biallelic records with whole-number DP and AD are taken apart by one search per
    # record; every other cell beside them is read field by field: both as pysam reads them
    path = _gatk_style(
        tmp_path / "gatk.vcf",
        [
            # AD before DP (GATK), with a cell of each kind the search passes on: DP
            # missing, AD with a missing count, trailing fields dropped
            "chr7\t140753336\t.\tA\tT\t50\tPASS\t.\tGT:AD:DP:GQ:PL"
            "\t0/1:12,9:21:99:200,0,300\t0/1:4,5:.:40:90,0,80\t1/1:.,7:7:20:200,20,0\t0/1:3,3",
            # DP before AD, a phased and a haploid carrier, and a depth of zero
            "chr7\t140753400\t.\tG\tC\t50\tPASS\t.\tGT:DP:AD:GQ:PL"
            "\t0|1:30:20,10:99:1,0,1\t1:8:0,8:30:1,0\t0/0:9:9,0:30:0,30,300\t0/1:0:0,0:3:1,0,1",
        ],
    )
    fast = _carriers_checked(path)
    assert [
        (key, [(c.sample, c.genotype, c.depth, c.alt_depth, c.allele_fraction) for c in calls])
        for key, calls in fast
    ] == [
        (
            "chr7-140753336-A-T",
            [
                ("A", "0/1", 21, 9, 0.4286),
                ("B", "0/1", 9, 5, 0.5556),
                ("C", "1/1", 7, 7, 1.0),
                ("D", "0/1", 6, 3, 0.5),
            ],
        ),
        (
            "chr7-140753400-G-C",
            [("A", "0|1", 30, 10, 0.3333), ("B", "1", 8, 8, 1.0), ("D", "0/1", 0, 0, None)],
        ),
    ]
    # a depth beyond 32 bits in a cell of that shape is refused, naming its column
    huge = _gatk_style(
        tmp_path / "huge.vcf",
        [
            "chr7\t140753336\t.\tA\tT\t50\tPASS\t.\tGT:AD:DP\t0/0:5,0:5\t0/1:4,5:3000000000\t0/0:1,0:1\t./.:.:."
        ],
    )
    with (
        open_reader(huge) as reader,
        pytest.raises(FormatError, match=r"huge\.vcf, line 9, column B: .*outside 0–2147483647"),
    ):
        list(reader.carriers())


def _bam(path, *, sorted_indexed=True):
    header = {
        "HD": {"VN": "1.6", "SO": "coordinate"},
        "SQ": [
            {"SN": "chr7", "LN": 159345973, "AS": "GRCh38"},
            {"SN": "chr1", "LN": 248956422, "AS": "GRCh38"},
        ],
        "RG": [{"ID": "rg1", "SM": "MEL-T1", "PL": "ILLUMINA"}],
    }
    with pysam.AlignmentFile(str(path), "wb", header=header) as out:
        for i, (contig, pos) in enumerate([(0, 140753300), (0, 140753310), (1, 114713890)]):
            read = pysam.AlignedSegment(out.header)
            read.query_name, read.reference_id, read.reference_start = f"r{i}", contig, pos
            read.query_sequence, read.cigarstring = "ACGT" * 10, "40M"
            read.query_qualities = pysam.qualitystring_to_array("I" * 40)
            read.set_tag("RG", "rg1")
            out.write(read)
        unmapped = pysam.AlignedSegment(out.header)
        unmapped.query_name, unmapped.flag = "u1", 4
        unmapped.query_sequence = "A" * 20
        unmapped.query_qualities = pysam.qualitystring_to_array("I" * 20)
        out.write(unmapped)
    if sorted_indexed:
        sorted_path = path.with_name("sorted.bam")
        pysam.sort("-o", str(sorted_path), str(path))
        pysam.index(str(sorted_path))
        return sorted_path
    return path


def test_bam_read_groups_reference_and_counts(tmp_path):
    for indexed in (True, False):
        path = _bam(tmp_path / f"reads-{indexed}.bam", sorted_indexed=indexed)
        assert detect(path) == "bam"
        with open_reader(path) as reader:
            assert reader.samples == ["MEL-T1"] and reader.reference == "GRCh38"
            counts = reader.contig_counts()
        assert counts == {"mapped": {"chr7": 2, "chr1": 1}, "unmapped": 1}
    broken = tmp_path / "broken.bam"
    broken.write_bytes(b"BAM\x01 not really")
    with pytest.raises(FormatError, match=r"broken\.bam: not a readable BAM"):
        open_reader(broken)


def test_bedmethyl_sites_become_beta_values(tmp_path):
    path = tmp_path / "MEL-M1.bedmethyl.bed"
    path.write_text(
        "track name=demo\n"
        "chr5\t1295100\t1295101\tm\t40\t+\t1295100\t1295101\t255,0,0\t40\t82.5\n"
        "chr5\t1295112\t1295113\tm\t10\t-\t1295112\t1295113\t255,0,0\t10\t0\n"
    )
    with open_reader(path) as reader:
        assert reader.samples == ["MEL-M1"]
        adata = reader.to_anndata()
    assert list(adata.var_names) == ["chr5:1295100", "chr5:1295112"]
    assert adata.X.toarray().ravel().tolist() == pytest.approx([0.825, 0.0])
    assert adata.var["coverage"].tolist() == [40, 10]
    path.write_text("chr5\t1\t2\tm\t1\t+\t1\t2\t0\t10\t150\n")
    with (
        pytest.raises(FormatError, match=r"line 1, column percent: .*outside 0–100"),
        open_reader(path) as reader,
    ):
        reader.to_anndata()


def test_callers_say_which_column_is_the_tumour_and_which_calls_are_somatic():
    # Strelka: SOMATIC on every record; its NORMAL column is named so
    with open_reader(STRELKA) as reader:
        assert reader.roles == {"NORMAL": "normal", "TUMOR": "tumour"}
        calls = [c for v in reader.carriers() for c in v.calls]
    assert {c.somatic for c in calls} == {True}
    # VarScan: SS=1 germline, SS=2 somatic; its AD (Number=1) is the alternate reads alone
    with open_reader(FIXTURES / "test_varscan.vcf") as reader:
        first = next(reader.carriers())
    assert (first.pos, [(c.sample, c.depth, c.alt_depth, c.somatic) for c in first.calls]) == (
        1991014,
        [("NORMAL", 117, 56, False), ("TUMOR", 91, 35, False)],
    )
    with open_reader(FIXTURES / "test_varscan.vcf") as reader:
        somatic = next(v for v in reader.variants() if v.pos == 2584408)
    assert [(c.sample, c.alt_depth, c.somatic) for c in somatic.calls if c.carries] == [("TUMOR", 4, True)]
    # MuTect: the tumour's FORMAT SS=2 says somatic
    with open_reader(FIXTURES / "test_mutect.vcf") as reader:
        statuses = {(c.sample, c.somatic) for v in reader.carriers() for c in v.calls}
    assert ("TUMOR", True) in statuses
