"""The VCF validator against the VCF validator's own conformance files, and real caller files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from omics.formats import FormatError, open_reader
from omics.formats.vcfcheck import Problem, check, validate
from tests.omics.test_vcf import COHORT, FIXTURES, STRELKA

SUITE = FIXTURES / "vcf-validator-suite"
VERSIONS = ("v4.1", "v4.2", "v4.3", "v4.4")


def _files(version: str, kind: str) -> list[Path]:
    files = sorted((SUITE / version / kind).glob("*.vcf"))
    assert files, f"no {kind} files for {version}"
    return files


def _cause(path: Path) -> str:
    """What the suite says is wrong with a failed file (its ##CauseOfFailure line)."""
    text = path.read_bytes().decode("utf-8", "replace")
    found = re.search(r"^##CauseOfFailure=(.*)$", text, re.MULTILINE)
    return found.group(1) if found else "(no cause given)"


@pytest.mark.parametrize("version", VERSIONS)
def test_every_valid_file_of_the_conformance_suite_is_accepted_and_read(version):
    for path in _files(version, "passed"):
        assert list(check(path)) == [], path.name
        with open_reader(path, "vcf") as reader:  # and ingestion's reader reads it through
            list(reader.carriers())


@pytest.mark.parametrize("version", VERSIONS)
def test_ninety_nine_in_a_hundred_invalid_files_are_refused_each_with_its_place(version):
    files = _files(version, "failed")
    kept = []
    for path in files:
        problems = list(check(path, limit=1))
        if not problems:
            kept.append(f"{path.name}: {_cause(path)}")
            continue
        problem = problems[0]
        # a place (line, or the whole file) and a rule in words, never a bare code
        assert len(problem.rule) > 15 and " " in problem.rule, (path.name, problem)
    refused = 1 - len(kept) / len(files)
    # the floor is nine in ten; every version now refuses all but at most one (an
    # underscore in a 4.1/4.2 FORMAT key, which real files of those versions use)
    assert refused >= 0.99, f"{refused:.1%} refused; kept: {kept}"


@pytest.mark.parametrize(
    ("version", "name", "expected"),
    [
        ("v4.3", "failed_meta_info_000.vcf", "line 3, column INFO: ##INFO DP: Number 'N' is not"),
        (
            "v4.3",
            "failed_meta_format_028.vcf",
            "##FORMAT PL is reserved by the VCF specification as Number=G, Type=Integer",
        ),
        (
            "v4.3",
            "failed_body_samples_ploidy_003.vcf",
            "line 4, column HG00096: PL=1,2 has 2 value(s); its Number=G wants 3",
        ),
        ("v4.3", "failed_body_info_001.vcf", "line 4, column INFO: AC=-1: -1 cannot be negative"),
        ("v4.3", "failed_body_filter_001.vcf", "column FILTER: 'PASS;'"),
        ("v4.3", "failed_body_alt_003.vcf", "column ALT: '<INS>BLAH>' is not a valid allele"),
        (
            "v4.3",
            "failed_meta_assembly_001.vcf",
            "##assembly 'ftp://8080:8080/not-valid/host/to/file.fastq' is not a valid URL",
        ),
    ],
)
def test_refusals_name_the_line_the_column_and_the_rule(version, name, expected):
    problem = next(iter(check(SUITE / version / "failed" / name)))
    assert expected in str(problem)
    with pytest.raises(FormatError, match=re.escape(name)):
        validate(SUITE / version / "failed" / name)


def _vcf(tmp_path, name, body, *, header=(), samples=("S1",), version="4.3"):
    lines = [
        f"##fileformat=VCFv{version}",
        "##contig=<ID=7>",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        '##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths">',
        '##INFO=<ID=DP,Number=1,Type=Integer,Description="Depth">',
        '##FILTER=<ID=q10,Description="Quality below 10">',
        *header,
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
                *(["FORMAT", *samples] if samples else []),
            ]
        ),
    ]
    path = tmp_path / name
    path.write_text("\n".join([*lines, *body, ""]))
    return path


