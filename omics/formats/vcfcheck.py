"""A VCF validator: every header line and every record checked against the specification
(VCF 4.0 to 4.5) and the file's own header, reading the text itself.

htslib (and so pysam), cyvcf2 and pyvcf3 read most invalid files without a word: undeclared
or mistyped INFO and FORMAT values, FILTERs never declared, contigs out of order, genotypes
naming alleles that do not exist, 64-bit integers. ``check(path)`` yields each problem with
its line, its column and the rule it breaks, in words; ``validate(path)`` raises the first
as a :class:`FormatError`.

What is checked:

* the header: ``##fileformat`` first; every meta line ``##key=value`` with a key of letters,
  digits and ``_``, a value, and structured values ``<ID=…,…>`` closed, with quoted
  descriptions; INFO, FORMAT, FILTER, ALT, contig, SAMPLE, PEDIGREE and META entries with
  their required fields in the required order, ``Number`` and ``Type`` from the
  specification's lists, and the reserved keys (``DP``, ``AF``, ``GT``, ``PL``…) declared as
  the specification defines them; the ``#CHROM`` line's columns and unique sample names;
* each record: the column count; CHROM a valid contig name (declared if any are), records of
  one contig together and in position order; POS a positive integer; ID, REF, ALT (bases,
  symbolic alleles, breakends), QUAL and FILTER (declared) by their grammar; INFO keys
  declared, each value of its Type (integers within the 32-bit range VCF allows) and as many
  values as its Number says (``A``, ``R``, ``G`` counted from the record's alleles and
  ploidy), flags without values; FORMAT keys declared, unique, GT first; each sample's
  genotype naming existing alleles, its values typed and counted the same way; a variant
  repeated (after trimming the bases REF and ALT share) is a duplicate;
* from VCF 4.4, structural variants (section 5 of the specification): symbolic alleles of the
  known kinds (``DEL``, ``INS``, ``DUP``, ``INV``, ``CNV`` and their subtypes; breakends in
  bracket notation), ``SVLEN`` for deletions, duplications, inversions and copy-number
  variants and ``SVCLAIM`` (``D``, ``J`` or ``DJ``) for deletions and duplications; the
  confidence intervals (``CIPOS``, ``CIEND``, ``CILEN``, ``CICN``: a pair per allele, below
  and above) and mobile-element fields (``MEINFO``, ``METRANS``: four per allele); tandem
  repeats (``<CNV:TR>``: ``RUS`` or ``RUL``, as many ``RUS``/``RUL``/``RUC``/``RB`` as
  ``RN`` counts repeat sequences, ``CIRUC``/``CIRB`` pairs, ``RUB`` one per repeat unit,
  ``RB`` within one unit of ``RUL × RUC``); copy-number alleles of one record sharing their
  ``SVLEN`` when samples carry ``CN``, sample ``CICN`` only beside ``CN``; and phase sets
  (``PSL``, ``PSO``, ``PSQ``) only on phased alleles;
* the file ends with a newline (blank lines at the end are allowed).
"""

from __future__ import annotations

import gzip
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from omics.formats.errors import FormatError

