"""Matrices as labs write them: mzTab 1.0 Complete and Summary files, proteins and small
molecules, mzTab-M, PRIDE's file names, samples named from metadata; R-written tables."""

from __future__ import annotations

import pytest

from omics.formats import FormatError, detect, open_reader
from tests.omics.test_vcf import FIXTURES

COMPLETE = """\
MTD\tmzTab-version\t1.0.0
MTD\tmzTab-mode\tComplete
MTD\tmzTab-type\tQuantification
MTD\tdescription\tMelanoma proteome, two tumours
MTD\tsample[1]-description\tMEL-TUMOUR-1
MTD\tsample[2]-description\tMEL-TUMOUR-2
MTD\tassay[1]-sample_ref\tsample[1]
MTD\tassay[2]-sample_ref\tsample[2]
MTD\tstudy_variable[1]-description\tmelanoma
MTD\tstudy_variable[1]-assay_refs\tassay[1],assay[2]

PRH\taccession\tdescription\tprotein_abundance_assay[1]\tprotein_abundance_assay[2]\tprotein_abundance_study_variable[1]
PRT\tP15056\tBRAF\t12.5\t9.75\t11.1
PRT\tP01111\tNRAS\tnull\t3.5\t3.5

SMH\tidentifier\tsmallmolecule_abundance_assay[1]\tsmallmolecule_abundance_assay[2]
SML\tCHEBI:15377\t1.0\t2.0
"""


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_complete_file_names_its_samples_from_the_sample_descriptions(tmp_path):
    path = _write(tmp_path, "proteome.mztab", COMPLETE)
    with open_reader(path) as reader:
        adata = reader.to_anndata()
    assert list(adata.obs_names) == ["MEL-TUMOUR-1", "MEL-TUMOUR-2"]
    assert list(adata.var_names) == ["P15056", "P01111"]  # proteins before small molecules
    assert adata.X.toarray().tolist() == [[12.5, 0.0], [9.75, 3.5]]
    assert adata.layers["missing"].toarray().tolist() == [[0, 1], [0, 0]]
    assert adata.uns["lims"]["abundance_level"] == "assay"


def test_a_summary_file_gives_its_study_variables(tmp_path):
    text = "\n".join(
        line
        for line in COMPLETE.splitlines()
        if "abundance_assay" not in line and not line.startswith(("PRT", "SM"))
    )
    text += "\nPRH\taccession\tprotein_abundance_study_variable[1]\nPRT\tP15056\t11.5\nPRT\tP01111\t3.5\n"
    path = _write(tmp_path, "summary.mztab", text.replace("Complete", "Summary"))
    with open_reader(path) as reader:
        adata = reader.to_anndata()
    assert list(adata.obs_names) == ["melanoma"] and adata.X.toarray().tolist() == [[11.5, 3.5]]
    assert adata.uns["lims"]["abundance_level"] == "study_variable"
    assert adata.uns["lims"]["mztab_mode"] == "Summary"


def test_small_molecules_of_mztab_1_and_mztab_m(tmp_path):
    text = "\n".join(line for line in COMPLETE.splitlines() if not line.startswith("PR"))
    path = _write(tmp_path, "metabolites.mztab", text)
    with open_reader(path) as reader:
        adata = reader.to_anndata()
    assert list(adata.var_names) == ["CHEBI:15377"]
    assert list(adata.obs_names) == ["MEL-TUMOUR-1", "MEL-TUMOUR-2"]
    with open_reader(FIXTURES / "metabolomics-example.mztab") as reader:
        adata = reader.to_anndata()
    assert adata.n_obs == 6 and not any(n.startswith("abundance_") for n in adata.obs_names)


def test_formats_are_recognised_by_content(tmp_path):
    pride = _write(tmp_path, "PXD000001.xml-mztab.txt", COMPLETE)
    assert detect(pride) == "mztab"
    renamed = _write(tmp_path, "results.txt", "COM\tfrom a pipeline\n" + COMPLETE)
    assert detect(renamed) == "mztab"
    table = _write(tmp_path, "counts.txt", "gene\tS1\nBRAF\t3\n")
    assert detect(table) == "matrix"


def test_an_mztab_without_abundances_is_refused_by_line(tmp_path):
    path = _write(
        tmp_path, "ids.mztab", "MTD\tmzTab-version\t1.0.0\nPRH\taccession\tdescription\nPRT\tP15056\tBRAF\n"
    )
    with (
        open_reader(path) as reader,
        pytest.raises(FormatError, match=r"ids\.mztab, line 2: the PRH header has no abundance columns"),
    ):
        reader.to_anndata()


def test_an_r_written_matrix_keeps_its_first_sample(tmp_path):
    """R's write.table writes no header cell over the row names: the header is one field
    shorter than the rows; the first sample is not taken for the feature column."""
    path = _write(
        tmp_path, "counts-from-r.txt", '"MEL-1"\t"MEL-2"\t"MEL-3"\n"BRAF"\t10\t20\t30\n"NRAS"\t1\t2\t3\n'
    )
    with open_reader(path) as reader:
        assert reader.samples == ["MEL-1", "MEL-2", "MEL-3"]
        adata = reader.to_anndata()
    assert list(adata.obs_names) == ["MEL-1", "MEL-2", "MEL-3"]
    assert list(adata.var_names) == ["BRAF", "NRAS"]
    assert adata.X.toarray().T.tolist() == [[10, 20, 30], [1, 2, 3]]
