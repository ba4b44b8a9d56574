"""Demo omics tied to the demo biobank's aliquots, generated from a seed.

* exome: a bgzipped, tabix-indexed multi-sample VCF (GRCh38) of the melanoma cases' tumour DNA
  with VEP-style ``CSQ``: BRAF V600E in about half, NRAS Q61R/K, KIT L576P, NF1 R1362*, the
  TERT promoter C228T and a benign BRAF synonymous change;
* RNA-Seq: raw counts of 40 genes (six mitochondrial) for the tumour RNA aliquots;
* methylation: beta values of 60 CpG probes for the tumour DNA aliquots;
* proteomics: an mzTab 1.0 protein section, and metabolomics: an mzTab-M small-molecule
  section, for plasma aliquots.

Sample names are the aliquots' barcodes, so every sample links by itself.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path
from typing import Any

import pysam
import sqlalchemy as sa

from biobank.db import db, transaction
from biobank.models import Case, CollectionEvent, Specimen
from biobank.models.vocab import DiseaseGroup, MaterialType, PathologyStatus
from biobank.services.users import system_actor
from omics import services
from omics.models import OmicsKind

DRIVERS = [  # chrom, pos, ref, alt, gene, consequence, impact, HGVSp, share of tumours
    ("chr1", 114713908, "T", "C", "NRAS", "missense_variant", "MODERATE", "p.Gln61Arg", 0.15),
    ("chr1", 114713909, "G", "T", "NRAS", "missense_variant", "MODERATE", "p.Gln61Lys", 0.10),
    ("chr4", 54727447, "T", "C", "KIT", "missense_variant", "MODERATE", "p.Leu576Pro", 0.05),
    ("chr5", 1295113, "G", "A", "TERT", "upstream_gene_variant", "MODIFIER", "", 0.6),
    ("chr7", 140753336, "A", "T", "BRAF", "missense_variant", "MODERATE", "p.Val600Glu", 0.5),
    ("chr7", 140781602, "G", "A", "BRAF", "synonymous_variant", "LOW", "p.Leu379%3D", 0.3),
    ("chr17", 31252976, "C", "T", "NF1", "stop_gained", "HIGH", "p.Arg1362Ter", 0.12),
]
GENES = [
    "BRAF",
    "NRAS",
    "KIT",
    "NF1",
    "TERT",
    "TP53",
    "CDKN2A",
    "PTEN",
    "MITF",
    "PMEL",
    "MLANA",
    "TYR",
    "DCT",
    "SOX10",
    "S100B",
    "KRT5",
    "KRT14",
    "COL1A1",
    "GAPDH",
    "ACTB",
    "CD274",
    "PDCD1",
    "CTLA4",
    "CD8A",
    "FOXP3",
    "IFNG",
    "GZMB",
    "MKI67",
    "CCND1",
    "MYC",
    "EGFR",
    "ERBB2",
    "VIM",
    "CDH1",
    "MT-CO1",
    "MT-CO2",
    "MT-ND1",
    "MT-ND4",
    "MT-CYB",
    "MT-ATP6",
]
PROTEINS = ["P15056", "P01111", "P10721", "P21359", "O14746", "P04637", "P42771", "P60484"]
METABOLITES = [
    ("HMDB0000122", "glucose"),
    ("HMDB0000190", "lactate"),
    ("HMDB0000148", "glutamate"),
    ("HMDB0000641", "glutamine"),
    ("HMDB0000929", "tryptophan"),
    ("HMDB0000684", "kynurenine"),
]


def _aliquots(material: MaterialType, *, tumour: bool, limit: int) -> list[Specimen]:
    stmt = (
        sa.select(Specimen)
        .join(CollectionEvent, CollectionEvent.id == Specimen.collection_event_id)
        .join(Case, Case.id == CollectionEvent.case_id)
        .where(Specimen.material_type == material)
        .order_by(Specimen.id)
        .limit(limit)
    )
    if tumour:
        stmt = stmt.where(
            Case.disease_group == DiseaseGroup.MELANOMA,
            Specimen.pathology_status == PathologyStatus.MALIGNANT,
        )
    return list(db.session.scalars(stmt))


def _vcf(path: Path, samples: list[str], rng: random.Random) -> Path:
    header = [
        "##fileformat=VCFv4.2",
        "##reference=GRCh38",
        *(
            f"##contig=<ID={c},length={n},assembly=GRCh38>"
            for c, n in (
                ("chr1", 248956422),
                ("chr4", 190214555),
                ("chr5", 181538259),
                ("chr7", 159345973),
                ("chr17", 83257441),
            )
        ),
        '##FILTER=<ID=PASS,Description="All filters passed">',
        '##INFO=<ID=CSQ,Number=.,Type=String,Description="Consequence annotations from '
        'Ensembl VEP. Format: Allele|Consequence|IMPACT|SYMBOL|HGVSp">',
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        '##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths">',
        '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Read depth">',
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(samples),
    ]
    lines = []
    for chrom, pos, ref, alt, gene, consequence, impact, hgvsp, share in DRIVERS:
        calls = []
        for _ in samples:
            depth = rng.randint(60, 220)
            if rng.random() < share:
                alt_reads = int(depth * rng.uniform(0.2, 0.55))
                calls.append(f"0/1:{depth - alt_reads},{alt_reads}:{depth}")
            else:
                calls.append(f"0/0:{depth},0:{depth}")
        csq = f"{alt}|{consequence}|{impact}|{gene}|{hgvsp}"
        lines.append(f"{chrom}\t{pos}\t.\t{ref}\t{alt}\t.\tPASS\tCSQ={csq}\tGT:AD:DP\t" + "\t".join(calls))
    plain = path.with_suffix("")
    plain.write_text("\n".join(header + lines) + "\n", encoding="utf-8")
    pysam.tabix_compress(str(plain), str(path), force=True)
    plain.unlink()
    pysam.tabix_index(str(path), preset="vcf", force=True)
    return path


def _matrix(path: Path, features: list[str], samples: list[str], value: Any) -> Path:
    rows = ["feature\t" + "\t".join(samples)]
    rows += [f"{f}\t" + "\t".join(value(f) for _ in samples) for f in features]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def _mztab(path: Path, samples: list[str], features: list[str], rng: random.Random, *, protein: bool) -> Path:
    lines = [
        "MTD\tmzTab-version\t" + ("1.0.0" if protein else "2.0.0-M"),
        "MTD\tmzTab-mode\tSummary",
        "MTD\tmzTab-type\tQuantification",
    ]
    lines += [f"MTD\tassay[{i}]\t{name}" for i, name in enumerate(samples, start=1)]
    if protein:
        cols = [f"protein_abundance_assay[{i}]" for i in range(1, len(samples) + 1)]
        lines.append("PRH\taccession\tdescription\t" + "\t".join(cols))
        lines += [
            f"PRT\t{acc}\t-\t" + "\t".join(f"{rng.lognormvariate(10, 1):.1f}" for _ in samples)
            for acc in features
        ]
    else:
        cols = [f"abundance_assay[{i}]" for i in range(1, len(samples) + 1)]
        lines.append("SMH\tSML_ID\tdatabase_identifier\tchemical_name\t" + "\t".join(cols))
        lines += [
            f"SML\t{i}\t{hmdb}\t{name}\t" + "\t".join(f"{rng.lognormvariate(2, 0.5):.3f}" for _ in samples)
            for i, (hmdb, name) in enumerate(METABOLITES, start=1)
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def demo_samples() -> dict[str, list[str]]:
    """The barcodes of the aliquots the demo omics measure, from the current database: tumour
    DNA and RNA of melanoma cases, and plasma."""
    return {
        "dna": [s.barcode for s in _aliquots(MaterialType.DNA, tumour=True, limit=24)],
        "rna": [s.barcode for s in _aliquots(MaterialType.RNA, tumour=True, limit=24)],
        "plasma": [s.barcode for s in _aliquots(MaterialType.PLASMA, tumour=False, limit=12)],
    }


def write_demo_omics(
    out: Path, samples: dict[str, list[str]], *, seed: int = 20261123
) -> list[tuple[Path, OmicsKind, str]]:
    """Write the demo omics files for *samples* (see :func:`demo_samples`) into *out*: the
    same seed and samples always give the same bytes. Returns (path, kind, pipeline) of each
    file written; a kind whose aliquots the biobank lacks is left out."""
    rng = random.Random(seed)
    dna, rna, plasma = samples["dna"], samples["rna"], samples["plasma"]
    planned = []
    if dna:
        planned.append(
            (
                _vcf(out / "demo-melanoma-exome.vcf.gz", dna, rng),
                OmicsKind.EXOME,
                "BWA-MEM + Mutect2 + VEP (demo)",
            )
        )
        probes = [f"cg{rng.randint(10**7, 3 * 10**7):08d}" for _ in range(60)]
        planned.append(
            (
                _matrix(
                    out / "demo-methylation-betas.tsv",
                    sorted(set(probes)),
                    dna,
                    lambda _f: f"{rng.betavariate(0.7, 0.7):.4f}",
                ),
                OmicsKind.METHYLATION,
                "SeSAMe (demo)",
            )
        )
    if rna:
        planned.append(
            (
                _matrix(
                    out / "demo-rnaseq-counts.tsv",
                    GENES,
                    rna,
                    lambda f: str(int(rng.lognormvariate(8 if f.startswith("MT-") else 5, 1.2))),
                ),
                OmicsKind.RNA_SEQ,
                "STAR + featureCounts (demo)",
            )
        )
    if plasma:
        planned.append(
            (
                _mztab(out / "demo-proteomics.mztab", plasma, PROTEINS, rng, protein=True),
                OmicsKind.PROTEOMICS,
                "MaxQuant LFQ (demo)",
            )
        )
        planned.append(
            (
                _mztab(out / "demo-metabolomics.mztab", plasma, [], rng, protein=False),
                OmicsKind.METABOLOMICS,
                "XCMS (demo)",
            )
        )
    return planned


def load_demo_omics(*, seed: int = 20261123) -> dict[str, int]:
    """Generate the demo omics files, register them as the system account, ingest them."""
    with transaction():
        samples = demo_samples()
    files = 0
    with tempfile.TemporaryDirectory() as tmp:
        for path, kind, pipeline in write_demo_omics(Path(tmp), samples, seed=seed):
            with transaction():
                record, created = services.register_file(
                    actor=system_actor(),
                    path=path,
                    filename=path.name,
                    kind=kind,
                    reference_genome="GRCh38" if kind in (OmicsKind.EXOME, OmicsKind.RNA_SEQ) else None,
                    pipeline=pipeline,
                )
                if created:
                    services.ingest_file(record)
                    files += 1
    return {"omics_files": files}
