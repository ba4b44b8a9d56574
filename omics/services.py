"""Registering omics files, linking their samples to aliquots, ingesting variant calls, and
finding the aliquots and cases that carry a variant. Services flush; callers commit."""

from __future__ import annotations

import math
import shutil
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import ExitStack
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import sqlalchemy as sa
from flask import current_app

from biobank.db import db, utcnow
from biobank.errors import InvalidInput, NotFound
from biobank.importfiles import sha256_of
from biobank.models import Case, CollectionEvent, Participant, Specimen
from biobank.models.users import Actor
from biobank.models.vocab import Role
from biobank.services.common import visible
from biobank.services.requests import allocated_ids
from omics.access import file_clause, visible_file
from omics.formats import FormatError, detect, open_reader
from omics.formats.genes import canonical_chrom, overlapping, read_genes
from omics.formats.matrix import read_feature
from omics.formats.vcf import MAX_INTEGER
from omics.formats.vcfcheck import check as check_vcf
from omics.models import (
    FileStatus,
    Gene,
    GeneModel,
    OmicsFile,
    OmicsFileSample,
    OmicsKind,
    SampleRole,
    Variant,
    VariantCall,
    somatic_tumour_call,
)

BATCH = 5000
#: the length of ``variant_calls.genotype`` (SQLite would not enforce it: checked here)
GENOTYPE_LENGTH = VariantCall.__table__.c.genotype.type.length
#: the lengths annotations and FILTER are cut to, read from their columns
LENGTHS = {
    name: table.c[name].type.length
    for table, name in (
        (OmicsFile.__table__, "reference_genome"),
        (Variant.__table__, "gene"),
        (Variant.__table__, "consequence"),
        (Variant.__table__, "protein_change"),
        (VariantCall.__table__, "filter"),
    )
}


def storage_root() -> Path:
    configured = current_app.config.get("OMICS_STORAGE_ROOT")
    root = Path(configured) if configured else Path(current_app.instance_path) / "omics"
    root.mkdir(parents=True, exist_ok=True)
    return root


def register_file(
    *,
    actor: Actor,
    path: Path,
    filename: str,
    kind: OmicsKind,
    sample_map: dict[str, str] | None = None,
    reference_genome: str | None = None,
    platform: str | None = None,
    pipeline: str | None = None,
    lenient: bool = False,
    sample_roles: dict[str, str] | None = None,
) -> tuple[OmicsFile, bool]:
    """Store *path* under the storage root by its SHA-256 and link its samples to aliquots.

    A VCF is checked against the specification and its own header first (``vcfcheck``): a
    file with problems is refused naming the first ones (line, column, rule), unless
    *lenient*, which keeps it with the problems recorded as its ``warnings``.

    Each sample column is matched through *sample_map* (sample name → barcode) or, without an
    entry, by a barcode equal to the name; names that match nothing are kept unlinked and
    reported. Its role (tumour, normal, rna_tumour) comes from *sample_roles*, else from the
    caller's header or the column's name (``TUMOR``, ``NORMAL``), else it is not known.

    The same content registered again returns the existing file (``False``); if that file
    failed or was never ingested, its samples are linked again (with this *sample_map* and
    *sample_roles*) and it is left ``registered`` to be ingested again."""
    digest = sha256_of(path)
    existing = db.session.scalar(sa.select(OmicsFile).where(OmicsFile.sha256 == digest))
    if existing is not None and existing.status is FileStatus.INGESTED:
        return existing, False
    try:
        # by content where the file carries its name (as uploads do), else by the name
        named = path if path.name == Path(filename).name else Path(filename)
        fmt = existing.format if existing is not None else detect(named)
        with open_reader(path, fmt) as reader:
            samples = list(reader.samples)
            reference = getattr(reader, "reference", None)
            found_roles = dict(getattr(reader, "roles", {}))
        warnings = _checked(path, fmt, filename, lenient=lenient)
    except FormatError as error:
        raise InvalidInput(_where(error, filename), field="file") from None
    found, wanted = _linked_aliquots(actor, samples, sample_map)
    roles = _roles(samples, found_roles, sample_roles)
    if existing is not None:
        by_name = {s.sample_name: s for s in existing.samples}
        for name in samples:
            specimen = found.get(wanted[name])
            by_name[name].specimen_id = specimen.id if specimen else None
            by_name[name].role = roles.get(name)
        existing.status, existing.error, existing.warnings = FileStatus.REGISTERED, None, warnings
        db.session.flush()
        return existing, False
    target = storage_root() / digest[:2] / digest / Path(filename).name
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():  # content-addressed: never overwritten
        shutil.copyfile(path, target)
    record = OmicsFile(
        kind=kind,
        format=fmt,
        filename=Path(filename).name,
        uri=str(target.relative_to(storage_root())),
        size_bytes=target.stat().st_size,
        sha256=digest,
        reference_genome=_build(reference_genome, reference),
        reference=reference,
        platform=platform,
        pipeline=pipeline,
        warnings=warnings,
        created_by=actor.username,
    )
    for name in samples:
        specimen = found.get(wanted[name])
        record.samples.append(
            OmicsFileSample(
                sample_name=name, role=roles.get(name), specimen_id=specimen.id if specimen else None
            )
        )
    db.session.add(record)
    db.session.flush()
    return record, True


def _where(error: FormatError, filename: str) -> str:
    """A reader's error as the uploader named the file: ``x.maf, line 3, column C: …``."""
    place = "".join(
        part
        for part in (
            f", line {error.line}" if error.line is not None else "",
            f", column {error.column}" if error.column is not None else "",
        )
    )
    return f"{Path(filename).name}{place}: {error.message}"


#: how many of a file's problems a refusal names (all are in a lenient file's warnings)
SHOWN_PROBLEMS = 5
#: genome builds recognised in a ``##reference`` line, as the LIMS names them
_BUILDS = (
    ("GRCh38", ("grch38", "hg38", "hs38", "b38")),
    ("GRCh37", ("grch37", "hg19", "hs37", "b37", "human_g1k_v37")),
    ("NCBI36", ("ncbi36", "hg18", "b36")),
    ("T2T-CHM13", ("chm13", "t2t")),
)