#: the VCF integer range: 32-bit signed, the lowest eight values reserved by BCF
INT_MIN, INT_MAX = -(2**31) + 8, 2**31 - 1
_VERSIONS = ("4.0", "4.1", "4.2", "4.3", "4.4", "4.5")
_META_KEY = re.compile(r"^[A-Za-z0-9_.-]+$")
#: contig names (VCF 4.3 and later refuse ``*``, earlier versions allow it)
_CONTIG = re.compile(
    r"^(?:[0-9A-Za-z!#$%&+./:;?@^_|~-][0-9A-Za-z!#$%&+./:;=?@^_|~-]*"
    r"|<[^<>\s,*]+>)$"
)
_CONTIG_OLD = re.compile(
    r"^(?:[0-9A-Za-z!#$%&+./:;?@^_|~-][0-9A-Za-z!#$%&*+./:;=?@^_|~-]*"
    r"|<[^<>\s,]+>)$"
)
_KEY = re.compile(r"^(?:[A-Za-z_](?:[0-9A-Za-z_.]|%[0-9A-Fa-f]{2})*|1000G)$")
_PAIR_KEY = re.compile(r"^[A-Za-z0-9_.-]+$")
_BASES = re.compile(r"^[ACGTNacgtn]+$")
_BREAKEND = re.compile(
    r"^(?:[ACGTNacgtn]+[\[\]][^\[\]\s]+[\[\]]|[\[\]][^\[\]\s]+[\[\]][ACGTNacgtn]+"
    r"|\.[ACGTNacgtn]+|[ACGTNacgtn]+\.)$"
)
_SYMBOLIC = re.compile(r"^<[^<>\s,]+>$")
_GENOTYPE = re.compile(r"^[/|]?(?:\d+|\.)(?:[/|](?:\d+|\.))*$")
_FLOAT = re.compile(
    r"^[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|inf|infinity|"
    r"nan)$",
    re.IGNORECASE,
)
_INT = re.compile(r"^[-+]?\d+$")
_CIGAR = re.compile(r"^(?:\d+[MIDNSHP=X])+$")
#: a URL whose host is a name or an IPv4 address (not a bare number), or a file name
_URL = re.compile(
    r"^(?:(?:https?|ftp|file)://(?:[^@/\s]+@)?(?:\d+\.\d+\.\d+\.\d+|"
    r"[A-Za-z0-9-]*[A-Za-z][A-Za-z0-9.-]*)(?::\d+)?(?:/\S*)?|file:/\S+|[^:\s]+)$"
)
_NUMBERS = {"A", "R", "G", "."}
_TYPES = {
    "INFO": {"Integer", "Float", "Flag", "Character", "String"},
    "FORMAT": {"Integer", "Float", "Character", "String"},
}
_ALT_PREFIXES = ("DEL", "INS", "DUP", "INV", "CNV", "BND")
#: the reserved keys' (Number, Type), as the specification defines them
RESERVED = {
    "INFO": {
        "AA": ("1", "String"),
        "AC": ("A", "Integer"),
        "AD": ("R", "Integer"),
        "ADF": ("R", "Integer"),
        "ADR": ("R", "Integer"),
        "AF": ("A", "Float"),
        "AN": ("1", "Integer"),
        "BQ": ("1", "Float"),
        "CIGAR": ("A", "String"),
        "DB": ("0", "Flag"),
        "DP": ("1", "Integer"),
        "END": ("1", "Integer"),
        "H2": ("0", "Flag"),
        "H3": ("0", "Flag"),
        "MQ": ("1", None),
        "MQ0": ("1", "Integer"),
        "NS": ("1", "Integer"),
        "SOMATIC": ("0", "Flag"),
        "VALIDATED": ("0", "Flag"),
        "1000G": ("0", "Flag"),
    },
    "FORMAT": {
        "AD": ("R", "Integer"),
        "ADF": ("R", "Integer"),
        "ADR": ("R", "Integer"),
        "DP": ("1", "Integer"),
        "EC": ("A", "Integer"),
        "FT": ("1", "String"),
        "GL": ("G", "Float"),
        "GP": ("G", "Float"),
        "GQ": ("1", "Integer"),
        "GT": ("1", "String"),
        "HQ": ("2", "Integer"),
        "MQ": ("1", "Integer"),
        "PL": ("G", "Integer"),
        "PQ": ("1", "Integer"),
        "PS": ("1", "Integer"),
        "GLE": ("G", "String"),
    },
}
#: reserved keys whose values cannot be negative
_NON_NEGATIVE = {"AC", "AN", "DP", "NS", "MQ0", "END", "AF"}
_COLUMNS = ("#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO")
#: problems reported before ``check`` stops: enough to fix a file, not a flood
LIMIT = 100


class Problem(NamedTuple):
    line: int | None
    column: str | None
    rule: str

    def __str__(self) -> str:
        where = ", ".join(
            part
            for part in (
                f"line {self.line}" if self.line else "",
                f"column {self.column}" if self.column else "",
            )
            if part
        )
        return f"{where}: {self.rule}" if where else self.rule


class _Field(NamedTuple):
    number: str
    type: str


def _structured(value: str) -> tuple[list[tuple[str, str]], str | None]:
    """The ``key=value`` pairs of ``<…>`` (quoted values unquoted, ``\\"`` kept), or the
    reason it cannot be read."""
    if not value.endswith(">"):
        return [], "a structured value <…> is not closed with '>'"
    text, pairs, at = value[1:-1], [], 0
    while at < len(text):
        eq = text.find("=", at)
        if eq < 0:
            return pairs, f"{text[at:]!r} is not key=value"
        key = text[at:eq]
        if not _PAIR_KEY.match(key):
            return pairs, f"{key!r} is not a key (a value holds a comma or a space?)"
        at = eq + 1
        if text[at : at + 1] == '"':
            end, chars = at + 1, []
            while end < len(text) and text[end] != '"':
                if text[end] == "\\" and end + 1 < len(text):
                    end += 1
                chars.append(text[end])
                end += 1
            if end >= len(text):
                return pairs, f"the quoted value of {key} has no closing quote"
            pairs.append((key, "".join(chars)))
            at = end + 1
            if at < len(text) and text[at] != ",":
                return (
                    pairs,
                    f"the quoted value of {key} is followed by {text[at : at + 10]!r}"
                    ' (a quote inside a value must be written \\")',
                )
            at += 1
        elif text[at : at + 1] == "[":
            end = text.find("]", at)
            if end < 0:
                return pairs, f"the list value of {key} has no closing ']'"
            pairs.append((key, text[at + 1 : end]))
            at = end + 2
        else:
            end = text.find(",", at)
            end = len(text) if end < 0 else end
            pairs.append((key, text[at:end]))
            at = end + 1
    return pairs, None


_STRUCTURED = ("INFO", "FORMAT", "FILTER", "ALT", "contig", "SAMPLE", "META", "PEDIGREE")


class _Header:
    def __init__(self) -> None:
        self.version = "4.2"
        self.fields: dict[str, dict[str, _Field]] = {"INFO": {}, "FORMAT": {}}
        self.filters: set[str] = {"PASS"}
        self.contigs: list[str] = []
        self.samples: list[str] = []
        self.contig_name = _CONTIG


