"""Witnesses: a second LIMS instance, served by gunicorn over real HTTP, keeps and
countersigns this instance's custody checkpoints; what it keeps outlives checkpoints deleted
here, from the database and from the store outside it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections import namedtuple

import pytest
import sqlalchemy as sa

from biobank.db import transaction
from biobank.models import CustodyCheckpoint, WitnessReceipt
from biobank.services.ledger import create_checkpoint, store_path, verify_ledger
from biobank.services.witnesses import send_checkpoints
from tests.biobank.services.test_ledger import (  # noqa: F401 (ledger: a fixture)
    _problems,
    drop_last_event,
    ledger,
    tamper,
)
from tests.biobank.test_cli import _run
from tests.biobank.test_serve import _free_port, serving
from tests.conftest import separate_database


@pytest.fixture(scope="module")
def witness(tmp_path_factory):
    """Another instance of the network, with a manager account this one signs in with."""
    tmp = tmp_path_factory.mktemp("witness")
    env = {
        "BIOBANK_DATABASE_URL": separate_database(tmp, "witness"),
        "BIOBANK_INSTANCE_PATH": str(tmp / "instance"),
        "BIOBANK_CUSTODY_KEY": "the northern hospital's own key",
        "BIOBANK_INSTANCE_NAME": "northern",
    }
    _run(env, "db", "upgrade")
    tokens = {}
    for name in ("central-link", "someone-else"):
        _run(env, "create-user", name, "--role", "manager", "--password", "long-enough-pw")
        tokens[name] = _run(env, "create-token", name).strip()
    with serving(env) as base:
        yield base, tokens


def _call(base, token, method, path, body=None):
    request = urllib.request.Request(
        base + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture
def central(app, witness, monkeypatch):
    """This instance, under a name of its own for each test, with the witness configured."""
    base, tokens = witness
    name = f"central-{uuid.uuid4().hex[:8]}"
    monkeypatch.setitem(app.config, "CUSTODY_WITNESSES", f"{base}={tokens['central-link']}")
    monkeypatch.setitem(app.config, "INSTANCE_NAME", name)
    return name


def _checkpoint():
    """A checkpoint as the beat task makes it: committed, written out, sent to witnesses.
    Returns its id and root."""
    with transaction():
        made = create_checkpoint()
    return Made(made.id, made.root)


Made = namedtuple("Made", "id root")


def test_a_witness_keeps_and_countersigns_every_checkpoint(
    ledger,
    central,
    witness,
    db_session,
):
    base, tokens = witness
    made = _checkpoint()  # the ledger's first checkpoint was made before the witness: both go
    receipts = db_session.scalars(sa.select(WitnessReceipt).order_by(WitnessReceipt.checkpoint_id)).all()
    assert [r.checkpoint_id for r in receipts] == [ledger.checkpoint_id, made.id]
    assert {r.witness for r in receipts} == {base} and len(receipts[0].countersignature) == 64

    status, kept = _call(base, tokens["central-link"], "GET", f"/api/v1/custody/witness?instance={central}")
    assert status == 200 and [k["checkpoint"]["id"] for k in kept] == [ledger.checkpoint_id, made.id]
    assert all(k["countersignature_ok"] and k["witness"] == "northern" for k in kept)
    assert kept[1]["checkpoint"]["root"] == made.root
    assert kept[1]["countersignature"] == receipts[1].countersignature

    report = verify_ledger()
    assert report.ok, _problems(report)
    assert report.witnesses == [{"witness": base, "checkpoints": 2}]
    assert send_checkpoints() == {base: {"countersigned": 0, "error": None}}  # nothing new

    # the same checkpoint again is answered as before; another one under its id is refused
    record = kept[1]["checkpoint"]
    again = _call(
        base,
        tokens["central-link"],
        "POST",
        "/api/v1/custody/witness",
        {"instance": central, "checkpoint": record},
    )
    assert again[0] == 200 and again[1]["countersignature"] == kept[1]["countersignature"]
    status, problem = _call(
        base,
        tokens["central-link"],
        "POST",
        "/api/v1/custody/witness",
        {"instance": central, "checkpoint": {**record, "event_count": 11}},
    )
    assert status == 409 and "a checkpoint is never replaced" in problem["detail"]
    status, problem = _call(
        base,
        tokens["someone-else"],
        "POST",
        "/api/v1/custody/witness",
        {"instance": central, "checkpoint": record},
    )
    assert status == 409 and "for another account" in problem["detail"]
    status, _ = _call(base, tokens["someone-else"], "GET", f"/api/v1/custody/witness?instance={central}")
    assert status == 404
    status, problem = _call(
        base,
        tokens["central-link"],
        "POST",
        "/api/v1/custody/witness",
        {"instance": central, "checkpoint": {**record, "hash": "xyz"}},
    )
    assert status == 422 and "checkpoint" in json.dumps(problem)


def test_what_the_witness_keeps_outlives_every_copy_here(
    ledger,
    central,
    witness,
    db_session,
):
    """Whoever controls this instance's database and files deletes every checkpoint row and
    the store outside the database, then an event: the witness still names both."""
    base, _ = witness
    made = _checkpoint()
    tamper(db_session, "DELETE FROM custody_checkpoints")
    store_path().unlink()
    problems = _problems(verify_ledger())
    for ident in (ledger.checkpoint_id, made.id):
        assert (f"witness {base} keeps checkpoint {ident} of") in problems
    assert "neither in the database nor in the store outside it" in problems

    drop_last_event(db_session, ledger[0])
    assert (
        f"witness {base}'s checkpoint {made.id} covered 12 events; 11 of them remain: "
        "events were deleted" in _problems(verify_ledger())
    )


def test_a_replaced_checkpoint_differs_from_the_witness(
    ledger,
    central,
    witness,
    db_session,
):
    base, _ = witness
    made = _checkpoint()
    tamper(db_session, "UPDATE custody_checkpoints SET root = :r WHERE id = :i", r="0" * 64, i=made.id)
    assert f"checkpoint {made.id} differs from the one witness {base} keeps" in _problems(verify_ledger())


def test_an_unreachable_witness_is_reported_and_caught_up_later(
    ledger,
    central,
    app,
    witness,
    monkeypatch,
    db_session,
):
    base, tokens = witness
    down = f"http://127.0.0.1:{_free_port()}"
    monkeypatch.setitem(
        app.config, "CUSTODY_WITNESSES", f"{down}={tokens['central-link']},{base}={tokens['central-link']}"
    )
    made = _checkpoint()  # the down one misses it; the other still gets it
    assert (
        db_session.scalar(sa.select(sa.func.count(WitnessReceipt.id)).where(WitnessReceipt.witness == base))
        == 2
    )
    report = verify_ledger()
    assert report.ok, _problems(report)
    assert "could not be reached" in report.witnesses[0]["error"]

    runner = app.test_cli_runner()
    from biobank.cli import custody_verify

    output = runner.invoke(custody_verify).output
    assert f"witness {down}: not consulted" in output
    assert f"witness {base}: keeps 2 checkpoints of this instance" in output

    # back up: the next checkpoint sends it everything it missed
    monkeypatch.setitem(app.config, "CUSTODY_WITNESSES", f"{base}={tokens['central-link']}")
    later = _checkpoint()
    assert db_session.scalar(sa.select(sa.func.max(CustodyCheckpoint.id))) == later.id > made.id
    assert (
        db_session.scalar(sa.select(sa.func.count(WitnessReceipt.id)).where(WitnessReceipt.witness == base))
        == 3
    )
