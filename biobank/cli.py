"""The `biobank` command line: database, users, tokens, demo data and the server."""

from __future__ import annotations

import datetime as dt
import gc
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa
from flask import Flask, current_app
from flask.cli import FlaskGroup, ScriptInfo, with_appcontext

from biobank import migrate
from biobank.app import create_app
from biobank.audit import set_actor
from biobank.db import db, read_only, refresh_statistics, transaction, utcnow
from biobank.demo import DEMO_USERS, database_is_empty, load_demo
from biobank.errors import BiobankError, InvalidInput, NotFound
from biobank.keys import rotate_key
from biobank.models import CustodyEvent, ImportStatus, User
from biobank.models.vocab import Role
from biobank.services import images, imports
from biobank.services.fhir import export_ndjson
from biobank.services.ledger import create_checkpoint, store_path, verify_ledger
from biobank.services.miabis import export_miabis
from biobank.services.tokens import get_token, list_tokens, revoke_token
from biobank.services.users import create_token, create_user, get_user, system_actor
from biobank.tasks import recover_jobs


def _create_app() -> Flask:
    return create_app()


class BiobankGroup(FlaskGroup):
    """Domain errors end a command with their message and exit status 1, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BiobankError as error:
            where = f" ({error.field})" if error.field else ""
            raise click.ClickException(f"{error.message}{where}") from error
        finally:
            # Close pooled connections when the command ends, not when the process does.
            app = getattr(ctx.find_object(ScriptInfo), "_loaded_app", None)
            if app is not None:
                with app.app_context():
                    db.engine.dispose()


@click.group(cls=BiobankGroup, create_app=_create_app, add_default_commands=False, add_version_option=False)
def main() -> None:
    """Biobank LIMS: manage the database, users, demo data and the server."""


@main.group("db")
def db_group() -> None:
    """Database schema migrations."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
@with_appcontext
def db_upgrade(revision: str) -> None:
    """Upgrade the database schema to REVISION (default: the latest)."""
    migrate.upgrade(revision)
    click.echo(f"database at {migrate.current_revision()}")


@db_group.command("downgrade")
@click.argument("revision")
@with_appcontext
def db_downgrade(revision: str) -> None:
    """Downgrade the database schema to REVISION (e.g. -1)."""
    migrate.downgrade(revision)
    click.echo(f"database at {migrate.current_revision()}")


@db_group.command("current")
@with_appcontext
def db_current() -> None:
    """Print the schema revision of the database."""
    click.echo(migrate.current_revision() or "empty")


@main.group("custody")
def custody_group() -> None:
    """The tamper-evident custody ledger."""


@custody_group.command("verify")
@click.option("--all", "show_all", is_flag=True, help="List every finding, not only the first")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=min(os.cpu_count() or 1, 8),
    show_default="the number of CPUs, at most 8",
    help="Processes checking chains in parallel (large ledgers only; each holds "
    "an application, about 100 MB)",
)
@with_appcontext
def custody_verify(show_all: bool, workers: int) -> None:
    """Check every custody chain, the seal and every checkpoint, in the database and in the
    store outside it; exit 1 naming the first broken link (all of them with --all)."""
    with read_only():  # on SQLite, writers go on working while the ledger is checked
        total = db.session.scalar(sa.select(sa.func.count(CustodyEvent.id))) or 0
        with click.progressbar(
            length=total, label="checking custody events", file=sys.stderr, show_pos=True
        ) as bar:
            seen = [0]

            def advance(done: int) -> None:
                bar.update(done - seen[0])
                seen[0] = done

            report = verify_ledger(stop_at_first=not show_all, workers=workers, progress=advance)
            bar.update(max(report.events - seen[0], 0))
    db.session.rollback()
    click.echo(
        f"checked {report.events:,} events of {report.specimens:,} specimens, "
        f"{report.checkpoints} checkpoints in the database and {report.external} in "
        f"{store_path()}"
    )
    if report.seal:
        click.echo(
            f"events before the custody key: {report.seal['events']:,}, sealed on "
            f"{report.seal['created_at'][:19].replace('T', ' ')} UTC "
            f"(checkpoint {report.seal['id']})"
        )
    for witness in report.witnesses:
        click.echo(
            f"witness {witness['witness']}: "
            + (
                f"not consulted: {witness['error']}"
                if "error" in witness
                else f"keeps {witness['checkpoints']} checkpoints of this instance"
            )
        )
    if report.ok:
        click.echo("custody ledger intact")
        return
    for finding in report.findings:
        click.echo(f"BROKEN: {finding}")
    raise SystemExit(1)


