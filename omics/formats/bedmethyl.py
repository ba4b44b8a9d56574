"""bedMethyl (modkit, Bismark-style coverage): one sample's methylation per CpG site."""

from __future__ import annotations

import math
from typing import Any

from omics.formats.errors import FormatError
from omics.formats.matrix import _build, _lines, _number, _Reader
from omics.formats.registry import register


@register(
    "bedmethyl",
    lambda p: p.name.lower().removesuffix(".gz").endswith((".bedmethyl", ".bedmethyl.bed", ".bed")),
)
class BedMethylReader(_Reader):
    """Columns: chrom, start, end, name, score, strand, thick start, thick end, colour,
    coverage, percent modified (ENCODE bedMethyl). Each site becomes a feature
    ``chrom:start`` whose value is the beta (percent / 100); coverage is kept in ``var``."""

    @property
    def samples(self) -> list[str]:
        return [self.path.name.split(".")[0]]

    def to_anndata(self) -> Any:
        features, betas, coverage = [], [], []
        for number, line in enumerate(_lines(self.path), start=1):
            if line.startswith(("track", "browser", "#")) or not line.strip():
                continue
            cells = line.rstrip("\r\n").split("\t")
            if len(cells) < 11:
                raise FormatError(
                    f"{len(cells)} columns; bedMethyl has at least 11", path=self.path, line=number
                )
            percent = _number(cells[10], path=self.path, line=number, column="percent")
            if not math.isnan(percent) and not 0 <= percent <= 100:
                raise FormatError(
                    f"percent modified {percent} is outside 0–100",
                    path=self.path,
                    line=number,
                    column="percent",
                )
            features.append(f"{cells[0]}:{cells[1]}")
            betas.append(percent / 100)
            coverage.append(int(_number(cells[9], path=self.path, line=number, column="coverage")))
        return _build(
            self.path,
            features,
            self.samples,
            [betas],
            var={"coverage": coverage},
            uns={"source_format": "bedmethyl", "source_file": self.path.name},
        )
