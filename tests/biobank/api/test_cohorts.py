"""Cohorts: saved filters, frozen snapshots, diffs, manifests and patient-grouped splits."""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from biobank.db import utcnow
from biobank.services.cohorts import assign_splits
from tests.biobank.api.test_images import picture, upload
from tests.biobank.api.test_query import Biobank, and_, eq
from tests.conftest import is_postgres
from tests.omics.test_omics_api import _upload
from tests.omics.test_vcf import COHORT

MELANOMA_LESIONS = and_(eq("cases.disease_group", "melanoma"), eq("images.modality", "dermoscopy"))


@pytest.fixture
def bank(make, site, other_site, client, technician, headers, tmp_path):
    bank = Biobank(make, site, other_site)
    h = headers(technician)
    for seed, lesion in enumerate(["Q-L1", "Q-L2"], 1):
        r = upload(
            client, h, picture(tmp_path, f"{lesion}.jpg", seed=seed), modality="dermoscopy", lesion=lesion
        )
        assert r.status_code == 201
    r = _upload(client, h, COHORT, kind="exome", sample_map={"MEL-A1": bank.dna1.barcode})
    assert r.status_code == 201
    return bank


def make_cohort(client, h, filters=MELANOMA_LESIONS, level="lesions"):
    r = client.post(
        "/api/v1/cohorts/",
        headers=h,
        json={"name": "Melanoma with dermoscopy", "level": level, "filters": filters},
    )
    assert r.status_code == 201, r.json
    return r.json


def freeze(client, h, cohort_id):
    r = client.post(f"/api/v1/cohorts/{cohort_id}/snapshots", headers=h)
    assert r.status_code == 201, r.json
    return r.json


def manifest(client, h, cohort_id, **params):
    params.setdefault("salt", "melanoma-2026")
    r = client.get(f"/api/v1/cohorts/{cohort_id}/manifest", headers=h, query_string=params)
    return r


def test_freeze_export_and_reproduce(client, bank, manager, headers, db_session):
    h = headers(manager)
    cohort = make_cohort(client, h)
    r = manifest(client, h, cohort["id"])
    assert r.status_code == 409 and "freeze it first" in r.json["detail"]
    snap = freeze(client, h, cohort["id"])
    assert (snap["member_count"], snap["object_count"]) == (2, 3)  # 2 images + 1 VCF sample

    r = manifest(client, h, cohort["id"], format="tsv")
    assert r.status_code == 200, r.json
    lines = r.get_data(as_text=True).splitlines()
    header, rows = (
        lines[0].split("\t"),
        [dict(zip(lines[0].split("\t"), line.split("\t"), strict=True)) for line in lines[1:]],
    )
    assert header[:5] == ["participant", "case", "lesion", "specimen", "aliquot"]
    assert sorted((row["lesion"], row["modality"]) for row in rows) == [
        ("Q-L1", "dermoscopy"),
        ("Q-L1", "exome"),
        ("Q-L2", "dermoscopy"),
    ]
    exome = next(row for row in rows if row["modality"] == "exome")
    assert exome["aliquot"] == bank.dna1.barcode and exome["specimen"] == bank.a1.parent.barcode
    assert exome["drs_uri"] == f"drs://localhost/{exome['sha256']}"
    assert exome["diagnosis"] == "melanoma" and exome["breslow_mm"] == "1.20"
    # one split per patient, and the checks say so
    per_patient = {(row["participant"], row["split"]) for row in rows}
    assert len(per_patient) == len({row["participant"] for row in rows}) == 2
    checks = json.loads(r.headers["X-Split-Checks"])
    assert checks["patients_in_two_splits"] == 0 and checks["rows"] == 3
    assert "Ada" not in r.get_data(as_text=True) and "MRN" not in r.get_data(as_text=True)

    # the same parameters give the same manifest, in every format
    again = manifest(client, h, cohort["id"], format="tsv")
    assert again.get_data(as_text=True) == r.get_data(as_text=True)
    # the digest header names exactly the bytes delivered, in every format
    for fmt in ("tsv", "csv", "jsonl", "parquet"):
        delivered = manifest(client, h, cohort["id"], format=fmt)
        assert delivered.headers["X-Manifest-SHA256"] == hashlib.sha256(delivered.data).hexdigest(), fmt
        assert delivered.headers["X-Snapshot-Manifest-Digest"] == snap["manifest_sha256"]
    table = pq.read_table(io.BytesIO(manifest(client, h, cohort["id"], format="parquet").data))
    assert table.num_rows == 3 and table.column("split").to_pylist() == [row["split"] for row in rows]
    meta = table.schema.metadata
    assert meta[b"manifest_sha256"].decode() == snap["manifest_sha256"]
    jsonl = manifest(client, h, cohort["id"], format="jsonl").get_data(as_text=True)
    assert [json.loads(x)["sha256"] for x in jsonl.splitlines()] == [r["sha256"] for r in rows]
    csv_text = manifest(client, h, cohort["id"], format="csv").get_data(as_text=True)
    assert csv_text.splitlines()[0].startswith("participant,case,lesion")

    # the snapshot stays as frozen while the data grows; a new one shows the difference
    client.patch(
        f"/api/v1/cohorts/{cohort['id']}", headers=h, json={"filters": eq("cases.disease_group", "melanoma")}
    )
    snap2 = freeze(client, h, cohort["id"])
    assert snap2["member_count"] == 3
    d = client.get(f"/api/v1/cohorts/snapshots/{snap['id']}/diff/{snap2['id']}", headers=h).json
    assert (d["added"], d["removed"], d["unchanged_count"]) == (["Q-L4"], [], 2)
    assert client.get(f"/api/v1/cohorts/snapshots/{snap['id']}", headers=h).json["member_count"] == 2
    check = client.get(f"/api/v1/cohorts/snapshots/{snap['id']}/verify", headers=h).json
    assert (check["members_ok"], check["manifest_ok"], check["content_frozen"]) == (True, True, True)
    assert check["key_id"] == snap["key_id"] and len(snap["key_id"]) == 16
    assert "problem" not in check


