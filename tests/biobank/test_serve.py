"""`biobank serve` as deployed: gunicorn in front of the app, over real HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager

import pytest

from tests.biobank.test_cli import _env, _run


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(env):
    """`biobank serve` (gunicorn) with *env* on a free loopback port; yields its base URL."""
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "biobank.cli",
            "serve",
            "--port",
            str(port),
            "--workers",
            "1",
            "--threads",
            "2",
        ],
        env=os.environ | env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{base}/login", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        else:
            pytest.fail("the server did not start")
        yield base
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    env = _env(tmp)
    _run(env, "db", "upgrade")
    _run(env, "create-user", "chief", "--role", "admin", "--password", "long-enough-pw")
    token = _run(env, "create-token", "chief").strip()
    with serving(env) as base:
        yield base, token


def _get(url, token):
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, r.headers.get("Content-Type"), r.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type"), error.read()


def test_long_get_filters_are_400_problems_not_the_servers_414(served):
    base, token = served
    clause = {"op": "in", "content": {"field": "cases.icd10_code", "value": ["C43.5"] * 900}}
    text = json.dumps(clause)
    assert 6_000 < len(text) < 16_000  # past gunicorn's request line, within the filter limit
    status, kind, body = _get(
        f"{base}/api/v1/query/cases?" + urllib.parse.urlencode({"filters": text}), token
    )
    assert status == 200, body
    longer = json.dumps({"op": "and", "content": [clause] * 3})
    status, kind, body = _get(
        f"{base}/api/v1/query/cases?" + urllib.parse.urlencode({"filters": longer}), token
    )
    assert status == 400 and kind == "application/problem+json"
    problem = json.loads(body)
    assert problem["errors"][0]["field"] == "filters" and "longer than" in problem["detail"]
    status, kind, body = _get(f"{base}/api/v1/specimens/?q=" + "x" * 70_000, token)
    assert status == 400 and kind == "application/problem+json"
    assert json.loads(body)["errors"][0]["field"] == "query"


def test_each_worker_takes_what_it_loaded_out_of_the_collectors_sight():
    """Every full garbage collection in a worker walked each object made while the app
    loaded (about 170,000): a pause of 90-130 ms that a scan caught in it waited out. Once
    the app is loaded, gunicorn's post-worker-init hook freezes them."""
    import gc

    from biobank import cli

    server = cli._gunicorn(host="127.0.0.1", port=0, workers=1, threads=1)
    gc.unfreeze()
    before = len(gc.get_objects())
    try:
        server.cfg.post_worker_init(None)
        assert gc.get_freeze_count() >= before // 2
        assert len(gc.get_objects()) < before // 2  # what a collection still walks
    finally:
        gc.unfreeze()