def _header_line(header: _Header, number: int, text: str) -> Iterator[Problem]:
    """Problems of one ``##`` line, recording what it declares in *header*."""
    body = text[2:]
    key, eq, value = body.partition("=")
    if not eq:
        yield Problem(number, None, f"meta line {text[:40]!r} is not ##key=value")
        return
    if not _META_KEY.match(key):
        yield Problem(number, None, f"meta key {key!r} is not letters, digits and _")
        return
    if value == "":
        yield Problem(number, key, f"##{key} has no value")
        return
    if key == "fileformat":
        yield Problem(number, key, "##fileformat must be the first line")
        return
    if key == "pedigreeDB" and value.startswith("<") and value.endswith(">"):
        value = value[1:-1]
    if not value.startswith("<"):
        if key in _STRUCTURED:
            yield Problem(number, key, f"##{key} must be a structured value <ID=…>")
        elif key in ("assembly", "pedigreeDB") and not _URL.match(value):
            yield Problem(number, key, f"##{key} {value!r} is not a valid URL or file name")
        return
    if key not in _STRUCTURED:
        if not value.endswith(">"):
            yield Problem(number, key, "a structured value <…> is not closed with '>'")
        return
    pairs, problem = _structured(value)
    if problem:
        yield Problem(number, key, problem)
        return
    fields = dict(pairs)
    names = [k for k, _ in pairs]
    ident = fields.get("ID")
    if key in ("INFO", "FORMAT"):
        order = ["ID", "Number", "Type", "Description"]
        if names[:4] != order:
            yield Problem(
                number,
                key,
                f"##{key} must start ID, Number, Type, Description (found {', '.join(names[:4])})",
            )
            return
        if not re.search(r'Description="', value):
            yield Problem(number, key, f"##{key} {ident}: Description must be quoted")
            return
        num, typ = fields["Number"], fields["Type"]
        allowed = (
            _NUMBERS
            | ({"P"} if key == "FORMAT" and header.version >= "4.4" else set())
            | ({"M"} if key == "FORMAT" and header.version >= "4.5" else set())
        )
        if num not in allowed and not num.isdigit():
            yield Problem(
                number,
                key,
                f"##{key} {ident}: Number {num!r} is not an integer, {', '.join(sorted(allowed))}",
            )
            return
        if typ not in _TYPES[key]:
            yield Problem(
                number, key, f"##{key} {ident}: Type {typ!r} is not one of {', '.join(sorted(_TYPES[key]))}"
            )
            return
        reserved = RESERVED[key].get(ident or "")
        if reserved and (num != reserved[0] or (reserved[1] and typ != reserved[1])):
            want = f"Number={reserved[0]}" + (f", Type={reserved[1]}" if reserved[1] else "")
            yield Problem(
                number,
                key,
                f"##{key} {ident} is reserved by the VCF specification "
                f"as {want}, declared Number={num}, Type={typ}",
            )
            return
        if ident is None or not _KEY.match(ident):
            yield Problem(number, key, f"##{key} ID {ident!r} is not a valid key")
            return
        header.fields[key][ident] = _Field(num, typ)
    elif key in ("FILTER", "ALT"):
        if names[:1] != ["ID"] or ("Description" not in fields and header.version < "4.4"):
            yield Problem(number, key, f"##{key} must have ID first and a Description")
            return
        if "Description" in fields and not re.search(r'Description="', value):
            yield Problem(number, key, f"##{key} {ident}: Description must be quoted")
            return
        if key == "FILTER":
            if ident == "0" or not ident or re.search(r"[\s;]", ident):
                yield Problem(number, key, f"##FILTER ID {ident!r} is not a valid filter name")
            header.filters.add(ident)
            return
        if [n for n in names if n in ("ID", "Number", "Type", "Description")] not in (
            ["ID"],
            ["ID", "Description"],
            ["ID", "Number", "Description"],
            ["ID", "Type", "Description"],
            ["ID", "Number", "Type", "Description"],
        ):
            yield Problem(number, key, "##ALT fields must come in the order ID, Number, Type, Description")
            return
        if "Number" in fields and fields["Number"] not in _NUMBERS and not fields["Number"].isdigit():
            yield Problem(number, key, f"##ALT {ident}: Number {fields['Number']!r} is not valid")
            return
        if "Type" in fields and fields["Type"] not in _TYPES["INFO"]:
            yield Problem(number, key, f"##ALT {ident}: Type {fields['Type']!r} is not valid")
            return
        prefix = ident.split(":")[0]
        allowed = _ALT_PREFIXES + (("*",) if header.version >= "4.4" else ())
        # a custom ID is free; one structured by ':' or looking like DEL… takes a known type
        if re.search(r"[\s,<>]", ident) or (
            (":" in ident or prefix.startswith(_ALT_PREFIXES)) and prefix not in allowed
        ):
            yield Problem(
                number,
                key,
                f"##ALT ID {ident!r}: a structured ID starts with one of "
                f"{', '.join(_ALT_PREFIXES)}; no ID holds a space, comma "
                "or angle bracket",
            )
    elif key == "contig":
        if not ident:
            yield Problem(number, key, "##contig has no ID")
        elif not header.contig_name.match(ident):
            yield Problem(number, key, f"##contig ID {ident!r} is not a valid contig name")
        else:
            header.contigs.append(ident)
        url = fields.get("URL")
        if url is not None and not _URL.match(url):
            yield Problem(number, key, f"##contig {ident}: URL {url!r} is not valid")
    elif key == "SAMPLE":
        if not ident:
            yield Problem(number, key, "##SAMPLE has no ID")
        elif re.search(r"[\s,<>*]", ident) or any(
            name != "Description" and not re.search(r"[\s,]", quoted)
            for name, quoted in re.findall(r'(\w+)="([^"]*)"', value)
        ):
            yield Problem(
                number,
                key,
                f"##SAMPLE {ident!r}: an ID holds no space, comma or "
                "illegal character, and only quoted lists hold quotes",
            )
        elif "Mixture" in fields and "Genomes" not in fields:
            yield Problem(number, key, f"##SAMPLE {ident}: a Mixture needs its Genomes")
    elif key == "PEDIGREE":
        if header.version >= "4.3" and not ident:
            yield Problem(number, key, "##PEDIGREE has no ID")
        bad = next((v for k, v in pairs if k != "Description" and re.search(r"[\s:]", v)), None)
        if bad is not None:
            yield Problem(number, key, f"##PEDIGREE value {bad!r} holds a space or ':'")
    elif key == "META":
        if names[:1] != ["ID"] or set(names[1:4]) != {"Type", "Number", "Values"}:
            yield Problem(number, key, "##META must be ID then Number, Type and Values")
        elif fields["Type"] not in ("String", "Integer", "Float", "Character"):
            yield Problem(number, key, f"##META Type {fields['Type']!r} is not valid")
        elif fields["Number"] not in (".",) and not fields["Number"].isdigit():
            yield Problem(number, key, f"##META Number {fields['Number']!r} is not valid")
        elif not re.search(r"Values=\[", value):
            yield Problem(number, key, "##META Values must be a list in [ ]")


