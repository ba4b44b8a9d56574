"""Omics: VCF ingestion against bcftools and pyvcf3, variant carriers among millions of calls,
one gene across a 5,000 × 60,000 RNA-Seq matrix.

    python -m bench.bench_omics --backend both [--records 100000] [--calls 5000000]

* VCF: a synthetic multi-sample VCF (16 samples, VEP ``CSQ``) is read by ``bcftools query``
  (non-reference calls per sample), checked by the validator registration runs, read by the
  pyvcf3 reader and by the pysam reader, and ingested into the database (variants and
  per-aliquot calls), all in one run.
* carriers: ``variant_calls`` filled to ``--calls`` rows over 500,000 variants, then
  ``BRAF`` + ``p.V600E`` carriers (as the API asks) timed, and the Beacon's ``g_variants``
  for the same question as each kind of asker gets it.
* genes: a GENCODE-sized GTF (62,000 genes, 1.8 million lines) registered as a build's gene
  model against pyranges reading the whole file, and 100,000 variants without annotation
  placed in genes.
* matrix: a 5,000-sample × 60,000-gene count matrix (10% non-zero) written as ``.h5ad`` the
  way ingestion stores it; one gene across all samples is read in backed mode in a fresh
  process, whose time and peak RSS are reported.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.common import DATA, create_if_missing, empty_database, timed

NAME = "bench_omics"
SAMPLES = 16


def write_gtf(path: Path, genes: int = 62_000, seed: int = 3) -> int:
    """A GENCODE-like GTF: *genes* genes over chr1–22, X, Y, MT, each with four transcripts
    of six exons (about 1.8 million lines; GENCODE has about 3.4 million). Answers lines."""
    rng = random.Random(seed)
    chroms = [*(str(i) for i in range(1, 23)), "X", "Y", "MT"]
    lines = 0
    with path.open("w") as out:
        out.write("##description: synthetic, GENCODE layout\n##provider: GENCODE\n")
        for g in range(genes):
            # chr1 holds a share of the genes over the span the benchmark VCF covers
            chrom = "1" if g % 10 == 0 else rng.choice(chroms)
            start = rng.randint(1, 150_000_000)
            end = start + rng.randint(500, 150_000)
            kind = rng.choice(["protein_coding", "lncRNA", "processed_pseudogene"])
            attrs = f'gene_id "ENSG{g:011d}.1"; gene_type "{kind}"; gene_name "GENE{g}"; level 2;'
            out.write(f"chr{chrom}\tHAVANA\tgene\t{start}\t{end}\t.\t+\t.\t{attrs}\n")
            lines += 1
            for t in range(4):
                tx = f'{attrs} transcript_id "ENST{g:09d}{t:02d}.1"; transcript_type "{kind}";'
                out.write(f"chr{chrom}\tHAVANA\ttranscript\t{start}\t{end}\t.\t+\t.\t{tx}\n")
                lines += 1
                for x in range(6):
                    at = start + x * (end - start) // 7
                    out.write(
                        f"chr{chrom}\tHAVANA\texon\t{at}\t{at + 100}\t.\t+\t.\t{tx} "
                        f'exon_number {x + 1}; exon_id "ENSE{g:08d}{t}{x}.1";\n'
                    )
                    lines += 1
    return lines


def write_vcf(path: Path, records: int, seed: int = 5, *, annotated: bool = True) -> None:
    rng = random.Random(seed)
    genes = ["BRAF", "NRAS", "KIT", "NF1", "TP53", "CDKN2A", "PTEN", "TERT"]
    with path.open("w") as out:
        out.write(
            "##fileformat=VCFv4.2\n##reference=GRCh38\n"
            "##contig=<ID=chr1,length=248956422>\n"
            '##INFO=<ID=CSQ,Number=.,Type=String,Description="VEP. Format: '
            'Allele|Consequence|IMPACT|SYMBOL|HGVSp">\n'
            '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
            '##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths">\n'
            '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">\n'
            "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t"
            + "\t".join(f"S{i:02d}" for i in range(SAMPLES))
            + "\n"
        )
        pos = 10000
        for n in range(records):
            pos += rng.randint(5, 2000)
            ref, alt = rng.sample("ACGT", 2)
            gene = genes[n % len(genes)]
            calls = []
            for _ in range(SAMPLES):
                depth = rng.randint(20, 200)
                if rng.random() < 0.1:
                    k = depth // 3
                    calls.append(f"0/1:{depth - k},{k}:{depth}")
                else:
                    calls.append(f"0/0:{depth},0:{depth}")
            info = f"CSQ={alt}|missense_variant|MODERATE|{gene}|p.Val{n % 900 + 1}Glu" if annotated else "."
            out.write(f"chr1\t{pos}\t.\t{ref}\t{alt}\t.\tPASS\t{info}\tGT:AD:DP\t" + "\t".join(calls) + "\n")


@contextmanager
def _registered(backend: str, path: Path, **options: Any) -> Iterator[Any]:
    """A fresh database with two demo participants and *path* registered, its sample
    columns linked to the first aliquots; inside the app's context."""
    from biobank import create_app, migrate
    from biobank.db import db, transaction
    from biobank.demo import load_demo
    from biobank.models import Specimen
    from biobank.services.users import system_actor
    from omics import services
    from omics.models import OmicsKind

    app = create_app(
        {"DATABASE_URL": empty_database(backend, NAME), "OMICS_STORAGE_ROOT": str(DATA / "omics")}
    )
    with app.app_context():
        migrate.upgrade()
        load_demo(participants=2)
        with transaction():
            barcodes = list(db.session.scalars(sa.select(Specimen.barcode).limit(SAMPLES)))
            record, _ = services.register_file(
                actor=system_actor(),
                path=path,
                filename=path.name,
                kind=OmicsKind.EXOME,
                sample_map={f"S{i:02d}": b for i, b in enumerate(barcodes)},
                **options,
            )
        try:
            yield record
        finally:
            db.engine.dispose()