def test_snapshots_cannot_be_rewritten(client, bank, manager, headers, db_session):
    h = headers(manager)
    snap = freeze(client, h, make_cohort(client, h)["id"])
    if is_postgres():
        with pytest.raises(sa.exc.DBAPIError, match="frozen"), db_session.begin_nested():
            db_session.execute(
                sa.text("UPDATE cohort_snapshot_members SET entity_id = 999 WHERE snapshot_id = :s"),
                {"s": snap["id"]},
            )
        with pytest.raises(sa.exc.DBAPIError, match="frozen"), db_session.begin_nested():
            db_session.execute(sa.text("DELETE FROM cohort_snapshots WHERE id = :s"), {"s": snap["id"]})
        with pytest.raises(sa.exc.DBAPIError, match="frozen"), db_session.begin_nested():
            db_session.execute(
                sa.text("UPDATE cohort_snapshots SET manifest_sha256 = '' WHERE id = :s"), {"s": snap["id"]}
            )
        with pytest.raises(sa.exc.DBAPIError, match="frozen"), db_session.begin_nested():
            db_session.execute(
                sa.text("INSERT INTO cohort_snapshot_members VALUES (:s, 999)"), {"s": snap["id"]}
            )
    else:  # SQLite has no such trigger: the digests still tell
        db_session.execute(
            sa.text(
                "UPDATE cohort_snapshot_members SET entity_id = 999 "
                "WHERE snapshot_id = :s AND entity_id = "
                "(SELECT MIN(entity_id) FROM cohort_snapshot_members "
                "WHERE snapshot_id = :s)"
            ),
            {"s": snap["id"]},
        )
        db_session.commit()
        r = client.get(f"/api/v1/cohorts/snapshots/{snap['id']}/verify", headers=h)
        assert (r.json["members_ok"], r.json["manifest_ok"]) == (False, True)
        db_session.execute(
            sa.text("DELETE FROM cohort_snapshot_objects WHERE snapshot_id = :s AND kind = 'image'"),
            {"s": snap["id"]},
        )
        db_session.commit()
        r = client.get(f"/api/v1/cohorts/snapshots/{snap['id']}/verify", headers=h)
        assert (r.json["members_ok"], r.json["manifest_ok"]) == (False, False)