def _open_text(path: Path) -> Iterator[tuple[int, str]]:
    with path.open("rb") as probe:
        gz = probe.read(2) == b"\x1f\x8b"
    opener = gzip.open if gz else open
    with opener(path, "rb") as stream:
        yield from enumerate(stream, start=1)


def check(path: str | Path, *, limit: int = LIMIT) -> Iterator[Problem]:
    """Each problem of the VCF at *path*, in file order, at most *limit*."""
    for count, problem in enumerate(_check(Path(path)), start=1):
        yield problem
        if count >= limit:
            return


def validate(path: str | Path) -> None:
    """Raise :class:`FormatError` for the file's first problem; return if it has none."""
    for problem in _check(Path(path)):
        raise FormatError(problem.rule, path=path, line=problem.line, column=problem.column)


def _check(path: Path) -> Iterator[Problem]:
    header = _Header()
    state = _Body(header)
    seen_columns = False
    last_raw = b""
    blank_tail = 0
    try:
        for number, raw in _open_text(path):
            last_raw = raw
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                yield Problem(number, None, "not UTF-8 text")
                return
            text = text.rstrip("\n").removesuffix("\r")
            if not text.strip():
                blank_tail += 1
                continue
            if blank_tail and seen_columns:
                yield Problem(number - 1, None, "blank line between records")
                return
            blank_tail = 0
            if number == 1:
                match = re.fullmatch(r"##fileformat=VCFv(\d\.\d)", text)
                if not match or match.group(1) not in _VERSIONS:
                    yield Problem(
                        1, "fileformat", f"the first line must be ##fileformat=VCFv4.x (found {text[:40]!r})"
                    )
                    return
                header.version = match.group(1)
                header.contig_name = _CONTIG if header.version >= "4.3" else _CONTIG_OLD
                continue
            if not seen_columns:
                if text.startswith("##"):
                    yield from _header_line(header, number, text)
                    continue
                if text.startswith("#CHROM"):
                    yield from _columns(header, number, text)
                    seen_columns = True
                    continue
                yield Problem(number, None, "header line that does not start with ## or #CHROM")
                return
            yield from state.record(number, text)
    except (OSError, EOFError) as error:
        yield Problem(None, None, f"unreadable: {error}")
        return
    if not seen_columns:
        yield Problem(None, None, "no #CHROM header line")
    elif last_raw and not last_raw.endswith(b"\n"):
        yield Problem(None, None, "the last line has no newline: the file may be truncated")


def _columns(header: _Header, number: int, text: str) -> Iterator[Problem]:
    cols = text.split("\t")
    if tuple(cols[:8]) != _COLUMNS:
        yield Problem(number, "#CHROM", "the column header must be tab-separated " + " ".join(_COLUMNS))
        return
    if len(cols) > 8:
        if cols[8] != "FORMAT":
            yield Problem(number, "FORMAT", "the ninth column must be FORMAT")
            return
        header.samples = cols[9:]
        if not header.samples or any(not s for s in header.samples):
            yield Problem(number, "FORMAT", "an empty sample name")
        doubled = sorted({s for s in header.samples if header.samples.count(s) > 1})
        if doubled:
            yield Problem(number, doubled[0], f"sample {doubled[0]} appears more than once")


