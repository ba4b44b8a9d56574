"""VCF and BCF through pysam: header, samples, streaming records, region queries, and the gene,
consequence and protein change of each alternate allele from VEP ``CSQ`` or SnpEff ``ANN``.

Per sample, a call carries the genotype (``GT``), the depth (``DP``, else the sum of ``AD``),
the alternate read count (``AD``; Strelka's tier-1 ``AU/CU/GU/TU`` for SNVs and ``TIR`` for
indels) and the allele fraction (``AF``, else alternate reads over depth).
"""

from __future__ import annotations

import functools
import gzip
import math
import operator
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pysam
import vcf

from omics.formats.errors import FormatError
from omics.formats.htsindex import is_bgzf
from omics.formats.registry import register

#: the largest VCF Integer (32-bit signed; htslib reads no larger)
MAX_INTEGER = 2**31 - 1
_ALLELE = re.compile(
    r"^(?:[ACGTNacgtn]+|\*|<[^<>]+>|\.|[ACGTNacgtn]*[\[\]][^\s]*"
    r"|\.[ACGTNacgtn]+|[ACGTNacgtn]+\.)$"
)  # the last two: single breakends
_THREE_TO_ONE = {
    "Ala": "A",
    "Arg": "R",
    "Asn": "N",
    "Asp": "D",
    "Cys": "C",
    "Gln": "Q",
    "Glu": "E",
    "Gly": "G",
    "His": "H",
    "Ile": "I",
    "Leu": "L",
    "Lys": "K",
    "Met": "M",
    "Phe": "F",
    "Pro": "P",
    "Ser": "S",
    "Thr": "T",
    "Trp": "W",
    "Tyr": "Y",
    "Val": "V",
    "Ter": "*",
    "Sec": "U",
    "Pyl": "O",
    "Xaa": "X",
}
_THREE = re.compile("|".join(_THREE_TO_ONE))
#: one residue for another, or for itself: ``p.Val600Glu``, ``p.Arg1362Ter``, ``p.Leu576=``
_ONE_RESIDUE = re.compile(r"p\.([A-Z][a-z]{2})(\d+)([A-Z][a-z]{2}|=)")
#: a tab and the sample cell after it, unless its genotype (the text before the first ``:``)
#: holds nothing but 0, ., / and |: the cells that may carry (0/1, ./2, 0/0/1, 1, 0|10).
#: The commonest cell, ``0/0:…``, is turned away by its first four characters.
_CARRYING = r"\t(?!0/0:)(?![0./|]*(?:[:\t]|$))"
_CARRYING_CELL = re.compile(_CARRYING + r"(?P<cell>[^\t]*)")
#: DP, and AD's alternate reads, in a cell of a biallelic record: plain whole numbers
_QUICK_FIELDS = {"DP": r"(?P<dp>\d{1,10})", "AD": r"\d{1,10},(?P<ad>\d{1,10})"}


@functools.lru_cache(maxsize=256)
def _quick_cells(format_column: str) -> re.Pattern[str] | None:
    """For a biallelic record whose FORMAT starts with GT and has DP and AD but neither AF
    nor SS (GATK's ``GT:AD:DP:GQ:PL``, say): like ``_CARRYING_CELL``, but a carrying cell
    whose DP and AD are whole numbers is taken apart by the same search, in C (groups
    ``gt``, ``dp`` and ``ad``, the alternate reads); any other carrying cell is ``cell``,
    read field by field. None for other FORMATs."""
    keys = format_column.split(":")
    if keys[0] != "GT" or len(set(keys)) != len(keys) or "AF" in keys or "SS" in keys:
        return None
    if "DP" not in keys or "AD" not in keys:
        return None
    fields = "".join(":" + _QUICK_FIELDS.get(key, r"[^\t:]*") for key in keys[1:])
    return re.compile(_CARRYING + rf"(?:(?P<gt>[^\t:]*){fields}(?=\t|$)|(?P<cell>[^\t]*))")


@functools.lru_cache(maxsize=1 << 16)  # the same changes recur across a cohort
def short_protein_change(hgvsp: str | None) -> str | None:
    """``ENSP00000288602.6:p.Val600Glu`` or ``p.Val600Glu`` → ``p.V600E``; one-letter forms
    pass through; ``%3D`` (URL-escaped ``=``) is unescaped."""
    if not hgvsp:
        return None
    text = hgvsp.split(":", 1)[-1].replace("%3D", "=")
    if not text.startswith("p."):
        return None
    one = _ONE_RESIDUE.fullmatch(text)  # the commonest, read without a callback per code
    if one and one[1] in _THREE_TO_ONE:
        return f"p.{_THREE_TO_ONE[one[1]]}{one[2]}{_THREE_TO_ONE.get(one[3], one[3])}"
    return _THREE.sub(lambda m: _THREE_TO_ONE[m.group(0)], text)


