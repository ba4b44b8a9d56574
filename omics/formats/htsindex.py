"""Where a region's records lie in a BGZF file (BAM, bgzipped VCF), read from its index.

An index (``.bai`` for BAM, ``.tbi`` for a bgzipped VCF; SAM/BAM specification section 5 and
the tabix format) lists, per reference sequence, bins of the genome and the *chunks* of the
file holding each bin's records. A chunk is a pair of virtual offsets: the compressed offset of
a BGZF block shifted left 16 bits, plus an offset inside that block's uncompressed bytes.

``region_chunks`` answers the chunks for a 0-based half-open region, merged and sorted;
``BgzfFile`` cuts the file along them: whole blocks stay bytes of the stored file, and the
partial blocks at either end are recompressed on their own, so a client that concatenates
header, pieces and the end-of-file block gets a valid file holding every record of the region
(and possibly a few neighbours, as htsget allows). Pure: no Flask, no database.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from omics.formats.errors import FormatError

#: the empty block every BGZF file ends with (SAM/BAM specification 4.1.2)
EOF_BLOCK = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
MIN_SHIFT, DEPTH = 14, 5  # the binning scheme of BAI and TBI
PSEUDO_BIN = ((1 << (3 * DEPTH + 3)) - 1) // 7 + 1  # 37450: index metadata, not records
FIRST_LEAF = ((1 << (3 * DEPTH)) - 1) // 7  # 4681: the bins of 16 kb windows
MAX_BLOCK_DATA = 0xFF00  # what one block carries, as bgzip writes them


@dataclass(frozen=True)
class Reference:
    """One reference sequence of an index: its bins' chunks and its linear index."""

    bins: dict[int, list[tuple[int, int]]]
    linear: list[int]


@dataclass(frozen=True)
class Index:
    names: list[str]  # empty for a BAI: a BAM names its references in its header
    references: list[Reference]
    unplaced: int | None = None  # records with no position (BAI/TBI trailer), when given

    def reference(self, name: str) -> int | None:
        return self.names.index(name) if name in self.names else None


def _read_references(data: bytes, at: int, count: int, path: Path) -> tuple[list[Reference], int]:
    references = []
    try:
        for _ in range(count):
            (n_bin,) = struct.unpack_from("<i", data, at)
            at += 4
            bins: dict[int, list[tuple[int, int]]] = {}
            for _ in range(n_bin):
                bin_id, n_chunk = struct.unpack_from("<Ii", data, at)
                at += 8
                flat = struct.unpack_from(f"<{2 * n_chunk}Q", data, at)
                at += 16 * n_chunk
                bins[bin_id] = list(zip(flat[::2], flat[1::2], strict=True))
            (n_intv,) = struct.unpack_from("<i", data, at)
            at += 4
            linear = list(struct.unpack_from(f"<{n_intv}Q", data, at))
            at += 8 * n_intv
            references.append(Reference(bins, linear))
    except struct.error:
        raise FormatError("the index ends in the middle of a reference", path=path) from None
    return references, at


def read_index(path: Path) -> Index:
    """A ``.bai`` (plain) or ``.tbi`` (BGZF-compressed) index."""
    raw = path.read_bytes()
    data = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    if data[:4] == b"BAI\x01":
        (n_ref,) = struct.unpack_from("<i", data, 4)
        references, at = _read_references(data, 8, n_ref, path)
        names: list[str] = []
    elif data[:4] == b"TBI\x01":
        n_ref, *_layout, l_nm = struct.unpack_from("<8i", data, 4)
        names = [n.decode() for n in data[36 : 36 + l_nm].split(b"\0")[:n_ref]]
        references, at = _read_references(data, 36 + l_nm, n_ref, path)
    else:
        raise FormatError("not a BAI or tabix index", path=path)
    unplaced = struct.unpack_from("<Q", data, at)[0] if len(data) >= at + 8 else None
    return Index(names, references, unplaced)


def region_bins(start: int, end: int) -> list[int]:
    """Every bin that may hold a record overlapping ``[start, end)`` (0-based)."""
    end -= 1
    found: list[int] = []
    shift, first = MIN_SHIFT + 3 * DEPTH, 0
    for level in range(DEPTH + 1):
        found.extend(range(first + (start >> shift), first + (end >> shift) + 1))
        shift -= 3
        first += 1 << (3 * level)
    return found


def region_chunks(
    index: Index, ref: int, start: int, end: int, past: Callable[[int], int | None] | None = None
) -> list[tuple[int, int]]:
    """The merged, sorted chunks (virtual offsets) holding the records of ``[start, end)`` on
    reference number *ref*; empty when it has none there. *past*, given where a record
    starts, may answer where the first record past the region starts (read from the file):
    bins merged by the indexer would otherwise reach far beyond the region."""
    reference = index.references[ref]
    linear = reference.linear
    if linear and start >> MIN_SHIFT >= len(linear):
        return []  # the linear index ends with the last window any record overlaps
    min_offset = linear[start >> MIN_SHIFT] if linear else 0
    max_offset = _first_offset_right_of(reference, end)
    last_window = (end - 1) >> MIN_SHIFT
    if past is not None and last_window < len(linear) and linear[last_window] < max_offset:
        found = past(max(linear[last_window], min_offset))
        if found is not None:
            max_offset = min(max_offset, found)
    # Both bounds are where a record begins, so chunks are cut there: a bin that the indexer
    # merged into its parent holds records far outside the region.
    chunks = sorted(
        (max(begin, min_offset), min(stop, max_offset))
        for bin_id in region_bins(start, end)
        if bin_id != PSEUDO_BIN
        for begin, stop in reference.bins.get(bin_id, ())
        if stop > min_offset and begin < max_offset
    )
    merged: list[tuple[int, int]] = []
    for begin, stop in chunks:
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
        else:
            merged.append((begin, stop))
    return merged


