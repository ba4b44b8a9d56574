"""`biobank labels …` commands."""

from __future__ import annotations

from typing import Any

import click
import sqlalchemy as sa
from flask.cli import with_appcontext
from sqlalchemy.orm import selectinload

from biobank.auth import check_site
from biobank.db import db, transaction
from biobank.errors import InvalidInput
from biobank.models import SampleRequest, Specimen, StorageContainer
from biobank.services.users import system_actor
from labels import services
from labels.models import Printer, PrintJob
from labels.render import load_template, template_names


@click.group("labels")
def labels_cli() -> None:
    """Label templates and printing."""


@labels_cli.command("templates")
def templates_cmd() -> None:
    """List the label templates."""
    for name in template_names():
        click.echo(f"{name:20s} {load_template(name).title}")


def _boxes(codes: tuple[str, ...]) -> list:
    found = []
    for code in codes:
        box = db.session.scalar(sa.select(StorageContainer).where(StorageContainer.barcode == code))
        if box is None:
            raise InvalidInput(f"no container with barcode {code!r}", field="barcodes")
        found.append(box)
    return found


def _request(codes: tuple[str, ...]):
    if len(codes) != 1:
        raise InvalidInput("a parcel label is printed for one request: give its code or id", field="barcodes")
    given = codes[0]
    request = db.session.scalar(
        sa.select(SampleRequest).where(
            SampleRequest.id == int(given)
            if given.isdigit() and len(given) < 10
            else SampleRequest.code == given
        )
    )
    if request is None:
        raise InvalidInput(f"no request {given!r}", field="barcodes")
    return request


def _specimens(codes: list[str]) -> list:
    """The specimens of *codes*, in that order, loaded a thousand at a time with their
    participants and sites; every unknown barcode is named at once."""
    found = {}
    for start in range(0, len(codes), 1000):
        found.update(
            (s.barcode, s)
            for s in db.session.scalars(
                sa.select(Specimen)
                .where(Specimen.barcode.in_(codes[start : start + 1000]))
                .options(selectinload(Specimen.participant), selectinload(Specimen.site))
            )
        )
    missing = [code for code in codes if code not in found]
    if missing:
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        raise InvalidInput(f"unknown barcode(s) {', '.join(map(repr, missing[:10]))}{more}", field="barcodes")
    return [found[code] for code in codes]


@labels_cli.command("print")
@click.argument("barcodes", nargs=-1)
@click.option(
    "--from-file",
    "from_file",
    type=click.File("r"),
    help="Read barcodes (or box barcodes), one per line, from a file ('-': stdin)",
)
@click.option("--template", required=True)
@click.option("--printer", "printer_name", help="Registered printer (default: write a PDF)")
@click.option(
    "--pdf",
    "pdf_path",
    type=click.Path(dir_okay=False, writable=True),
    help="Where to write the PDF when no printer is given",
)
@click.option("--copies", type=int, default=1, show_default=True)
@click.option("--reason", "reprint_reason", help="Why labels printed before are printed again")
@with_appcontext
def print_cmd(
    barcodes: tuple[str, ...],
    from_file: Any,
    template: str,
    printer_name: str | None,
    pdf_path: str | None,
    copies: int,
    reprint_reason: str | None,
) -> None:
    """Print labels: for specimens given by barcode; with a box template (such as `box`),
    for containers given by barcode; with `shipping-box`, for the parcel of a request given
    by its code or id."""
    if not printer_name and not pdf_path:
        raise click.UsageError("give --printer or --pdf")
    codes = [*barcodes, *(line.strip() for line in from_file or () if line.strip())]
    if not codes:
        raise click.UsageError("give barcodes, or --from-file")
    with transaction():
        actor = system_actor()
        printer = None
        if printer_name:
            printer = db.session.scalar(sa.select(Printer).where(Printer.name == printer_name))
            if printer is None:
                raise InvalidInput(f"no printer named {printer_name!r}", field="printer")
        options = {
            "template": template,
            "actor": actor,
            "printer": printer,
            "copies": copies,
            "reprint_reason": reprint_reason,
            "source": "cli",
        }
        if template == services.SHIPPING_TEMPLATE:
            job = services.print_request(_request(tuple(codes)), **options)
        elif template in services.container_templates():
            boxes = _boxes(tuple(codes))
            for box in boxes:
                check_site(actor, box.site_id, field="barcodes")
            job = services.create_print_job([services.container_values(box) for box in boxes], **options)
        else:
            job = services.print_specimens(_specimens(codes), **options)
        job_id, payload, count = job.id, job.payload, job.label_count
    if pdf_path and not printer_name:
        with open(pdf_path, "wb") as out:
            out.write(payload)
        click.echo(f"job {job_id}: {count} label(s) written to {pdf_path}")
        return

    job = db.session.get(PrintJob, job_id)
    db.session.refresh(job)
    click.echo(f"job {job_id}: {job.status.value}" + (f" ({job.last_error})" if job.last_error else ""))
    if job.status.value == "failed":
        raise SystemExit(1)
