"""Site scoping fails closed: one registry says how each model reaches its site."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from biobank.models import ImportJob, RackScan
from biobank.services.common import ScopeUndeclared, visible


def test_a_model_without_a_declared_site_path_cannot_be_scoped(technician):
    with pytest.raises(ScopeUndeclared, match="ImportJob"):
        visible(sa.select(ImportJob), ImportJob, technician)


def test_rack_scans_of_another_site_are_not_found(
    client, make, other_site, technician, admin, headers, db_session
):
    box = make.box(site=other_site)
    scan = RackScan(
        container_id=box.id,
        actor_id=admin.id,
        file_format="fluidx",
        file_sha256="0" * 64,
        positions={},
        diff={},
    )
    db_session.add(scan)
    db_session.flush()
    assert client.get(f"/api/v1/rack-scans/{scan.id}", headers=headers(technician)).status_code == 404
    assert client.get(f"/api/v1/rack-scans/{scan.id}", headers=headers(admin)).status_code == 200