@custody_group.command("checkpoint")
@with_appcontext
def custody_checkpoint() -> None:
    """Sign the current head of every chain and append it to the store outside the database
    (with any checkpoint not written out yet). The beat scheduler does it every
    CUSTODY_CHECKPOINT_MINUTES."""
    with transaction():
        checkpoint = create_checkpoint()
    click.echo(
        f"checkpoint {checkpoint.id}: {checkpoint.event_count:,} events, "
        f"{checkpoint.specimen_count:,} specimens, root {checkpoint.root}, signature "
        f"{checkpoint.hash} (key {checkpoint.key_id}); kept in {store_path()}"
    )


@custody_group.command("rotate-key")
@with_appcontext
def custody_rotate_key() -> None:
    """Replace the custody key in the instance folder; the old one is kept as retired, so
    every event and checkpoint it signed still verifies. A checkpoint under the new key
    follows."""
    try:
        old, new = rotate_key()
    except RuntimeError as error:
        raise click.ClickException(str(error)) from None
    with transaction():
        checkpoint = create_checkpoint()
    click.echo(f"custody key {old} retired; new key {new}; checkpoint {checkpoint.id} signed with it")


@main.group("export")
def export_group() -> None:
    """Export the biobank in the network's standard formats."""


@export_group.command("fhir")
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for the NDJSON files, one per resource type",
)
@click.option(
    "--batch", type=click.IntRange(100, 100_000), default=5000, show_default=True, help="Rows read per query"
)
@with_appcontext
def export_fhir(out: Path, batch: int) -> None:
    """Participants, cases, lesions, consents and specimens as FHIR R4 NDJSON (the Bulk Data
    layout: Patient, Condition, BodyStructure, Consent, Specimen), pseudonymous.

    Streamed in batches: memory stays flat however large the biobank is.
    """
    started = time.perf_counter()
    with read_only():
        counts = export_ndjson(
            out,
            batch=batch,
            progress=lambda kind, n: (
                click.echo(f"  {kind}: {n:,}", err=True) if n % (batch * 20) == 0 else None
            ),
        )
    db.session.rollback()
    seconds = time.perf_counter() - started
    total = sum(counts.values())
    click.echo(
        ", ".join(f"{n:,} {kind}" for kind, n in counts.items())
        + f" written to {out} in {seconds:.1f} s ({total / max(seconds, 1e-9):,.0f} "
        "resources/s)"
    )


@export_group.command("miabis")
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for miabis-transaction.json and collections.tsv",
)
@with_appcontext
def export_miabis_cmd(out: Path) -> None:
    """The biobank, its collections and its consented samples in the MIABIS on FHIR profiles
    (a FHIR transaction Bundle) and the BBMRI-ERIC Directory's collection table.

    Describe the biobank first: BIOBANK_MIABIS_BIOBANK_ID, _BIOBANK_NAME, _COUNTRY,
    _CONTACT_NAME, _CONTACT_SURNAME, _CONTACT_EMAIL and _JURISTIC_PERSON.
    """
    try:
        with read_only():
            summary = export_miabis(
                out,
                current_app.config,
                progress=lambda n: click.echo(f"  {n:,} samples", err=True) if n % 100_000 == 0 else None,
            )
    except BiobankError as error:
        raise click.UsageError(error.message) from None
    finally:
        db.session.rollback()
    click.echo(
        f"{summary.collections} collections, {summary.donors:,} donors, "
        f"{summary.samples:,} samples, {summary.observations:,} diagnoses written to "
        f"{out}"
    )
    for code, n in sorted(summary.unknown_codes.items()):
        click.echo(f"left out: diagnosis {code} of {n:,} sample(s), not a WHO ICD-10 code", err=True)