class _Body:
    """What the records checked so far say about the next: contigs done, last position,
    variants at the current position."""

    def __init__(self, header: _Header) -> None:
        self.header = header
        self.done: set[str] = set()
        self.chrom: str | None = None
        self.pos = 0
        self.recent: set[tuple[int, str, str]] = set()
        #: (FORMAT, ALT count) → the pattern all sample cells of a valid record match
        self._fast: dict[tuple[str, int], re.Pattern[str] | None] = {}
        self.recent_chrom: str | None = None
        self.recent_pos = 0

    def record(self, number: int, text: str) -> Iterator[Problem]:
        header = self.header
        cols = text.split("\t")
        width = 8 + (1 + len(header.samples) if header.samples else 0)
        if len(cols) != width and not (len(cols) == 8 and header.samples):
            yield Problem(number, None, f"{len(cols)} columns; the header has {width}")
            return
        chrom, pos_text, ident, ref, alt, qual, filt, info = cols[:8]
        if not header.contig_name.match(chrom):
            yield Problem(number, "CHROM", f"{chrom!r} is not a valid contig name")
            return
        if (
            header.contigs
            and chrom not in header.contigs
            and header.version >= "4.3"
            and not chrom.startswith("<")
        ):
            yield Problem(number, "CHROM", f"contig {chrom} is not declared in a ##contig line")
            return
        if not pos_text.isdigit():
            yield Problem(number, "POS", f"{pos_text!r} is not a positive integer")
            return
        pos = int(pos_text)
        if pos > INT_MAX:
            yield Problem(number, "POS", f"{pos} is beyond the 32-bit range")
            return
        if chrom.startswith("<"):
            pass  # a symbolic contig (an assembly's alternate) has no order among the others
        elif chrom != self.chrom:
            if chrom in self.done:
                yield Problem(
                    number, "CHROM", f"the records of {chrom} are not together (another contig came between)"
                )
                return
            if self.chrom is not None:
                self.done.add(self.chrom)
            self.chrom, self.pos = chrom, pos
        elif pos < self.pos:
            yield Problem(number, "POS", f"{pos} comes after {self.pos}: records must be sorted by position")
            return
        elif pos > self.pos:
            self.pos = pos
        if ident != ".":
            if re.search(r"\s", ident) or ident.startswith(";") or ident.endswith(";"):
                yield Problem(number, "ID", f"{ident!r}: identifiers are separated by ';' and hold no space")
                return
            ids = ident.split(";")
            if len(set(ids)) != len(ids):
                yield Problem(number, "ID", f"{ident!r} repeats an identifier")
                return
        if ref == "." or not _BASES.match(ref):
            yield Problem(number, "REF", f"{ref!r} is not one sequence of A, C, G, T, N")
            return
        alts = [] if alt == "." else alt.split(",")
        for allele in alts:
            if not (
                _BASES.match(allele) or _SYMBOLIC.match(allele) or allele == "*" or _BREAKEND.match(allele)
            ):
                yield Problem(
                    number,
                    "ALT",
                    f"{allele!r} is not a valid allele (bases, <symbolic>, * or a breakend with bases)",
                )
                return
            if allele.upper() == ref.upper():
                yield Problem(number, "ALT", f"{allele!r} is the same as REF")
                return
        if qual != "." and (not _FLOAT.match(qual) or float(qual) < 0):
            yield Problem(number, "QUAL", f"{qual!r} is not a non-negative number")
            return
        yield from self._filter(number, filt)
        yield from self._info(number, info, len(alts))
        sv = header.version >= "4.4" and (
            "<" in alt or _SV_INFO.search(info) is not None or (len(cols) > 8 and "CN" in cols[8])
        )
        if sv:
            found = _structural(info, alts, cols[8] if len(cols) > 8 else ".")
            if found:
                yield Problem(number, *found)
                return
        yield from self._duplicates(number, chrom, pos, ref, alts)
        if header.samples and len(cols) > 8:
            yield from self._samples(number, cols[8], cols[9:], len(alts))

    def _filter(self, number: int, filt: str) -> Iterator[Problem]:
        if filt == ".":
            return
        names = filt.split(";")
        if re.search(r"\s", filt) or "" in names:
            yield Problem(number, "FILTER", f"{filt!r}: filters are separated by ';' and hold no space")
        elif "." in names or "0" in names:
            yield Problem(number, "FILTER", f"{filt!r}: '.' or '0' among filters")
        elif len(set(names)) != len(names):
            yield Problem(number, "FILTER", f"{filt!r} repeats a filter")
        else:
            missing = [n for n in names if n not in self.header.filters]
            if missing and self.header.version >= "4.3" and len(self.header.filters) > 1:
                yield Problem(number, "FILTER", f"filter {missing[0]} is not declared in a ##FILTER line")

    def _info(self, number: int, info: str, n_alts: int) -> Iterator[Problem]:
        if info == ".":
            return
        if re.search(r"\s", info):
            yield Problem(number, "INFO", "INFO holds a space")
            return
        seen = set()
        declared = self.header.fields["INFO"]
        for item in info.split(";"):
            key, eq, value = item.partition("=")
            if key in seen:
                yield Problem(number, "INFO", f"key {key} appears twice")
                return
            seen.add(key)
            field = declared.get(key)
            if field is None:
                reserved = RESERVED["INFO"].get(key)
                field = _Field(*reserved) if reserved and reserved[1] else None
            if field is None:
                continue  # undeclared keys are read as strings by every reader
            if field.type == "Flag":
                if eq and value not in ("0", "1"):
                    yield Problem(number, "INFO", f"{key} is a flag and takes no value ({item!r})")
                    return
                continue
            if not eq:
                yield Problem(number, "INFO", f"{key} has no value")
                return
            problem = _values(key, value, field, n_alts, None)
            if problem:
                yield Problem(number, "INFO", problem)
                return

    def _duplicates(self, number: int, chrom: str, pos: int, ref: str, alts: list[str]) -> Iterator[Problem]:
        """A variant recorded twice at the same place, once trimmed to the bases it changes
        (``TAT>TGT`` at 100 is ``A>G`` at 101); symbolic alleles and breakends may repeat."""
        if chrom != self.recent_chrom:
            self.recent, self.recent_chrom = set(), chrom
        elif pos != self.recent_pos:
            self.recent = {key for key in self.recent if key[0] >= pos}
        self.recent_pos = pos
        for allele in alts:
            if not _BASES.match(allele):
                continue
            key = _trimmed(pos, ref.upper(), allele.upper())
            if key in self.recent:
                yield Problem(
                    number,
                    "ALT",
                    f"{ref}>{allele} at {chrom}:{pos} repeats the "
                    f"variant {key[1]}>{key[2]} at {chrom}:{key[0]} "
                    "recorded before",
                )
                return
            self.recent.add(key)

    def _samples(self, number: int, fmt: str, cells: list[str], n_alts: int) -> Iterator[Problem]:
        if fmt == "." or fmt == "":
            return
        keys = fmt.split(":")
        if re.search(r"\s", fmt) or "" in keys:
            yield Problem(number, "FORMAT", f"{fmt!r}: keys are separated by ':' with no space or empty key")
            return
        if len(set(keys)) != len(keys):
            yield Problem(number, "FORMAT", f"{fmt!r} repeats a key")
            return
        bad = next((k for k in keys if not _KEY.match(k)), None)
        if bad:
            yield Problem(
                number, "FORMAT", f"key {bad!r} is not letters, digits and _ starting with a letter"
            )
            return
        if "GT" in keys and keys[0] != "GT":
            yield Problem(number, "FORMAT", "GT must be the first FORMAT key")
            return
        declared = self.header.fields["FORMAT"]
        fields = []
        for key in keys:
            field = declared.get(key)
            if field is None and key in RESERVED["FORMAT"]:  # undeclared: count only
                field = _Field(RESERVED["FORMAT"][key][0], "String")
            fields.append(field)
        fast = self._fast.get((fmt, n_alts), False)
        if fast is False:
            fast = self._fast[(fmt, n_alts)] = _cells_pattern(keys, fields, n_alts)
        phase_sets = self.header.version >= "4.4" and "PSL" in keys
        if fast is not None and not phase_sets and fast.fullmatch("\t".join(cells)):
            return  # every cell well-formed: the common case, in one match
        for name, cell in zip(self.header.samples, cells, strict=True):
            values = cell.split(":")
            if len(values) > len(keys):
                yield Problem(number, name, f"{cell!r} has more values than FORMAT {fmt}")
                return
            ploidy = None
            for key, field, value in zip(keys, fields, values, strict=False):
                if key == "GT":
                    if self.header.version >= "4.4" and value[-1:] in "/|":
                        value = value[:-1] or "."
                    if not _GENOTYPE.match(value):
                        yield Problem(number, name, f"genotype {value!r} is not alleles separated by / or |")
                        return
                    alleles = re.split(r"[/|]", value.lstrip("/|"))
                    if n_alts and any(a != "." and int(a) > n_alts for a in alleles):
                        yield Problem(
                            number,
                            name,
                            f"genotype {value} names an allele beyond the {n_alts} ALT allele(s)",
                        )
                        return
                    ploidy = len(alleles)
                    continue
                if field is None or value == ".":
                    continue
                problem = _values(key, value, field, n_alts, ploidy)
                if problem:
                    yield Problem(number, name, problem)
                    return
            if phase_sets:
                problem = _phase_sets(dict(zip(keys, values, strict=False)))
                if problem:
                    yield Problem(number, name, problem)
                    return


