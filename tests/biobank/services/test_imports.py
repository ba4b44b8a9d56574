"""Bulk import: the master template end to end, and every kind of bad input."""

from __future__ import annotations

import datetime as dt
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from biobank.barcodes import is_valid
from biobank.errors import Conflict
from biobank.models import (
    AuditRecord,
    Case,
    CollectionEvent,
    CustodyEvent,
    FillOrder,
    ImportStatus,
    Participant,
    PositionScheme,
    Specimen,
)
from biobank.models.vocab import (
    AjccStage,
    ContainerKind,
    CustodyEventType,
    Lineage,
    MaterialType,
    SpecimenStatus,
    StorageTemperature,
)
from biobank.services import imports
from biobank.services.ledger import verify_ledger
from tests.biobank.models.test_specimens import stale_case_ids

FIXTURES = Path(__file__).resolve().parents[2].parent / "fixtures" / "imports"
MASTER = FIXTURES / "master-specimens.csv"


@pytest.fixture
def storage(make, site):
    """What the fixture files refer to: study SKIN-BB, box IMPBOX-01, drawer IMPDRW-01."""
    make.study(code="SKIN-BB")
    freezer = make.container(
        site=site, kind=ContainerKind.FREEZER, temperature=StorageTemperature.MINUS_60_85
    )
    rack = make.container(site=site, kind=ContainerKind.RACK, parent=freezer)
    box = make.box(site=site, parent=rack, barcode="IMPBOX-01")
    cabinet = make.container(site=site, kind=ContainerKind.CABINET, temperature=StorageTemperature.RT)
    drawer = make.container(
        site=site,
        kind=ContainerKind.DRAWER,
        parent=cabinet,
        barcode="IMPDRW-01",
        n_rows=10,
        n_cols=12,
        position_scheme=PositionScheme.NUMBER,
        fill_order=FillOrder.COLUMN_MAJOR,
    )
    return box, drawer


def run(path, actor, *, template="master", dry_run=False, delimiter=",", options=None):
    job = imports.create_job(
        actor=actor, path=Path(path), filename=Path(path).name, template=template, dry_run=dry_run
    )
    return imports.run_job(job.id, delimiter=delimiter, options=options)


def count(db_session, model):
    return db_session.scalar(sa.select(sa.func.count()).select_from(model))


def problems(job):
    return [(p.line, p.column, p.message) for p in imports.problems_of(job)]


def test_master_file_creates_participants_cases_visits_specimens_and_placements(db_session, manager, storage):
    box, drawer = storage
    job = run(MASTER, manager)
    assert job.status is ImportStatus.SUCCEEDED, problems(job)
    assert job.rows_read == 10
    assert job.created == {
        "participants": 3,
        "participant_phi": 3,
        "cases": 3,
        "collection_events": 5,
        "specimens": 10,
        "custody_events": 27,
    }
    assert stale_case_ids(db_session) == []

    case = db_session.scalar(sa.select(Case).where(Case.code == "IMPC-000001"))
    assert case.breslow_mm == Decimal("2.10") and case.ulceration and case.ajcc_stage is AjccStage.IIB
    assert case.participant.phi.medical_record_number == "MRN9100001"
    tissue = db_session.scalar(sa.select(Specimen).where(Specimen.barcode == "LEGACY-T-0001"))
    assert (tissue.container_id, tissue.position_label) == (box.id, "A1")
    assert tissue.status is SpecimenStatus.IN_STORAGE and tissue.quantity == 60
    assert tissue.collection_event.collected_at == dt.datetime(2023, 5, 4, 10, 20, tzinfo=dt.UTC)
    block = db_session.scalar(sa.select(Specimen).where(Specimen.barcode == "LEGACY-F-0001"))
    assert (block.container_id, block.pos_row, block.pos_col) == (drawer.id, 1, 1)

    blood, plasma, first, second = (
        db_session.scalar(sa.select(Specimen).where(Specimen.barcode == code))
        for code in ("LEGACY-B-0001", "LEGACY-P-0001", "LEGACY-P-0002", "LEGACY-P-0003")
    )
    assert plasma.parent_id == blood.id and plasma.lineage is Lineage.DERIVATIVE
    assert first.parent_id == second.parent_id == plasma.id and first.lineage is Lineage.ALIQUOT
    assert blood.status is SpecimenStatus.CONSUMED and blood.quantity == 0
    assert plasma.quantity == 0 and plasma.initial_quantity == 4  # consumed after aliquoting

    serum = db_session.scalar(
        sa.select(Specimen).where(
            Specimen.material_type == MaterialType.SERUM,
            Specimen.participant.has(Participant.code == "IMP-000002"),
        )
    )
    assert serum.barcode.startswith("CTRSE") and is_valid(serum.barcode)  # issued
    urine_visit = db_session.scalar(
        sa.select(CollectionEvent).join(Participant).where(Participant.code == "IMP-000003")
    )
    assert urine_visit.collected_at == dt.datetime(2024, 1, 15, 1, 0, tzinfo=dt.UTC)

    chain = db_session.scalars(
        sa.select(CustodyEvent).where(CustodyEvent.specimen_id == tissue.id).order_by(CustodyEvent.seq)
    ).all()
    assert [e.event_type for e in chain] == [
        CustodyEventType.COLLECTED,
        CustodyEventType.RECEIVED,
        CustodyEventType.STORED,
    ]
    assert chain[-1].to_location.endswith("A1") and chain[0].details == {"import": job.id}
    assert verify_ledger().ok
    audited = dict(
        db_session.execute(
            sa.select(AuditRecord.entity, sa.func.count())
            .where(AuditRecord.reason == f"import {job.id}: master-specimens.csv")
            .group_by(AuditRecord.entity)
        ).all()
    )
    assert audited == {
        "participants": 3,
        "participant_phi": 3,
        "cases": 3,
        "collection_events": 5,
        "specimens": 10,
    }


