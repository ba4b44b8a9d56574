"""10,000 labels as one PDF and as ZPL: time and peak memory; ZPL for every template; the
CLI printing them end to end against the renderer alone, in one run.

    python -m bench.bench_labels [--labels 10000] [--template cryovial-2d]
                                 [--cli-backend postgresql|sqlite|none] [--participants 20000]

The CLI part prints the labels of the first N specimens of the benchmark database
(``bench_<participants>``, built once by ``bench.common.ensure_database``).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc

from biobank.barcodes import make_barcode
from biobank.models.vocab import MaterialType
from labels.render import load_template, template_names
from labels.render.pdf import render_pdf
from labels.render.zpl import iter_zpl


def records(n: int):
    for i in range(1, n + 1):
        yield {
            "barcode": make_barcode("CTR", MaterialType.PLASMA, i),
            "gs1": f"(01)09501101530003(17)271231(10)LOT{i:06d}",
            "participant_code": f"SKN-{i:06d}",
            "material_type": "PLASMA",
            "collection_date": "2025-03-01",
            "volume": "0.5 mL",
            "sprec_code": "PL1-PED-A-D-N-A-B",
            "label": "Block A1",
            "container": "Box 1",
            "site": "Central Dermatology Hospital",
            "destination": "Northern Hospital",
            "text": "Keep frozen",
        }


def measure(label: str, func) -> None:
    """Time a run, then repeat it under tracemalloc for the peak heap (which slows it)."""
    started = time.perf_counter()
    size = func()
    elapsed = time.perf_counter() - started
    tracemalloc.start()
    func()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(
        f"  {label:34s} {elapsed:6.2f} s  {size / 1e6:7.1f} MB output  peak Python heap {peak / 1e6:6.1f} MB"
    )


def pdf_to_file(template, n: int, **options) -> int:
    with tempfile.TemporaryFile() as out:
        render_pdf(template, records(n), out=out, **options)
        return out.tell()


def every_template(n: int) -> None:
    """ZPL for every template (target: ≤ 1 s per 10,000 labels each)."""
    print(f"== ZPL, {n:,} labels of each template, 203 dpi (target ≤ 1 s per 10,000)")
    for name in template_names():
        template = load_template(name)
        started = time.perf_counter()
        size = sum(len(block) for block in iter_zpl(template, records(n)))
        elapsed = time.perf_counter() - started
        print(
            f"  {name:20s} {elapsed:6.2f} s  {size / 1e6:6.1f} MB  {elapsed / n * 10_000:5.2f} s per 10,000"
        )


def cli_against_renderer(backend: str, participants: int, n: int, template: str) -> None:
    """`biobank labels print` for n specimens to a PDF, end to end (a new process: start-up,
    loading the specimens, the reprint check, rendering, recording the job), against
    rendering the same labels alone in this process (target: ≤ 2×)."""
    import sqlalchemy as sa

    from bench.common import ensure_database
    from biobank import create_app
    from biobank.db import db
    from biobank.models import Specimen
    from labels.services import specimen_values

    url = ensure_database(backend, f"bench_{participants}", participants=participants)
    app = create_app({"DATABASE_URL": url})
    with app.app_context():
        specimens = db.session.scalars(sa.select(Specimen).order_by(Specimen.id).limit(n)).all()
        values = [specimen_values(s) for s in specimens]
        db.session.remove()
        db.engine.dispose()
    print(f"== {len(values):,} labels ({template}) of bench_{participants} on {backend}")
    layout = load_template(template)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        with open(os.path.join(tmp, "alone.pdf"), "wb") as out:
            render_pdf(layout, values, out=out)
        alone = time.perf_counter() - started
        codes = os.path.join(tmp, "codes.txt")
        with open(codes, "w") as out:
            out.write("\n".join(v["barcode"] for v in values))
        command = [
            sys.executable,
            "-c",
            "from biobank.cli import main; main()",
            "labels",
            "print",
            "--template",
            template,
            "--from-file",
            codes,
            "--pdf",
            os.path.join(tmp, "cli.pdf"),
            "--reason",
            "benchmark",
        ]
        started = time.perf_counter()
        subprocess.run(
            command, check=True, capture_output=True, env=os.environ | {"BIOBANK_DATABASE_URL": url}
        )
        cli = time.perf_counter() - started
    print(f"  renderer alone (PDF, in this process)   {alone:6.2f} s")
    print(
        f"  biobank labels print … --pdf, end to end {cli:6.2f} s  = {cli / alone:.2f}× "
        "the renderer (target ≤ 2×)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=10_000)
    parser.add_argument("--template", default="cryovial-2d")
    parser.add_argument("--cli-backend", choices=["postgresql", "sqlite", "none"], default="postgresql")
    parser.add_argument(
        "--participants", type=int, default=20_000, help="size of the benchmark database the CLI prints from"
    )
    args = parser.parse_args()
    template = load_template(args.template)
    n = args.labels
    print(f"== {n:,} labels, template {args.template}")
    measure("PDF, one label per page (roll)", lambda: pdf_to_file(template, n))
    measure("PDF, A4 sheets", lambda: pdf_to_file(template, n, sheet=True))
    measure("ZPL (streamed, 203 dpi)", lambda: sum(len(block) for block in iter_zpl(template, records(n))))
    print(
        f"  process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
        " (targets: PDF ≤ 10 s, ZPL ≤ 1 s)"
    )
    every_template(n)
    if args.cli_backend != "none":
        cli_against_renderer(args.cli_backend, args.participants, n, args.template)


if __name__ == "__main__":
    main()
