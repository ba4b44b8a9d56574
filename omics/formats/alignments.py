"""BAM and CRAM through pysam: header, read-group sample names, reference, per-contig counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pysam

from omics.formats.errors import FormatError
from omics.formats.registry import register


@register("bam", lambda p: p.name.lower().endswith((".bam", ".cram")))
class AlignmentReader:
    """An alignment file. ``samples`` are the ``SM`` of its read groups; ``contig_counts()``
    comes from the index when there is one (``.bai``/``.crai``/``.csi`` beside it), else from
    reading every record."""

    reference: str | None

    def __init__(self, path: Path, *, reference_fasta: str | None = None) -> None:
        pysam.set_verbosity(0)
        self.path = path
        if not path.exists():
            raise FormatError("no such file", path=path)
        mode = "rc" if path.suffix.lower() == ".cram" else "rb"
        try:
            self._file = pysam.AlignmentFile(str(path), mode, reference_filename=reference_fasta)
        except (ValueError, OSError) as error:
            raise FormatError(f"not a readable BAM/CRAM: {error}", path=path) from None
        header = self._file.header.to_dict()
        groups = header.get("RG", [])
        samples = []
        for group in groups:
            name = group.get("SM")
            if name and name not in samples:
                samples.append(name)
        self.samples: list[str] = samples
        self.read_groups = [g.get("ID") for g in groups]
        assemblies = {sq.get("AS") for sq in header.get("SQ", []) if sq.get("AS")}
        self.reference = assemblies.pop() if len(assemblies) == 1 else None
        self.contigs = {sq["SN"]: sq["LN"] for sq in header.get("SQ", [])}

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> AlignmentReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def contig_counts(self) -> dict[str, Any]:
        """Mapped reads per contig and unmapped reads."""
        try:
            if self._file.has_index():
                stats = self._file.get_index_statistics()
                return {
                    "mapped": {s.contig: s.mapped for s in stats if s.mapped},
                    "unmapped": sum(s.unmapped for s in stats) + self._file.nocoordinate,
                }
            mapped: dict[str, int] = {}
            unmapped = 0
            for read in self._file.fetch(until_eof=True):
                if read.is_unmapped:
                    unmapped += 1
                else:
                    mapped[read.reference_name] = mapped.get(read.reference_name, 0) + 1
            return {"mapped": mapped, "unmapped": unmapped}
        except (ValueError, OSError) as error:
            raise FormatError(f"unreadable: {error}", path=self.path) from None
