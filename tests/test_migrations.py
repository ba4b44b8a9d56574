"""The migrations build exactly the models' schema, and step down and up again."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from biobank import migrate
from biobank.db import Base, configure_engine_events
from tests.conftest import separate_database


@pytest.fixture
def empty_engine(tmp_path):
    """A fresh, empty database; the shared test database is left alone."""
    engine = sa.create_engine(separate_database(tmp_path, "migrations"))
    configure_engine_events(engine)
    yield engine
    engine.dispose()


def _config(connection):
    from alembic.config import Config

    cfg = Config(str(migrate.MIGRATIONS / "alembic.ini"))
    cfg.set_main_option("script_location", str(migrate.MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def _diff(engine):
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)


def _revision(engine):
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def test_there_is_a_single_head():
    assert len(ScriptDirectory.from_config(_config(None)).get_heads()) == 1


def test_upgrade_from_empty_matches_the_models(empty_engine):
    with empty_engine.begin() as conn:
        command.upgrade(_config(conn), "head")
    assert _diff(empty_engine) == []


def test_downgrade_one_step_and_upgrade_again(empty_engine):
    with empty_engine.begin() as conn:
        command.upgrade(_config(conn), "head")
    script = ScriptDirectory.from_config(_config(None))
    head = script.get_revision(script.get_current_head())
    with empty_engine.begin() as conn:
        command.downgrade(_config(conn), "-1")
    assert _revision(empty_engine) == head.down_revision
    if head.down_revision is None:
        assert "specimens" not in sa.inspect(empty_engine).get_table_names()
    with empty_engine.begin() as conn:
        command.upgrade(_config(conn), "head")
    assert _diff(empty_engine) == []


def test_a_parcel_sent_before_per_site_parcels_keeps_its_site_and_tubes(app, empty_engine):
    """0015 on data: a request's single earlier parcel leaves from its tubes' site, and its
    tubes know they travelled in it; stepping down keeps the parcel."""
    from biobank.models import Allocation, Cohort, SampleRequest, Shipment
    from tests.factories import Builder

    with empty_engine.begin() as conn:
        command.upgrade(_config(conn), "head")
    with app.app_context(), sa.orm.Session(bind=empty_engine) as session:
        make = Builder(session)
        north = make.site(code="NRT", name="Northern Hospital")
        researcher = make.user("r", role="researcher", sites=[north])
        person = make.participant(site=north)
        case = make.case(participant=person)
        tube = make.specimen(
            participant=person, history=False, collection_event=make.visit(participant=person, case=case)
        )
        cohort = make._save(Cohort(name="c", level="cases", owner_id=researcher.id))
        request = make._save(
            SampleRequest(
                code="REQ-1",
                title="t",
                purpose="p",
                ethics_reference="IRB",
                cohort_id=cohort.id,
                requester_id=researcher.id,
                requirements={},
                consent_scopes=[],
            )
        )
        parcel = make._save(
            Shipment(
                request_id=request.id,
                site_id=north.id,
                destination="Lab",
                courier="ColdChain",
                temperature="dry_ice",
                shipped_by="tech",
            )
        )
        make._save(
            Allocation(
                request_id=request.id,
                specimen_id=tube.id,
                case_id=case.id,
                allocated_by="m",
                shipment_id=parcel.id,
            )
        )
        session.commit()
        ids = (north.id, parcel.id, request.id)
    with empty_engine.begin() as conn:
        command.downgrade(_config(conn), "0014")
    with empty_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM shipments")).scalar() == 1
    with empty_engine.begin() as conn:
        command.upgrade(_config(conn), "head")
    with empty_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT site_id FROM shipments")).scalar() == ids[0]
        assert conn.execute(sa.text("SELECT shipment_id FROM allocations")).scalar() == ids[1]
    with app.app_context(), sa.orm.Session(bind=empty_engine) as session:
        south = Builder(session).site(code="CTR", name="Central Hospital")
        session.add(
            Shipment(
                request_id=ids[2],
                site_id=south.id,
                destination="Lab",
                courier="ColdChain",
                temperature="dry_ice",
                shipped_by="tech",
            )
        )
        session.commit()
    # the older schema would lose a parcel: refused
    with pytest.raises(RuntimeError, match="parcels from several sites"), empty_engine.begin() as conn:
        command.downgrade(_config(conn), "0014")
    with empty_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM shipments")).scalar() == 2


def test_variants_take_their_build_and_one_contig_name_without_losing_a_call(app, empty_engine):
    """0023 on data: chr7 and 7 of one build become one variant with both calls and the
    annotation one of them had; a variant called in files of two builds (and one of no
    build) becomes one per build, each call following its file; stepping down and up
    again keeps every call."""
    from tests.factories import Builder

    with empty_engine.begin() as conn:
        command.upgrade(_config(conn), "0022")
    with app.app_context(), sa.orm.Session(bind=empty_engine) as session:
        make = Builder(session)
        site = make.site(code="MIG", name="Migration Hospital")
        person = make.participant(site=site)
        tubes = [make.specimen(participant=person, history=False).id for _ in range(3)]
        session.commit()
    with empty_engine.begin() as conn:
        files = {}
        for n, build in enumerate(("GRCh37", "GRCh38", None)):
            files[build] = conn.execute(
                sa.text(
                    "INSERT INTO omics_files (kind, format, filename, uri, size_bytes, sha256, "
                    "reference_genome, status, variant_count, call_count, feature_count, "
                    "created_by, created_at) VALUES ('exome', 'vcf', :name, :uri, 1, :sha, "
                    ":build, 'ingested', 0, 0, 0, 'm', CURRENT_TIMESTAMP) RETURNING id"
                ),
                {"name": f"f{n}.vcf", "uri": f"f{n}.vcf", "sha": f"{n:064d}", "build": build},
            ).scalar()

        def variant(chrom, pos, ref, alt, gene):
            return conn.execute(
                sa.text(
                    "INSERT INTO variants (chrom, pos, ref, alt, gene) VALUES "
                    "(:chrom, :pos, :ref, :alt, :gene) RETURNING id"
                ),
                {"chrom": chrom, "pos": pos, "ref": ref, "alt": alt, "gene": gene},
            ).scalar()

        with_chr = variant("chr7", 140453136, "A", "T", "BRAF")
        without = variant("7", 140453136, "A", "T", None)
        shared = variant("1", 100, "C", "G", None)
        for variant_id, build, tube in (
            (with_chr, "GRCh37", 0),
            (without, "GRCh37", 1),
            (shared, "GRCh37", 0),
            (shared, "GRCh38", 1),
            (shared, None, 2),
        ):
            conn.execute(
                sa.text(
                    "INSERT INTO variant_calls (variant_id, file_id, specimen_id, genotype) "
                    "VALUES (:v, :f, :s, '0/1')"
                ),
                {"v": variant_id, "f": files[build], "s": tubes[tube]},
            )
    calls = (
        "SELECT v.reference_genome, v.chrom, v.pos, v.gene, c.file_id, c.specimen_id "
        "FROM variant_calls c JOIN variants v ON v.id = c.variant_id "
        "ORDER BY c.file_id, c.specimen_id, v.pos"
    )
    expected = sorted(
        [
            ("GRCh37", "7", 140453136, "BRAF", files["GRCh37"], tubes[0]),
            ("GRCh37", "7", 140453136, "BRAF", files["GRCh37"], tubes[1]),
            ("GRCh37", "1", 100, None, files["GRCh37"], tubes[0]),
            ("GRCh38", "1", 100, None, files["GRCh38"], tubes[1]),
            ("", "1", 100, None, files[None], tubes[2]),
        ],
        key=lambda row: (row[4], row[5], row[2]),
    )
    for target in ("head", "0022", "head"):
        with empty_engine.begin() as conn:
            (command.upgrade if target == "head" else command.downgrade)(_config(conn), target)
        if target == "head":
            with empty_engine.connect() as conn:
                assert [tuple(row) for row in conn.execute(sa.text(calls))] == expected
                assert conn.execute(sa.text("SELECT COUNT(*) FROM variants")).scalar() == 4
        else:
            with empty_engine.connect() as conn:
                assert conn.execute(sa.text("SELECT COUNT(*) FROM variant_calls")).scalar() == 5
    assert _diff(empty_engine) == []