class Annotation(NamedTuple):
    gene: str | None
    consequence: str | None
    protein_change: str | None
    impact: str | None = None


class Call(NamedTuple):
    sample: str
    genotype: str | None
    depth: int | None
    alt_depth: int | None
    allele_fraction: float | None
    #: which alternate allele of the record the call is about (1 for the first ALT)
    allele: int = 1
    #: the caller's somatic status: True somatic, False germline or LOH, None not said
    somatic: bool | None = None

    @property
    def carries(self) -> bool:
        """The sample carries this allele: its genotype names it (``0/1``, ``1|2``, ``./2``
        for the second ALT), or, without a genotype, there are alternate reads."""
        if self.genotype is not None:
            return str(self.allele) in re.split(r"[/|]", self.genotype)
        return bool(self.alt_depth) or bool(self.allele_fraction)


#: builds a named tuple from a tuple of its fields in C (``Call(...)`` runs Python code)
_new = tuple.__new__


class Variant(NamedTuple):
    """One alternate allele at one site, with its annotation and every sample's call.
    (Named tuples, like ``Call`` and ``Annotation``: a file yields hundreds of thousands.)"""

    chrom: str
    pos: int
    ref: str
    alt: str
    filters: tuple[str, ...]
    line: int
    annotation: Annotation | None
    calls: tuple[Call, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.chrom}-{self.pos}-{self.ref}-{self.alt}"


_WANTED = {
    "CSQ": ("Allele", "SYMBOL", "Consequence", "HGVSp", "IMPACT", "Amino_acids", "Protein_position"),
    "ANN": ("Allele", "Gene_Name", "Annotation", "HGVS.p", "Annotation_Impact"),
}
_AMINO = re.compile(r"^[A-Z*]$")


def _from_amino_acids(amino_acids: str, position: str) -> str | None:
    """VEP's ``Amino_acids`` (``V/E``; one letter when unchanged) and ``Protein_position``
    (``600``) as a one-letter change (``p.V600E``, ``p.L600=``), for a single residue."""
    if not position.isdigit():
        return None
    ref, _, alt = amino_acids.partition("/")
    if not _AMINO.match(ref) or (alt and not _AMINO.match(alt)):
        return None
    return f"p.{ref}{position}{'=' if not alt or alt == ref else alt}"


@functools.lru_cache(maxsize=64)
def _picker(key: str, fields: tuple[str, ...]) -> tuple[int, Callable[[list[str]], tuple[str, ...]]]:
    """How to take the allele, gene, consequence, protein change, impact (and for VEP the
    amino acids and protein position) out of an entry split at ``|``: the number of fields
    the header declares, and a getter reading a field the header lacks as the empty text
    appended after them. Built once per file, not once per record."""
    return len(fields), operator.itemgetter(
        *(fields.index(name) if name in fields else -1 for name in _WANTED[key])
    )


def annotation_of(
    info: Any, alt: str, same_length: bool, *, csq: tuple[str, ...] | None, ann: tuple[str, ...] | None
) -> Annotation | None:
    """The annotation of *alt* from VEP ``CSQ`` or SnpEff ``ANN`` in a record's INFO, the
    first with a protein change if any."""
    for key, fields in (("CSQ", csq), ("ANN", ann)):
        if fields is None or key not in info:
            continue
        entries = info[key]
        best = _best_annotation(
            (entries,) if isinstance(entries, str) else map(str, entries),
            *_picker(key, fields),
            alt,
            same_length,
        )
        if best is not None:
            return best
    return None


def _best_annotation(
    entries: Iterable[str],
    width: int,
    pick: Callable[[list[str]], tuple[str, ...]],
    alt: str,
    same_length: bool,
) -> Annotation | None:
    """Of one key's entries, *alt*'s first with a protein change, else its first; *width*
    and *pick* as ``_picker`` answers them."""
    best = None
    for entry in entries:
        values = entry.split("|")
        if len(values) < width:  # an entry may stop early: its missing fields are empty
            values += [""] * (width - len(values))
        values.append("")  # what a field the header does not declare reads as
        allele, gene, consequence, hgvsp, impact, *more = pick(values)
        if allele not in ("", alt, "-") and same_length:
            continue
        change = short_protein_change(hgvsp)
        if change is None and more and more[0]:
            change = _from_amino_acids(more[0], more[1])  # VEP run without --hgvs
        found = _new(Annotation, (gene or None, consequence or None, change, impact or None))
        if best is None or (found.protein_change and not best.protein_change):
            best = found
    return best