def test_the_same_file_is_imported_once(db_session, manager, storage, tmp_path):
    assert run(MASTER, manager).status is ImportStatus.SUCCEEDED
    copy = tmp_path / "renamed.csv"
    shutil.copy(MASTER, copy)
    with pytest.raises(Conflict, match="already imported"):
        imports.create_job(actor=manager, path=copy, filename=copy.name, template="master")


def test_one_bad_row_in_eleven_writes_nothing(db_session, manager, storage):
    before = {m: count(db_session, m) for m in (Participant, Specimen, CustodyEvent, AuditRecord)}
    job = run(FIXTURES / "master-one-bad-row.csv", manager)
    assert job.status is ImportStatus.FAILED
    assert problems(job) == [
        (
            12,
            "material_type",
            "unknown value 'PLASMAA' (did you mean "
            "PLASMA?); allowed: " + ", ".join(m.value for m in MaterialType),
        )
    ]
    assert {m: count(db_session, m) for m in before} == before
    # the file was not imported, so once corrected it may be
    assert imports.already_imported(job.sha256) is None


def test_every_problem_is_reported_with_line_and_column(db_session, make, manager, storage, tmp_path):
    box, _drawer = storage
    old = make.participant(site=box.site, code="OLD-1")
    make.specimen(participant=old, barcode="TAKEN-1", container=box, pos_row=9, pos_col=9)
    header = (
        "participant_code,study_code,site_code,sex,case_code,disease_group,icd10_code,"
        "collected_at,procedure,specimen_barcode,material_type,parent_barcode,quantity,"
        "unit,container_barcode,position"
    )
    rows = [
        "N-1,SKIN-BB,CTR,female,NC-1,psoriasis,C43.5,2024-01-01 10:00,venipuncture,X-0,PLASMA,,4,mL,,",
        "N-1,,,,,,,2024-01-01 10:00,venipuncture,X-1,PLASMA,,4,mL,IMPBOX-01,A1",
        "N-1,,,,,,,2024-01-01 10:00,venipuncture,X-2,PLASMA,,5,mL,IMPBOX-01,J1",
        "N-1,,,,,,,2024-01-01 10:00,venipuncture,X-1,PLASMA,,1,mL,NO-SUCH-BOX,A1",
        "N-1,,,male,,,,2030-01-01 10:00,venipuncture,X-3,PLASMA,,1,mL,IMPBOX-01,I9",
        "N-2,NOSTUDY,CTR,,,,,2024-01-01,venipuncture,X-4,PLASMA,,1,,IMPBOX-01,A1",
        "N-1,,,,,,,2024-01-01 10:00,venipuncture,X-5,PLASMA,X-1,1.5,mL,IMPBOX-01,A1",
        "N-1,,,,,,,2024-01-01 10:00,venipuncture,TAKEN-1,DNA,,1,uL,,",
    ]
    path = tmp_path / "bad.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    before = count(db_session, Specimen)
    job = run(path, manager)
    assert job.status is ImportStatus.FAILED
    found = {(line, column): message for line, column, message in problems(job)}
    assert "does not fit disease group psoriasis" in found[(2, "icd10_code")]
    assert "not a position of" in found[(4, "position")] and "A1–I9" in found[(4, "position")]
    assert "already used on line 3" in found[(5, "specimen_barcode")]
    assert "participant N-1 has sex 'female' in line 2" in found[(6, "sex")]
    assert "unknown study 'NOSTUDY'" in found[(7, "study_code")]
    assert "already taken by line 3" in found[(8, "position")]
    assert "already used in the biobank" in found[(9, "specimen_barcode")]
    assert len(found) == 7
    assert count(db_session, Specimen) == before

    # after those, the rows are checked one by one: each of these faults is reported too
    rows = [
        "N-1,SKIN-BB,CTR,female,,,,2024-01-01 10:00,venipuncture,Y-1,PLASMA,,4,mL,IMPBOX-01,A1",
        "N-1,,,,,,,2024-01-01 10:00,venipuncture,Y-2,PLASMA,Y-1,5,mL,IMPBOX-01,A2",
        "N-1,,,,,,,2024-01-01 10:00,venipuncture,Y-3,PLASMA,,1,mL,IMPBOX-01,I9",
        "N-1,,,,,,,2030-01-01 10:00,venipuncture,Y-4,PLASMA,,1,mL,IMPBOX-01,B1",
        "N-1,,,,,,,2024-01-01 10:00,venipuncture,Y-5,PLASMA,,1,,NO-SUCH-BOX,A1",
    ]
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    found = {(line, column): message for line, column, message in problems(run(path, manager))}
    assert found[(3, "quantity")] == "5 mL is more than Y-1 still holds (4 mL)"
    assert "I9 of" in found[(4, "position")] and "holds TAKEN-1" in found[(4, "position")]
    assert "in the future" in found[(5, "collected_at")]
    assert "give the unit" in found[(6, "unit")]
    assert len(found) == 4


