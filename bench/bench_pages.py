"""Server time of every page a lab uses, under concurrent signed-in users.

    python -m bench.bench_pages --backend both                     # the million-specimen database
    python -m bench.bench_pages --backend sqlite --participants 2000   # quick run

Each simulated user signs in through the login form (a browser's session cookie), then
opens its role's pages in turn for ``--seconds``. The server's own time comes from the
``Server-Timing`` header every answer carries; the time the client waited (which includes
queueing for a worker and this process's own CPU, on the same cores) is printed beside it.
The baseline, measured in the same run by the same users, is the sign-in page: a template
and no query. Target: p95 server time < 300 ms for every page under 20 users.
"""

from __future__ import annotations

import argparse
import os
import re
import threading
import time
from collections import defaultdict
from typing import Any

import requests
import sqlalchemy as sa

from bench.common import Client, ensure_database, live_server, percentiles, run_threads, token_for

PASSWORDS = {
    "tech": "tech-demo-pw",
    "manager": "manager-demo-pw",
    "researcher": "researcher-demo-pw",
    "admin": "admin-demo-pw",
}


def pages_of(ids: dict[str, Any]) -> dict[str, list[tuple[str, str]]]:
    """(name, path) of the pages each role opens, in the order a day's work might."""
    bc, code, case = ids["barcode"], ids["participant"], ids["case"]
    staff = [
        ("sign-in page", "/login"),
        ("dashboard", "/"),
        ("specimen list", "/specimens"),
        ("specimen list, material + status", "/specimens?material_type=PLASMA&status=in_storage"),
        ("specimen list, sorted by barcode", "/specimens?sort=barcode"),
        ("specimen search, barcode prefix", f"/specimens?q={bc[:8]}&status=in_storage"),
        ("exact barcode opens the specimen", f"/specimens?q={bc}"),
        ("specimen", f"/specimens/{bc}"),
        ("scan station", "/scan"),
        ("receive a parcel", "/receive"),
        ("accession: find participant", "/accession"),
        ("accession: visit form", f"/accession/visit?participant={code}"),
        ("aliquot plan", f"/specimens/{bc}/aliquot"),
        ("storage", "/storage"),
        ("box grid", f"/containers/{ids['box']}"),
        ("freezer", f"/containers/{ids['freezer']}"),
        ("participant", f"/participants/{code}"),
        ("case", f"/cases/{case}"),
        ("account", "/account"),
    ]
    manager = [
        ("sign-in page", "/login"),
        ("dashboard", "/"),
        ("request list", "/requests"),
        ("request with pick list", f"/requests/{ids['request']}"),
        ("distribution report", f"/requests/{ids['request']}/report"),
        ("cohort list", "/cohorts"),
        ("cohort", f"/cohorts/{ids['cohort']}"),
        ("cohort builder", "/cohorts/new"),
        ("imports", "/imports"),
        ("sites and studies", "/admin/network"),
        ("specimen list", "/specimens"),
    ]
    admin = [
        ("sign-in page", "/login"),
        ("users", "/admin/users"),
        ("sites and studies", "/admin/network"),
        ("account", "/account"),
    ]
    researcher = [
        ("sign-in page", "/login"),
        ("dashboard", "/"),
        ("cohort builder", "/cohorts/new"),
        ("cohort list", "/cohorts"),
        ("request list", "/requests"),
        ("new request", f"/requests/new?cohort={ids['cohort']}"),
    ]
    return {"tech": staff, "manager": manager, "researcher": researcher, "admin": admin}


def sample_ids(url: str) -> dict[str, Any]:
    """A stored tube with a place, its participant and case, its box and freezer."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT s.barcode, p.code AS participant, c.code AS kase, s.container_id AS box "
                "FROM specimens s JOIN participants p ON p.id = s.participant_id "
                "JOIN cases c ON c.id = s.case_id JOIN sites st ON st.id = s.site_id "
                "WHERE s.status = 'in_storage' AND s.pos_row IS NOT NULL AND st.code = 'CTR' "
                "ORDER BY s.id LIMIT 1 OFFSET 5000"
            )
        ).one()
        freezer = conn.execute(
            sa.text("SELECT id FROM storage_containers WHERE parent_id IS NULL ORDER BY id LIMIT 1")
        ).scalar_one()
    engine.dispose()
    return {
        "barcode": row.barcode,
        "participant": row.participant,
        "case": row.kase,
        "box": row.box,
        "freezer": freezer,
    }


TITLE = "Frozen melanoma, one birth year"


def approved_request(port: int, url: str) -> tuple[int, int]:
    """A researcher's cohort of melanoma cases born in one year, a request for their frozen
    tissue, approved by the manager and allocated: the request page then shows a pick list."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:  # made by an earlier run: its tubes are allocated
        earlier = conn.execute(
            sa.text("SELECT cohort_id, id FROM sample_requests WHERE title = :t ORDER BY id LIMIT 1"),
            {"t": TITLE},
        ).first()
    engine.dispose()
    if earlier is not None:
        return earlier.cohort_id, earlier.id
    researcher = Client(port, token_for(url, "researcher"))
    manager = Client(port, token_for(url, "manager"))
    filters = {
        "op": "and",
        "content": [
            {"op": "=", "content": {"field": "cases.disease_group", "value": "melanoma"}},
            {"op": "=", "content": {"field": "participants.birth_year", "value": 1961}},
        ],
    }
    status, body = researcher.call(
        "POST", "/api/v1/cohorts/", {"name": "bench pages", "level": "cases", "filters": filters}
    )
    assert status == 201, body
    cohort = _json(body)["id"]
    status, body = researcher.call(
        "POST",
        "/api/v1/requests/",
        {
            "title": TITLE,
            "purpose": "Page benchmark",
            "ethics_reference": "IRB-BENCH",
            "cohort_id": cohort,
            "requirements": {"material_type": "TISSUE_FROZEN", "min_quantity": 1, "unit": "mg"},
            "consent_scopes": ["genetic_research"],
        },
    )
    assert status == 201, body
    request_id = _json(body)["id"]
    status, body = manager.call(
        "POST",
        f"/api/v1/requests/{request_id}/decision",
        {"decision": "approve", "password": PASSWORDS["manager"]},
    )
    assert status == 200, body
    status, body = manager.call("POST", f"/api/v1/requests/{request_id}/allocation")
    assert status == 200, body
    return cohort, request_id


