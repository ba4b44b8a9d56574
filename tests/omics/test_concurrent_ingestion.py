"""Two VCFs calling the same new variants, ingested at the same time on committed data."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from biobank.db import db, transaction
from omics import services
from omics.formats import open_reader
from omics.models import FileStatus, OmicsKind, Variant, VariantCall
from tests.conftest import wipe
from tests.factories import Builder
from tests.omics.test_vcf import COHORT


@pytest.fixture
def two_files(app, tmp_path):
    """The cohort file and the same records in reverse order, registered and committed."""
    lines = COHORT.read_text().splitlines(keepends=True)
    header = [line for line in lines if line.startswith("#")]
    reversed_file = tmp_path / "melanoma-cohort-reversed.vcf"
    reversed_file.write_text("".join(header + [line for line in reversed(lines) if not line.startswith("#")]))
    with app.app_context():
        make = Builder(db.session)
        site = make.site(code="INGEST")
        admin = make.user("ingester", role="admin", sites=[site])
        ids = []
        for n, path in enumerate((COHORT, reversed_file)):
            person = make.participant(site=site)
            aliquots = {
                name: make.specimen(participant=person).barcode for name in ("MEL-A1", "MEL-A2", "MEL-A3")
            }
            record, _ = services.register_file(
                actor=admin,
                path=path,
                filename=path.name,
                kind=OmicsKind.EXOME,
                sample_map=aliquots,
                lenient=True,
            )  # unsorted on purpose
            ids.append(record.id)
            assert n == 0 or ids[0] != ids[1]
        db.session.commit()
        yield ids
        db.session.rollback()
        wipe(db.engine)
        db.session.remove()


def test_files_sharing_new_variants_ingest_at_once(app, two_files, monkeypatch):
    """Chunks of one record, so that both ingestions insert the same new variants back and
    forth: both succeed, each variant is stored once, every call is kept."""
    monkeypatch.setattr("omics.services.BATCH", 1)
    barrier = threading.Barrier(2)
    failures: list[BaseException] = []

    def ingest(file_id: int) -> None:
        with app.app_context():
            try:
                barrier.wait()
                with transaction():
                    services.ingest_file(services.get_file(file_id))
            except BaseException as error:  # reported below, with the thread's own error
                failures.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=ingest, args=(i,)) for i in two_files]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    with app.app_context():
        files = [services.get_file(i) for i in two_files]
        assert [f.status for f in files] == [FileStatus.INGESTED] * 2
        with open_reader(COHORT) as reader:
            carried = list(reader.carriers())
        assert [(f.variant_count, f.call_count) for f in files] == [
            (len(carried), sum(len(v.calls) for v in carried))
        ] * 2
        assert db.session.scalar(sa.select(sa.func.count(Variant.id))) == len(carried)
        assert db.session.scalar(sa.select(sa.func.count(VariantCall.id))) == 2 * sum(
            len(v.calls) for v in carried
        )
