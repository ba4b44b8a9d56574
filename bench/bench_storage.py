"""Free-position search among 1,000,000 positions, and descendants of a deep lineage.

    python -m bench.bench_storage --backend both

Builds `bench_storage` (SQLite file in bench/data, or a PostgreSQL database) once: 48 −80 °C
upright freezers from the template (1,010,880 positions), 60% of them occupied.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random

import sqlalchemy as sa

from bench.common import database_url, timed


def build(url: str) -> None:
    from biobank import create_app
    from biobank.db import db, transaction
    from biobank.models import Participant, Site, Specimen, StorageContainer, Study
    from biobank.models.vocab import ContainerKind, MaterialType, SpecimenStatus

    app = create_app({"DATABASE_URL": url})
    with app.app_context():
        from biobank import migrate

        migrate.upgrade()
        if db.session.scalar(sa.select(sa.func.count(StorageContainer.id))):
            db.engine.dispose()
            return
        print("  building 48 freezers with 611,520 specimens…", flush=True)
        from biobank.services.storage import create_from_template
        from biobank.services.users import system_actor

        with transaction():
            actor = system_actor()
            site = Site(code="BEN", name="Bench site")
            study = Study(code="BENCH", title="Bench")
            db.session.add_all([site, study])
            db.session.flush()
            actor.sites.append(site)
            participant = Participant(code="B-1", study=study, site=site)
            db.session.add(participant)
            for n in range(48):
                create_from_template(
                    "upright-freezer-80", actor=actor, name=f"Freezer {n:02d}", site_id=site.id
                )
            boxes = (
                db.session.execute(
                    sa.select(StorageContainer.id).where(StorageContainer.kind == ContainerKind.BOX)
                )
                .scalars()
                .all()
            )
            rng = random.Random(1)
            now = dt.datetime.now(dt.UTC)
            rows = []
            for box in boxes:
                for slot in rng.sample(range(81), 49):  # ~60% full, scattered
                    rows.append(
                        {
                            "barcode": f"BS{len(rows):08d}",
                            "participant_id": participant.id,
                            "site_id": site.id,
                            "lineage": "primary",
                            "material_type": MaterialType.PLASMA,
                            "pathology_status": "not_specified",
                            "status": SpecimenStatus.IN_STORAGE,
                            "freeze_thaw_count": 0,
                            "custody_seq": 0,
                            "container_id": box,
                            "pos_row": slot // 9 + 1,
                            "pos_col": slot % 9 + 1,
                            "created_at": now,
                            "updated_at": now,
                        }
                    )
                    if len(rows) % 50_000 == 0:
                        db.session.execute(sa.insert(Specimen), rows[-50_000:])
            db.session.execute(sa.insert(Specimen), rows[len(rows) // 50_000 * 50_000 :])
        db.engine.dispose()


def lineage_tree(url: str) -> int:
    """A specimen with 5 generations and 500 descendants; returns its id."""
    from biobank import create_app
    from biobank.db import db, transaction
    from biobank.models import Participant, Site, Specimen
    from biobank.models.vocab import Lineage, MaterialType

    app = create_app({"DATABASE_URL": url})
    with app.app_context():
        existing = db.session.scalar(sa.select(Specimen.id).where(Specimen.barcode == "LIN-ROOT"))
        if existing:
            db.engine.dispose()
            return existing
        with transaction():
            site = db.session.scalars(sa.select(Site)).first()
            participant = db.session.scalars(sa.select(Participant)).first()
            root = Specimen(
                barcode="LIN-ROOT", participant=participant, site=site, material_type=MaterialType.WHOLE_BLOOD
            )
            db.session.add(root)
            db.session.flush()
            generation, made = [root], 0
            for size in (5, 25, 70, 150, 250):
                nxt = []
                for i in range(size):
                    child = Specimen(
                        barcode=f"LIN-{made:04d}",
                        participant=participant,
                        site=site,
                        material_type=MaterialType.PLASMA,
                        lineage=Lineage.DERIVATIVE,
                        parent_id=generation[i % len(generation)].id,
                    )
                    db.session.add(child)
                    nxt.append(child)
                    made += 1
                db.session.flush()
                generation = nxt
            root_id = root.id
        db.engine.dispose()
    return root_id


def run(backend: str) -> None:
    if backend == "postgresql":
        admin = sa.create_engine(database_url("postgresql", "postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            if not conn.exec_driver_sql("SELECT 1 FROM pg_database WHERE datname = 'bench_storage'").scalar():
                conn.exec_driver_sql('CREATE DATABASE "bench_storage"')
        admin.dispose()
    url = database_url(backend, "bench_storage")
    build(url)
    root = lineage_tree(url)
    from biobank import create_app
    from biobank.db import db
    from biobank.models import Specimen, User
    from biobank.models.vocab import StorageTemperature
    from biobank.services.specimens import lineage_of
    from biobank.services.storage import find_free_space

    app = create_app({"DATABASE_URL": url})
    with app.app_context():
        if backend == "postgresql":
            with db.engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
        actor = db.session.scalars(sa.select(User).where(User.username == "system")).one()
        positions = db.session.scalar(
            sa.text("SELECT SUM(n_rows * n_cols) FROM storage_containers WHERE n_rows IS NOT NULL")
        )
        occupied = db.session.scalar(
            sa.select(sa.func.count(Specimen.id)).where(Specimen.container_id.is_not(None))
        )
        free = timed(
            lambda: find_free_space(actor=actor, count=12, temperature=StorageTemperature.MINUS_60_85), 20
        )
        specimen = db.session.get(Specimen, root)
        descendants = len(lineage_of(specimen)[1])
        lineage = timed(lambda: lineage_of(specimen), 50)
        db.engine.dispose()
    print(f"\n== {backend}: {positions:,} positions, {occupied:,} occupied")
    print(
        f"  12 free positions at −80 °C, close together: p50 {free[0]:.1f} ms, p95 "
        f"{free[1]:.1f} ms (target < 50 ms)"
    )
    print(
        f"  descendants of a specimen ({descendants} over 5 generations): p50 {lineage[0]:.1f} ms,"
        f" p95 {lineage[1]:.1f} ms (target < 20 ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    for backend in ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]:
        run(backend)


if __name__ == "__main__":
    main()
