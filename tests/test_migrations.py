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
        tube = make.specimen(participant=person, history=False, collection_event=make.visit(
            participant=person, case=case))
        cohort = make._save(Cohort(name="c", level="cases", owner_id=researcher.id))
        request = make._save(SampleRequest(
            code="REQ-1", title="t", purpose="p", ethics_reference="IRB", cohort_id=cohort.id,
            requester_id=researcher.id, requirements={}, consent_scopes=[]))
        parcel = make._save(Shipment(request_id=request.id, site_id=north.id, destination="Lab",
                                     courier="ColdChain", temperature="dry_ice",
                                     shipped_by="tech"))
        make._save(Allocation(request_id=request.id, specimen_id=tube.id, case_id=case.id,
                              allocated_by="m", shipment_id=parcel.id))
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
        session.add(Shipment(request_id=ids[2], site_id=south.id, destination="Lab",
                             courier="ColdChain", temperature="dry_ice", shipped_by="tech"))
        session.commit()
    # the older schema would lose a parcel: refused
    with pytest.raises(RuntimeError, match="parcels from several sites"), \
            empty_engine.begin() as conn:
        command.downgrade(_config(conn), "0014")
    with empty_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM shipments")).scalar() == 2