@main.command("create-user")
@click.argument("username")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option("--full-name", default=None, help="Display name (default: the username)")
@click.option("--email", default=None)
@click.option("--site", "sites", multiple=True, help="Site code the user belongs to (repeatable)")
@click.password_option(help="Password (prompted when omitted)")
@with_appcontext
def create_user_cmd(
    username: str, role: str, full_name: str | None, email: str | None, sites: tuple[str, ...], password: str
) -> None:
    """Create a user who can log in."""
    with transaction():
        actor = system_actor()
        create_user(
            username=username,
            role=Role(role),
            full_name=full_name or username,
            email=email,
            site_codes=list(sites),
            password=password,
            actor=actor,
        )
    click.echo(f"created {role} {username}")


@main.command("create-token")
@click.argument("username")
@click.option("--name", default="cli", help="What the token is for")
@click.option("--days", type=int, default=None, help="Expire after this many days")
@with_appcontext
def create_token_cmd(username: str, name: str, days: int | None) -> None:
    """Create an API token for USERNAME and print it (it is shown only once)."""
    with transaction():
        system_actor()
        expires = utcnow() + dt.timedelta(days=days) if days else None
        secret = create_token(get_user(username), name=name, expires_at=expires)
    click.echo(secret)


@main.group("tokens")
def tokens_cli() -> None:
    """List and revoke API tokens (create them with create-token)."""


@tokens_cli.command("list")
@click.argument("username")
@with_appcontext
def tokens_list_cmd(username: str) -> None:
    """USERNAME's tokens: id, name, prefix, created, expires, last used, revoked."""

    def when(value: Any) -> str:
        return value.strftime("%Y-%m-%d %H:%M") if value else "-"

    for t in list_tokens(get_user(username)):
        click.echo(
            f"{t.id}\t{t.name}\t{t.prefix}…\tcreated {when(t.created_at)}\t"
            f"expires {when(t.expires_at)}\tused {when(t.last_used_at)}\t"
            f"revoked {when(t.revoked_at)}"
        )


@tokens_cli.command("revoke")
@click.argument("token_id", type=int)
@with_appcontext
def tokens_revoke_cmd(token_id: int) -> None:
    """Revoke token TOKEN_ID: it answers 401 from the next request on."""
    with transaction():
        actor = system_actor()
        token = revoke_token(get_token(token_id, actor=actor))
        click.echo(f"revoked token {token.id} ({token.name}) of {token.user.username}")