def test_test_patients_never_move_to_train(client, bank, manager, headers, db_session):
    from biobank.models import CohortExportSplit

    h = headers(manager)
    cohort = make_cohort(client, h)
    freeze(client, h, cohort["id"])
    ratios = json.dumps({"train": 0.5, "test": 0.5})
    # each patient draws its split: the first salt that puts one of the two in test
    for first_salt in (f"s1-{n}" for n in range(50)):
        first = manifest(client, h, cohort["id"], ratios=ratios, salt=first_salt, salt_family="mel")
        assert first.status_code == 200
        first_splits = {
            line.split("\t")[0]: line.split("\t")[-1]
            for line in first.get_data(as_text=True).splitlines()[1:]
        }
        tested = {p for p, s in first_splits.items() if s == "test"}
        if tested:
            break
    assert tested
    # other salts of the family reshuffle, but a test patient stays in test
    for salt in ("s2", "s3", "s4", "s5"):
        r = manifest(client, h, cohort["id"], ratios=ratios, salt=salt, salt_family="mel")
        assert r.status_code == 200, r.json
        splits = {
            line.split("\t")[0]: line.split("\t")[-1] for line in r.get_data(as_text=True).splitlines()[1:]
        }
        assert all(splits[p] == "test" for p in tested), salt
    pinned, refused = [], []
    for s in (f"s{n}" for n in range(6, 40)):
        with manifest(client, h, cohort["id"], ratios=ratios, salt=s, salt_family="mel") as r:
            pinned.append(json.loads(r.headers["X-Split-Checks"])["pinned_to_test"])
        with manifest(
            client, h, cohort["id"], ratios=ratios, salt=s, salt_family="mel", keep_test="false"
        ) as r:
            refused.append(r.status_code == 409 and "test split of an earlier export" in r.json["detail"])
    assert any(pinned) and any(refused)
    # another family is independent
    assert manifest(client, h, cohort["id"], ratios=ratios, salt="s6").status_code == 200
    assert db_session.scalar(sa.select(sa.func.count()).select_from(CohortExportSplit)) > 0


def test_consent_decides_what_is_exported(client, bank, manager, headers, db_session):
    h = headers(manager)
    cohort = make_cohort(client, h)
    freeze(client, h, cohort["id"])
    for response in bank.p1.consents:
        if response.tier.scope.value == "genetic_research":
            response.withdrawn_at = utcnow()
    db_session.commit()
    r = manifest(client, h, cohort["id"])
    modalities = [line.split("\t")[5] for line in r.get_data(as_text=True).splitlines()[1:]]
    assert sorted(modalities) == ["dermoscopy", "dermoscopy"]  # the exome row is withheld
    assert json.loads(r.headers["X-Split-Checks"])["excluded_by_consent"] == 1
    # the header names the file as delivered, without the withheld row
    assert r.headers["X-Manifest-SHA256"] == hashlib.sha256(r.data).hexdigest()
    export = client.get(f"/api/v1/cohorts/exports/{r.headers['X-Export-Id']}", headers=h)
    assert export.status_code == 200, export.json
    assert export.json["manifest_sha256"] == r.headers["X-Manifest-SHA256"]
    [left_out] = export.json["exclusions"]
    assert (left_out["participant"], left_out["modality"]) == (bank.p1.code, "exome")
    assert left_out["reason"] == "no consent to genetic research (withdrawn or not given)"