def _build(given: str | None, reference: str | None) -> str | None:
    """The file's genome build: as given (``hg19`` read as GRCh37), else the one its
    reference names; refused when both name known builds that differ."""
    said = build_of(reference)
    if not given:
        return said
    build = build_of(given) or given
    known = {name for name, _ in _BUILDS}
    if said in known and build in known and said != build:
        raise InvalidInput(
            f"the file's reference is {said} ({reference}); it cannot be registered as {build}",
            field="reference_genome",
        )
    return build


def build_of(reference: str | None) -> str | None:
    """The genome build a ``##reference`` value names (``file:///ref/hs37d5.fa`` →
    GRCh37), else the value itself if it is short enough to be a build's name."""
    if not reference:
        return None
    lowered = reference.lower()
    for build, names in _BUILDS:
        if any(name in lowered for name in names):
            return build
    return reference if len(reference) <= LENGTHS["reference_genome"] else None


def _checked(path: Path, fmt: str, filename: str, *, lenient: bool) -> list[str]:
    """The problems of a text VCF against the specification: refused (``InvalidInput``
    naming the first ones), or, *lenient*, returned to be kept as warnings."""
    if fmt != "vcf" or path.name.lower().endswith(".bcf"):
        return []
    problems = [str(p) for p in check_vcf(path)]
    if problems and not lenient:
        shown = "; ".join(problems[:SHOWN_PROBLEMS])
        more = f" (and {len(problems) - SHOWN_PROBLEMS} more)" if len(problems) > SHOWN_PROBLEMS else ""
        raise InvalidInput(
            f"{filename} is not a valid VCF: {shown}{more}. Register it with "
            "lenient=true to keep it anyway, with these as warnings",
            field="file",
        )
    return problems


def _roles(samples: list[str], found: dict[str, str], given: dict[str, str] | None) -> dict[str, SampleRole]:
    """Each sample's role: given, else what the file says; refuses unknown samples/roles."""
    unknown = sorted(set(given or {}) - set(samples))
    if unknown:
        raise InvalidInput(
            f"sample_roles names samples that are not in the file: {', '.join(unknown)}", field="sample_roles"
        )
    names = {role.value for role in SampleRole}
    wrong = sorted({role for role in (given or {}).values() if role not in names})
    if wrong:
        raise InvalidInput(
            f"sample_roles: {', '.join(wrong)} is not one of {', '.join(sorted(names))}", field="sample_roles"
        )
    return {name: SampleRole(role) for name, role in {**found, **(given or {})}.items()}


def _linked_aliquots(
    actor: Actor, samples: list[str], sample_map: dict[str, str] | None
) -> tuple[dict[str, Specimen], dict[str, str]]:
    """The aliquots the sample columns name (by barcode, visible to *actor*) and each
    column's barcode; refuses a map naming unknown columns or two columns for one aliquot."""
    doubled = sorted({name for name in samples if samples.count(name) > 1})
    if doubled:
        raise InvalidInput(f"sample {', '.join(doubled)} appears more than once", field="file")
    unknown = set(sample_map or {}) - set(samples)
    if unknown:
        raise InvalidInput(
            f"sample_map names samples that are not in the file: "
            f"{', '.join(sorted(unknown))} (the file has "
            f"{', '.join(samples) or 'none'})",
            field="sample_map",
        )
    wanted = {name: (sample_map or {}).get(name, name) for name in samples}
    by_barcode: dict[str, list[str]] = {}
    for name, barcode in wanted.items():
        by_barcode.setdefault(barcode, []).append(name)
    shared = [(barcode, names) for barcode, names in by_barcode.items() if len(names) > 1]
    if shared:  # one aliquot's call per variant and file: two columns would contradict
        raise InvalidInput(
            "; ".join(
                f"samples {', '.join(names[:-1])} and {names[-1]} are both mapped to {barcode}"
                for barcode, names in shared
            ),
            field="sample_map",
        )
    found = {
        s.barcode: s
        for s in db.session.scalars(
            visible(sa.select(Specimen).where(Specimen.barcode.in_(set(wanted.values()))), Specimen, actor)
        )
    }
    return found, wanted


def register_gene_model(
    *, actor: Actor, path: Path, filename: str, reference_genome: str
) -> tuple[GeneModel, int]:
    """Store the genes of a GTF/GFF3 as the gene model of *reference_genome* (replacing the
    build's previous one), then place the build's variants that have no gene in the genes
    they overlap; answers the model and how many variants got a gene."""
    try:
        table = read_genes(path)
    except FormatError as error:
        raise InvalidInput(_where(error, filename), field="file") from None
    previous = db.session.scalar(sa.select(GeneModel).where(GeneModel.reference_genome == reference_genome))
    if previous is not None:
        db.session.delete(previous)
        db.session.flush()
    model = GeneModel(
        reference_genome=reference_genome,
        filename=Path(filename).name,
        sha256=sha256_of(path),
        gene_count=len(table),
        created_by=actor.username,
    )
    db.session.add(model)
    db.session.flush()
    width = {name: Gene.__table__.c[name].type.length for name in ("name", "gene_id", "gene_type", "chrom")}
    rows = [
        {
            "model_id": model.id,
            "chrom": chrom[: width["chrom"]],
            "start": int(start),
            "end": int(end),
            "name": str(name)[: width["name"]],
            "gene_id": str(gene_id)[: width["gene_id"]],
            "gene_type": None if gene_type is None else str(gene_type)[: width["gene_type"]],
            "strand": strand or ".",
        }
        for chrom, start, end, name, gene_id, gene_type, strand in table.itertuples(index=False, name=None)
    ]
    for at in range(0, len(rows), 10_000):
        db.session.execute(sa.insert(Gene), rows[at : at + 10_000])
    return model, annotate_by_overlap(reference_genome)


