"""Gene models read with pyranges, and the gene each variant overlaps (pure)."""

from __future__ import annotations

import gzip

import pandas as pd
import pytest

from omics.formats import FormatError
from omics.formats.genes import canonical_chrom, overlapping, read_genes
from tests.omics.test_vcf import FIXTURES

GTF = FIXTURES / "gencode-v19-excerpt.gtf"
GFF3 = FIXTURES / "ensembl-grch38-excerpt.gff3"


def test_gtf_and_gff3_give_the_same_genes_on_their_builds(tmp_path):
    gtf, gff3 = read_genes(GTF), read_genes(GFF3)
    assert list(gtf["name"]) == list(gff3["name"])  # transcripts and exons are skipped
    braf37 = gtf.set_index("name").loc["BRAF"]
    braf38 = gff3.set_index("name").loc["BRAF"]
    assert (braf37["chrom"], braf37["start"], braf37["end"]) == ("7", 140424943, 140624564)
    assert (braf38["chrom"], braf38["start"], braf38["end"]) == ("7", 140719327, 140924929)
    assert braf37["gene_id"] == "ENSG00000157764.8" and braf38["gene_id"] == "ENSG00000157764"
    packed = tmp_path / "genes.gtf.gz"
    packed.write_bytes(gzip.compress(GTF.read_bytes()))
    assert read_genes(packed).equals(gtf)


def test_contig_names_are_one_per_contig():
    assert [canonical_chrom(n) for n in ("chr7", "7", "chrX", "chrM", "MT", "chrUn_gl000220")] == [
        "7",
        "7",
        "X",
        "MT",
        "MT",
        "Un_gl000220",
    ]


def test_a_variant_gets_the_protein_coding_gene_then_the_shortest():
    genes = pd.DataFrame(
        {
            "chrom": ["7", "7", "7", "1"],
            "start": [100, 150, 120, 100],
            "end": [1000, 400, 300, 1000],
            "name": ["LONG", "LNC", "SHORT", "OTHER"],
            "gene_type": ["protein_coding", "lncRNA", "protein_coding", "protein_coding"],
        }
    )
    variants = pd.DataFrame(
        {
            "id": [1, 2, 3, 4, 5],
            "chrom": ["chr7", "7", "7", "7", "2"],
            "pos": [200, 110, 350, 1001, 200],
            "ref": ["A", "A", "ACGT", "A", "A"],
        }
    )
    assert overlapping(genes, variants) == {1: "SHORT", 2: "LONG", 3: "LONG"}
    # a deletion reaching into a gene overlaps it
    deletion = pd.DataFrame({"id": [9], "chrom": ["7"], "pos": [95], "ref": ["ACGTACG"]})
    assert overlapping(genes, deletion) == {9: "LONG"}


def test_files_that_are_not_gene_models_are_refused_by_line(tmp_path):
    short = tmp_path / "short.gtf"
    short.write_text("chr7\tHAVANA\tgene\t100\n")
    with pytest.raises(FormatError, match=r"short\.gtf, line 1: 4 tab-separated columns"):
        read_genes(short)
    empty = tmp_path / "exons.gtf"
    empty.write_text('chr7\tHAVANA\texon\t100\t200\t.\t+\t.\tgene_id "X";\n')
    with pytest.raises(FormatError, match="no gene records"):
        read_genes(empty)


def test_records_pyranges_cannot_parse_are_refused_before_it_reads_them(tmp_path):
    for attributes in ("nothing", 'gene_id "unclosed'):
        path = tmp_path / "odd.gtf"
        path.write_text(f"chr7\tHAVANA\tgene\t100\t200\t.\t+\t.\t{attributes}\n")
        with pytest.raises(FormatError, match=r"odd\.gtf, line 1, column attributes"):
            read_genes(path)
    # a gene without id or name is named by where it is
    path = tmp_path / "anonymous.gff3"
    path.write_text("##gff-version 3\n7\tX\tgene\t100\t200\t.\t+\t.\tbiotype=lncRNA\n")
    genes = read_genes(path)
    assert (genes.loc[0, "name"], genes.loc[0, "gene_id"], genes.loc[0, "gene_type"]) == (
        "7:100-200",
        "7:100-200",
        "lncRNA",
    )