def test_records_are_checked_against_their_header(tmp_path):
    cases = {
        "7\t100\t.\tA\tT\t.\tPASS\tDP=3000000000\tGT:AD\t0/1:3,4": "line 8, column INFO: DP=3000000000: 3000000000 is outside the 32-bit integer range",
        "7\t100\t.\tA\tT\t.\tlowq\t.\tGT:AD\t0/1:3,4": "line 8, column FILTER: filter lowq is not declared in a ##FILTER line",
        "7\t100\t.\tA\tT\t.\tPASS\t.\tGT:AD\t0/2:3,4": "line 8, column S1: genotype 0/2 names an allele beyond the 1 ALT allele(s)",
        "7\t100\t.\tA\tT\t.\tPASS\t.\tAD:GT\t3,4:0/1": "line 8, column FORMAT: GT must be the first FORMAT key",
        "8\t100\t.\tA\tT\t.\tPASS\t.\tGT:AD\t0/1:3,4": "line 8, column CHROM: contig 8 is not declared in a ##contig line",
        "7\t100\t.\tA\tT\t.\tPASS\t.\tGT:AD\t0/1:3,4,5": "line 8, column S1: AD=3,4,5 has 3 value(s); its Number=R wants 2",
    }
    for record, expected in cases.items():
        path = _vcf(tmp_path, "case.vcf", [record])
        assert [str(p) for p in check(path)] == [expected], record
    # order: a contig's records together, positions ascending
    path = _vcf(
        tmp_path,
        "order.vcf",
        ["7\t200\t.\tA\tT\t.\tPASS\t.\tGT\t0/1", "7\t100\t.\tC\tG\t.\tPASS\t.\tGT\t0/1"],
    )
    assert [str(p) for p in check(path)] == [
        "line 9, column POS: 100 comes after 200: records must be sorted by position"
    ]
    # the same change written twice with different context is a duplicate
    path = _vcf(
        tmp_path,
        "dup.vcf",
        ["7\t100\t.\tTAT\tTGT\t.\tPASS\t.\tGT\t0/1", "7\t101\t.\tA\tG\t.\tPASS\t.\tGT\t0/1"],
    )
    assert "repeats the variant A>G at 7:101" in str(next(iter(check(path))))
    # a file cut off mid-line (no final newline)
    cut = tmp_path / "cut.vcf"
    cut.write_bytes(path.read_bytes()[:-1])
    assert str(list(check(cut))[-1]) == "the last line has no newline: the file may be truncated"


def test_structural_variants_follow_the_rules_of_vcf_4_4(tmp_path):
    """VCF 4.4's rules for symbolic alleles, tandem repeats and phase sets hold from 4.4 on;
    the same records in a 4.3 file are read as before."""
    header = [
        '##ALT=<ID=DEL,Description="Deletion">',
        '##ALT=<ID=CNV:TR,Description="TR">',
        '##INFO=<ID=SVLEN,Number=A,Type=Integer,Description="Length">',
        '##INFO=<ID=SVCLAIM,Number=A,Type=String,Description="Claim">',
        '##INFO=<ID=RUS,Number=.,Type=String,Description="Unit sequences">',
        '##INFO=<ID=RUC,Number=.,Type=Float,Description="Unit counts">',
        '##INFO=<ID=RB,Number=.,Type=Integer,Description="Repeat bases">',
        '##INFO=<ID=CIPOS,Number=.,Type=Integer,Description="CI of POS">',
        '##FORMAT=<ID=PSL,Number=P,Type=String,Description="Phase set list">',
    ]
    valid = [
        "7\t100\t.\tA\t<DEL>\t.\tPASS\tSVLEN=300;SVCLAIM=DJ;CIPOS=-5,5\tGT:PSL\t0|1:P1,P1",
        "7\t900\t.\tC\t<CNV:TR>\t.\tPASS\tSVLEN=100;RUS=CAG;RUC=33.3;RB=100\tGT:PSL\t0/1:.,.",
    ]
    assert list(check(_vcf(tmp_path, "sv.vcf", valid, header=header, version="4.4"))) == []
    cases = {
        "7\t100\t.\tA\t<DEL>\t.\tPASS\tSVCLAIM=D\tGT\t0/1": "line 17, column INFO: a <DEL>, <DUP>, <INV> or <CNV> allele needs its length in "
        "SVLEN",
        "7\t100\t.\tA\t<DEL>\t.\tPASS\tSVLEN=3;SVCLAIM=JD\tGT\t0/1": "line 17, column INFO: SVCLAIM 'JD' is not D, J, DJ or '.'",
        "7\t100\t.\tA\t<DEL>\t.\tPASS\tSVLEN=3;SVCLAIM=D;CIPOS=5,5\tGT\t0/1": "line 17, column INFO: CIPOS=5,5: each interval is a pair, its first value at or "
        "below 0 and its second at or above 0",
        "7\t100\t.\tA\t<TRA:X>\t.\tPASS\t.\tGT\t0/1": "line 17, column ALT: <TRA:X>: a structural variant allele is one of DEL, INS, DUP, "
        "INV, CNV (breakends in bracket notation)",
        "7\t900\t.\tC\t<CNV:TR>\t.\tPASS\tSVLEN=1;RUS=CAG;RUC=20;RB=100\tGT\t0/1": "line 17, column INFO: RB=100 is not RUL × RUC (3 × 20) to within one repeat unit",
        "7\t900\t.\tC\t<CNV:TR>\t.\tPASS\tSVLEN=1;RUC=20;RB=60\tGT\t0/1": "line 17, column INFO: a <CNV:TR> allele needs its repeat units: RUS (sequences) "
        "or RUL (lengths)",
        "7\t100\t.\tA\t<DEL>\t.\tPASS\tSVLEN=3;SVCLAIM=D\tGT:PSL\t0/1:P1,.": "line 17, column S1: PSL=P1,.: allele 1 of 0/1 is unphased, so its PSL is '.'",
    }
    for record, expected in cases.items():
        found = [str(p) for p in check(_vcf(tmp_path, "sv.vcf", [record], header=header, version="4.4"))]
        assert found == [expected], record
        if "PSL" not in record:  # Number=P is new in 4.4 too
            older = _vcf(tmp_path, "older.vcf", [record], header=header[:-1], version="4.3")
            assert list(check(older)) == [], record