def annotate_by_overlap(reference_genome: str, *, file_id: int | None = None) -> int:
    """Give the variants of *reference_genome*'s files (or of one file) that have no gene the
    gene they overlap in the build's gene model; annotations from VEP/SnpEff are kept.
    Answers how many variants got a gene (0 without a gene model)."""
    import pandas as pd

    model_id = db.session.scalar(
        sa.select(GeneModel.id).where(GeneModel.reference_genome == reference_genome)
    )
    if model_id is None:
        return 0
    wanted = sa.select(Variant.id, Variant.chrom, Variant.pos, Variant.ref).where(
        Variant.gene.is_(None), Variant.reference_genome == reference_genome
    )
    if file_id is not None:
        wanted = wanted.where(
            Variant.id.in_(sa.select(VariantCall.variant_id).where(VariantCall.file_id == file_id))
        )
    variants = pd.DataFrame(db.session.execute(wanted).all(), columns=["id", "chrom", "pos", "ref"])
    if variants.empty:
        return 0
    genes = pd.DataFrame(
        db.session.execute(
            sa.select(Gene.chrom, Gene.start, Gene.end, Gene.name, Gene.gene_type).where(
                Gene.model_id == model_id
            )
        ).all(),
        columns=["chrom", "start", "end", "name", "gene_type"],
    )
    found = overlapping(genes, variants)
    _set_genes({vid: name[: LENGTHS["gene"]] for vid, name in found.items()})
    return len(found)


def _set_genes(genes: dict[int, str]) -> None:
    """Variant id → gene, written in one statement over a COPY on PostgreSQL, by primary
    key in batches elsewhere."""
    connection = db.session.connection()
    if connection.dialect.name != "postgresql":
        updates = [{"id": vid, "gene": name} for vid, name in genes.items()]
        for at in range(0, len(updates), 10_000):
            db.session.execute(sa.update(Variant), updates[at : at + 10_000])
        return
    connection.exec_driver_sql(
        "CREATE TEMPORARY TABLE IF NOT EXISTS staged_genes (id integer, gene text) ON COMMIT DROP"
    )
    with connection.connection.driver_connection.cursor() as cursor:
        with cursor.copy("COPY staged_genes (id, gene) FROM STDIN") as copy:
            copy.write(_copy_text(list(genes.items())))
        cursor.execute("UPDATE variants SET gene = s.gene FROM staged_genes s WHERE variants.id = s.id")
        cursor.execute("TRUNCATE staged_genes")


def gene_models() -> list[GeneModel]:
    return list(db.session.scalars(sa.select(GeneModel).order_by(GeneModel.reference_genome)))


def file_path(record: OmicsFile) -> Path:
    return storage_root() / record.uri


def ingest_file(record: OmicsFile) -> OmicsFile:
    """Read the file's variants into the database: one variant row per allele (shared across
    files) and one call row per linked aliquot that carries it. Flushes; on a file it cannot
    read it raises ``FormatError`` having written nothing the caller keeps (roll back).

    The file is read in chunks of ``BATCH`` records. While the database stores one chunk
    (new variants, then calls joined to their variants' ids, each one statement over the
    whole chunk), this thread reads the next: the two overlap instead of taking turns."""
    if record.status is FileStatus.INGESTED:
        return record  # the same file twice is a no-op
    if record.format == "bam":
        return ingest_alignments(record)
    if record.format not in ("vcf", "maf"):
        return ingest_matrix(record)
    linked = {s.sample_name: s.specimen_id for s in record.samples if s.specimen_id}
    variants = 0
    with (
        open_reader(file_path(record), record.format) as reader,
        _ChunkWriter(db.session.connection(), record) as writer,
    ):
        chunk = _Chunk(record.filename)
        every_column_linked = linked.keys() >= set(reader.samples)
        for variant in reader.carriers():
            carriers = (
                variant.calls if every_column_linked else [c for c in variant.calls if c.sample in linked]
            )
            if not carriers:
                continue
            chunk.add(variant, carriers, linked)
            variants += 1
            if len(chunk.variants) >= BATCH:
                writer.submit(chunk)
                chunk = _Chunk(record.filename, after=chunk)
        writer.submit(chunk)
    if record.reference_genome:
        annotate_by_overlap(record.reference_genome, file_id=record.id)
    record.status = FileStatus.INGESTED
    record.error = None
    record.variant_count = variants
    record.call_count = (
        db.session.scalar(sa.select(sa.func.count(VariantCall.id)).where(VariantCall.file_id == record.id))
        or 0
    )
    record.ingested_at = utcnow()
    db.session.flush()
    return record


_GENE, _CONSEQUENCE, _CHANGE = (LENGTHS[n] for n in ("gene", "consequence", "protein_change"))
#: the PostgreSQL advisory lock VCF ingestions take in turn (any constant of this project's)
_INGESTION_LOCK = 0x0B10_BA4C_0001

_VARIANT_COLUMNS = ("reference_genome", "chrom", "pos", "ref", "alt", "gene", "consequence", "protein_change")
#: the columns that say which variant a row is (the table's unique key)
_VARIANT_KEY = ("reference_genome", "chrom", "pos", "ref", "alt")
_CALL_COLUMNS = ("specimen_id", "genotype", "depth", "alt_depth", "allele_fraction", "filter", "somatic")