def _format_fields(description: str) -> tuple[str, ...] | None:
    """The field names of a ``CSQ``/``ANN`` header description, as a tuple: it keys the
    cache of where the wanted fields sit, once per file rather than once per record."""
    match = re.search(r"Format:\s*'?([^'\"]+)'?", description or "")
    return tuple(f.strip() for f in match.group(1).split("|")) if match else None


@functools.lru_cache(maxsize=1 << 14)  # single bases and short indels recur on every line
def _is_allele(text: str) -> bool:
    return _ALLELE.match(text) is not None


@functools.lru_cache(maxsize=1024)  # a cohort writes a handful of genotypes
def _alleles_of(genotype: str) -> frozenset[str]:
    """The allele numbers a genotype names: ``0/1`` and ``0|1`` → {"0", "1"}."""
    return frozenset(genotype.replace("|", "/").split("/"))


@functools.lru_cache(maxsize=256)
def _depth_fields(format_column: str, status: bool) -> tuple[int, int, int, int]:
    """Where ``DP``, ``AD``, ``AF`` and (when *status*) ``SS`` sit in a sample cell, 0 for
    absent (``GT`` is first); the same few FORMAT strings recur."""
    keys = format_column.split(":")
    dp, ad, af, ss = (keys.index(k) if k in keys else 0 for k in ("DP", "AD", "AF", "SS"))
    return dp, ad, af, ss if status else 0