def test_valid_files_that_readers_once_refused(tmp_path):
    """Single breakends, records without GT, repeated symbolic alleles, sites-only records
    in a file with samples, and a trailing blank line are all valid VCF."""
    path = _vcf(
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
        header=['##ALT=<ID=DUP,Description="Duplication">', '##ALT=<ID=INS,Description="Insertion">'],
    )
    assert list(check(path)) == []
    with open_reader(path) as reader:
        carried = [
            (v.pos, v.alt, [(c.sample, c.genotype, c.alt_depth) for c in v.calls]) for v in reader.carriers()
        ]
    assert carried == [
        (100, ".A", [("S1", "0/1", None)]),
        (200, "T", [("S1", None, 4)]),
        (300, "<DUP>", [("S1", "1/2", None)]),
        (300, "<DUP>", [("S1", "1/2", None)]),
        (400, "<INS>", [("S1", "0/1", None)]),
        (400, "<INS>", [("S1", "0/1", None)]),
    ]


def test_the_callers_files_the_lims_ships(tmp_path):
    assert list(check(STRELKA)) == [] and list(check(COHORT)) == []
    # MuTect and VarScan declare the reserved AD otherwise than the specification
    mutect = [str(p) for p in check(FIXTURES / "test_mutect.vcf")]
    assert mutect[0].startswith(
        "line 4, column FORMAT: ##FORMAT AD is reserved by the VCF "
        "specification as Number=R, Type=Integer, declared Number=."
    )
    varscan = [str(p) for p in check(FIXTURES / "test_varscan.vcf")]
    assert any("column ALT: 'A/T' is not a valid allele" in p for p in varscan)
    assert all(isinstance(p, Problem) for p in check(FIXTURES / "test_varscan.vcf", limit=3))
    assert len(list(check(FIXTURES / "test_varscan.vcf", limit=3))) == 3


def test_the_one_match_shortcut_decides_as_the_cell_by_cell_check(monkeypatch, tmp_path):
    """Records whose sample cells all match one pattern skip the cell-by-cell check: over
    the whole conformance suite and the callers' files, the problems found are the same
    without the shortcut."""
    files = [
        *sorted(SUITE.glob("v4.*/*/*.vcf")),
        STRELKA,
        COHORT,
        FIXTURES / "test_mutect.vcf",
        FIXTURES / "test_varscan.vcf",
    ]
    with_shortcut = {path: [str(p) for p in check(path)] for path in files}
    monkeypatch.setattr("omics.formats.vcfcheck._cells_pattern", lambda *_args: None)
    assert {path: [str(p) for p in check(path)] for path in files} == with_shortcut