_ITEMS = {
    "Integer": r"-?\d{1,9}",  # longer numbers go the slow way, checked for range
    # one way to read each number: backtracking stays linear on a bad line
    "Float": r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?",
    "Character": r"[^\t:,]",
    "String": r"[^\t:,]*",
}


def _values_pattern(field: _Field | None, count: int | None) -> str:
    if field is None or (field.type == "String" and field.number == "1"):
        return r"[^\t:]*"
    one = f"(?:{_ITEMS[field.type]}|\\.)"
    if count is None:
        return f"{one}(?:,{one})*"
    if count <= 1:
        return one
    return f"(?:\\.|{one}(?:,{one}){{{count - 1}}})"


def _cells_pattern(keys: list[str], fields: list[_Field | None], n_alts: int) -> re.Pattern[str] | None:
    """A pattern that the tab-joined sample cells of a record match when every cell is
    valid (alleles in range, values typed and counted), so that the common case costs one
    match; a record it does not match is checked cell by cell to say what is wrong. Diploid
    genotypes only when a Number=G value must be counted; None where it cannot help."""
    if n_alts > 9:
        return None
    counts_g = n_alts > 0 and "GT" in keys and any(f and f.number == "G" for f in fields)
    allele = f"(?:[0-{n_alts}]|\\.)" if n_alts else r"(?:\d+|\.)"
    parts = []
    for key, field in zip(keys, fields, strict=True):
        if key == "GT":
            parts.append(f"{allele}[/|]{allele}" if counts_g else f"[/|]?{allele}(?:[/|]{allele})*")
            continue
        number = field.number if field else "."
        count = _expected(number, n_alts, 2) if (n_alts or number.isdigit()) else None
        if number == "G" and not counts_g:
            count = None
        parts.append(_values_pattern(field, count))
    cell = parts[-1]
    for part in reversed(parts[:-1]):
        cell = f"{part}(?::{cell})?"
    return re.compile(f"{cell}(?:\t{cell})*")