def test_wrong_columns_are_named_with_suggestions(db_session, manager, storage, tmp_path):
    path = tmp_path / "header.csv"
    path.write_text(
        "participant_code,studycode,site_code,collected_at,procedure,material,"
        "material_type,breslow\nP,SKIN-BB,CTR,2024-01-01,excision,x,DNA,1\n"
    )
    job = run(path, manager, template="participants")
    found = {column: message for _line, column, message in problems(job)}
    assert "did you mean 'study_code'" in found["studycode"]
    assert "belongs to another template" in found["collected_at"]
    assert "required column missing" in found["study_code"]
    assert all(line == 1 for line, _c, _m in problems(job))


def test_other_encodings_and_semicolons_are_refused_precisely(db_session, manager, storage):
    job = run(FIXTURES / "windows-1252.csv", manager)
    [(line, _column, message)] = problems(job)
    assert line == 2 and "not UTF-8" in message and "Windows-1252" in message
    assert "byte 0xEB" in message
    job = run(FIXTURES / "semicolons.csv", manager)
    [(line, _column, message)] = problems(job)
    assert line == 1 and "semicolons" in message
    assert count(db_session, Specimen) == 0
    # asked for explicitly, a semicolon file is read
    job = run(FIXTURES / "semicolons.csv", manager, delimiter=";")
    assert job.status is ImportStatus.SUCCEEDED, problems(job)
    assert job.created["specimens"] == 3


def _xlsx(path, rows, merge=None):
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    if merge:
        sheet.merge_cells(merge)
    book.save(path)
    return path


def test_xlsx_files_import_and_merged_cells_are_refused(db_session, manager, storage, tmp_path):
    import csv

    with MASTER.open(encoding="utf-8") as f:
        rows = list(csv.reader(f))
    good = _xlsx(tmp_path / "master.xlsx", rows)
    job = run(good, manager)
    assert job.status is ImportStatus.SUCCEEDED, problems(job)
    assert job.created["specimens"] == 10
    merged = _xlsx(tmp_path / "merged.xlsx", [rows[0], *(r[:] for r in rows[1:4])], "A2:A4")
    job = run(merged, manager)
    [(line, _column, message)] = problems(job)
    assert line == 0 and "merged cells (A2:A4)" in message


def test_dry_run_checks_everything_and_writes_nothing(db_session, manager, storage):
    job = run(MASTER, manager, dry_run=True)
    assert job.status is ImportStatus.VALIDATED and job.rows_read == 10
    assert count(db_session, Specimen) == 0
    assert run(MASTER, manager).status is ImportStatus.SUCCEEDED  # a dry run blocks nothing