def test_researchers_build_cohorts_but_do_not_export(client, bank, researcher, manager, headers):
    h = headers(researcher)
    cohort = make_cohort(client, h)
    snap = freeze(client, h, cohort["id"])
    assert snap["member_count"] == "<5"
    assert manifest(client, h, cohort["id"]).status_code == 403
    other = headers(manager)
    assert client.get(f"/api/v1/cohorts/{cohort['id']}", headers=other).status_code == 200
    mine = make_cohort(client, other)
    assert client.get(f"/api/v1/cohorts/{mine['id']}", headers=h).status_code == 404


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"ratios": '{"train": 0.5, "test": 0.6}'}, "ratios", "add up to 1.1"),
        ({"ratios": '{"train": 1}'}, "ratios", "2 to 5 splits"),
        ({"ratios": '{"train": 0.8, "holdout": 0.2}'}, "ratios", "must include 'train' and 'test'"),
        ({"ratios": '{"Train!": 0.5, "test": 0.5}'}, "ratios", "lower-case"),
        ({"ratios": "[0.5]"}, "ratios", "JSON object"),
        ({"format": "xlsx"}, "format", "Must be one of"),
        ({"stratify_by": "age"}, "stratify_by", "Must be one of"),
    ],
)
def test_bad_export_parameters(client, bank, manager, headers, params, field, words):
    h = headers(manager)
    cohort = make_cohort(client, h)
    freeze(client, h, cohort["id"])
    r = manifest(client, h, cohort["id"], **params)
    assert r.status_code in (400, 422), r.json
    assert r.json["errors"][0]["field"].endswith(field) and words in str(r.json), r.json


def test_bad_cohorts(client, admin, headers):
    h = headers(admin)
    r = client.post("/api/v1/cohorts/", headers=h, json={"name": "x", "level": "tubes"})
    assert r.status_code == 422
    r = client.post(
        "/api/v1/cohorts/", headers=h, json={"name": "x", "filters": eq("cases.nope", "melanoma")}
    )
    assert r.status_code == 400 and r.json["errors"][0]["field"] == "filters.content.field"
    assert client.get("/api/v1/cohorts/999999", headers=h).status_code == 404


def test_splits_are_deterministic_per_patient_and_keep_their_ratios():
    patients = {f"P-{i:05d}": ("melanoma" if i % 5 == 0 else "psoriasis") for i in range(2000)}
    ratios = {"train": 0.7, "val": 0.15, "test": 0.15}
    a = assign_splits(patients, salt="x", ratios=ratios)
    assert a == assign_splits(dict(reversed(patients.items())), salt="x", ratios=ratios)
    assert a != assign_splits(patients, salt="y", ratios=ratios)
    for group in ("melanoma", "psoriasis"):
        members = [p for p, g in patients.items() if g == group]
        counts = Counter(a[p] for p in members)
        for name, share in ratios.items():  # each patient draws its split: 4 sigma
            sigma = (share * (1 - share) / len(members)) ** 0.5
            assert abs(counts[name] / len(members) - share) <= 4 * sigma


def test_mudata_of_a_cohorts_matrices(client, bank, technician, manager, headers, tmp_path):
    import mudata

    from tests.omics.test_vcf import FIXTURES

    h = headers(manager)
    r = _upload(
        client,
        headers(technician),
        FIXTURES / "rnaseq-counts.tsv",
        kind="rna_seq",
        sample_map={"MEL-R1": bank.dna1.barcode, "MEL-R2": bank.a2.barcode},
    )
    assert r.status_code == 201, r.json
    cohort = make_cohort(client, h, eq("cases.disease_group", "melanoma"), level="cases")
    r = client.get(f"/api/v1/cohorts/{cohort['id']}/mudata", headers=h)
    assert r.status_code == 409 and "freeze it first" in r.json["detail"]
    freeze(client, h, cohort["id"])
    r = client.get(f"/api/v1/cohorts/{cohort['id']}/mudata", headers=h)
    assert r.status_code == 200, r.json
    path = tmp_path / "cohort.h5mu"
    path.write_bytes(r.data)
    with mudata.set_options(pull_on_update=False):
        mdata = mudata.read_h5mu(path)
    rna = mdata.mod["rna_seq"]
    assert sorted(rna.obs_names) == sorted([bank.dna1.barcode, bank.a2.barcode])
    assert rna.n_vars == 8 and "MEL-R3" not in rna.obs_names  # unlinked sample left out
    assert dict(zip(rna.obs_names, rna.obs["case"], strict=True)) == {
        bank.dna1.barcode: "Q-C1",
        bank.a2.barcode: "Q-C2",
    }
    assert mdata.uns["lims"]["manifest_sha256"]
    assert (
        client.get(f"/api/v1/cohorts/{cohort['id']}/mudata", headers=headers(technician)).status_code == 403
    )  # managers export


