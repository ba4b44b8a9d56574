"""10,000 labels as one PDF and as ZPL: time and peak memory.

    python -m bench.bench_labels [--labels 10000] [--template cryovial-2d]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
import tracemalloc

from biobank.barcodes import make_barcode
from biobank.models.vocab import MaterialType
from labels.render import load_template
from labels.render.pdf import render_pdf
from labels.render.zpl import iter_zpl


def records(n: int):
    for i in range(1, n + 1):
        yield {"barcode": make_barcode("CTR", MaterialType.PLASMA, i),
               "participant_code": f"SKN-{i:06d}", "material_type": "PLASMA",
               "collection_date": "2025-03-01", "volume": "0.5 mL",
               "sprec_code": "PL1-PED-A-D-N-A-B", "label": "Block A1", "container": "Box 1",
               "site": "Central Dermatology Hospital", "destination": "Northern Hospital",
               "text": "Keep frozen"}


def measure(label: str, func) -> None:
    """Time a run, then repeat it under tracemalloc for the peak heap (which slows it)."""
    started = time.perf_counter()
    size = func()
    elapsed = time.perf_counter() - started
    tracemalloc.start()
    func()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(f"  {label:34s} {elapsed:6.2f} s  {size / 1e6:7.1f} MB output  "
          f"peak Python heap {peak / 1e6:6.1f} MB")


def pdf_to_file(template, n: int, **options) -> int:
    with tempfile.TemporaryFile() as out:
        render_pdf(template, records(n), out=out, **options)
        return out.tell()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=10_000)
    parser.add_argument("--template", default="cryovial-2d")
    args = parser.parse_args()
    template = load_template(args.template)
    n = args.labels
    print(f"== {n:,} labels, template {args.template}")
    measure("PDF, one label per page (roll)", lambda: pdf_to_file(template, n))
    measure("PDF, A4 sheets", lambda: pdf_to_file(template, n, sheet=True))
    measure("ZPL (streamed, 203 dpi)",
            lambda: sum(len(block) for block in iter_zpl(template, records(n))))
    print(f"  process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
          " (targets: PDF ≤ 10 s, ZPL ≤ 1 s)")


if __name__ == "__main__":
    main()