def _accepts(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith((".vcf", ".vcf.gz", ".vcf.bgz", ".bcf"))


#: somatic status codes (VarScan's INFO SS, MuTect's FORMAT SS): 2 somatic; 1 germline and
#: 3 loss of heterozygosity are not somatic; 0 reference and 5 unknown say nothing
_SOMATIC_STATUS = {"2": True, "1": False, "3": False}
#: the caller's header lines naming the tumour and normal columns (GATK Mutect2)
_ROLE_LINES = {"tumor_sample": "tumour", "normal_sample": "normal"}


def role_by_name(name: str) -> str | None:
    """A sample column's role from its name, as somatic callers name them (``TUMOR``,
    ``NORMAL``, ``…-tumour``); None when the name says nothing."""
    upper = name.upper()
    if "NORMAL" in upper or upper.endswith(("-N", "_N", "-GERMLINE")):
        return "normal"
    if "TUMOR" in upper or "TUMOUR" in upper or upper.endswith(("-T", "_T")):
        return "tumour"
    return None


def _info_value(info: str, key: str) -> str | None:
    """The value of *key* in an INFO column (``True`` for a flag, as the text ``"1"``)."""
    for item in info.split(";"):
        name, eq, value = item.partition("=")
        if name == key:
            return value if eq else "1"
    return None


def record_somatic(info: str) -> bool | None:
    """A record's somatic status from INFO: VarScan's ``SS``, else a ``SOMATIC`` flag."""
    status = _info_value(info, "SS")
    if status is not None and status in _SOMATIC_STATUS:
        return _SOMATIC_STATUS[status]
    return True if _info_value(info, "SOMATIC") == "1" else None


def _int(value: Any) -> int | None:
    if value is None or isinstance(value, str):
        return None
    if isinstance(value, tuple):
        value = value[0] if value else None
    return int(value) if value is not None else None


@register("vcf", _accepts)
class VcfReader:
    """A VCF/BCF file opened with pysam. Iterate ``variants()`` (streaming) or ``fetch(region)``
    (needs a tabix/CSI index); ``samples`` are the genotype columns in file order."""

    def __init__(self, path: Path) -> None:
        pysam.set_verbosity(0)  # problems are raised, not printed by htslib
        self.path = path  # named in messages
        self._header_count: int | None = None
        self._copy: tempfile.TemporaryDirectory[str] | None = None
        if not path.exists():
            raise FormatError("no such file", path=path)
        with path.open("rb") as f:
            head = f.read(4)
        self._data = path  # what is read: the file, or a bgzipped copy of a plain gzip
        if head[:2] == b"\x1f\x8b" and not is_bgzf(path):
            self._data = self._bgzipped_copy(path)
        try:
            self._file = pysam.VariantFile(str(self._data))
        except (ValueError, OSError) as error:
            kind = "gzip data" if head[:2] == b"\x1f\x8b" else "text"
            raise FormatError(f"not a readable VCF or BCF ({kind}): {error}", path=path) from None
        header = self._file.header
        self.samples: list[str] = list(header.samples)
        if len(set(self.samples)) != len(self.samples):
            raise FormatError(
                "a sample name appears twice in the #CHROM line", path=path, line=self._header_lines()
            )
        self.reference = self._reference()
        self.roles = self._roles()
        formats = header.formats
        #: VarScan declares AD as the alternate reads alone (Number=1), not one per allele
        self._ad_is_alt = "AD" in formats and formats["AD"].number == 1
        self._info_ss, self._info_somatic = "SS" in header.info, "SOMATIC" in header.info
        self._says_somatic = self._info_ss or self._info_somatic
        self._cell_status = "SS" in formats
        self._csq_fields = self._annotation_fields("CSQ")
        self._ann_fields = self._annotation_fields("ANN")
        #: the annotation keys the header declares, each as it starts in INFO, with its
        #: entries' width and getter (``_picker``)
        self._annotation_keys = tuple(
            (key + "=", *_picker(key, fields))
            for key, fields in (("CSQ", self._csq_fields), ("ANN", self._ann_fields))
            if fields is not None
        )

    def _bgzipped_copy(self, path: Path) -> Path:
        """A plain-gzip VCF (``gzip``, not ``bgzip``) copied in BGZF to a temporary folder
        removed on close: htslib reads only BGZF."""
        self._copy = tempfile.TemporaryDirectory(prefix="vcf-")
        plain = Path(self._copy.name) / "plain.vcf"
        try:
            with gzip.open(path, "rb") as source, plain.open("wb") as target:
                shutil.copyfileobj(source, target, 1 << 20)
        except (OSError, EOFError) as error:
            self._copy.cleanup()
            raise FormatError(f"not a readable gzip file: {error}", path=path) from None
        copy = Path(self._copy.name) / "copy.vcf.gz"
        pysam.tabix_compress(str(plain), str(copy))
        plain.unlink()
        return copy

    def close(self) -> None:
        self._file.close()
        if self._copy is not None:
            self._copy.cleanup()
            self._copy = None

    def __enter__(self) -> VcfReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _header_lines(self) -> int:
        """Lines before the first record, counted in the file itself (pysam's header adds
        lines of its own); a BCF has no lines and counts records from 0."""
        if getattr(self, "_header_count", None) is None:
            count = 0
            with self._data.open("rb") as raw:
                is_gzip = raw.read(2) == b"\x1f\x8b"
            opener = gzip.open if is_gzip else open
            try:
                with opener(self._data, "rb") as f:
                    for line in f:
                        if not line.startswith(b"#"):
                            break
                        count += 1
            except (OSError, EOFError):
                pass
            self._header_count = 0 if self.path.suffix == ".bcf" else count
        return self._header_count

    def _roles(self) -> dict[str, str]:
        """Each sample column's role: from the caller's header (``##tumor_sample=``,
        ``##normal_sample=``), else from its name."""
        roles = {name: role for name in self.samples if (role := role_by_name(name))}
        for record in self._file.header.records:
            role = _ROLE_LINES.get(record.key)
            if role and record.value in self.samples:
                roles[str(record.value)] = role
        return roles

    def _reference(self) -> str | None:
        for record in self._file.header.records:
            if record.key == "reference" and record.value:
                return str(record.value)
        for contig in self._file.header.contigs.values():
            assembly = contig.header_record.get("assembly") if contig.header_record else None
            if assembly:
                return str(assembly)
        return None

    def _annotation_fields(self, key: str) -> tuple[str, ...] | None:
        info = self._file.header.info
        return _format_fields(info[key].description) if key in info else None

    def _annotation(self, record: Any, alt: str, line: int) -> Annotation | None:
        return annotation_of(
            record.info, alt, len(alt) == len(record.ref), csq=self._csq_fields, ann=self._ann_fields
        )

    def _call(
        self, sample: str, data: Any, alt_index: int, alt: str, ref: str, somatic: bool | None = None
    ) -> Call:
        keys = set(data.keys())
        genotype = None
        if "GT" in keys:
            gt = data.get("GT")
            if gt is not None and any(a is not None for a in gt):
                sep = "|" if data.phased else "/"
                genotype = sep.join("." if a is None else str(a) for a in gt)
        depth = _int(data.get("DP")) if "DP" in keys else None
        alt_depth = None
        if "AD" in keys and data.get("AD") is not None:
            ad = data.get("AD")
            if not isinstance(ad, tuple):  # declared Number=1 (VarScan): the alternate reads
                alt_depth = int(ad)
            else:
                if len(ad) > alt_index and ad[alt_index] is not None:
                    alt_depth = int(ad[alt_index])
                if depth is None:
                    depth = sum(int(x) for x in ad if x is not None)
        elif len(alt) == 1 and len(ref) == 1 and f"{alt.upper()}U" in keys:
            alt_depth = _int(data.get(f"{alt.upper()}U"))  # Strelka SNV, tier 1
        elif "TIR" in keys:
            alt_depth = _int(data.get("TIR"))  # Strelka indel, tier 1
        fraction = None
        if "AF" in keys and data.get("AF") is not None:
            af = data.get("AF")
            af = af[alt_index - 1] if isinstance(af, tuple) and len(af) >= alt_index else af
            fraction = (
                round(float(af), 4) if af is not None and not isinstance(af, tuple) else None
            )  # FORMAT floats are 32-bit: 0.471 reads 0.47099998
            if fraction is not None and not math.isfinite(fraction):
                fraction = None  # NaN or infinity is no fraction (not refused: binary files)
        elif depth and alt_depth is not None:
            fraction = round(alt_depth / depth, 4)
        if "SS" in keys and data.get("SS") is not None:
            somatic = _SOMATIC_STATUS.get(str(data.get("SS")), somatic)
        return Call(sample, genotype, depth, alt_depth, fraction, alt_index, somatic)

    def _variants(self, records: Any) -> Iterator[Variant]:
        line = self._header_lines()
        try:
            for record in records:
                line += 1
                if record.ref is None or not _ALLELE.match(record.ref):
                    raise FormatError(
                        f"REF {record.ref!r} is not a DNA sequence", path=self.path, line=line, column="REF"
                    )
                for index, alt in enumerate(record.alts or (), start=1):
                    if not _ALLELE.match(alt) or alt.upper() == record.ref.upper():
                        raise FormatError(
                            f"ALT {alt!r} is not an allele different from REF",
                            path=self.path,
                            line=line,
                            column="ALT",
                        )
                    somatic = None
                    if self._info_ss and record.info.get("SS") is not None:
                        somatic = _SOMATIC_STATUS.get(str(record.info.get("SS")))
                    if somatic is None and self._info_somatic and record.info.get("SOMATIC"):
                        somatic = True
                    calls = tuple(
                        self._call(name, record.samples[name], index, alt, record.ref, somatic)
                        for name in self.samples
                    )
                    yield Variant(
                        record.chrom,
                        record.pos,
                        record.ref,
                        alt,
                        tuple(record.filter.keys()),
                        line,
                        self._annotation(record, alt, line),
                        calls,
                    )
        except FormatError:
            raise
        except (OSError, ValueError) as error:
            raise FormatError(
                f"unreadable after the previous record: {error}", path=self.path, line=line + 1
            ) from None

    def variants(self) -> Iterator[Variant]:
        """Every alternate allele of every record, in file order."""
        return self._variants(self._file)

    def carriers(self) -> Iterator[Variant]:
        """Like ``variants()`` but each variant holds only the calls that carry it, and
        variants nobody carries are skipped. Text VCFs (plain or bgzipped) with genotypes are
        read line by line without building pysam records, several times faster (and read files
        htslib cannot, such as pedigree headers); BCF goes through ``variants()``. A record
        without GT carries by its alternate reads (Strelka's tier-1 counts among them); a
        record with no sample columns (sites only) carries nothing."""
        if not self.samples:
            return  # a sites-only file: nobody to carry anything
        if self.path.suffix == ".bcf":
            for variant in self.variants():
                calls = tuple(c for c in variant.calls if c.carries)
                if calls:
                    yield Variant(
                        variant.chrom,
                        variant.pos,
                        variant.ref,
                        variant.alt,
                        variant.filters,
                        variant.line,
                        variant.annotation,
                        calls,
                    )
            return
        yield from self._text_carriers()

    def _text_carriers(self) -> Iterator[Variant]:
        with self._data.open("rb") as probe:
            gz = probe.read(2) == b"\x1f\x8b"
        opener = gzip.open if gz else open
        stream = opener(self._data, "rt", encoding="utf-8")
        line = 0
        samples = self.samples
        width = 9 + len(samples)
        try:
            with stream:
                for text in stream:
                    line += 1
                    if text.startswith("#"):
                        continue
                    # the eight fixed columns, then FORMAT and the sample cells as one text
                    cols = text.rstrip("\r\n").split("\t", 8)
                    columns = len(cols) if len(cols) < 9 else 9 + cols[8].count("\t")
                    if columns != width:
                        if columns == 8 or cols == [""]:
                            continue  # a sites-only record, or a blank line
                        raise FormatError(
                            f"{columns} columns; the header has {width}", path=self.path, line=line
                        )
                    cells = cols[8]
                    cols[8] = cells[: cells.index("\t")]  # FORMAT
                    if cols[8][:3] not in ("GT", "GT:"):
                        yield from self._text_depth_record([*cols, *cells.split("\t")[1:]], line)
                        continue
                    # most cells hold a genotype of no alternate allele: one search over the
                    # record's cells skips them in C; the others are numbered by the tabs
                    # before them
                    quick = _quick_cells(cols[8]) if "," not in cols[4] else None
                    carrying = [
                        (cells.count("\t", 0, m.start()), m)
                        for m in (quick or _CARRYING_CELL).finditer(cells)
                    ]
                    if carrying:
                        yield from self._text_record(cols, carrying, line)
        except (OSError, EOFError, UnicodeDecodeError) as error:
            raise FormatError(
                f"unreadable after the previous record: {error}", path=self.path, line=line + 1
            ) from None

    def _info_annotations(self, info: str) -> list[tuple[list[str], int, Any]]:
        """The ``CSQ`` and ``ANN`` entries of an INFO column, for those the header declares
        (found by search: INFO often holds dozens of other keys), each key's with its width
        and getter, as ``_text_annotation`` takes them."""
        found = []
        for prefix, width, pick in self._annotation_keys:
            at = -1
            while (at := info.find(prefix, at + 1)) > 0 and info[at - 1] != ";":
                pass
            if at >= 0:
                end = info.find(";", at)
                found.append((info[at + len(prefix) : end if end >= 0 else None].split(","), width, pick))
        return found

    @staticmethod
    def _text_annotation(
        found: list[tuple[list[str], int, Any]], alt: str, same_length: bool
    ) -> Annotation | None:
        """As ``annotation_of``, from what ``_info_annotations`` found."""
        for entries, width, pick in found:
            best = _best_annotation(entries, width, pick, alt, same_length)
            if best is not None:
                return best
        return None

    def _text_record(
        self, cols: list[str], carrying: list[tuple[int, re.Match[str]]], line: int
    ) -> Iterator[Variant]:
        """The carriers of a record with genotypes. *carrying* holds each carrying cell's
        column number and its match: of ``_CARRYING_CELL`` or a ``_quick_cells`` pattern,
        the cell itself in group ``cell``, or else taken apart already."""
        chrom, pos, ref, alts = cols[0], cols[1], cols[3], cols[4].split(",")
        if not _is_allele(ref):
            raise FormatError(f"REF {ref!r} is not a DNA sequence", path=self.path, line=line, column="REF")
        try:
            position = int(pos)
        except ValueError:
            raise FormatError(
                f"POS {pos!r} is not a number", path=self.path, line=line, column="POS"
            ) from None
        filters = tuple(cols[6].split(";")) if cols[6] not in (".", "") else ()
        info = None
        fields = _depth_fields(cols[8], self._cell_status)
        somatic = record_somatic(cols[7]) if self._says_somatic else None
        ref_upper = ref.upper()
        samples = self.samples
        for alt_index, alt in enumerate(alts, start=1):
            if not _is_allele(alt) or alt.upper() == ref_upper:
                raise FormatError(
                    f"ALT {alt!r} is not an allele different from REF",
                    path=self.path,
                    line=line,
                    column="ALT",
                )
            allele = str(alt_index)
            calls = []
            for i, match in carrying:
                cell = match["cell"]
                if cell is not None:
                    call = self._cell_call(
                        cols[8], samples[i], cell, alt_index, allele, fields, somatic, line
                    )
                    if call is not None:
                        calls.append(call)
                    continue
                # a quick cell (of a biallelic record): genotype, DP and AD's alternate reads
                genotype, depth_text, alt_text = match.group("gt", "dp", "ad")
                if "1" not in _alleles_of(genotype):
                    continue
                depth, alt_depth = int(depth_text), int(alt_text)
                if depth > MAX_INTEGER or alt_depth > MAX_INTEGER:
                    raise self._out_of_range(samples[i], match[0][1:], line)
                fraction = round(alt_depth / depth, 4) if depth else None
                calls.append(_new(Call, (samples[i], genotype, depth, alt_depth, fraction, 1, somatic)))
            if calls:
                if info is None:
                    info = self._info_annotations(cols[7])
                annotation = self._text_annotation(info, alt, len(alt) == len(ref))
                yield _new(Variant, (chrom, position, ref, alt, filters, line, annotation, tuple(calls)))

    def _out_of_range(self, sample: str, cell: str, line: int) -> FormatError:
        return FormatError(
            f"sample {sample}: depth {cell!r} is outside 0–{MAX_INTEGER} (VCF integers are 32-bit)",
            path=self.path,
            line=line,
            column=sample,
        )

    def _cell_call(
        self,
        format_column: str,
        sample: str,
        cell: str,
        alt_index: int,
        allele: str,
        fields: tuple[int, int, int, int],
        somatic: bool | None,
        line: int,
    ) -> Call | None:
        """The call of one sample cell for one alternate allele, None when its genotype does
        not name that allele; *fields* are where DP, AD, AF and SS sit in the cell."""
        parts = cell.split(":")
        genotype = parts[0]
        if allele not in _alleles_of(genotype):
            return None
        dp_at, ad_at, af_at, ss_at = fields
        depth = alt_depth = fraction = None
        finite = True
        size = len(parts)
        try:
            if 0 < dp_at < size and parts[dp_at] != ".":
                depth = int(parts[dp_at])
            if 0 < ad_at < size and self._ad_is_alt:
                alt_depth = int(parts[ad_at]) if parts[ad_at] != "." else None
            elif 0 < ad_at < size:
                ad_text = parts[ad_at]
                ad = (
                    [None if x == "." else int(x) for x in ad_text.split(",")]
                    if "." in ad_text
                    else [*map(int, ad_text.split(","))]
                )
                if len(ad) > alt_index:
                    alt_depth = ad[alt_index]
                if depth is None and ad:
                    depth = sum(x for x in ad if x is not None)
            if 0 < af_at < size and parts[af_at] != ".":
                fraction = round(float(parts[af_at].split(",")[alt_index - 1]), 4)
                finite = math.isfinite(fraction)
            elif depth and alt_depth is not None:
                fraction = round(alt_depth / depth, 4)  # two integers: always finite
        except (ValueError, IndexError):
            raise FormatError(
                f"sample {sample}: {cell!r} does not match FORMAT {format_column}",
                path=self.path,
                line=line,
                column=sample,
            ) from None
        if (depth is not None and not 0 <= depth <= MAX_INTEGER) or (
            alt_depth is not None and not 0 <= alt_depth <= MAX_INTEGER
        ):
            raise self._out_of_range(sample, cell, line)
        if not finite:
            raise FormatError(
                f"sample {sample}: allele fraction {cell!r} is not a finite number",
                path=self.path,
                line=line,
                column=sample,
            )
        status = _SOMATIC_STATUS.get(parts[ss_at], somatic) if 0 < ss_at < size else somatic
        return _new(Call, (sample, genotype, depth, alt_depth, fraction, alt_index, status))

    def _text_depth_record(self, cols: list[str], line: int) -> Iterator[Variant]:
        """The carriers of a record without genotypes: each sample's cell read as ``_call``
        reads pysam's (DP, AD, Strelka's ``AU``…``TU`` and ``TIR``, AF)."""
        keys = cols[8].split(":")
        ref = cols[3]
        somatic = record_somatic(cols[7]) if self._says_somatic else None
        filters = tuple(cols[6].split(";")) if cols[6] not in (".", "") else ()
        info = None
        for alt_index, alt in enumerate(cols[4].split(","), start=1):
            if alt == ".":
                continue
            calls = []
            for name, cell in zip(self.samples, cols[9:], strict=True):
                try:
                    data = dict(zip(keys, cell.split(":"), strict=False))
                    call = _text_call(name, data, alt_index, alt, ref)
                    status = _SOMATIC_STATUS.get(data.get("SS", ""), somatic)
                    if status is not None:
                        call = call._replace(somatic=status)
                except ValueError:
                    raise FormatError(
                        f"sample {name}: {cell!r} does not match FORMAT {cols[8]}",
                        path=self.path,
                        line=line,
                        column=name,
                    ) from None
                if call.carries:
                    calls.append(call)
            if calls:
                if not _ALLELE.match(ref) or not _ALLELE.match(alt) or alt.upper() == ref.upper():
                    raise FormatError(
                        f"{ref}>{alt} is not a variant of two alleles",
                        path=self.path,
                        line=line,
                        column="ALT",
                    )
                if info is None:
                    info = self._info_annotations(cols[7])
                yield Variant(
                    cols[0],
                    int(cols[1]),
                    ref,
                    alt,
                    filters,
                    line,
                    self._text_annotation(info, alt, len(alt) == len(ref)),
                    tuple(calls),
                )

    def fetch(self, region: str) -> Iterator[Variant]:
        """Variants in *region* (``7:140453000-140454000``), read through the index."""
        try:
            records = self._file.fetch(region=region)
        except (ValueError, OSError) as error:
            raise FormatError(f"cannot query {region!r}: {error}", path=self.path) from None
        return self._variants(records)


def _first_int(text: str | None) -> int | None:
    if text is None or text in ("", "."):
        return None
    first = text.split(",")[0]
    return None if first == "." else int(first)


def _text_call(sample: str, data: dict[str, str], alt_index: int, alt: str, ref: str) -> Call:
    """One sample's call from its FORMAT values as text (a record without GT)."""
    depth = _first_int(data.get("DP"))
    alt_depth = None
    if data.get("AD") not in (None, "", "."):
        ad = [None if x == "." else int(x) for x in data["AD"].split(",")]
        if len(ad) > alt_index and ad[alt_index] is not None:
            alt_depth = ad[alt_index]
        if depth is None:
            depth = sum(x for x in ad if x is not None)
    elif len(alt) == 1 and len(ref) == 1 and f"{alt.upper()}U" in data:
        alt_depth = _first_int(data[f"{alt.upper()}U"])  # Strelka SNV, tier 1
    elif "TIR" in data:
        alt_depth = _first_int(data["TIR"])  # Strelka indel, tier 1
    fraction = None
    if data.get("AF") not in (None, "", "."):
        values = data["AF"].split(",")
        raw = values[alt_index - 1] if len(values) >= alt_index else values[0]
        fraction = round(float(raw), 4) if raw != "." else None
        if fraction is not None and not math.isfinite(fraction):
            fraction = None
    elif depth and alt_depth is not None:
        fraction = round(alt_depth / depth, 4)
    if (depth is not None and not 0 <= depth <= MAX_INTEGER) or (
        alt_depth is not None and not 0 <= alt_depth <= MAX_INTEGER
    ):
        raise ValueError("depth outside the 32-bit range")
    return Call(sample, None, depth, alt_depth, fraction, alt_index)


@register("vcf-pyvcf3", lambda _path: False)  # chosen by name: compatibility and baseline
class PyVcfReader:
    """The same interface over pyvcf3 (pure Python; slower): for environments without
    htslib, and as the benchmark baseline."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._reader = vcf.Reader(filename=str(path))
        except Exception as error:  # pyvcf3 raises bare Exceptions and StopIteration
            raise FormatError(f"not a readable VCF: {error}", path=path) from None
        self.samples = list(self._reader.samples)
        meta = self._reader.metadata.get("reference")
        self.reference = meta if isinstance(meta, str) else None
        infos = self._reader.infos
        self._csq = _format_fields(infos["CSQ"].desc) if "CSQ" in infos else None
        self._ann = _format_fields(infos["ANN"].desc) if "ANN" in infos else None

    def close(self) -> None:
        self._reader._reader.close()

    def __enter__(self) -> PyVcfReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def variants(self) -> Iterator[Variant]:
        line = 0
        try:
            for record in self._reader:
                line += 1
                filters = tuple(record.FILTER) if record.FILTER else ("PASS",)
                for index, alt_obj in enumerate(record.ALT, start=1):
                    alt = str(alt_obj)
                    calls = []
                    for sample in record.samples:
                        data = sample.data._asdict()
                        ad = data.get("AD")
                        alt_depth = ad[index] if isinstance(ad, list) and len(ad) > index else None
                        depth = data.get("DP")
                        if depth is None and isinstance(ad, list):
                            depth = sum(x for x in ad if x is not None)
                        fraction = round(alt_depth / depth, 4) if depth and alt_depth is not None else None
                        calls.append(Call(sample.sample, data.get("GT"), depth, alt_depth, fraction, index))
                    yield Variant(
                        str(record.CHROM),
                        record.POS,
                        record.REF,
                        alt,
                        filters,
                        line,
                        annotation_of(
                            record.INFO, alt, len(alt) == len(record.REF), csq=self._csq, ann=self._ann
                        ),
                        tuple(calls),
                    )
        except (ValueError, IndexError, OSError) as error:
            raise FormatError(f"unreadable: {error}", path=self.path, line=line + 1) from None
