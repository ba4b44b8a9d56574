"""Another site's data, read by id: every such operation answers a single-site user with
404 (or 403) and an administrator with the object. The table below names every GET
operation that takes an identifier; a new one that is in neither table fails the suite."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from biobank.models import ConsentResponse, Image, PositionHold, PositionHoldKind, RackScan
from biobank.models.images import ImageModality
from labels.models import Printer, PrinterKind
from tests.omics.test_omics_api import STRELKA, _upload

#: operations that read one site's data, with the object of the other site they are called on
SCOPED = [
    "/api/v1/sites/{site}",
    "/api/v1/participants/{participant}",
    "/api/v1/consents/{consent}",
    "/api/v1/cases/{case}",
    "/api/v1/cases/{case}/phenopacket",
    "/api/v1/lesions/{lesion}",
    "/api/v1/collection-events/{visit}",
    "/api/v1/specimens/{specimen}",
    "/api/v1/specimens/by-barcode/{barcode}",
    "/api/v1/specimens/{specimen}/lineage",
    "/api/v1/specimens/{specimen}/sprec",
    "/api/v1/specimens/{specimen}/custody",
    "/api/v1/specimens/{barcode}/timeline",
    "/api/v1/containers/{box}",
    "/api/v1/containers/{box}/holds",
    "/api/v1/containers/{box}/evacuation-plan",
    "/api/v1/scans/card/{barcode}",
    "/api/v1/rack-scans/{rack_scan}",
    "/api/v1/images/{image}",
    "/api/v1/images/{image}/thumbnail",
    "/api/v1/print-jobs/{print_job}",
    "/api/v1/print-jobs/{print_job}/document",
    "/api/v1/omics/files/{omics_file}",
    "/api/v1/omics/files/{omics_file}/features/{feature}",
    "/ga4gh/drs/v1/objects/{sha}",
    "/ga4gh/drs/v1/objects/{sha}/access/{access}",
    "/ga4gh/drs/v1/objects/{sha}/content",
    "/htsget/{datatype}/{sha}",
    "/htsget/variants/{sha}/bgzf",
    "/fhir/r4/Specimen/{specimen}",
    "/fhir/r4/Patient/{participant}",
    "/fhir/r4/Condition/{case}",
    "/fhir/r4/BodyStructure/{lesion}",
    "/fhir/r4/Consent/{consent}",
    "/fhir/r4/Media/{image}",
]
PARCELS = "parcels of one's own sites (test_requests)"
#: identifier operations that are not about one site's data, and why
EXEMPT = {
    "/api/v1/studies/{item_id}": "studies are shared by the network",
    "/api/v1/users/{user_id}": "accounts are the administrators' (test_users)",
    "/api/v1/imports/templates/{name}.{fmt}": "blank templates",
    "/api/v1/imports/{item_id}": "a manager's own import jobs (administrators: all)",
    "/api/v1/imports/{item_id}/problems": "a manager's own import jobs",
    "/api/v1/imports/{item_id}/problems.csv": "a manager's own import jobs",
    "/api/v1/query/{level}": "the query engine scopes every count and row itself",
    "/api/v1/query/{level}/completeness": "the query engine scopes it",
    "/api/v1/cohorts/{cohort_id}": "cohorts are their owner's; exports check sites",
    "/api/v1/cohorts/snapshots/{snapshot_id}": "snapshots are their cohort owner's",
    "/api/v1/cohorts/snapshots/{snapshot_id}/verify": "snapshots are their cohort owner's",
    "/api/v1/cohorts/snapshots/{snapshot_id}/diff/{other_id}": "snapshots are their owner's",
    "/api/v1/cohorts/{cohort_id}/manifest": "check_export_sites (test_cohorts)",
    "/api/v1/cohorts/{cohort_id}/mudata": "check_export_sites (test_cohorts)",
    "/api/v1/cohorts/{cohort_id}/phenopackets": "check_may_export (test_phenopackets)",
    "/api/v1/cohorts/exports/{export_id}": "check_export_sites (test_cohorts)",
    "/api/v1/requests/{request_id}": "a request spans sites; its tubes are filtered per site",
    "/api/v1/requests/{request_id}/pick-list": "filtered per site (test_requests)",
    "/api/v1/requests/{request_id}/pick-list.pdf": "filtered per site",
    "/api/v1/requests/{request_id}/distribution-report": "filtered per site (test_requests)",
    "/api/v1/requests/{request_id}/shipment/manifest.{fmt}": PARCELS,
    "/api/v1/requests/{request_id}/shipments": "parcels of one's own sites (test_requests)",
    "/api/v1/requests/{request_id}/shipments/{shipment_id}/manifest.{fmt}": PARCELS,
    "/htsget/{datatype}/service-info": "describes the service, names no file",
    "/fhir/r4/Group/{snapshot_id}": "snapshots are their cohort owner's; members are listed "
    "for one's own sites only (test_fhir)",
}


#: writes on one site's data by identifier: (method, path, a valid body)
SCOPED_WRITES = [
    ("PATCH", "/api/v1/participants/{participant}", {}),
    ("PATCH", "/api/v1/consents/{consent}", {}),
    ("PATCH", "/api/v1/cases/{case}", {}),
    ("PATCH", "/api/v1/lesions/{lesion}", {}),
    ("PATCH", "/api/v1/collection-events/{visit}", {}),
    ("PATCH", "/api/v1/specimens/{specimen}", {}),
    ("PATCH", "/api/v1/containers/{box}", {}),
    ("PATCH", "/api/v1/sites/{site}", {}),
    ("POST", "/api/v1/specimens/{specimen}/aliquots", {"count": 1, "quantity": 0.1}),
    ("POST", "/api/v1/specimens/{specimen}/custody/corrections", {"event_id": 1, "reason": "x"}),
    ("POST", "/api/v1/containers/{box}/holds", {"pos_row": 2, "pos_col": 2, "kind": "reserved"}),
    ("DELETE", "/api/v1/containers/{box}/holds/{hold}", None),
    ("POST", "/api/v1/containers/{box}/move", {"parent_id": 1}),
    ("POST", "/api/v1/containers/{box}/evacuate", {"plan_sha256": "0" * 64}),
    ("POST", "/api/v1/rack-scans/{rack_scan}/confirm", {}),
    ("POST", "/api/v1/print-jobs/{print_job}/retry", None),
    ("POST", "/api/v1/printers/{printer}/status", None),
    ("POST", "/api/v1/printers/{printer}/test-print", None),
]
#: writes by identifier that are not about one site's data, and why
EXEMPT_WRITES = {
    "/api/v1/users/{user_id}": "accounts are the administrators' (test_users)",
    "/api/v1/users/{user_id}/lock": "accounts are the administrators'",
    "/api/v1/users/{user_id}/unlock": "accounts are the administrators'",
    "/api/v1/users/{user_id}/password-reset": "accounts are the administrators'",
    "/api/v1/studies/{item_id}": "studies are shared (administrators and managers)",
    "/api/v1/studies/{item_id}/consent-tiers": "studies are shared",
    "/api/v1/query/{level}": "the query engine scopes it",
    "/api/v1/cohorts/{cohort_id}": "cohorts are their owner's",
    "/api/v1/cohorts/{cohort_id}/snapshots": "cohorts are their owner's",
    "/api/v1/tokens/{token_id}": "a user's own tokens (test_tokens)",
    "/api/v1/requests/{request_id}/decision": "requests span sites: managers decide",
    "/api/v1/requests/{request_id}/withdraw": "the requester's own request",
    "/api/v1/requests/{request_id}/allocation": "allocation spans sites",
    "/api/v1/requests/{request_id}/picks": "each site picks its own (test_requests)",
    "/api/v1/requests/{request_id}/shipment": "each site ships its own tubes (test_requests)",
    "/api/v1/requests/{request_id}/receipt": "the receiving lab's scans",
    "/api/v1/requests/{request_id}/returns": "tubes back to their own site",
    "/api/v1/requests/{request_id}/allocations/{allocation_id}/aliquot": "a picked tube",
    "/api/v1/requests/{request_id}/processing": "each site makes its own tubes' aliquots (test_requests)",
}


def api_prefixes(app):
    """Where the API's operations live, as the packages registered them: every other route
    is a page, and test_page_access holds pages to the same rule."""
    return tuple(app.extensions["biobank_api_paths"])


#: operations anyone may call, signed in or not, and why
OPEN = {
    ("GET", "/api/v1/openapi.json"): "the API's description",
    ("GET", "/api/docs"): "the API's documentation page",
    ("GET", "/api/docs/assets/<path:filename>"): "the documentation page's scripts and styles",
    ("GET", "/ga4gh/drs/v1/service-info"): "describes the service, names no object",
    ("GET", "/fhir/r4/metadata"): "the FHIR server's CapabilityStatement",
    ("GET", "/htsget/<any(reads, variants):datatype>/service-info"): "describes the service",
    **{
        ("GET", f"/beacon/v2/{path}"): "describes the beacon"
        for path in ("", "info", "service-info", "map", "configuration", "entry_types", "filtering_terms")
    },
    # a yes or no to anyone (BEACON_ANONYMOUS), protected counts to researchers, records of
    # their sites to staff: tests/omics/test_beacon.py
    **{
        (method, f"/beacon/v2/{entry}"): "Beacon granularity by who asks"
        for entry in ("g_variants", "individuals", "biosamples")
        for method in ("GET", "POST")
    },
}


def test_every_operation_declares_its_roles(app):
    """An operation without ``roles_required`` would answer whoever asks: each one declares
    the roles that may call it, or is listed above as open."""
    undeclared = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(api_prefixes(app)):
            continue
        view = app.view_functions[rule.endpoint]
        view_class = getattr(view, "view_class", None)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            func = getattr(view_class, method.lower(), None) if view_class else view
            if not getattr(func, "_roles", None) and (method, rule.rule) not in OPEN:
                undeclared.append(f"{method} {rule.rule}")
    assert undeclared == []


def _template(path):
    return re.sub(r"\{[^}]+\}", "{}", path)


def test_every_operation_with_an_identifier_is_in_the_matrix(client, db_session):
    spec = client.get("/api/v1/openapi.json").json
    reads = {p for p, ops in spec["paths"].items() if "get" in ops and "{" in p}
    listed = {_template(p) for p in SCOPED} | {_template(p) for p in EXEMPT}
    assert sorted(p for p in reads if _template(p) not in listed) == []
    writes = {
        p for p, ops in spec["paths"].items() if "{" in p and set(ops) & {"post", "patch", "put", "delete"}
    }
    listed = {_template(p) for _, p, _ in SCOPED_WRITES} | {_template(p) for p in EXEMPT_WRITES}
    assert sorted(p for p in writes if _template(p) not in listed) == []


@pytest.fixture
def elsewhere(client, make, other_site, admin, headers, db_session):
    """One object of each kind at the other site."""
    participant = make.participant(site=other_site)
    case = make.case(participant=participant)
    lesion = make.lesion(case=case)
    visit = make.visit(participant=participant, case=case, lesion=lesion)
    box = make.box(site=other_site)
    specimen = make.specimen(
        participant=participant, collection_event=visit, container=box, pos_row=1, pos_col=1
    )
    normal = make.specimen(participant=participant, collection_event=visit)
    consent = db_session.scalars(
        sa.select(ConsentResponse).where(ConsentResponse.participant_id == participant.id)
    ).first()
    rack_scan = RackScan(
        container_id=box.id,
        actor_id=admin.id,
        file_format="fluidx",
        file_sha256="1" * 64,
        positions={},
        diff={},
    )
    image = Image(
        case_id=case.id,
        lesion_id=lesion.id,
        modality=ImageModality.DERMOSCOPY,
        filename="x.jpg",
        uri="none/x.jpg",
        mime_type="image/jpeg",
        size_bytes=1,
        sha256="2" * 64,
        created_by="admin",
    )
    hold = PositionHold(
        container_id=box.id,
        pos_row=3,
        pos_col=3,
        kind=PositionHoldKind.RESERVED,
        reason="kept",
        created_by="admin",
    )
    printer = Printer(name="There", kind=PrinterKind.ZPL_TCP, address="127.0.0.1:9", site_id=other_site.id)
    db_session.add_all([rack_scan, image, hold, printer])
    db_session.commit()
    there = make.user("there-tech", role="technician", sites=[other_site])
    job = client.post(
        "/api/v1/print-jobs/",
        headers=headers(there),
        json={"template": "cryovial-2d", "specimen_ids": [specimen.id]},
    ).json
    omics = _upload(
        client,
        headers(admin),
        STRELKA,
        kind="exome",
        reference_genome="GRCh37",
        sample_map={"TUMOR": specimen.barcode, "NORMAL": normal.barcode},
    ).json
    return {
        "site": other_site.id,
        "participant": participant.id,
        "consent": consent.id,
        "case": case.id,
        "lesion": lesion.id,
        "visit": visit.id,
        "specimen": specimen.id,
        "barcode": specimen.barcode,
        "box": box.id,
        "rack_scan": rack_scan.id,
        "image": image.id,
        "print_job": job["id"],
        "omics_file": omics["id"],
        "sha": omics["sha256"],
        "feature": "BRAF",
        "access": "https",
        "hold": hold.id,
        "printer": printer.id,
        "datatype": "variants",
    }


@pytest.mark.parametrize("role", ["technician", "manager", "researcher"])
def test_another_sites_data_is_not_found_by_id(client, make, site, admin, headers, elsewhere, role):
    here = headers(make.user(f"here-{role}", role=role, sites=[site]))
    leaks = []
    for path in SCOPED:
        url = path.format(**elsewhere)
        with client.get(url, headers=here) as r:
            if r.status_code not in (403, 404):
                leaks.append((url, r.status_code))
    assert leaks == []


def test_an_administrator_reads_every_one_of_them(client, admin, headers, elsewhere):
    answers = {}
    for path in SCOPED:
        with client.get(path.format(**elsewhere), headers=headers(admin)) as r:
            answers[path] = r.status_code
    # the image's file was never stored, and a VCF holds no expression matrix: those two
    # answer about what is missing, after the object itself was found
    assert answers.pop("/api/v1/images/{image}/thumbnail") == 404
    assert answers.pop("/api/v1/omics/files/{omics_file}/features/{feature}") == 422
    # (a box has no evacuation plan of its own: 409 is still an answer about it)
    assert {path: code for path, code in answers.items() if code >= 400 and code != 409} == {}


@pytest.mark.parametrize("role", ["technician", "manager"])
def test_another_sites_data_cannot_be_changed_by_id(client, make, site, headers, elsewhere, role, db_session):
    from biobank.models import AuditRecord, CustodyEvent

    here = headers(make.user(f"writer-{role}", role=role, sites=[site]))
    before = [
        db_session.scalar(sa.select(sa.func.count()).select_from(m))
        for m in (AuditRecord, CustodyEvent, PositionHold)
    ]
    changed = []
    for method, path, body in SCOPED_WRITES:
        url = path.format(**elsewhere)
        r = client.open(url, method=method, json=body, headers=here | {"If-Match": "*"})
        if r.status_code not in (403, 404):
            changed.append((method, url, r.status_code))
    assert changed == []
    db_session.expire_all()
    assert [
        db_session.scalar(sa.select(sa.func.count()).select_from(m))
        for m in (AuditRecord, CustodyEvent, PositionHold)
    ] == before