@main.command("demo")
@click.option("--seed", type=int, default=None, help="Random seed (default: configured)")
@click.option("--participants", type=int, default=300, show_default=True)
@click.option("--specimens-per-participant", type=float, default=10.0, show_default=True)
@with_appcontext
def demo_cmd(seed: int | None, participants: int, specimens_per_participant: float) -> None:
    """Load the demo biobank into the configured (empty) database."""
    summary = load_demo(
        seed=seed if seed is not None else current_app.config["DEMO_SEED"],
        participants=participants,
        specimens_per_participant=specimens_per_participant,
    )
    click.echo(", ".join(f"{n} {k}" for k, n in summary.items()))


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--template",
    default="master",
    show_default=True,
    help="master, participants, cases, specimens, or openspecimen (a query export)",
)
@click.option("--study", "study_code", default=None, help="openspecimen: the study the specimens join")
@click.option(
    "--site",
    "site_code",
    default=None,
    help="openspecimen: the site of its participants (default: as exported)",
)
@click.option("--dry-run", is_flag=True, help="Check every row, write nothing")
@click.option("--delimiter", default=",", show_default=True, help="CSV column separator")
@click.option(
    "--user",
    "username",
    default=None,
    help="Import as this user (site memberships apply); default: the system account",
)
@with_appcontext
def import_cmd(
    file: Path,
    template: str,
    study_code: str | None,
    site_code: str | None,
    dry_run: bool,
    delimiter: str,
    username: str | None,
) -> None:
    """Import a CSV or XLSX file: all rows or none.

    Every row is checked first; problems are listed with their line and column and nothing
    is written. A file that was imported before is refused.
    """
    options = None
    if template == "openspecimen":
        if not study_code:
            raise click.UsageError("--study is required with --template openspecimen")
        options = {"study_code": study_code, "site_code": site_code}
    with transaction():
        actor = _user_or_system(username)
        job = imports.create_job(
            actor=actor, path=file.resolve(), filename=file.name, template=template, dry_run=dry_run
        )
    size = file.stat().st_size
    started = time.monotonic()

    def progress(rows: int, share: float | None) -> None:
        rate = rows / max(time.monotonic() - started, 1e-6)
        bar = ""
        if share is not None:
            done = int(share * 30)
            bar = f"[{'#' * done}{'.' * (30 - done)}] {share:4.0%}  "
        click.echo(f"\r{bar}{rows:,} rows checked  ({rate:,.0f} rows/s)", nl=False, err=True)

    job = imports.run_job(job.id, delimiter=delimiter, progress=progress, options=options)
    click.echo("", err=True)
    if job.status is ImportStatus.FAILED:
        for problem in imports.problems_of(job, limit=50):
            where = f"line {problem.line}" if problem.line else "file"
            column = f", {problem.column}" if problem.column else ""
            click.echo(f"{where}{column}: {problem.message}", err=True)
        more = job.error_count - 50
        if more > 0:
            kept = min(job.error_count, imports.MAX_PROBLEMS)
            report = (
                "the job's report lists them all"
                if kept == job.error_count
                else f"the job's report keeps the first {kept:,}"
            )
            click.echo(f"… and {more:,} more ({report})", err=True)
        raise click.ClickException(
            f"import {job.id} failed: {job.error_count:,} problems in "
            f"{job.rows_read:,} rows; nothing was written"
        )
    took = time.monotonic() - started
    if job.status is ImportStatus.VALIDATED:
        click.echo(
            f"{job.rows_read:,} rows checked, no problem found; nothing written (dry run, {took:.1f} s)"
        )
        return
    written = ", ".join(f"{n:,} {table}" for table, n in job.created.items())
    click.echo(
        f"import {job.id}: {job.rows_read:,} rows ({size / 1e6:.1f} MB) in {took:.1f} s; wrote {written}"
    )


@main.command("import-images")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--metadata",
    "metadata_csv",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV: filename, modality, case/lesion/specimen, acquisition_day, ...",
)
@click.option(
    "--user",
    "username",
    default=None,
    help="Register as this user (site memberships apply); default: the system account",
)
@with_appcontext
def import_images_cmd(folder: Path, metadata_csv: Path, username: str | None) -> None:
    """Register the images of a folder that a metadata CSV lists: all of them or none.

    Columns: filename, modality (dermoscopy, clinical_overview, clinical_closeup, wsi),
    case, lesion or specimen, acquisition_day (days from diagnosis), dermoscopic_image_type,
    device, quality_flags (separated by ;) and ISIC clinical fields (diagnosis,
    benign_malignant, melanocytic, anatom_site_general, ...).
    """
    with transaction():
        actor = _user_or_system(username)
    try:
        with transaction():
            counts = images.register_folder(actor=actor, folder=folder, metadata_csv=metadata_csv)
    except InvalidInput as exc:
        for problem in exc.extra.get("problems", []):
            click.echo(f"line {problem['line']}, {problem['column']}: {problem['message']}", err=True)
        raise click.ClickException(exc.message) from None
    click.echo(
        f"{counts['registered']} image(s) registered, {counts['already_registered']} already registered"
    )


@main.command("import-template")
@click.argument("template")
@click.option("--format", "fmt", type=click.Choice(["csv", "xlsx"]), default="csv", show_default=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File to write (default: <template>.<format> here)",
)
def import_template_cmd(template: str, fmt: str, output: Path | None) -> None:
    """Write an import template (master, participants, cases or specimens)."""
    imports.check_template(template)
    output = output or Path(f"{template}.{fmt}")
    if fmt == "csv":
        output.write_text(imports.template_csv(template), encoding="utf-8")
    else:
        output.write_bytes(imports.template_xlsx(template))
    click.echo(f"wrote {output}")