class _Chunk:
    """One chunk's variants (numbered in the order first seen) and calls (by that number).

    A variant recorded twice for the same sample is refused with both lines: the database
    keeps one call per variant, file and aliquot. Only a variant seen before in the chunk
    can repeat a call, so only then are its calls searched. *after* is the previous chunk:
    the calls at its last position are remembered so that a repeat straddling two chunks
    is caught too (a repeat further back meets the database's unique key)."""

    def __init__(self, filename: str, after: _Chunk | None = None) -> None:
        self.filename = filename
        self.variants: list[tuple[Any, ...]] = []
        self.calls: list[tuple[Any, ...]] = []
        self.call_lines: list[int] = []
        self.first_line = self.last_line = 0
        self._number: dict[tuple[str, int, str, str], int] = {}
        self._tail: dict[tuple[str, int, str, str], dict[int, int]] = {}
        #: contig names as the file writes them, each with its name here (``canonical_chrom``)
        self._chroms: dict[str, str] = {}
        if after is not None and after.variants:
            # calls follow the file's order: those at its last position end the list
            last = after.variants[-1][:2]
            for call, line in zip(reversed(after.calls), reversed(after.call_lines), strict=True):
                key = after.variants[call[0]][:4]
                if key[:2] != last:
                    break
                self._tail.setdefault(key, {})[call[1]] = line

    def add(self, variant: Any, carriers: list[Any], linked: dict[str, int]) -> None:
        chrom = self._chroms.get(variant.chrom) or self._chroms.setdefault(
            variant.chrom, canonical_chrom(variant.chrom)
        )
        key = (chrom, variant.pos, variant.ref, variant.alt)
        line = variant.line
        self.first_line = self.first_line or line
        self.last_line = line
        number = self._number.get(key)
        earlier: dict[int, int] | None = None
        if number is None:
            number = self._number[key] = len(self.variants)
            ann = variant.annotation
            if ann is None:
                self.variants.append((*key, None, None, None))
            else:
                gene, consequence, change = ann.gene, ann.consequence, ann.protein_change
                self.variants.append(
                    (
                        *key,
                        gene[:_GENE] if gene else None,
                        consequence[:_CONSEQUENCE] if consequence else None,
                        change[:_CHANGE] if change else None,
                    )
                )
            if self._tail:
                earlier = self._tail.get(key)
        else:  # the same variant again (another record at the same site)
            earlier = {c[1]: at for c, at in zip(self.calls, self.call_lines, strict=True) if c[0] == number}
        filters = ";".join(variant.filters)[: LENGTHS["filter"]] or None
        for call in carriers:
            sample, genotype, depth, alt_depth, fraction, _, somatic = call
            if genotype is not None and len(genotype) > GENOTYPE_LENGTH:
                raise FormatError(
                    f"genotype {genotype[:40]!r} is longer than "
                    f"{GENOTYPE_LENGTH} characters (ploidy above 8 is not "
                    "stored)",
                    path=self.filename,
                    line=line,
                    column=sample,
                )
            specimen = linked[sample]
            if earlier and specimen in earlier:
                if variant.alt.startswith("<") or "[" in variant.alt or "]" in variant.alt:
                    # a symbolic allele or breakend names no sequence: two <INS> (or
                    # <DUP>,<DUP>) at one site are one variant here; the file keeps both
                    continue
                raise FormatError(
                    f"{variant.chrom}:{variant.pos} {variant.ref}>{variant.alt} "
                    f"is called for sample {sample} on line "
                    f"{earlier[specimen]} too (duplicate records: merge them, "
                    "e.g. bcftools norm -d exact)",
                    path=self.filename,
                    line=line,
                    column=sample,
                )
            self.calls.append((number, specimen, genotype, depth, alt_depth, fraction, filters, somatic))
            self.call_lines.append(line)


def _copy_text(rows: list[tuple[Any, ...]]) -> bytes:
    """Rows in PostgreSQL's COPY text format (tab-separated, ``\\N`` for NULL)."""
    out = []
    for row in rows:
        fields = []
        for value in row:
            if value is None:
                fields.append("\\N")
            elif isinstance(value, str):
                if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
                    value = (
                        value.replace("\\", "\\\\")
                        .replace("\t", "\\t")
                        .replace("\n", "\\n")
                        .replace("\r", "\\r")
                    )
                fields.append(value)
            else:
                fields.append(str(value))
        out.append("\t".join(fields))
    out.append("")
    return "\n".join(out).encode()