#: INFO keys with rules of their own from VCF 4.4 on (structural variants)
_SV_INFO = re.compile(
    r"(?:^|;)(?:CIPOS|CIEND|CILEN|CICN|MEINFO|METRANS|SVCLAIM|SVLEN|RN|RUS|"
    r"RUL|RUC|RB|RUB|CIRUC|CIRB)="
)
_SV_KINDS = ("DEL", "INS", "DUP", "INV", "CNV")
#: INFO keys holding *n* values per ALT allele
_PER_ALLELE = {"CIPOS": 2, "CIEND": 2, "CILEN": 2, "CICN": 2, "MEINFO": 4, "METRANS": 4}


def _info_values(info: str) -> dict[str, list[str]]:
    values = {}
    for item in info.split(";") if info != "." else ():
        key, eq, value = item.partition("=")
        if eq:
            values[key] = value.split(",")
    return values


def _interval(key: str, pairs: list[str]) -> str | None:
    """Why a confidence interval's pairs are not (at or below 0, at or above 0), or None."""
    for low, high in zip(pairs[::2], pairs[1::2], strict=False):
        try:
            if (low != "." and float(low) > 0) or (high != "." and float(high) < 0):
                return (
                    f"{key}={','.join(pairs)}: each interval is a pair, its first value "
                    "at or below 0 and its second at or above 0"
                )
        except ValueError:
            return None  # not a number: the type check has said so
    return None


def _structural(info: str, alts: list[str], fmt: str) -> tuple[str, str] | None:
    """The column and the rule a record breaks among VCF 4.4's structural variant rules."""
    kinds = []
    for allele in alts:
        kind = allele[1:-1] if allele.startswith("<") and allele.endswith(">") else None
        if kind is not None and kind not in ("*", "NON_REF"):
            top = kind.split(":")[0]
            if top not in _SV_KINDS and (":" in kind or top == "BND"):
                return (
                    "ALT",
                    f"{allele}: a structural variant allele is one of "
                    f"{', '.join(_SV_KINDS)} (breakends in bracket notation)",
                )
            kinds.append(top if top in _SV_KINDS else None)
        else:
            kinds.append(None)
    values = _info_values(info)
    if any(k in ("DEL", "DUP", "INV", "CNV") for k in kinds) and "SVLEN" not in values:
        return ("INFO", "a <DEL>, <DUP>, <INV> or <CNV> allele needs its length in SVLEN")
    if any(k in ("DEL", "DUP") for k in kinds) and "SVCLAIM" not in values:
        return (
            "INFO",
            "a <DEL> or <DUP> allele needs SVCLAIM: whether the call claims "
            "a change in depth (D), a junction (J) or both (DJ)",
        )
    bad = next((c for c in values.get("SVCLAIM", ()) if c not in ("D", "J", "DJ", ".")), None)
    if bad is not None:
        return ("INFO", f"SVCLAIM {bad!r} is not D, J, DJ or '.'")
    for key, per in _PER_ALLELE.items():
        if key in values and len(values[key]) != per * len(alts):
            return (
                "INFO",
                f"{key}={','.join(values[key])} has {len(values[key])} value(s); "
                f"it takes {per} per ALT allele ({per * len(alts)})",
            )
        if key.startswith("CI") and key in values:
            problem = _interval(key, values[key])
            if problem:
                return ("INFO", problem)
    if "CNV:TR" in (a[1:-1] for a in alts):
        problem = _tandem_repeats(values, len(alts))
        if problem:
            return ("INFO", problem)
    keys = fmt.split(":")
    if "CICN" in keys and "CN" not in keys:
        return ("FORMAT", "a sample CICN (confidence interval of CN) needs CN in the FORMAT")
    copy_number = [
        v for k, v in zip(kinds, values.get("SVLEN", ()), strict=False) if k in ("DEL", "DUP", "CNV")
    ]
    if "CN" in keys and len(set(copy_number)) > 1:
        return (
            "INFO",
            f"SVLEN={','.join(values['SVLEN'])}: the copy-number alleles (<DEL>, "
            "<DUP>, <CNV>) of a record whose samples carry CN share one length",
        )
    return None


