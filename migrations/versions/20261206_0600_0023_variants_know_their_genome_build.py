"""variants: each knows its genome build, and a contig has one name (7, not chr7)

A variant takes the build of the files that call it; one called in files of several builds
is copied to each build, the calls following their file. Variants written ``chr7`` and ``7``
(or ``chrM``, ``M`` and ``MT``) of one build become one, keeping every call and annotation.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06 06:00:00+00:00
"""

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

_STRIPPED = ("CASE WHEN lower(substr({c}, 1, 3)) = 'chr' THEN substr({c}, 4) ELSE {c} END")
_FILE_BUILD = "COALESCE(f.reference_genome, '')"


def _canonical(column: str) -> str:
    stripped = _STRIPPED.format(c=column)
    return f"(CASE WHEN {stripped} IN ('M', 'm') THEN 'MT' ELSE {stripped} END)"


def _merge(conn: sa.Connection, group: str) -> None:
    """Make the variants of each *group* (SQL over ``variants`` aliased ``v``, listing the
    grouping expressions) one: the lowest id keeps every call and fills its annotation from
    the others."""
    conn.execute(sa.text(
        f"CREATE TEMPORARY TABLE variant_keep AS SELECT v.id AS id, k.keep AS keep "
        f"FROM variants v JOIN (SELECT {group} AS g, MIN(v.id) AS keep FROM variants v "
        f"GROUP BY {group} HAVING COUNT(*) > 1) k ON k.g = {group} WHERE v.id <> k.keep"))
    for column in ("gene", "consequence", "protein_change"):
        conn.execute(sa.text(
            f"UPDATE variants SET {column} = (SELECT MAX(o.{column}) FROM variant_keep m "
            f"JOIN variants o ON o.id = m.id WHERE m.keep = variants.id) "
            f"WHERE {column} IS NULL AND id IN (SELECT keep FROM variant_keep)"))
    conn.execute(sa.text(
        "DELETE FROM variant_calls WHERE variant_id IN (SELECT id FROM variant_keep) AND "
        "EXISTS (SELECT 1 FROM variant_keep m JOIN variant_calls c2 ON c2.variant_id = m.keep "
        "WHERE m.id = variant_calls.variant_id AND c2.file_id = variant_calls.file_id "
        "AND c2.specimen_id = variant_calls.specimen_id)"))
    conn.execute(sa.text(
        "UPDATE variant_calls SET variant_id = (SELECT keep FROM variant_keep m "
        "WHERE m.id = variant_calls.variant_id) "
        "WHERE variant_id IN (SELECT id FROM variant_keep)"))
    conn.execute(sa.text("DELETE FROM variants WHERE id IN (SELECT id FROM variant_keep)"))
    conn.execute(sa.text("DROP TABLE variant_keep"))


_CALLS_FK = "fk_variant_calls_variant_id_variants"


@contextmanager
def _rebuilding_variants() -> Iterator[None]:
    """SQLite changes a unique key by copying the table, and cannot drop ``variants`` while
    calls refer to it: the calls' foreign key is taken off meanwhile and put back after
    (checked then, row by row). PostgreSQL alters the table in place."""
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        with op.batch_alter_table("variant_calls") as batch:
            batch.drop_constraint(_CALLS_FK, type_="foreignkey")
    yield
    if sqlite:
        with op.batch_alter_table("variant_calls") as batch:
            batch.create_foreign_key(_CALLS_FK, "variants", ["variant_id"], ["id"])


def upgrade() -> None:
    with _rebuilding_variants(), op.batch_alter_table("variants") as batch:
        batch.add_column(sa.Column(
            "reference_genome", sa.String(length=32), server_default="", nullable=False,
            comment="The genome build (GRCh37, GRCh38…); empty when no file said"))
        batch.drop_constraint("uq_variants_chrom_pos_ref_alt", type_="unique")
        batch.create_unique_constraint(
            "uq_variants_reference_genome_chrom_pos_ref_alt",
            ["reference_genome", "chrom", "pos", "ref", "alt"])
    conn = op.get_bind()
    # the build of the first file that calls the variant
    conn.execute(sa.text(
        f"UPDATE variants SET reference_genome = COALESCE((SELECT {_FILE_BUILD} "
        "FROM variant_calls c JOIN omics_files f ON f.id = c.file_id "
        "WHERE c.variant_id = variants.id ORDER BY c.file_id LIMIT 1), '')"))
    # called in files of other builds too: a copy per build, the calls following their file
    conn.execute(sa.text(
        "INSERT INTO variants (reference_genome, chrom, pos, ref, alt, gene, consequence, "
        f"protein_change) SELECT DISTINCT {_FILE_BUILD}, v.chrom, v.pos, v.ref, v.alt, v.gene, "
        "v.consequence, v.protein_change FROM variant_calls c "
        "JOIN omics_files f ON f.id = c.file_id JOIN variants v ON v.id = c.variant_id "
        f"WHERE {_FILE_BUILD} <> v.reference_genome"))
    conn.execute(sa.text(
        "UPDATE variant_calls SET variant_id = (SELECT n.id FROM variants v "
        "JOIN omics_files f ON f.id = variant_calls.file_id "
        f"JOIN variants n ON n.reference_genome = {_FILE_BUILD} AND n.chrom = v.chrom "
        "AND n.pos = v.pos AND n.ref = v.ref AND n.alt = v.alt "
        "WHERE v.id = variant_calls.variant_id) "
        "WHERE EXISTS (SELECT 1 FROM variants v JOIN omics_files f "
        "ON f.id = variant_calls.file_id WHERE v.id = variant_calls.variant_id "
        f"AND {_FILE_BUILD} <> v.reference_genome)"))
    # one name per contig: chr7 and 7 of one build are one variant
    separator = "'|'"
    canonical = _canonical("v.chrom")
    _merge(conn, f"(v.reference_genome || {separator} || {canonical} || {separator} || "
                 f"CAST(v.pos AS VARCHAR(12)) || {separator} || v.ref || {separator} || v.alt)")
    conn.execute(sa.text(f"UPDATE variants SET chrom = {_canonical('chrom')} "
                         f"WHERE chrom <> {_canonical('chrom')}"))


def downgrade() -> None:
    conn = op.get_bind()
    separator = "'|'"
    _merge(conn, f"(v.chrom || {separator} || CAST(v.pos AS VARCHAR(12)) || {separator} || "
                 f"v.ref || {separator} || v.alt)")
    with _rebuilding_variants(), op.batch_alter_table("variants") as batch:
        batch.drop_constraint("uq_variants_reference_genome_chrom_pos_ref_alt", type_="unique")
        batch.create_unique_constraint("uq_variants_chrom_pos_ref_alt",
                                       ["chrom", "pos", "ref", "alt"])
        batch.drop_column("reference_genome")