def _first_offset_right_of(reference: Reference, end: int) -> int:
    """Where the first record of a bin wholly right of *end* begins: it and every record after
    it in a sorted file start at or after *end*. Walks right along the leaf windows, going up
    a level whenever a step crosses into the next parent (htslib's rule; indexers merge small
    bins into their parents)."""
    bin_id = FIRST_LEAF + ((end - 1) >> MIN_SHIFT) + 1
    while True:
        while bin_id % 8 == 1:  # the first child: its parent lies wholly to the right too
            bin_id = (bin_id - 1) >> 3
        if bin_id == 0:
            return 1 << 64
        if reference.bins.get(bin_id):
            return reference.bins[bin_id][0][0]
        bin_id += 1


def reference_chunks(index: Index, ref: int) -> list[tuple[int, int]]:
    """Every record of reference *ref*: its pseudo-bin holds where they begin and end."""
    meta = index.references[ref].bins.get(PSEUDO_BIN)
    return [meta[0]] if meta else []


def compress_block(data: bytes) -> bytes:
    """*data* as BGZF blocks (each at most ``MAX_BLOCK_DATA`` bytes before compression)."""
    out = bytearray()
    for at in range(0, len(data), MAX_BLOCK_DATA):
        piece = data[at : at + MAX_BLOCK_DATA]
        deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        body = deflate.compress(piece) + deflate.flush()
        out += struct.pack("<4BI2BH2BHH", 0x1F, 0x8B, 8, 4, 0, 0, 0xFF, 6, 66, 67, 2, len(body) + 25)
        out += body + struct.pack("<II", zlib.crc32(piece), len(piece))
    return bytes(out)


@dataclass(frozen=True)
class Piece:
    """Part of the answer: either bytes ``[start, stop)`` of the stored file, or *data* made
    here (a partial block recompressed)."""

    start: int = 0
    stop: int = 0
    data: bytes | None = None