def _tandem_repeats(values: dict[str, list[str]], n_alts: int) -> str | None:
    """Why a tandem repeat (``<CNV:TR>``) record's repeat fields do not agree, or None."""
    if "RUS" not in values and "RUL" not in values:
        return "a <CNV:TR> allele needs its repeat units: RUS (sequences) or RUL (lengths)"
    counts = values.get("RN", ["1"] * n_alts)
    try:
        sequences = sum(int(c) for c in counts if c != ".")
    except ValueError:
        return None  # not an integer: the type check has said so
    for key, per in (("RUS", 1), ("RUL", 1), ("RUC", 1), ("RB", 1), ("CIRUC", 2), ("CIRB", 2)):
        if key in values and len(values[key]) != per * sequences:
            return (
                f"{key}={','.join(values[key])} has {len(values[key])} value(s); RN counts "
                f"{sequences} repeat sequence(s), so it takes {per * sequences}"
            )
    for key in ("CIRUC", "CIRB"):
        if key in values:
            problem = _interval(key, values[key])
            if problem:
                return problem
    try:
        units = [len(u) if u != "." else None for u in values.get("RUS", ())] or [
            int(u) if u != "." else None for u in values.get("RUL", ())
        ]
        if "RUS" in values and "RUL" in values:
            lengths = [int(u) if u != "." else None for u in values["RUL"]]
            if any(a is not None and b is not None and a != b for a, b in zip(units, lengths, strict=True)):
                return f"RUL={','.join(values['RUL'])} is not the length of RUS={','.join(values['RUS'])}"
        counts_of = [float(c) if c != "." else None for c in values.get("RUC", ())]
        bases = [int(b) if b != "." else None for b in values.get("RB", ())]
    except ValueError:
        return None
    for unit, count, total in zip(units, counts_of, bases, strict=False):
        if None not in (unit, count, total) and abs(total - unit * count) >= unit:
            return f"RB={total} is not RUL × RUC ({unit} × {count:g}) to within one repeat unit"
    if "RUB" in values:
        if "RUC" not in values or any(c is None or c != int(c) for c in counts_of):
            return "RUB (the bases of each repeat unit) needs RUC, each a whole number of units"
        if len(values["RUB"]) != int(sum(counts_of)):  # type: ignore[arg-type]
            return (
                f"RUB={','.join(values['RUB'])} has {len(values['RUB'])} value(s); RUC "
                f"counts {int(sum(counts_of))} repeat unit(s)"
            )  # type: ignore[arg-type]
    return None


def _phase_sets(cell: dict[str, str]) -> str | None:
    """Why a sample's phase set fields (VCF 4.4: PSL, PSO, PSQ, one per allele) are set on an
    unphased allele, or None. The first allele is phased when its prefix says so or, with no
    prefix, when every other separator is ``|``; a haploid call is phased."""
    genotype = cell.get("GT")
    labels = cell.get("PSL")
    if genotype is None or labels is None or labels == ".":
        return None
    separators = re.findall(r"[/|]", genotype.lstrip("/|"))
    first = genotype[0] if genotype[:1] in ("/", "|") else ("|" if all(s == "|" for s in separators) else "/")
    phased = [first == "|", *(s == "|" for s in separators)]
    labels_list = labels.split(",")
    for i, (label, is_phased) in enumerate(zip(labels_list, phased, strict=False)):
        if label != "." and not is_phased:
            return f"PSL={labels}: allele {i + 1} of {genotype} is unphased, so its PSL is '.'"
    for key in ("PSO", "PSQ"):
        given = cell.get(key)
        if given is None or given == ".":
            continue
        for i, (label, value) in enumerate(zip(labels_list, given.split(","), strict=False)):
            if label == "." and value != ".":
                return f"{key}={given}: allele {i + 1} has no phase set (PSL '.'), so its {key} is '.'"
    return None


def _trimmed(pos: int, ref: str, alt: str) -> tuple[int, str, str]:
    """The position, REF and ALT without the bases REF and ALT share at the end, then at
    the start (one base kept)."""
    while len(ref) > 1 and len(alt) > 1 and ref[-1] == alt[-1]:
        ref, alt = ref[:-1], alt[:-1]
    while len(ref) > 1 and len(alt) > 1 and ref[0] == alt[0]:
        ref, alt, pos = ref[1:], alt[1:], pos + 1
    return pos, ref, alt


def _expected(number: str, n_alts: int, ploidy: int | None) -> int | None:
    if number.isdigit():
        return int(number)
    if number == "A":
        return n_alts
    if number == "R":
        return n_alts + 1
    if number == "G" and ploidy is not None:
        return math.comb(n_alts + ploidy, ploidy)
    return None


def _values(key: str, value: str, field: _Field, n_alts: int, ploidy: int | None) -> str | None:
    """Why *value* does not fit *field*, or None."""
    if key == "AA" and "," in value:
        return f"AA={value} holds a comma"
    if field.type == "String" and field.number == "1":
        return None  # one string, commas and all
    items = value.split(",")
    want = _expected(field.number, n_alts, ploidy)
    counted = n_alts or field.number.isdigit()  # A, R, G mean nothing without an ALT
    if want is not None and counted and len(items) != want and not (value == "." and want >= 1):
        return f"{key}={value} has {len(items)} value(s); its Number={field.number} wants {want}"
    for item in items:
        if item == ".":
            continue
        if field.type == "Integer":
            if not _INT.match(item):
                return f"{key}={value}: {item!r} is not an integer"
            if not INT_MIN <= int(item) <= INT_MAX:
                return f"{key}={value}: {item} is outside the 32-bit integer range"
            if key in _NON_NEGATIVE and key in RESERVED["INFO"] and int(item) < 0:
                return f"{key}={value}: {item} cannot be negative"
        elif field.type == "Float":
            if not _FLOAT.match(item):
                return f"{key}={value}: {item!r} is not a number"
            if key in _NON_NEGATIVE and float(item) < 0:
                return f"{key}={value}: {item} cannot be negative"
        elif field.type == "Character" and len(item) != 1:
            return f"{key}={value}: {item!r} is not one character"
        elif key == "CIGAR" and not _CIGAR.match(item):
            return f"CIGAR={value}: {item!r} is not a CIGAR string"
    return None
