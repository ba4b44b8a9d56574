"""The freezer-failure page: review, print, execute (managers only)."""

from __future__ import annotations

import re

from biobank.models.vocab import ContainerKind, StorageTemperature
from tests.factories import PASSWORD


def _login(client, username):
    html = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', html).group(1)
    client.post("/login", data={"username": username, "password": PASSWORD, "csrf": csrf})


def test_review_then_execute_from_the_page(client, make, site, manager, db_session):
    failing = make.container(
        site=site, kind=ContainerKind.FREEZER, name="F-bad", temperature=StorageTemperature.MINUS_60_85
    )
    healthy = make.container(
        site=site, kind=ContainerKind.FREEZER, name="F-good", temperature=StorageTemperature.MINUS_60_85
    )
    src = make.box(
        site=site,
        parent=make.container(site=site, kind=ContainerKind.RACK, parent=failing),
        n_rows=1,
        n_cols=2,
    )
    make.box(
        site=site,
        parent=make.container(site=site, kind=ContainerKind.RACK, parent=healthy),
        n_rows=1,
        n_cols=2,
    )
    tube = make.specimen(participant=make.participant(site=site), container=src, pos_row=1, pos_col=1)
    _login(client, "manager")
    html = client.get(f"/containers/{failing.id}/evacuation").get_data(as_text=True)
    assert tube.barcode in html and "F-good" in html and 'id="execute"' in html
    digest = re.search(r'name="plan_sha256" value="([0-9a-f]{64})"', html).group(1)
    csrf = re.search(r'name="csrf" value="([^"]+)"', html).group(1)
    html = client.post(
        f"/containers/{failing.id}/evacuation", data={"plan_sha256": digest, "csrf": csrf}
    ).get_data(as_text=True)
    assert "Evacuation report" in html and "1 specimens moved out of F-bad" in html
    db_session.expire_all()
    assert tube.container.path()[0].name == "F-good"