class _SwitchInterval:
    """While at least one block is inside, the interpreter hands its lock to a waiting
    thread after at most *seconds* (``sys.setswitchinterval``), then the interval it had.

    The chunk writer needs the lock back each time a statement ends (and to start one);
    the reading thread, pure Python, keeps it until the interval (5 ms by default) runs
    out, and a handoff can take several. At the default, the writer sat idle about 80 ms
    after each chunk was handed to it, and a 100,000-record file took 2.7–3.1 s against
    1.8–2.4 s at 0.2 ms. The setting is the process's: other threads meanwhile switch more
    often too, which costs them little."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._inside = 0
        self._saved = 0.0

    def __enter__(self) -> None:
        with self._lock:
            if not self._inside:
                self._saved = sys.getswitchinterval()
                sys.setswitchinterval(min(self._saved, self.seconds))
            self._inside += 1

    def __exit__(self, *_exc: object) -> None:
        with self._lock:
            self._inside -= 1
            if not self._inside:
                sys.setswitchinterval(self._saved)


#: prompt handoffs between the reading thread and the chunk writer
_PROMPT_HANDOFFS = _SwitchInterval(0.0002)
#: SQLite's page cache while a file is ingested (KiB, as ``PRAGMA cache_size`` takes it
#: negative): the default 2 MiB spills the new rows' pages to the log before the commit;
#: the writer's statements took 8–10% less time with room for them
_SQLITE_INGEST_CACHE_KIB = 128 * 1024


class _ChunkWriter:
    """Stores chunks on the session's connection from a second thread, one chunk at a time.

    The thread only sends prepared bytes and runs statements, during which the driver
    releases the interpreter lock, so reading the next chunk proceeds meanwhile (with
    prompt handoffs of the lock, :class:`_SwitchInterval`). Leaving the block waits for the
    chunk in flight; a failure there is raised unless the block is already failing (the
    caller rolls back either way)."""

    def __init__(self, connection: sa.Connection, record: OmicsFile) -> None:
        self.raw = connection.connection.driver_connection
        self.postgresql = connection.dialect.name == "postgresql"
        self.file_id = record.id
        self.filename = record.filename
        self.build = record.reference_genome or ""
        self.pending: tuple[Future[None], tuple[int, int]] | None = None
        self.integrity_error = connection.dialect.loaded_dbapi.IntegrityError
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vcf-writer")
        #: what entering changed, undone on leaving
        self.settings = ExitStack()
        if self.postgresql:
            # Ingestions take turns, each to its commit: two files holding uncommitted new
            # variants that the other needs would otherwise deadlock (SQLite has one writer).
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_INGESTION_LOCK})")
            for name, columns in (
                (
                    "staged_variants",
                    "reference_genome text, chrom text, "
                    "pos integer, ref text, alt text, gene text, "
                    "consequence text, protein_change text",
                ),
                (
                    "staged_calls",
                    "specimen_id integer, genotype text, "
                    "depth integer, alt_depth integer, allele_fraction float8, "
                    "filter text, somatic boolean",
                ),
            ):
                connection.exec_driver_sql(
                    f"CREATE TEMPORARY TABLE IF NOT EXISTS {name} (n integer, {columns}) ON COMMIT DROP"
                )

    def __enter__(self) -> _ChunkWriter:
        if not self.postgresql:
            cache_size = int(self.raw.execute("PRAGMA cache_size").fetchone()[0])
            self.raw.execute(f"PRAGMA cache_size=-{_SQLITE_INGEST_CACHE_KIB}")
            self.settings.callback(self.raw.execute, f"PRAGMA cache_size={cache_size}")
        self.settings.enter_context(_PROMPT_HANDOFFS)
        return self

    def submit(self, chunk: _Chunk) -> None:
        if not chunk.variants:
            return
        if self.postgresql:
            payload: tuple[Any, ...] = (
                _copy_text([(n, self.build, *row) for n, row in enumerate(chunk.variants)]),
                _copy_text(chunk.calls),
            )
        else:
            # orjson: a tenth of the json module's time for these rows, in the reading thread
            payload = (
                orjson.dumps(chunk.variants).decode(),
                orjson.dumps(chunk.calls).decode(),
                len(chunk.variants),
                (chunk.variants[0][:4], chunk.variants[-1][:4]),
            )
        self._wait()
        self.pending = (
            self.pool.submit(self._store_postgresql if self.postgresql else self._store_sqlite, *payload),
            (chunk.first_line, chunk.last_line),
        )

    def _wait(self) -> None:
        if self.pending is not None:
            (pending, (first, last)), self.pending = self.pending, None
            try:
                pending.result()
            except self.integrity_error:  # a repeat further back than the chunk remembers
                raise FormatError(
                    f"a variant on lines {first}–{last} is called again for a sample it was "
                    "called for earlier in the file (duplicate records: sort and merge them, "
                    "e.g. bcftools sort | bcftools norm -d exact)",
                    path=self.filename,
                    line=first,
                ) from None

    def __exit__(self, exc_type: type[BaseException] | None, *_exc: object) -> None:
        try:
            if exc_type is None:
                self._wait()
            elif self.pending is not None:
                wait([self.pending[0]])  # never leave the thread on the connection
        finally:
            self.pool.shutdown()
            self.settings.close()  # the switch interval and SQLite's cache as they were

    def _store_postgresql(self, variants: bytes, calls: bytes) -> None:
        columns = ", ".join(_VARIANT_COLUMNS)
        call_columns = ", ".join(_CALL_COLUMNS)
        with self.raw.cursor() as cursor:
            with cursor.copy(f"COPY staged_variants (n, {columns}) FROM STDIN") as copy:
                copy.write(variants)
            with cursor.copy(f"COPY staged_calls (n, {call_columns}) FROM STDIN") as copy:
                copy.write(calls)
            cursor.execute(
                f"INSERT INTO variants ({columns}) SELECT {columns} "
                "FROM staged_variants ORDER BY n ON CONFLICT DO NOTHING"
            )
            cursor.execute(
                f"INSERT INTO variant_calls (variant_id, file_id, {call_columns}) "
                f"SELECT ids.id, %s, {', '.join('c.' + c for c in _CALL_COLUMNS)} "
                "FROM staged_calls c JOIN (SELECT s.n, v.id FROM staged_variants s "
                "JOIN variants v ON "
                + " AND ".join(f"v.{c} = s.{c}" for c in _VARIANT_KEY)
                + " OFFSET 0) ids ON ids.n = c.n",
                (self.file_id,),
            )
            cursor.execute("TRUNCATE staged_variants, staged_calls")

    def _store_sqlite(
        self, variants: str, calls: str, count: int, ends: tuple[tuple[Any, ...], tuple[Any, ...]]
    ) -> None:
        """The chunk's new variants, then its calls. When every variant of the chunk was new,
        they took consecutive ids in the chunk's order (SQLite gives a new row the largest
        id plus one): a call's variant is then the first id plus its number, with no
        search of ``variants`` by key. The first and last variant's ids are checked before
        that is trusted; otherwise each call's variant is found by its key."""
        inserted = self.raw.execute(SQLITE_VARIANTS_INSERT, (self.build, variants))
        last = inserted.lastrowid
        first = last - count + 1
        if inserted.rowcount == count and tuple(map(self._variant_id, ends)) == (first, last):
            self.raw.execute(SQLITE_NEW_VARIANT_CALLS_INSERT, (first, self.file_id, calls))
        else:
            self.raw.execute(SQLITE_CALLS_INSERT, (variants, self.build, self.file_id, calls))

    def _variant_id(self, key: tuple[Any, ...]) -> int | None:
        row = self.raw.execute(SQLITE_VARIANT_ID, (self.build, *key)).fetchone()
        return row[0] if row else None


def _json_field(alias: str, i: int) -> str:
    return f"json_extract({alias}.value, '$[{i}]')"


