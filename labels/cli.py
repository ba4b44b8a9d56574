"""`biobank labels …` commands."""

from __future__ import annotations

import click
import sqlalchemy as sa
from flask.cli import with_appcontext

from biobank.db import db, transaction


@click.group("labels")
def labels_cli() -> None:
    """Label templates and printing."""


@labels_cli.command("templates")
def templates_cmd() -> None:
    """List the label templates."""
    from labels.render import load_template, template_names

    for name in template_names():
        click.echo(f"{name:20s} {load_template(name).title}")


@labels_cli.command("print")
@click.argument("barcodes", nargs=-1, required=True)
@click.option("--template", required=True)
@click.option("--printer", "printer_name", help="Registered printer (default: write a PDF)")
@click.option("--pdf", "pdf_path", type=click.Path(dir_okay=False, writable=True),
              help="Where to write the PDF when no printer is given")
@click.option("--copies", type=int, default=1, show_default=True)
@click.option("--reason", "reprint_reason", help="Why labels printed before are printed again")
@with_appcontext
def print_cmd(barcodes: tuple[str, ...], template: str, printer_name: str | None,
              pdf_path: str | None, copies: int, reprint_reason: str | None) -> None:
    """Print labels for specimens given by barcode."""
    from biobank.cli import system_actor
    from biobank.errors import InvalidInput
    from biobank.models import Specimen
    from labels import services
    from labels.models import Printer

    if not printer_name and not pdf_path:
        raise click.UsageError("give --printer or --pdf")
    with transaction():
        actor = system_actor()
        printer = None
        if printer_name:
            printer = db.session.scalar(sa.select(Printer).where(Printer.name == printer_name))
            if printer is None:
                raise InvalidInput(f"no printer named {printer_name!r}", field="printer")
        specimens = []
        for code in barcodes:
            specimen = db.session.scalar(sa.select(Specimen).where(Specimen.barcode == code))
            if specimen is None:
                raise InvalidInput(f"unknown barcode {code!r}", field="barcodes")
            specimens.append(specimen)
        job = services.print_specimens(specimens, template=template, actor=actor,
                                       printer=printer, copies=copies,
                                       reprint_reason=reprint_reason, source="cli")
        job_id, payload = job.id, job.payload
    if pdf_path and not printer_name:
        with open(pdf_path, "wb") as out:
            out.write(payload)
        click.echo(f"job {job_id}: {len(specimens)} label(s) written to {pdf_path}")
        return
    from labels.models import PrintJob

    job = db.session.get(PrintJob, job_id)
    db.session.refresh(job)
    click.echo(f"job {job_id}: {job.status.value}" + (f" ({job.last_error})" if job.last_error else ""))
    if job.status.value == "failed":
        raise SystemExit(1)
