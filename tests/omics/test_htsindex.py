"""The pure core of htsget: bins, BGZF blocks and header lengths, checked against htslib
(through pysam) reading what is written here."""

from __future__ import annotations

import gzip
import struct

import pysam
import pytest

from omics.formats import htsindex


def test_region_bins_are_the_bins_of_the_sam_specification():
    # SAM specification 5.3, reg2bins: one bin per level for a first 16 kb window
    assert htsindex.region_bins(0, 1 << 14) == [0, 1, 9, 73, 585, 4681]
    # a region across two leaf windows takes both leaves
    assert htsindex.region_bins((1 << 14) - 1, (1 << 14) + 1)[-2:] == [4681, 4682]
    assert htsindex.region_bins(1 << 26, (1 << 26) + 1) == [0, 2, 17, 137, 1097, 8777]


def test_compressed_blocks_are_bgzf_that_htslib_and_gzip_read(tmp_path):
    text = b"".join(b"##line %d of a header long enough for several blocks\n" % i for i in range(3_000))
    path = tmp_path / "blocks.gz"
    path.write_bytes(htsindex.compress_block(text) + htsindex.EOF_BLOCK)
    assert htsindex.is_bgzf(path)
    assert gzip.decompress(path.read_bytes()) == text
    with pysam.BGZFile(str(path), "rb") as f:
        assert f.read() == text
    data, offset, blocks = htsindex.BgzfFile(path), 0, []
    while offset < data.size - len(htsindex.EOF_BLOCK):
        block, size = data.block(offset)
        blocks.append(block)
        offset += size
    assert b"".join(blocks) == text and len(blocks) > 1
    assert all(len(b) <= htsindex.MAX_BLOCK_DATA for b in blocks)


def test_header_lengths_need_the_whole_header():
    text = b"##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    body = b"1\t10\t.\tA\tG\t.\t.\t.\n"
    assert htsindex.vcf_header_length(text + body, False) == len(text)
    assert htsindex.vcf_header_length(text[:30], False) is None  # more may follow
    bcf = b"BCF\x02\x02" + struct.pack("<I", len(text)) + text
    assert htsindex.bcf_header_length(bcf + b"records", False) == len(bcf)
    assert htsindex.bcf_header_length(bcf[:20], False) is None
    with pytest.raises(ValueError, match="not a BCF"):
        htsindex.bcf_header_length(text, False)
    with pytest.raises(ValueError, match="not a BAM"):
        htsindex.bam_header_length(text, False)