#: the start of both statements storing a chunk's calls, and the fields of its JSON rows
#: after the variant's number
_CALLS_INTO = f"INSERT INTO variant_calls (variant_id, file_id, {', '.join(_CALL_COLUMNS)})"
_CALL_FIELDS = ", ".join(_json_field("c", i + 1) for i in range(len(_CALL_COLUMNS)))


def _chunk_field(column: str) -> str:
    """A variant column as a chunk's JSON row holds it (all but the build, a parameter)."""
    return _json_field("s", _VARIANT_COLUMNS.index(column) - 1)


#: a chunk's new variants into ``variants``, in the chunk's order: the build, then the
#: rows of a JSON array
SQLITE_VARIANTS_INSERT = (
    f"INSERT INTO variants ({', '.join(_VARIANT_COLUMNS)}) SELECT ?, "
    + ", ".join(_chunk_field(c) for c in _VARIANT_COLUMNS[1:])
    + " FROM json_each(?) s WHERE true ORDER BY s.key ON CONFLICT DO NOTHING"
)
#: a variant's id by its key
SQLITE_VARIANT_ID = "SELECT id FROM variants WHERE " + " AND ".join(f"{c} = ?" for c in _VARIANT_KEY)
#: a chunk's calls when its variants were all new, with consecutive ids from the first
#: (a parameter): each call's variant is that id plus the variant's number in the chunk
SQLITE_NEW_VARIANT_CALLS_INSERT = (
    f"{_CALLS_INTO} SELECT ? + {_json_field('c', 0)}, ?, {_CALL_FIELDS} FROM json_each(?) c"
)


#: a chunk's calls into ``variant_calls``, each joined to its variant's id. Both joins are
#: CROSS JOINs, which SQLite never reorders: the chunk's variants stay the outer loop and
#: find their ids through the unique key, and the calls stay outside the ids, each finding
#: its id through an automatic index. Left to the planner, statistics gathered while
#: ``variants`` was small (the demo's, say) put ``variants`` outside: every chunk then scans
#: the whole table once per variant, and a 100,000-record file never finishes.
SQLITE_CALLS_INSERT = (
    "WITH ids AS MATERIALIZED (SELECT s.key AS n, v.id FROM json_each(?) s "
    "CROSS JOIN variants v ON v.reference_genome = ? AND "
    + " AND ".join(f"v.{c} = {_chunk_field(c)}" for c in _VARIANT_KEY[1:])
    + f") {_CALLS_INTO} SELECT ids.id, ?, {_CALL_FIELDS} "
    f"FROM json_each(?) c CROSS JOIN ids ON ids.n = {_json_field('c', 0)}"
)


def _rows_for(stmt: sa.Select, actor: Actor) -> sa.Select:
    """*stmt* over specimens, limited to the rows *actor* sees: staff their sites' tubes, a
    researcher only the tubes approved requests of theirs allocated."""
    if actor.role is Role.RESEARCHER:
        return stmt.where(Specimen.id.in_(allocated_ids(actor)))
    return visible(stmt, Specimen, actor)


class CarrierPage(NamedTuple):
    rows: list[dict[str, Any]]
    #: every matching call, over all pages
    total: int
    #: where the next page starts (None on the last page)
    next_cursor: str | None


def carriers(
    *,
    actor: Actor,
    gene: str | None = None,
    protein_change: str | None = None,
    region: str | None = None,
    reference_genome: str | None = None,
    limit: int = 1000,
    after: str | None = None,
    all_calls: bool = False,
) -> CarrierPage:
    """Aliquots (and their participants and cases) with a non-reference call of the variants
    that match: a gene, a protein change (``p.V600E``; with a gene) or a region
    (``7:140453000-140454000`` or ``7:140453136``), in genomic order, a page of *limit* at a
    time after the cursor *after* (``chrom:pos:call id`` of the last row of a page).

    By default the somatic tumour carriers: calls of samples whose role is normal, and calls
    the caller marks germline or LOH, are left out (*all_calls* keeps them)."""
    if not (gene or region):
        raise InvalidInput("give a gene (optionally with a protein change) or a region", field="gene")
    stmt = (
        sa.select(
            VariantCall,
            Variant,
            Specimen.barcode,
            Participant.code,
            Case.code.label("case_code"),
            Case.disease_group,
            OmicsFileSample.role,
        )
        .join(Variant, Variant.id == VariantCall.variant_id)
        .outerjoin(
            OmicsFileSample,
            sa.and_(
                OmicsFileSample.file_id == VariantCall.file_id,
                OmicsFileSample.specimen_id == VariantCall.specimen_id,
            ),
        )
        .join(Specimen, Specimen.id == VariantCall.specimen_id)
        .join(Participant, Participant.id == Specimen.participant_id)
        .outerjoin(CollectionEvent, CollectionEvent.id == Specimen.collection_event_id)
        .outerjoin(Case, Case.id == CollectionEvent.case_id)
    )
    if gene:
        stmt = stmt.where(Variant.gene == gene.upper())
    if protein_change:
        change = protein_change if protein_change.startswith("p.") else f"p.{protein_change}"
        stmt = stmt.where(Variant.protein_change == change)
    if region:
        chrom, _, span = region.partition(":")
        try:
            start, _, end = span.replace(",", "").partition("-")
            first, last = int(start), int(end or start)
        except ValueError:
            raise InvalidInput(
                f"{region!r} is not a region such as 7:140453000-140454000", field="region"
            ) from None
        stmt = stmt.where(Variant.chrom == canonical_chrom(chrom), Variant.pos.between(first, last))
    if reference_genome:
        stmt = stmt.where(Variant.reference_genome == (build_of(reference_genome) or reference_genome))
    elif region:  # a position means nothing without its build: never two builds at once
        builds = sorted(db.session.scalars(stmt.with_only_columns(Variant.reference_genome).distinct()))
        if len(builds) > 1:
            raise InvalidInput(
                f"{region} matches variants on several genome builds "
                f"({', '.join(b or 'unknown' for b in builds)}): give reference_genome",
                field="reference_genome",
            )
    if not all_calls:
        stmt = stmt.where(somatic_tumour_call())
    stmt = _rows_for(stmt, actor)
    total = (
        db.session.scalar(
            sa.select(sa.func.count()).select_from(stmt.with_only_columns(VariantCall.id).subquery())
        )
        or 0
    )
    if after:
        chrom, pos, call_id = _carrier_cursor(after)
        stmt = stmt.where(
            sa.tuple_(Variant.chrom, Variant.pos, VariantCall.id)
            > sa.tuple_(sa.literal(chrom), sa.literal(pos), sa.literal(call_id))
        )
    stmt = stmt.order_by(Variant.chrom, Variant.pos, VariantCall.id)
    out = []
    for call, variant, barcode, participant, case_code, group, role in db.session.execute(
        stmt.limit(limit + 1)
    ):
        out.append(
            {
                "variant": variant,
                "call": call,
                "barcode": barcode,
                "participant_code": participant,
                "case_code": case_code,
                "disease_group": group.value if group else None,
                "role": role.value if role else None,
            }
        )
    cursor = None
    if len(out) > limit:
        out = out[:limit]
        last = out[-1]
        cursor = f"{last['variant'].chrom}:{last['variant'].pos}:{last['call'].id}"
    return CarrierPage(out, total, cursor)