def _user_or_system(username: str | None) -> Any:
    if username is None:
        return system_actor()
    user = db.session.scalar(sa.select(User).where(User.username == username))
    if user is None or not user.is_active:
        raise NotFound(f"no active user {username!r}", field="user")
    set_actor(db.session, user)
    return user


@main.command("serve")
@click.option("--demo", is_flag=True, help="Create the schema and load the demo biobank first")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=5000, show_default=True)
@click.option("--workers", type=int, default=2, show_default=True)
@click.option("--threads", type=int, default=4, show_default=True)
@with_appcontext
def serve_cmd(demo: bool, host: str, port: int, workers: int, threads: int) -> None:
    """Serve the LIMS with gunicorn."""
    if demo:
        # The embedded demo runs on plain HTTP: its session cookie cannot be HTTPS-only.
        os.environ.setdefault("BIOBANK_SESSION_COOKIE_SECURE", "false")
        migrate.upgrade()

        if database_is_empty():
            click.echo("loading the demo biobank…")
            summary = _load_demo_apart(current_app.config["DEMO_SEED"])
            click.echo(", ".join(f"{n} {k}" for k, n in summary.items()))

        click.echo("demo logins: " + ", ".join(f"{u}/{p}" for u, p, _ in DEMO_USERS))

    if refresh_statistics(only_if_missing=True):
        click.echo("gathered the database's table statistics")
    for job_id in recover_jobs():
        click.echo(f"import job {job_id} was interrupted: marked failed")
    db.engine.dispose()  # the workers open their own connections
    if current_app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        # One process keeps SQLite's single writer simple; threads still serve in parallel.
        workers = 1
    _run_gunicorn(host=host, port=port, workers=workers, threads=threads)


def _load_demo_apart(seed: int) -> dict[str, int]:
    """Load the demo in a process of its own, started fresh (spawned): its RNA-Seq QC starts
    OpenMP threads, and a gunicorn worker forked from a process whose OpenMP has started is
    terminated by the runtime the first time it computes in parallel."""
    db.session.remove()  # nothing of this process holds the database while it loads
    db.engine.dispose()
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_load_demo_here, seed).result()


def _load_demo_here(seed: int) -> dict[str, int]:
    app = _create_app()
    with app.app_context():
        try:
            return load_demo(seed=seed)
        finally:
            db.engine.dispose()


def _freeze_startup_objects(_worker: Any) -> None:
    """Move what a worker made while loading the app (modules, mappers, schemas: about
    170,000 objects, all living as long as the worker) out of the garbage collector's
    sight. Every full collection walked them all: a pause of 90–130 ms every few hundred
    requests, which a scan caught in it waited out."""
    gc.freeze()


def _gunicorn(*, host: str, port: int, workers: int, threads: int) -> Any:
    """The gunicorn application ``biobank serve`` runs."""
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("threads", threads)
            self.cfg.set("accesslog", "-")
            # No request-line limit of gunicorn's own (it would answer a long GET filter
            # with an HTML 414): the application refuses long query strings with a 400
            # problem that names them (MAX_QUERY_STRING_BYTES).
            self.cfg.set("limit_request_line", 0)
            self.cfg.set("post_worker_init", _freeze_startup_objects)

        def load(self) -> Flask:
            return _create_app()

    return Server()


def _run_gunicorn(*, host: str, port: int, workers: int, threads: int) -> None:
    click.echo(f"serving on http://{host}:{port}  (API docs: http://{host}:{port}/api/docs)")
    sys.argv = [sys.argv[0]]
    os.environ.setdefault("SERVER_SOFTWARE", "gunicorn")
    _gunicorn(host=host, port=port, workers=workers, threads=threads).run()


def init_app(app: Flask) -> None:
    """Expose the same commands through `flask --app biobank`."""
    for command in main.commands.values():
        app.cli.add_command(command)


if __name__ == "__main__":
    main()