def _json(body: bytes) -> Any:
    import json

    return json.loads(body)


def signed_in(port: int, role: str) -> requests.Session:
    """A browser-like session: the login form's token, then the form posted."""
    session = requests.Session()
    base = f"http://127.0.0.1:{port}"
    form = session.get(f"{base}/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
    r = session.post(
        f"{base}/login",
        data={"username": role, "password": PASSWORDS[role], "csrf": csrf},
        allow_redirects=False,
    )
    assert r.status_code == 302, f"{role} could not sign in: {r.status_code}"
    return session


def load(
    port: int, pages: dict[str, list[tuple[str, str]]], users: int, seconds: float, think: float
) -> dict[str, Any]:
    """*users* sessions (half technicians, then managers, researchers and an administrator)
    for *seconds*, each waiting *think* seconds between pages as a person reads them."""
    roles = [
        "tech",
        "manager",
        "tech",
        "researcher",
        "tech",
        "admin",
        "tech",
        "manager",
        "tech",
        "researcher",
    ]
    sessions = [(roles[n % len(roles)], signed_in(port, roles[n % len(roles)])) for n in range(users)]
    server: dict[str, list[float]] = defaultdict(list)
    waited: dict[str, list[float]] = defaultdict(list)
    failures: dict[str, list[int]] = defaultdict(list)
    lock = threading.Lock()
    claim = iter(range(users))
    deadline = time.monotonic() + seconds

    def user() -> None:
        with lock:
            n = next(claim)
        role, session = sessions[n]
        route = pages[role]
        step = n  # users start at different pages
        time.sleep(think * n / users)  # people do not all click at once
        while time.monotonic() < deadline:
            name, path = route[step % len(route)]
            step += 1
            started = time.perf_counter()
            try:
                r = session.get(f"http://127.0.0.1:{port}{path}", allow_redirects=False)
            except requests.ConnectionError:
                # the server closed an idle keep-alive connection: a browser opens a new one
                started = time.perf_counter()
                r = session.get(f"http://127.0.0.1:{port}{path}", allow_redirects=False)
            elapsed = time.perf_counter() - started
            timing = r.headers.get("Server-Timing", "")
            with lock:
                if r.status_code not in (200, 302) or "dur=" not in timing:
                    failures[name].append(r.status_code)
                    continue
                server[name].append(float(timing.split("dur=")[1]) / 1000)
                waited[name].append(elapsed)
            time.sleep(think)

    run_threads(user, users)
    return {"server": server, "waited": waited, "failures": failures}


def run(
    backend: str, participants: int, users: int, seconds: float, think: float, workers: int, threads: int
) -> None:
    name = f"bench_{participants}"
    url = ensure_database(backend, name, participants=participants)
    ids = sample_ids(url)
    # the server is reached over plain HTTP on this machine: the session cookie cannot be HTTPS-only
    os.environ["BIOBANK_SESSION_COOKIE_SECURE"] = "false"
    with live_server(url, workers=workers, threads=threads) as port:
        ids["cohort"], ids["request"] = approved_request(port, url)
        pages = pages_of(ids)
        load(port, pages, min(users, 5), 3, 0)  # warm every worker's caches
        result = load(port, pages, users, seconds, think)
    served = f"gunicorn {workers}×{threads}" if backend == "postgresql" else f"gunicorn 1×{threads} (SQLite)"
    print(f"\n{backend}, {name}: {users} users for {seconds:.0f} s, {think} s between pages, {served}")
    base = percentiles(result["server"]["sign-in page"])["p95"]
    print(f"{'page':36} {'n':>5} {'server p50':>11} {'p95':>8} {'× sign-in':>10} {'waited p95':>11}")
    worst = 0.0
    for page in dict.fromkeys(n for route in pages.values() for n, _ in route):
        samples = result["server"].get(page)
        if not samples:
            print(f"{page:36} no answer: {result['failures'].get(page)}")
            continue
        s, w = percentiles(samples), percentiles(result["waited"][page])
        worst = max(worst, s["p95"])
        print(
            f"{page:36} {len(samples):5} {s['p50']:9.1f} ms {s['p95']:6.1f} ms {s['p95'] / base:9.1f}× "
            f"{w['p95']:8.1f} ms"
        )
    failed = {k: sorted(set(v)) for k, v in result["failures"].items()}
    print(f"slowest page p95 {worst:.1f} ms (target < 300 ms); failures: {failed or 'none'}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--participants", type=int, default=88000)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--think", type=float, default=1.0, help="seconds each user reads a page")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=5)
    args = parser.parse_args()
    for backend in ("sqlite", "postgresql") if args.backend == "both" else (args.backend,):
        run(backend, args.participants, args.users, args.seconds, args.think, args.workers, args.threads)


if __name__ == "__main__":
    main()