def _carrier_cursor(text: str) -> tuple[str, int, int]:
    chrom, _, rest = text.rpartition(":")
    chrom, _, pos = chrom.rpartition(":")
    try:
        position, call_id = int(pos), int(rest)
    except ValueError:
        position = call_id = -1
    if not (chrom and 0 <= position <= MAX_INTEGER and 0 <= call_id <= MAX_INTEGER):
        raise InvalidInput(f"{text!r} is not a cursor from X-Next-Cursor", field="after")
    return chrom, position, call_id


def list_files(
    *,
    actor: Actor,
    specimen_id: int | None = None,
    case_id: int | None = None,
    participant_id: int | None = None,
) -> list[OmicsFile]:
    stmt = sa.select(OmicsFile).where(file_clause(actor)).order_by(OmicsFile.id.desc())
    if specimen_id or case_id or participant_id:
        linked = sa.select(OmicsFileSample.file_id).join(Specimen, Specimen.id == OmicsFileSample.specimen_id)
        if specimen_id:
            linked = linked.where(Specimen.id == specimen_id)
        if participant_id:
            linked = linked.where(Specimen.participant_id == participant_id)
        if case_id:
            linked = linked.join(CollectionEvent, CollectionEvent.id == Specimen.collection_event_id).where(
                CollectionEvent.case_id == case_id
            )
        linked = visible(linked, Specimen, actor)
        stmt = stmt.where(OmicsFile.id.in_(linked))
    return list(db.session.scalars(stmt.limit(500)))


def get_file(file_id: int, actor: Actor | None = None) -> OmicsFile:
    """An omics file; with *actor*, only one they may see (``omics.access``), any other
    being 'not found'. Background tasks pass no actor."""
    record = db.session.get(OmicsFile, file_id)
    if record is None:
        raise NotFound(f"no omics file {file_id}")
    if actor is not None:
        visible_file(record, actor)
    return record


#: QC gates; a sample passes when every gate that applies to its metrics passes
QC_MAX_PCT_MT = 20.0  # RNA-Seq: share of counts on mitochondrial genes, %
QC_MIN_GENES = 200  # RNA-Seq: genes with a count (scanpy's usual min_genes)
QC_MIN_DETECTION = 0.5  # methylation, proteomics, metabolomics: share of features detected
QC_MIN_MAPPED = 0.8  # alignments: share of reads mapped


def qc_verdict(kind: OmicsKind, metrics: dict[str, Any]) -> dict[str, Any]:
    """*metrics* with ``pass`` and the reasons of a failure (``fail_reasons``)."""
    reasons = []
    if "pct_counts_mt" in metrics and metrics["pct_counts_mt"] > QC_MAX_PCT_MT:
        reasons.append(f"mitochondrial counts {metrics['pct_counts_mt']}% > {QC_MAX_PCT_MT}%")
    if "n_genes_by_counts" in metrics and metrics["n_genes_by_counts"] < QC_MIN_GENES:
        reasons.append(f"{metrics['n_genes_by_counts']} genes detected < {QC_MIN_GENES}")
    if "detection_rate" in metrics and metrics["detection_rate"] < QC_MIN_DETECTION:
        reasons.append(f"detection rate {metrics['detection_rate']} < {QC_MIN_DETECTION}")
    if "mapped_reads" in metrics:
        reads = metrics["mapped_reads"] + metrics.get("unmapped_reads", 0)
        if reads == 0 or metrics["mapped_reads"] / reads < QC_MIN_MAPPED:
            reasons.append(f"mapped share below {QC_MIN_MAPPED:.0%}")
    return {**metrics, "pass": not reasons, "fail_reasons": reasons}


def ingest_alignments(record: OmicsFile) -> OmicsFile:
    """Per-contig read counts of a BAM/CRAM, kept as the QC of its read-group samples."""
    with open_reader(file_path(record), record.format) as reader:
        counts = reader.contig_counts()
    total = sum(counts["mapped"].values())
    for sample in record.samples:
        sample.qc = qc_verdict(
            record.kind,
            {
                "mapped_reads": total,
                "unmapped_reads": counts["unmapped"],
                "mapped_by_contig": counts["mapped"],
            },
        )
    record.status = FileStatus.INGESTED
    record.error = None
    record.ingested_at = utcnow()
    db.session.flush()
    return record