def test_specimens_of_existing_participants_take_from_an_existing_parent(
    db_session, make, manager, storage, tmp_path
):
    box, _drawer = storage
    person = make.participant(site=box.site, code="KNOWN-1")
    parent = make.specimen(participant=person, barcode="KNOWN-PL", quantity=Decimal("1.000"))
    path = tmp_path / "aliquots.csv"
    path.write_text(
        "participant_code,collected_at,procedure,specimen_barcode,material_type,parent_barcode,"
        "quantity,unit,container_barcode,position\n"
        "KNOWN-1,2025-03-01 09:30,venipuncture,KNOWN-A1,PLASMA,KNOWN-PL,0.4,mL,IMPBOX-01,C1\n"
        "KNOWN-1,2025-03-01 09:30,venipuncture,KNOWN-A2,PLASMA,KNOWN-PL,0.4,mL,IMPBOX-01,C2\n"
        "NOBODY,2025-03-01 09:30,venipuncture,KNOWN-A3,PLASMA,,0.4,mL,IMPBOX-01,C3\n"
    )
    job = run(path, manager, template="specimens")
    assert problems(job) == [
        (
            4,
            "participant_code",
            "participant NOBODY does not exist: import it first (participants or master template)",
        )
    ]
    path.write_text("\n".join(path.read_text().splitlines()[:3]) + "\n")
    job = run(path, manager, template="specimens")
    assert job.status is ImportStatus.SUCCEEDED, problems(job)
    db_session.refresh(parent)
    assert parent.quantity == Decimal("0.2")
    update = db_session.scalar(
        sa.select(AuditRecord)
        .where(
            AuditRecord.entity == "specimens",
            AuditRecord.entity_id == str(parent.id),
            AuditRecord.reason.like("import%"),
        )
        .order_by(AuditRecord.id.desc())
    )
    assert update.changes == {"quantity": ["0.600", "0.200"]}


def test_only_the_actors_sites(db_session, make, other_site, storage, tmp_path):
    outsider = make.user("outsider", role="manager", sites=[other_site])
    job = run(MASTER, outsider)
    assert job.status is ImportStatus.FAILED
    assert "you are not a member of site CTR" in problems(job)[0][2]
    assert count(db_session, Specimen) == 0


@pytest.mark.parametrize("batch", [5000, 3])
def test_aliquots_take_from_a_parent_earlier_in_the_file(
    db_session, manager, storage, tmp_path, monkeypatch, batch
):
    """Whether the parent is still buffered or already written when its aliquots come, it
    ends with what they left."""
    monkeypatch.setattr(imports, "WRITE_BATCH", batch)
    header = (
        "participant_code,study_code,site_code,collected_at,procedure,specimen_barcode,"
        "material_type,parent_barcode,quantity,unit,container_barcode,position"
    )
    rows = ["Q-1,SKIN-BB,CTR,2024-01-01 10:00,venipuncture,Q-PL,PLASMA,,4,mL,IMPBOX-01,A1"]
    rows += [
        f"Q-1,,,2024-01-01 10:00,venipuncture,Q-A{i},PLASMA,Q-PL,0.5,mL,IMPBOX-01,B{i}" for i in range(1, 4)
    ]
    path = tmp_path / "aliquots.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    job = run(path, manager)
    assert job.status is ImportStatus.SUCCEEDED, problems(job)
    parent = db_session.scalar(sa.select(Specimen).where(Specimen.barcode == "Q-PL"))
    assert (parent.initial_quantity, parent.quantity) == (4, Decimal("2.5"))
    updates = db_session.scalars(
        sa.select(AuditRecord).where(
            AuditRecord.entity == "specimens",
            AuditRecord.entity_id == str(parent.id),
            AuditRecord.action == "update",
        )
    ).all()
    assert len(updates) == (0 if batch == 5000 else 3)
    assert verify_ledger().ok


