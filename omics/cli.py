"""`biobank omics …` commands."""

from __future__ import annotations

from pathlib import Path

import click
from flask.cli import with_appcontext

from biobank.db import transaction
from biobank.services.users import system_actor
from omics import services


@click.group("omics")
def omics_cli() -> None:
    """Omics reference data."""


@omics_cli.group("gene-model")
def gene_model_cli() -> None:
    """Gene models (GTF/GFF3) that place unannotated variants in genes."""


@gene_model_cli.command("add")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--build", "reference_genome", required=True, help="e.g. GRCh37")
@with_appcontext
def add_gene_model_cmd(path: Path, reference_genome: str) -> None:
    """Register PATH as the gene model of a genome build (replacing its previous one)."""
    with transaction():
        model, annotated = services.register_gene_model(
            actor=system_actor(), path=path, filename=path.name, reference_genome=reference_genome
        )
        click.echo(
            f"{model.reference_genome}: {model.gene_count} genes from {model.filename}; "
            f"{annotated} variants placed in a gene"
        )


@gene_model_cli.command("list")
@with_appcontext
def list_gene_models_cmd() -> None:
    """List the gene models."""
    for model in services.gene_models():
        click.echo(f"{model.reference_genome:12s} {model.gene_count:>7} genes  {model.filename}")