def test_a_manager_exports_no_other_sites_data(client, bank, admin, manager, headers, tmp_path):
    ah = headers(admin)
    r = upload(
        client, ah, picture(tmp_path, "psoriasis.jpg", seed=9), modality="clinical_overview", case="Q-C3"
    )  # a case of the other site
    assert r.status_code == 201, r.json
    cohort = make_cohort(client, ah, eq("images.modality", "clinical_overview"), level="cases")
    cohort_b = make_cohort(client, ah, eq("images.modality", "dermoscopy"), level="cases")
    for c in (cohort, cohort_b):
        freeze(client, ah, c["id"])
    assert manifest(client, ah, cohort["id"]).status_code == 200
    r = manifest(client, headers(manager), cohort["id"])
    assert r.status_code == 403 and "1 other site" in r.json["detail"]
    assert client.get(f"/api/v1/cohorts/{cohort['id']}/mudata", headers=headers(manager)).status_code == 403
    # a snapshot of the manager's own site only is theirs to export
    assert manifest(client, headers(manager), cohort_b["id"]).status_code == 200


def test_one_salt_gives_a_patient_the_same_split_in_every_cohort():
    ratios = {"train": 0.7, "val": 0.15, "test": 0.15}
    everyone = [f"SKN-{i:06d}" for i in range(3000)]
    whole = assign_splits(dict.fromkeys(everyone, ""), salt="m", ratios=ratios)
    # two overlapping cohorts of different sizes: the rank-based cut moved patients
    for members in (everyone[:400], everyone[250:1900], everyone[::7]):
        part = assign_splits(dict.fromkeys(members, ""), salt="m", ratios=ratios)
        assert {p: part[p] for p in members} == {p: whole[p] for p in members}


def test_pinning_held_out_patients_keeps_the_asked_ratios():
    ratios = {"train": 0.7, "val": 0.15, "test": 0.15}
    patients = dict.fromkeys((f"SKN-{i:06d}" for i in range(4000)), "")
    first = assign_splits(patients, salt="a", ratios=ratios)
    held = {p: s for p, s in first.items() if s in ("test", "val")}
    second = assign_splits(patients, salt="b", ratios=ratios, pinned=held)
    assert all(second[p] == s for p, s in held.items())  # nobody leaves test or validation
    counts = Counter(second.values())
    for name, share in ratios.items():
        assert abs(counts[name] / len(patients) - share) < 0.02, (name, counts)


def test_validation_patients_never_move_either(client, bank, manager, headers, db_session):
    h = headers(manager)
    cohort = make_cohort(client, h)
    freeze(client, h, cohort["id"])
    ratios = json.dumps({"train": 0.34, "val": 0.33, "test": 0.33})

    def splits_of(salt):
        with manifest(client, h, cohort["id"], ratios=ratios, salt=salt, salt_family="fam") as r:
            assert r.status_code == 200, r.json
            return {
                line.split("\t")[0]: line.split("\t")[-1]
                for line in r.get_data(as_text=True).splitlines()[1:]
            }

    held = {}
    for salt in (f"v1-{n}" for n in range(50)):  # a first export that holds someone out
        held = {p: s for p, s in splits_of(salt).items() if s in ("val", "test")}
        if held:
            break
    assert held
    for salt in ("v2", "v3", "v4", "v5"):
        later = splits_of(salt)
        assert {p: later[p] for p in held} == held, salt


