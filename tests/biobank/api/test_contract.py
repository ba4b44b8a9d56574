"""The OpenAPI contract checked by schemathesis: generated requests to every operation, as an
administrator and as a single-site manager, technician and researcher, get no server error,
answers that match the schema, and (for the single-site users) no identifier of another
site."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.contract
#: generated examples per operation: the run stays within a minute or two
EXAMPLES = 20
#: what the answers must do. Requests the schema allows may still be refused with 4xx for
#: rules it cannot state (control characters, unknown references, lifecycle), so schemathesis'
#: "valid data should be accepted" check is not among them.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


def no_other_site_identifiers(markers):
    """A check: no answer to a single-site user carries an identifier of the other site."""

    def check(ctx, response, case):
        found = [m for m in markers if m in response.text]
        if found:
            raise AssertionError(
                f"{case.method} {case.formatted_path} answered another site's identifiers {found}"
            )

    return check


def _check(operation, callers):
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(case=operation.as_strategy())
    def run(case):
        for headers, extra in callers.values():
            case.call_and_validate(headers=headers, checks=CHECKS + extra)

    run()


def test_every_operation_keeps_its_contract(
    app, make, site, other_site, admin, manager, technician, researcher, db_session
):
    participant = make.participant(site=site)
    make.specimen(participant=participant)
    # the other site's data, with identifiers that must never reach a single-site user
    theirs = make.participant(site=other_site, code="ELSEWHERE-P1")
    tube = make.specimen(participant=theirs, barcode="ELSEWHERE0001")
    guard = [no_other_site_identifiers([theirs.code, tube.barcode])]
    callers = {
        "admin": (make.auth_headers(admin), []),
        "manager": (make.auth_headers(manager), guard),
        "technician": (make.auth_headers(technician), guard),
        "researcher": (make.auth_headers(researcher), guard),
    }
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    failures, checked = [], 0
    for result in schema.get_all_operations():
        operation = result.ok()
        checked += 1
        try:
            _check(operation, callers)
        except Exception as error:  # every operation is checked; all failures are reported
            failures.append(f"{operation.label}: {error}")
    assert checked > 50
    assert not failures, "\n\n".join(failures)