def test_an_openspecimen_export_migrates_with_its_participants_and_visits(
    db_session, make, manager, site, tmp_path
):
    make.study(code="TB-MIGRATED")
    export = FIXTURES / "openspecimen-export.csv"
    job = run(
        export, manager, template="openspecimen", options={"study_code": "NO-SUCH-STUDY", "site_code": "CTR"}
    )
    assert job.status is ImportStatus.FAILED
    assert {(c, m) for _l, c, m in problems(job)} == {("study_code", "unknown study 'NO-SUCH-STUDY'")}
    assert min(line for line, _c, _m in problems(job)) == 5  # after the 3-line preamble
    job = run(
        export, manager, template="openspecimen", options={"study_code": "TB-MIGRATED", "site_code": "CTR"}
    )
    assert job.status is ImportStatus.SUCCEEDED, problems(job)
    assert job.created["specimens"] == 17 and job.created["participants"] == 17
    specimen = db_session.scalar(sa.select(Specimen).where(Specimen.barcode == "TB0990100010101001"))
    assert specimen.label == specimen.barcode and specimen.material_type is MaterialType.OTHER
    assert (specimen.quantity, specimen.unit.value) == (Decimal("0.2"), "mL")
    assert specimen.participant.code == "TB099010001"
    assert specimen.participant.sex.value == "male"
    assert specimen.collection_event.collected_at == dt.datetime(2016, 1, 1, tzinfo=dt.UTC)
    assert specimen.status is SpecimenStatus.RECEIVED


def test_a_csv_cut_at_a_cell_boundary_is_refused_with_the_line(db_session, manager, storage, tmp_path):
    text = MASTER.read_text(encoding="utf-8-sig").rstrip("\r\n")
    last = text.rsplit(",", 2)[0]  # the file ends two cells early
    cut = tmp_path / "cut.csv"
    cut.write_text(last + "\n", encoding="utf-8")
    before = count(db_session, Specimen)
    job = run(cut, manager)
    assert job.status is ImportStatus.FAILED
    n_lines = len(last.splitlines())
    header = len(text.splitlines()[0].split(","))
    assert problems(job) == [
        (
            n_lines,
            None,
            f"{header - 2} cells but the header names "
            f"{header} columns: a separator is missing or extra, or the "
            "file was cut short",
        )
    ]
    assert count(db_session, Specimen) == before


def test_more_problems_than_are_kept_says_how_many_were_kept(db_session, manager, storage, tmp_path):
    lines = MASTER.read_text(encoding="utf-8-sig").splitlines()
    bad = tmp_path / "bad.csv"
    row = lines[1].split(",")
    with bad.open("w", encoding="utf-8") as f:
        f.write(lines[0] + "\n")
        for _ in range(imports.MAX_PROBLEMS + 5):
            f.write(",".join(row[:-1]) + "\n")  # one cell short on every line
    job = run(bad, manager)
    assert job.error_count == imports.MAX_PROBLEMS + 5
    assert len(imports.problems_of(job)) == imports.MAX_PROBLEMS
    report = "".join(imports.iter_problem_report(job)).splitlines()
    assert len(report) == 1 + imports.MAX_PROBLEMS + 1
    assert report[-1] == ',,"… and 5 more problems: only the first 10,000 are kept"'


def test_tumours_import_with_their_icd_o_3_codes(db_session, manager, storage, tmp_path):
    from biobank.models import Case

    header = (
        "participant_code,study_code,site_code,case_code,disease_group,icd10_code,"
        "icdo3_morphology,icdo3_topography,collected_at,procedure,specimen_barcode,"
        "material_type,quantity,unit"
    )
    bad = [
        "O-1,SKIN-BB,CTR,OC-1,psoriasis,L40.0,8743/3,,2024-01-01 10:00,venipuncture,O-X1,PLASMA,1,mL",
        "O-2,SKIN-BB,CTR,OC-2,melanoma,C43.5,8743,C44.5,2024-01-01 10:00,excision,O-X2,TISSUE_FROZEN,1,mg",
    ]
    path = tmp_path / "icdo.csv"
    path.write_text("\n".join([header, *bad]) + "\n", encoding="utf-8")
    found = {(line, column): message for line, column, message in problems(run(path, manager))}
    assert "codes a tumour: not for psoriasis" in found[(2, "icdo3_morphology")]
    assert "not an ICD-O-3 morphology" in found[(3, "icdo3_morphology")]
    assert count(db_session, Case) == 0
    good = [
        "O-2,SKIN-BB,CTR,OC-2,melanoma,C43.5,8743/3,C44.5,2024-01-01 10:00,excision,O-X2,TISSUE_FROZEN,1,mg"
    ]
    path.write_text("\n".join([header, *good]) + "\n", encoding="utf-8")
    assert run(path, manager).status is ImportStatus.SUCCEEDED
    case = db_session.scalar(sa.select(Case).where(Case.code == "OC-2"))
    assert (case.icdo3_morphology, case.icdo3_topography) == ("8743/3", "C44.5")