def _reader_rate(path: Path, fmt: str, records: int) -> tuple[float, int]:
    """Records per second of a reader over the whole file, and the carrying calls it saw."""
    from omics.formats import open_reader

    started = time.perf_counter()
    with open_reader(path, fmt) as reader:
        carried = sum(1 for v in reader.variants() for c in v.calls if c.carries)
    return records / (time.perf_counter() - started), carried


def vcf_bench(backend: str, path: Path, records: int, rounds: int = 3) -> None:
    """bcftools, the validator and the pysam reader once; then *rounds* rounds of the pyvcf3
    reader and an ingestion into a new database, back to back, whose ratio is taken round
    by round: on a shared machine one run of each, minutes apart, can differ by a third."""
    rates = {}
    if shutil.which("bcftools"):
        started = time.perf_counter()
        subprocess.run(
            [
                "bcftools",
                "query",
                "-i",
                'GT="alt"',
                "-f",
                r"[%SAMPLE\t%CHROM\t%POS\t%REF\t%ALT\t%GT\t%AD\t%DP\n]",
                str(path),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        rates["bcftools query"] = records / (time.perf_counter() - started)
    from omics.formats.vcfcheck import check

    started = time.perf_counter()
    problems = list(check(path))
    assert not problems, problems[:3]
    rates["validator (vcfcheck, every record and sample)"] = records / (time.perf_counter() - started)
    rates["pysam reader"], carried = _reader_rate(path, "vcf", records)

    from biobank.db import transaction
    from omics import services

    measured: dict[str, list[float]] = {}
    for _ in range(rounds):
        measured.setdefault("pyvcf3 reader", []).append(_reader_rate(path, "vcf-pyvcf3", records)[0])
        with _registered(backend, path) as record:
            started = time.perf_counter()
            with transaction():
                services.ingest_file(record)
            took = time.perf_counter() - started
            measured.setdefault("ingestion into the database", []).append(records / took)
            calls = record.call_count
            if backend == "postgresql":
                measured.setdefault("binary COPY of the same rows (baseline)", []).append(
                    records / _copy_again(record.id)
                )
    rates |= {label: statistics.median(values) for label, values in measured.items()}
    by_round = [
        i / p for i, p in zip(measured["ingestion into the database"], measured["pyvcf3 reader"], strict=True)
    ]
    print(f"\n== VCF, {records:,} records × {SAMPLES} samples ({carried:,} non-reference calls), {backend}")
    for label, rate in rates.items():
        print(f"  {label}: {rate:,.0f} records/s" + (f" (median of {rounds})" if label in measured else ""))
    ingest = rates["ingestion into the database"]
    if "bcftools query" in rates:
        print(f"  ingestion / bcftools query: {ingest / rates['bcftools query']:.0%}")
    if "binary COPY of the same rows (baseline)" in measured:
        copy_by_round = [
            i / c
            for i, c in zip(
                measured["ingestion into the database"],
                measured["binary COPY of the same rows (baseline)"],
                strict=True,
            )
        ]
        print(
            f"  ingestion / binary COPY: {statistics.median(copy_by_round):.0%} (target ≥ 50%; "
            f"median of {rounds} rounds: {', '.join(f'{r:.0%}' for r in copy_by_round)})"
        )
    print(
        f"  ingestion / pyvcf3 reader: {statistics.median(by_round):.1f}× (target ≥ 8× on SQLite; median of "
        f"{rounds} rounds: {', '.join(f'{r:.1f}×' for r in by_round)})"
    )
    validator = rates["validator (vcfcheck, every record and sample)"]
    print(
        f"  registration's validation adds {records / validator:.1f} s to "
        f"{records / ingest:.1f} s of ingestion; validator / pyvcf3 reader: "
        f"{validator / rates['pyvcf3 reader']:.1f}×"
    )
    print(
        f"  pysam reader / pyvcf3 reader: "
        f"{rates['pysam reader'] / rates['pyvcf3 reader']:.1f}×; {calls:,} calls stored"
    )


def _copy_again(file_id: int) -> float:
    """The floor for PostgreSQL: the variant and call rows the ingestion wrote, taken out and
    written again into the same tables (emptied) by binary COPY; answers the seconds the
    COPY took, indexes and constraints included."""
    from biobank.db import db, transaction
    from omics.models import Variant, VariantCall

    variant_columns = [c.name for c in Variant.__table__.columns]
    call_columns = [c.name for c in VariantCall.__table__.columns]
    with transaction():
        mine = sa.select(VariantCall.variant_id).where(VariantCall.file_id == file_id)
        others = sa.select(VariantCall.variant_id).where(VariantCall.file_id != file_id)
        variants = [
            tuple(row)
            for row in db.session.execute(  # the file's own variants
                sa.select(*Variant.__table__.columns).where(Variant.id.in_(mine), Variant.id.not_in(others))
            )
        ]
        calls = [
            tuple(row)
            for row in db.session.execute(
                sa.select(*VariantCall.__table__.columns).where(VariantCall.file_id == file_id)
            )
        ]
        db.session.execute(sa.delete(VariantCall).where(VariantCall.file_id == file_id))
        db.session.execute(sa.delete(Variant).where(~sa.exists().where(VariantCall.variant_id == Variant.id)))
    types = {
        "variants": ["int4", "text", "text", "int4", "text", "text", "text", "text", "text"],
        "variant_calls": ["int4", "int4", "int4", "int4", "text", "int4", "int4", "float8", "text", "bool"],
    }
    started = time.perf_counter()
    with transaction():
        raw = db.session.connection().connection.driver_connection
        with raw.cursor() as cursor:
            for table, columns, rows in (
                ("variants", variant_columns, variants),
                ("variant_calls", call_columns, calls),
            ):
                statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
                with cursor.copy(statement) as copy:
                    copy.set_types(types[table])
                    for row in rows:
                        copy.write_row(row)
    return time.perf_counter() - started


def carriers_bench(backend: str, total_calls: int) -> None:
    from biobank import create_app
    from biobank.db import db, transaction

    url = create_if_missing(backend, NAME)
    app = create_app({"DATABASE_URL": url, "OMICS_STORAGE_ROOT": str(DATA / "omics")})
    with app.app_context():
        from biobank.models import Specimen, User

        if not sa.inspect(db.engine).has_table("omics_files"):  # no VCF run before this one
            from biobank import migrate
            from biobank.demo import load_demo

            migrate.upgrade()
            load_demo(participants=2)
        from omics import services
        from omics.models import OmicsFile, OmicsKind, Variant, VariantCall

        with transaction():  # the synthetic calls belong to a file of their own
            synthetic = OmicsFile(
                kind=OmicsKind.EXOME,
                format="vcf",
                filename="synthetic.vcf",
                uri="synthetic.vcf",
                size_bytes=0,
                sha256="0" * 64,
                created_by="bench",
            )
            db.session.add(synthetic)
        file_id = synthetic.id
        specimens = list(db.session.scalars(sa.select(Specimen.id).limit(200)))
        have = db.session.scalar(sa.select(sa.func.count(VariantCall.id)))
        rng = random.Random(9)
        started = time.perf_counter()
        with transaction():
            n_variants = 500_000
            base = db.session.scalar(sa.select(sa.func.count(Variant.id)))
            genes = ["BRAF", "NRAS", "KIT", "NF1", "TP53", "CDKN2A", "PTEN", "TERT", "MITF", "PMEL"] + [
                f"G{i}" for i in range(990)
            ]
            batch = []
            for i in range(base, n_variants):
                gene = genes[i % len(genes)]
                batch.append(
                    {
                        "chrom": "chr2",
                        "pos": 1000 + i,
                        "ref": "A",
                        "alt": "G",
                        "gene": gene,
                        "consequence": "missense_variant",
                        "protein_change": "p.V600E" if i % 997 == 0 else f"p.X{i % 5000}Y",
                    }
                )
                if len(batch) == 50_000:
                    db.session.execute(sa.insert(Variant), batch)
                    batch = []
            if batch:
                db.session.execute(sa.insert(Variant), batch)
            ids = list(db.session.scalars(sa.select(Variant.id)))
            rows, written = [], have
            seen = set()
            while written < total_calls:
                variant = ids[rng.randrange(len(ids))]
                specimen = specimens[rng.randrange(len(specimens))]
                if (variant, specimen) in seen:
                    continue
                seen.add((variant, specimen))
                rows.append(
                    {
                        "variant_id": variant,
                        "file_id": file_id,
                        "specimen_id": specimen,
                        "genotype": "0/1",
                        "depth": 100,
                        "alt_depth": 40,
                        "allele_fraction": 0.4,
                        "filter": "PASS",
                    }
                )
                written += 1
                if len(rows) == 100_000:
                    db.session.execute(sa.insert(VariantCall), rows)
                    rows = []
            if rows:
                db.session.execute(sa.insert(VariantCall), rows)
        built = time.perf_counter() - started
        if backend == "postgresql":
            with db.engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
        else:
            with db.engine.connect() as conn:
                conn.exec_driver_sql("ANALYZE")
        actor = db.session.scalars(sa.select(User).where(User.username == "researcher")).one()
        count = services.carriers(actor=actor, gene="BRAF", protein_change="p.V600E").total
        p50, p95 = timed(lambda: services.carriers(actor=actor, gene="BRAF", protein_change="p.V600E"), 30)
        total = db.session.scalar(sa.select(sa.func.count(VariantCall.id)))
        beacon = _beacon_timings(app, actor)
        db.engine.dispose()
    print(f"\n== carriers, {total:,} stored calls ({backend}; built in {built:.0f} s)")
    print(f"  BRAF p.V600E → {count} aliquots: p50 {p50:.1f} ms, p95 {p95:.1f} ms (target < 50 ms)")
    print("  Beacon g_variants through the whole app (in process), against the carriers service above:")
    for label, (b50, b95, answer) in beacon.items():
        print(
            f"    {label:<34} → {answer}: p50 {b50:.1f} ms, p95 {b95:.1f} ms "
            f"({b50 / p50:.1f}× carriers; target p95 < 100 ms)"
        )


def _beacon_timings(app: Any, researcher: Any) -> dict[str, tuple[float, float, str]]:
    """``/beacon/v2/g_variants`` by gene and protein change, and by gene alone, as an
    anonymous caller (yes or no), a researcher (count) and a manager (records)."""
    from biobank.db import db
    from biobank.models import User
    from biobank.models.vocab import Role
    from biobank.services.users import create_token

    manager = db.session.scalars(sa.select(User).where(User.role == Role.MANAGER)).first()
    tokens = {
        "researcher": create_token(researcher, name="bench"),
        "manager": create_token(manager, name="bench"),
    }
    db.session.commit()
    client = app.test_client()
    out = {}
    for who, granularity in (("anonymous", "boolean"), ("researcher", "count"), ("manager", "record")):
        headers = {"Authorization": f"Bearer {tokens[who]}"} if who in tokens else {}
        for what, query in (
            ("BRAF V600E", {"geneId": "BRAF", "aminoacidChange": "V600E"}),
            ("BRAF", {"geneId": "BRAF"}),
        ):
            query = query | {"requestedGranularity": granularity}
            answers = []

            def ask(
                query: dict[str, str] = query, headers: dict[str, str] = headers, answers: list[Any] = answers
            ) -> None:
                r = client.get("/beacon/v2/g_variants", headers=headers, query_string=query)
                assert r.status_code == 200, r.json
                answers.append(r.json)

            b50, b95 = timed(ask, 30)
            summary = answers[-1]["responseSummary"]
            answer = summary.get("numTotalResults", "yes" if summary["exists"] else "no")
            out[f"{what}, {who} ({granularity})"] = (b50, b95, f"{answer}")
    return out


READ_ONE_GENE = """
import sys, time
from pathlib import Path
import anndata.io, h5py  # imported once per server process, not per request
from omics.formats.matrix import read_feature
started = time.perf_counter()
found = read_feature(Path(sys.argv[1]), sys.argv[2])
took = time.perf_counter() - started
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across exec
peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(took * 1000, len(found["values"]), float(found["values"].sum()), peak // 1024)
"""


def matrix_bench() -> None:
    import anndata
    import numpy as np
    import pandas as pd
    from scipy import sparse

    path = DATA / "matrix-5000x60000.h5ad"
    n_obs, n_var = 5000, 60000
    if not path.exists():
        rng = np.random.default_rng(3)
        matrix = sparse.random(
            n_obs,
            n_var,
            density=0.1,
            format="csc",
            dtype=np.float32,
            random_state=rng,
            data_rvs=lambda k: rng.poisson(20, k) + 1,
        )
        adata = anndata.AnnData(
            X=matrix,
            obs=pd.DataFrame(index=[f"CTRRN{i:07d}" for i in range(n_obs)]),
            var=pd.DataFrame(index=[f"ENSG{i:011d}" for i in range(n_var)]),
        )
        adata.write_h5ad(path)
    gene = f"ENSG{31337:011d}"
    runs = []
    for _ in range(5):
        out = subprocess.run(
            [sys.executable, "-c", READ_ONE_GENE, str(path), gene], capture_output=True, text=True, check=True
        ).stdout.split()
        runs.append((float(out[0]), int(out[3])))
    times = sorted(t for t, _ in runs)
    print(
        f"\n== one gene across a {n_obs:,} × {n_var:,} matrix ({path.stat().st_size / 1e6:.0f} "
        "MB .h5ad, backed mode, fresh process)"
    )
    print(
        f"  read: median {statistics.median(times):.0f} ms, worst {times[-1]:.0f} ms "
        "(target < 200 ms; what GET /omics/files/<id>/features/<gene> reads)"
    )
    print(f"  peak RSS of the reading process: {max(r for _, r in runs)} MB (target < 300 MB)")


def genes_bench(backend: str, records: int) -> None:
    """Register a GENCODE-sized GTF as a build's gene model, then place 100,000 variants
    without annotation in genes; against pyranges reading the whole GTF in the same run."""
    import pyranges

    gtf = DATA / "gencode-like.gtf"
    if not gtf.exists():
        write_gtf(gtf)
    lines = sum(1 for _ in gtf.open("rb"))
    started = time.perf_counter()
    whole = len(pyranges.read_gtf(str(gtf)))
    baseline = time.perf_counter() - started
    vcf = DATA / f"raw-{records}.vcf"
    if not vcf.exists():
        write_vcf(vcf, records, annotated=False)

    from biobank.db import db, transaction
    from biobank.services.users import system_actor
    from omics import services
    from omics.models import Variant, VariantCall

    with _registered(backend, vcf, reference_genome="GRCh38") as record:
        with transaction():
            services.ingest_file(record)

        raw = Variant.id.in_(sa.select(VariantCall.variant_id).where(VariantCall.file_id == record.id))
        variants = db.session.scalar(sa.select(sa.func.count(Variant.id)).where(raw))
        started = time.perf_counter()
        with transaction():
            model, placed = services.register_gene_model(
                actor=system_actor(), path=gtf, filename=gtf.name, reference_genome="GRCh38"
            )
        registration = time.perf_counter() - started
        with transaction():
            db.session.execute(sa.update(Variant).where(raw).values(gene=None))
        started = time.perf_counter()
        with transaction():
            again = services.annotate_by_overlap("GRCh38")
        annotation = time.perf_counter() - started
    print(f"\n== gene model, {lines:,} GTF lines ({model.gene_count:,} genes), {backend}")
    print(f"  pyranges.read_gtf of the whole file (baseline): {baseline:.1f} s ({whole:,} records)")
    print(
        f"  registration (genes stored, {placed:,} of {variants:,} variants placed): "
        f"{registration:.1f} s = {registration / baseline:.2f}× the baseline (target < 60 s)"
    )
    print(
        f"  annotation of {variants:,} unannotated variants ({again:,} in a gene): "
        f"{annotation:.2f} s (target < 5 s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=5_000_000)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of pyvcf3 and ingestion, back to back")
    parser.add_argument(
        "--only", choices=["vcf", "carriers", "matrix", "genes"], help="run one of the four benchmarks"
    )
    args = parser.parse_args()
    DATA.mkdir(exist_ok=True)
    path = DATA / f"cohort-{args.records}.vcf"
    if not path.exists():
        write_vcf(path, args.records)
    for backend in ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]:
        if args.only in (None, "vcf"):
            vcf_bench(backend, path, args.records, args.rounds)
        if args.only in (None, "carriers"):
            carriers_bench(backend, args.calls)
        if args.only in (None, "genes"):
            genes_bench(backend, args.records)
    if args.only in (None, "matrix"):
        matrix_bench()
    os.environ.pop("BIOBANK_DATABASE_URL", None)


if __name__ == "__main__":
    main()
