"""The GA4GH DRS compliance suite (`drs-compliance-suite` from PyPI) against a live server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import requests

from tests.browser import live_server
from tests.conftest import separate_database
from tests.omics.test_vcf import COHORT, STRELKA


def _suite() -> str:
    """The suite's command, installed once into a virtualenv of its own: it pins Flask 2.2 and
    requests 2.28, which must not replace the application's."""
    if os.environ.get("BIOBANK_DRS_SUITE"):
        return os.environ["BIOBANK_DRS_SUITE"]
    home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "biobank-drs-suite"
    command = home / "bin" / "drs-compliance-suite"
    if not command.exists():
        subprocess.run([sys.executable, "-m", "venv", str(home)], check=True)
        subprocess.run(
            [
                str(home / "bin" / "pip"),
                "install",
                "-q",
                "drs-compliance-suite==1.0.3",
                "jsonschema",
                "werkzeug<2.3",
            ],  # what its pins leave out
            check=True,
            timeout=600,
        )
        # 1.0.3 on PyPI imports a module its wheel leaves out: the list of DRS versions
        site = next((home / "lib").glob("python*/site-packages"))
        (site / "supported_drs_versions.py").write_text('SUPPORTED_DRS_VERSIONS = ["1.2.0"]\n')
    return str(command)


def test_drs_compliance_suite_passes(tmp_path):
    suite = _suite()
    with live_server(separate_database(tmp_path, "drs"), demo_participants=3) as (base, app):
        with app.app_context():
            from biobank.db import db
            from biobank.services.users import create_token, get_user

            token = create_token(get_user("tech"), name="drs")
            db.session.commit()
        auth = {"Authorization": f"Bearer {token}"}
        ids = []
        for path in (COHORT, STRELKA):
            with path.open("rb") as f:
                r = requests.post(
                    f"{base}/api/v1/omics/files/",
                    headers=auth,
                    params={"kind": "exome", "ingest": "false"},
                    files={"file": (path.name, f)},
                    timeout=30,
                )
            assert r.status_code == 201, r.text
            ids.append(r.json()["sha256"])
        objects = [{"drs_id": i, "auth_type": "bearer", "auth_token": token, "is_bundle": False} for i in ids]
        config = tmp_path / "drs.json"
        config.write_text(
            json.dumps(
                {
                    "service_info": {"auth_type": "none", "auth_token": ""},
                    "drs_object_info": objects,
                    "drs_object_access": objects,
                }
            )
        )
        report_path = tmp_path / "report.json"
        result = subprocess.run(
            [
                suite,
                "--server_base_url",
                f"{base}/ga4gh/drs/v1",
                "--platform_name",
                "biobank",
                "--platform_description",
                "biobank LIMS test server",
                "--drs_version",
                "1.2.0",
                "--config_file",
                str(config),
                "--report_path",
                str(report_path),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
            env=os.environ | {"PYTHONWARNINGS": "ignore"},
        )
        assert report_path.exists(), result.stderr[-2000:]
    report = json.loads(report_path.read_text())
    failed = [
        (case["case_name"], case.get("message"))
        for phase in report["phases"]
        for test in phase["tests"]
        for case in test["cases"]
        if case["status"] != "PASS"
    ]
    assert failed == [], failed
    assert report["summary"]["passed"] >= 10