def ingest_matrix(record: OmicsFile) -> OmicsFile:
    """Read a matrix into AnnData (``obs`` = aliquots, ``var`` = features), store it as
    ``.h5ad`` beside the file, and record per-sample QC: for RNA-Seq scanpy's
    ``calculate_qc_metrics`` with the mitochondrial share; for the other kinds the share of
    features detected (non-missing, non-zero)."""
    import numpy as np

    adata = open_reader(file_path(record), record.format).to_anndata()
    links = {s.sample_name: s for s in record.samples}
    missing = [name for name in adata.obs_names if name not in links]
    for name in missing:  # a matrix's samples are known only once it is read
        link = OmicsFileSample(sample_name=name, specimen_id=None)
        record.samples.append(link)
        links[name] = link
    db.session.flush()
    barcodes = dict(
        db.session.execute(
            sa.select(Specimen.id, Specimen.barcode).where(
                Specimen.id.in_([s.specimen_id for s in links.values() if s.specimen_id])
            )
        ).all()
    )
    adata.obs["specimen_id"] = [links[n].specimen_id or -1 for n in adata.obs_names]
    adata.obs["barcode"] = [barcodes.get(links[n].specimen_id, "") for n in adata.obs_names]
    adata.uns["lims"] = dict(adata.uns.get("lims", {})) | {
        "file_sha256": record.sha256,
        "kind": record.kind.value,
        "reference_genome": record.reference_genome or "",
        "pipeline": record.pipeline or "",
    }
    if record.kind is OmicsKind.RNA_SEQ:
        import scanpy as sc

        adata.layers["counts"] = adata.X.copy()
        names = adata.var["symbol"] if "symbol" in adata.var else adata.var_names.to_series()
        adata.var["mt"] = np.asarray(names.astype(str).str.upper().str.startswith("MT-"))
        sc.pp.calculate_qc_metrics(adata, qc_vars=["mt"], percent_top=None, log1p=False, inplace=True)
        metrics = {
            name: {
                "total_counts": float(row.total_counts),
                "n_genes_by_counts": int(row.n_genes_by_counts),
                "pct_counts_mt": round(float(row.pct_counts_mt), 3),
            }
            for name, row in adata.obs.iterrows()
        }
    else:
        present = adata.n_vars - (
            np.asarray(adata.layers["missing"].sum(axis=1)).ravel() if "missing" in adata.layers else 0
        )
        nonzero = np.asarray((adata.X != 0).sum(axis=1)).ravel()
        detected = nonzero if record.kind in (OmicsKind.PROTEOMICS, OmicsKind.METABOLOMICS) else present
        adata.obs["detection_rate"] = np.round(detected / max(adata.n_vars, 1), 4)
        metrics = {
            name: {"detection_rate": float(rate), "features": int(adata.n_vars)}
            for name, rate in zip(adata.obs_names, adata.obs["detection_rate"], strict=True)
        }
    for name, values in metrics.items():
        links[name].qc = qc_verdict(record.kind, values)
    target = storage_root() / "matrices" / f"{record.sha256}.h5ad"
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written at every ingestion: its obs carry the aliquots the samples are linked to now
    # (the source file is content-addressed, the links are not).
    partial = target.with_suffix(".part.h5ad")
    adata.write_h5ad(partial)
    partial.replace(target)
    record.matrix_uri = str(target.relative_to(storage_root()))
    record.feature_count = int(adata.n_vars)
    record.status = FileStatus.INGESTED
    record.error = None
    record.ingested_at = utcnow()
    db.session.flush()
    return record


def feature_values(record: OmicsFile, feature: str) -> dict[str, Any]:
    """One feature (an id, or a gene symbol) across every sample of an ingested matrix; only
    that column is read from the stored file."""
    if record.matrix_uri is None:
        raise InvalidInput(f"file {record.id} holds no ingested matrix", field="file")
    found = read_feature(storage_root() / record.matrix_uri, feature)
    if found is None:
        raise NotFound(f"no feature {feature!r} in {record.filename}", field="feature")
    obs = found["obs"]
    barcodes = obs["barcode"] if "barcode" in obs else [""] * len(obs)
    return {
        "feature": found["feature"],
        "samples": [
            {
                "sample_name": str(name),
                "barcode": str(code) or None,
                "value": None if math.isnan(value) else float(value),
            }
            for name, code, value in zip(obs.index, barcodes, found["values"], strict=True)
        ],
    }


def omics_of_specimen(specimen: Specimen) -> dict[str, Any]:
    """The files that measure *specimen* (with its sample's QC) and the variants it carries,
    most damaging first (for the specimen page)."""
    links = list(
        db.session.scalars(
            sa.select(OmicsFileSample)
            .where(OmicsFileSample.specimen_id == specimen.id)
            .order_by(OmicsFileSample.file_id)
        )
    )
    impact = sa.case((Variant.protein_change.is_(None), 1), else_=0)
    calls = db.session.execute(
        sa.select(VariantCall, Variant)
        .join(Variant, Variant.id == VariantCall.variant_id)
        .where(VariantCall.specimen_id == specimen.id)
        .order_by(impact, Variant.gene, Variant.chrom, Variant.pos)
        .limit(200)
    ).all()
    return {"files": links, "calls": [tuple(row) for row in calls]}


def qc_table(
    *, actor: Actor, kind: OmicsKind | None = None, file_id: int | None = None
) -> list[dict[str, Any]]:
    """One row per (ingested file, linked sample) with its QC metrics."""
    stmt = (
        sa.select(OmicsFile, OmicsFileSample, Specimen.barcode)
        .join(OmicsFileSample, OmicsFileSample.file_id == OmicsFile.id)
        .join(Specimen, Specimen.id == OmicsFileSample.specimen_id)
        .where(OmicsFile.status == FileStatus.INGESTED)
        .order_by(OmicsFile.id, OmicsFileSample.id)
    )
    if kind is not None:
        stmt = stmt.where(OmicsFile.kind == kind)
    if file_id is not None:
        stmt = stmt.where(OmicsFile.id == file_id)
    stmt = _rows_for(stmt, actor)
    return [
        {
            "file_id": f.id,
            "filename": f.filename,
            "kind": f.kind.value,
            "sample_name": s.sample_name,
            "barcode": barcode,
            "qc": s.qc,
        }
        for f, s, barcode in db.session.execute(stmt.limit(10000))
    ]
