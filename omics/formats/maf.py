"""Mutation Annotation Format (GDC and cBioPortal MAF, vcf2maf output): one somatic variant
of one tumour per row (pure: no Flask, no SQLAlchemy).

The samples are the ``Tumor_Sample_Barcode`` and ``Matched_Norm_Sample_Barcode`` values,
linked to aliquots like a VCF's sample columns. Each row is a call of its tumour sample,
somatic unless ``Mutation_Status`` says germline or LOH:
gene ``Hugo_Symbol``, consequence ``Variant_Classification`` (or VEP's ``Consequence``),
protein change ``HGVSp_Short``, depth ``t_depth`` (else reference plus alternate reads),
alternate reads ``t_alt_count``, and a genotype from ``Tumor_Seq_Allele1/2`` (``0/1`` when
one of them is the reference). Coordinates are the MAF's own (1-based; insertions and
deletions written with ``-``, as GDC does), so an indel from a MAF is a variant of its own
beside the same indel from a VCF, which carries an anchor base; substitutions are the same.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterator
from pathlib import Path

from omics.formats.errors import FormatError
from omics.formats.registry import register
from omics.formats.vcf import MAX_INTEGER, Annotation, Call, Variant

REQUIRED = (
    "Hugo_Symbol",
    "Chromosome",
    "Start_Position",
    "Reference_Allele",
    "Tumor_Seq_Allele2",
    "Tumor_Sample_Barcode",
)
_BASES = frozenset("ACGTNacgtn-")


def _text(path: Path) -> io.TextIOWrapper:
    with path.open("rb") as probe:
        gz = probe.read(2) == b"\x1f\x8b"
    raw = gzip.open(path, "rb") if gz else path.open("rb")  # noqa: SIM115 (wrapped, closed)
    return io.TextIOWrapper(raw, encoding="utf-8", newline="")


def _accepts(path: Path) -> bool:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".maf"):
        return True
    if not name.endswith((".txt", ".tsv")) or not path.is_file():
        return False
    try:
        with _text(path) as stream:
            for line in stream:
                if line.startswith("#"):
                    continue
                return line.startswith("Hugo_Symbol\t")
    except (OSError, EOFError, UnicodeDecodeError):
        return False
    return False


def _int(row: dict[str, str], name: str, *, path: Path, line: int) -> int | None:
    text = (row.get(name) or "").strip()
    if text in ("", ".", "NA", "NaN", "nan"):
        return None
    try:
        value = int(float(text)) if "." in text else int(text)
    except (ValueError, OverflowError):
        value = -1
    if not 0 <= value <= MAX_INTEGER:
        raise FormatError(
            f"{text!r} is not a count (a whole number from 0 to {MAX_INTEGER})",
            path=path,
            line=line,
            column=name,
        )
    return value


@register("maf", _accepts)
class MafReader:
    """A MAF file: ``samples`` (tumour then normal barcodes, in order of appearance),
    ``reference`` (``NCBI_Build``) and ``carriers()``, like the VCF reader's."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.exists():
            raise FormatError("no such file", path=path)
        tumours: dict[str, None] = {}
        normals: dict[str, None] = {}
        builds: dict[str, None] = {}
        for number, row in self._rows():
            self._variant(number, row)  # every row checked before anything is stored
            tumours[row["Tumor_Sample_Barcode"].strip()] = None
            normal = (row.get("Matched_Norm_Sample_Barcode") or "").strip()
            if normal and normal not in ("NA", "."):
                normals[normal] = None
            build = (row.get("NCBI_Build") or "").strip()
            if build and build != "NA":
                builds[build] = None
        self.samples = [*tumours, *(n for n in normals if n not in tumours)]
        self.roles = {**dict.fromkeys(normals, "normal"), **dict.fromkeys(tumours, "tumour")}
        if len(builds) > 1:
            raise FormatError(
                f"rows on several genome builds ({', '.join(builds)}): one file, one build",
                path=path,
                column="NCBI_Build",
            )
        build = next(iter(builds), None)
        self.reference = f"GRCh{build}" if build in ("37", "38") else build

    def close(self) -> None:
        return None

    def __enter__(self) -> MafReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        return None

    def _rows(self) -> Iterator[tuple[int, dict[str, str]]]:
        try:
            with _text(self.path) as stream:
                lines = enumerate(stream, start=1)
                header: list[str] | None = None
                header_line = 0
                for header_line, line in lines:  # noqa: B007  (the header's line, after)
                    if line.startswith("#") or not line.strip():
                        continue
                    header = next(csv.reader([line.rstrip("\r\n")], delimiter="\t"))
                    break
                if header is None:
                    raise FormatError("no header line (Hugo_Symbol, Chromosome, …)", path=self.path)
                missing = [name for name in REQUIRED if name not in header]
                if missing:
                    raise FormatError(
                        f"the header lacks {', '.join(missing)}: is this a MAF?",
                        path=self.path,
                        line=header_line,
                    )
                for number, line in lines:
                    if not line.strip():
                        continue
                    cells = line.rstrip("\r\n").split("\t")
                    if len(cells) != len(header):
                        raise FormatError(
                            f"{len(cells)} columns; the header has {len(header)}", path=self.path, line=number
                        )
                    yield number, dict(zip(header, cells, strict=True))
        except (OSError, EOFError) as error:
            raise FormatError(f"unreadable (truncated or corrupt?): {error}", path=self.path) from None
        except UnicodeDecodeError:
            raise FormatError("not UTF-8 text: is this a binary file?", path=self.path) from None

    def carriers(self) -> Iterator[Variant]:
        """One variant per row, with its tumour sample's call."""
        for number, row in self._rows():
            yield self._variant(number, row)

    variants = carriers

    def _variant(self, number: int, row: dict[str, str]) -> Variant:
        ref = row["Reference_Allele"].strip()
        alleles = [row.get("Tumor_Seq_Allele1", "").strip(), row["Tumor_Seq_Allele2"].strip()]
        alt = next((a for a in reversed(alleles) if a and a != ref), "")
        for name, allele in (("Reference_Allele", ref), ("Tumor_Seq_Allele2", alt)):
            if not allele or not set(allele) <= _BASES:
                raise FormatError(
                    f"{allele!r} is not an allele (A, C, G, T, N or -)",
                    path=self.path,
                    line=number,
                    column=name,
                )
        position = _int(row, "Start_Position", path=self.path, line=number)
        if position is None or position < 1:
            raise FormatError(
                "Start_Position must be a positive integer",
                path=self.path,
                line=number,
                column="Start_Position",
            )
        depth = _int(row, "t_depth", path=self.path, line=number)
        alt_depth = _int(row, "t_alt_count", path=self.path, line=number)
        ref_depth = _int(row, "t_ref_count", path=self.path, line=number)
        if depth is None and ref_depth is not None and alt_depth is not None:
            depth = ref_depth + alt_depth
        fraction = round(alt_depth / depth, 4) if depth and alt_depth is not None else None
        genotype = "0/1" if ref in alleles else "1/1"
        change = (row.get("HGVSp_Short") or "").strip()
        annotation = Annotation(
            (row.get("Hugo_Symbol") or "").strip() or None,
            ((row.get("Variant_Classification") or row.get("Consequence") or "").strip() or None),
            change if change.startswith("p.") else None,
            (row.get("IMPACT") or "").strip() or None,
        )
        status = (row.get("Mutation_Status") or "").strip().lower()
        call = Call(
            row["Tumor_Sample_Barcode"].strip(),
            genotype,
            depth,
            alt_depth,
            fraction,
            somatic=status not in ("germline", "loh"),
        )  # a MAF lists somatic calls
        filters = tuple(f for f in (row.get("FILTER") or "").split(";") if f and f != ".")
        return Variant(row["Chromosome"].strip(), position, ref, alt, filters, number, annotation, (call,))