class BgzfFile:
    """A stored BGZF file, read block by block where a chunk needs it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = path.stat().st_size

    def block(self, offset: int) -> tuple[bytes, int]:
        """The uncompressed bytes of the block at compressed *offset*, and its length on disk."""
        with open(self.path, "rb") as f:
            f.seek(offset)
            head = f.read(18)
            if len(head) < 18 or head[:4] != b"\x1f\x8b\x08\x04" or head[12:14] != b"BC":
                raise FormatError(f"no BGZF block at byte {offset}", path=self.path)
            size = struct.unpack_from("<H", head, 16)[0] + 1
            rest = f.read(size - 18)
        return zlib.decompress(rest[:-8], -15), size

    def pieces(self, chunks: list[tuple[int, int]]) -> list[Piece]:
        """The file cut along *chunks*: whole blocks by byte range, partial ones recompressed."""
        out: list[Piece] = []
        for begin, end in chunks:
            (c_begin, u_begin), (c_end, u_end) = divmod(begin, 1 << 16), divmod(end, 1 << 16)
            if c_begin == c_end:
                data, _ = self.block(c_begin)
                out.append(Piece(data=compress_block(data[u_begin:u_end])))
                continue
            whole_from = c_begin
            if u_begin:
                data, size = self.block(c_begin)
                out.append(Piece(data=compress_block(data[u_begin:])))
                whole_from = c_begin + size
            if c_end > whole_from:
                if out and out[-1].data is None and out[-1].stop == whole_from:
                    whole_from = out.pop().start  # one range for touching blocks
                out.append(Piece(whole_from, c_end))
            if u_end:
                data, _ = self.block(c_end)
                out.append(Piece(data=compress_block(data[:u_end])))
        return out

    def first_record_past(self, begin: int, record: RecordReader, *, blocks: int = 64) -> int | None:
        """From *begin* (where a record starts), the virtual offset of the first record that
        *record* says lies past the region; None if the file ends first or that takes more
        than *blocks* blocks to find."""
        c_at, u_at = divmod(begin, 1 << 16)
        data, size = self.block(c_at)
        buffered, starts = bytearray(data), [(c_at, 0, len(data))]
        at, next_block = u_at, c_at + size
        while True:
            found = record(bytes(buffered), at)
            if found is None:  # the record goes on in the next block
                if next_block >= self.size or len(starts) >= blocks:
                    return None
                data, size = self.block(next_block)
                if not data:
                    return None
                starts.append((next_block, len(buffered), len(data)))
                buffered += data
                next_block += size
                continue
            past, following = found
            if past:
                for offset, begins, count in starts:
                    if begins <= at < begins + count:
                        return (offset << 16) | (at - begins)
                return next_block << 16
            at = following

    def uncompressed_prefix(self, end: int) -> bytes:
        """The uncompressed bytes before virtual offset *end*."""
        c_end, u_end = divmod(end, 1 << 16)
        out, at = bytearray(), 0
        while at < c_end:
            data, size = self.block(at)
            out += data
            at += size
        if u_end:
            out += self.block(c_end)[0][:u_end]
        return bytes(out)

    def header_end(self, header_length: Callable[[bytes, bool], int | None]) -> int:
        """The virtual offset where the header ends; *header_length* reads the uncompressed
        bytes so far (and whether they are the whole file) and answers the header's length,
        or None while it cannot tell."""
        buffered, at, blocks = bytearray(), 0, []
        while at < self.size:
            data, size = self.block(at)
            blocks.append((at, len(buffered), len(data)))
            buffered += data
            at += size
            length = header_length(bytes(buffered), at >= self.size)
            if length is None:
                continue
            for offset, begins, count in blocks:
                if begins <= length < begins + count:
                    return (offset << 16) | (length - begins)
            # the header fills every block read: it ends where the next block begins
            return (blocks[-1][0] if at >= self.size and not blocks[-1][2] else at) << 16
        raise FormatError("the file ends inside its header", path=self.path)


#: reads the record at *at* of the buffer: None when it goes beyond the buffer, else whether
#: it lies past the region and where the next record begins
RecordReader = Callable[[bytes, int], "tuple[bool, int] | None"]


def bam_record_past(ref: int, end: int) -> RecordReader:
    """A BAM record lies past ``[.., end)`` of reference *ref* when it starts at or after *end*
    or on a later reference (unmapped reads, reference -1, come last)."""

    def read(data: bytes, at: int) -> tuple[bool, int] | None:
        if len(data) < at + 12:
            return None
        size, ref_id, pos = struct.unpack_from("<iii", data, at)
        if len(data) < at + 4 + size:
            return None
        return (ref_id != ref or pos >= end), at + 4 + size

    return read


def vcf_record_past(contig: str, end: int) -> RecordReader:
    """A VCF line lies past ``[.., end)`` of *contig* when its POS (1-based) is beyond *end*
    or it is on another contig."""
    name = contig.encode()

    def read(data: bytes, at: int) -> tuple[bool, int] | None:
        newline = data.find(b"\n", at)
        if newline < 0:
            return None
        fields = data[at:newline].split(b"\t", 2)
        try:
            past = fields[0] != name or int(fields[1]) - 1 >= end
        except (IndexError, ValueError):
            past = False  # not a record this reader knows: keep it in
        return past, newline + 1

    return read


def is_bgzf(path: Path) -> bool:
    """A BGZF file (bgzip's blocked gzip): a gzip header whose extra field is ``BC``."""
    with path.open("rb") as f:
        head = f.read(16)
    return head[:2] == b"\x1f\x8b" and bool(head[3] & 4) and head[12:14] == b"BC"


def bam_reference_names(header: bytes) -> list[str]:
    """The reference names of a BAM's binary header, in their order (the ids of records)."""
    (l_text,) = struct.unpack_from("<i", header, 4)
    at = 8 + l_text
    (n_ref,) = struct.unpack_from("<i", header, at)
    at += 4
    names = []
    for _ in range(n_ref):
        (l_name,) = struct.unpack_from("<i", header, at)
        names.append(header[at + 4 : at + 4 + l_name - 1].decode())
        at += 4 + l_name + 4
    return names


def bam_header_length(data: bytes, whole: bool) -> int | None:
    """The length of a BAM's header: magic, text, and the binary reference list."""
    if data[:4] != b"BAM\x01":
        raise ValueError("not a BAM file")
    try:
        (l_text,) = struct.unpack_from("<i", data, 4)
        at = 8 + l_text
        (n_ref,) = struct.unpack_from("<i", data, at)
        at += 4
        for _ in range(n_ref):
            (l_name,) = struct.unpack_from("<i", data, at)
            at += 4 + l_name + 4
    except struct.error:
        return None
    return at if len(data) >= at else None


def bcf_header_length(data: bytes, whole: bool) -> int | None:
    """The length of a BCF's header: the magic (``BCF``, major version 2, minor version),
    the length of the header text, and the text."""
    if data[:3] != b"BCF" or data[3:4] != b"\x02":
        raise ValueError("not a BCF 2 file")
    if len(data) < 9:
        return None
    (l_text,) = struct.unpack_from("<I", data, 5)
    return 9 + l_text if len(data) >= 9 + l_text else None


def vcf_header_length(data: bytes, whole: bool) -> int | None:
    """The length of a VCF's header: its lines that begin with ``#``."""
    at = 0
    while at < len(data):
        if data[at : at + 1] != b"#":
            return at
        newline = data.find(b"\n", at)
        if newline < 0:
            break
        at = newline + 1
    return at if whole else None