def test_a_snapshot_delivers_its_content_as_frozen(client, bank, manager, headers, db_session):
    """Editing a member case after the freeze changes neither the manifest nor its digest."""
    from biobank.models import Case

    h = headers(manager)
    cohort = make_cohort(client, h)
    snap = freeze(client, h, cohort["id"])
    before = manifest(client, h, cohort["id"])
    stages = {row.split("\t")[15] for row in before.get_data(as_text=True).splitlines()[1:]}
    case = db_session.scalars(sa.select(Case).where(Case.participant_id == bank.p1.id)).first()
    case.ajcc_stage, case.breslow_mm = "IV", 9.9
    db_session.commit()
    after = manifest(client, h, cohort["id"])
    assert after.data == before.data and "IV" not in stages
    assert after.headers["X-Manifest-SHA256"] == before.headers["X-Manifest-SHA256"]
    check = client.get(f"/api/v1/cohorts/snapshots/{snap['id']}/verify", headers=h).json
    assert check["members_ok"] and check["manifest_ok"]
    # a snapshot frozen now has the new stage
    freeze(client, h, cohort["id"])
    assert "IV" in manifest(client, h, cohort["id"]).get_data(as_text=True)


def _tamper(db_session, sql, **params):
    """Change rows behind the application's back, as an administrator of the database can."""
    conn = db_session.connection()
    if is_postgres():  # the snapshot triggers refuse this; a superuser switches them off
        conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
    conn.execute(sa.text(sql), params)
    if is_postgres():
        conn.exec_driver_sql("SET LOCAL session_replication_role = origin")
    db_session.commit()
    db_session.expire_all()


@pytest.mark.parametrize("change", ["member deleted", "object repointed", "row edited"])
def test_a_snapshot_changed_with_its_digests_recomputed_is_caught(
    change, client, bank, manager, headers, db_session
):
    """Whoever can write the database recomputes the digests as plain SHA-256 (and as an
    HMAC under a key of their own): without the custody key, verify catches it."""
    import hmac

    from biobank.models import CohortSnapshot
    from biobank.services import cohorts

    h = headers(manager)
    snap = freeze(client, h, make_cohort(client, h)["id"])
    sid = snap["id"]
    if change == "member deleted":
        _tamper(
            db_session,
            "DELETE FROM cohort_snapshot_members WHERE snapshot_id = :s AND "
            "entity_id = (SELECT MIN(entity_id) FROM cohort_snapshot_members WHERE "
            "snapshot_id = :s)",
            s=sid,
        )
    elif change == "object repointed":
        other = db_session.scalar(sa.text("SELECT MAX(id) FROM images")) + 1000
        _tamper(
            db_session,
            "UPDATE cohort_snapshot_objects SET object_id = :o WHERE "
            "snapshot_id = :s AND kind = 'image' AND object_id = (SELECT MIN(object_id) "
            "FROM cohort_snapshot_objects WHERE snapshot_id = :s AND kind = 'image')",
            o=other,
            s=sid,
        )
    else:
        _tamper(
            db_session,
            "UPDATE cohort_snapshot_objects SET content = :c WHERE snapshot_id = :s AND kind = 'omics'",
            c=json.dumps({"participant": "SKN-X", "ajcc_stage": "IV"}),
            s=sid,
        )
    snapshot = db_session.get(CohortSnapshot, sid)
    db_session.refresh(snapshot)
    objects = cohorts.frozen_objects(snapshot)
    members = cohorts.member_ids(snapshot)
    for key in (None, b"a key of the intruder's own"):
        members_forged = cohorts.members_digest(snapshot, members, key=key)
        manifest_forged = cohorts.manifest_digest(
            snapshot,
            {k: dict.fromkeys(cohorts.CANONICAL_COLUMNS) | (v or {}) for k, v in objects.items()},
            key=key,
        )
        _tamper(
            db_session,
            "UPDATE cohort_snapshots SET members_sha256 = :m, manifest_sha256 = :f WHERE id = :s",
            m=members_forged,
            f=manifest_forged,
            s=sid,
        )
        check = client.get(f"/api/v1/cohorts/snapshots/{sid}/verify", headers=h).json
        assert not (check["members_ok"] and check["manifest_ok"]), (change, key)
        assert hmac.compare_digest(check["key_id"], snap["key_id"])
    # dropping the key id to pass the snapshot off as one from before keyed digests
    _tamper(db_session, "UPDATE cohort_snapshots SET key_id = NULL WHERE id = :s", s=sid)
    check = client.get(f"/api/v1/cohorts/snapshots/{sid}/verify", headers=h).json
    assert "prove nothing" in check["problem"]
