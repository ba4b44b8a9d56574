"""A live server on its own database and a headless Chromium driven by Playwright."""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pytest
from werkzeug.serving import make_server

from biobank import create_app
from biobank.db import db

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _closing(app: Any) -> Any:
    """The app, with every response closed even when the browser drops the connection
    mid-body (the development server leaves a static file open in that case)."""

    def wsgi(environ: dict, start_response: Any) -> Iterator[bytes]:
        body = app(environ, start_response)
        try:
            yield from body
        finally:
            if hasattr(body, "close"):
                body.close()

    return wsgi


@contextmanager
def live_server(database_url: str, *, demo_participants: int = 40) -> Iterator[tuple[str, Any]]:
    """Serve a demo biobank on a free loopback port; yields (base URL, app)."""
    app = create_app(
        {
            "DATABASE_URL": database_url,
            "SECRET_KEY": "browser-tests",
            "SESSION_COOKIE_SECURE": False,  # served over plain HTTP
            # tests change what the pages count, in any order: counted on every visit
            "SUMMARY_CACHE_SECONDS": 0,
        }
    )
    with app.app_context():
        from biobank import migrate
        from biobank.demo import load_demo

        migrate.upgrade()
        load_demo(seed=11, participants=demo_participants)
        db.session.remove()
    server = make_server("127.0.0.1", 0, _closing(app), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", app
    finally:
        server.shutdown()
        thread.join(timeout=10)
        with app.app_context():
            db.engine.dispose()


def module_server(name: str, *, demo_participants: int = 40) -> Any:
    """A module-scoped fixture serving a demo biobank on a database of its own; yields
    (base URL, app)."""

    @pytest.fixture(scope="module")
    def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
        from tests.conftest import separate_database

        url = separate_database(tmp_path_factory.mktemp(name), name)
        with live_server(url, demo_participants=demo_participants) as (base, app):
            yield base, app

    return server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not shutil.which(CHROMIUM) and not os.environ.get("BIOBANK_REQUIRE_BROWSER"):
        pytest.skip("Chromium is not installed (apt-get install chromium); CI installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield CspBypassingBrowser(chromium)
        chromium.close()


class CspBypassingBrowser:
    """The browser, whose contexts let Playwright's own page-side helpers run (its
    ``wait_for_function`` evaluates strings, which the pages' Content-Security-Policy
    forbids). ``test_content_security_policy`` visits the pages with the policy enforced."""

    def __init__(self, browser: Any) -> None:
        self._browser = browser

    def new_context(self, **options: Any) -> Any:
        options.setdefault("bypass_csp", True)
        return self._browser.new_context(**options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._browser, name)


def login(page: Any, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def _focused(page: Any, attribute: str, expected: str, timeout: float) -> str:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    with suppress(PlaywrightTimeout):
        page.wait_for_function(
            f"document.activeElement && document.activeElement.{attribute} === {json.dumps(expected)}",
            timeout=timeout,
        )
    return page.evaluate(f"document.activeElement.{attribute}")


def focused_id(page: Any, expected: str, *, timeout: float = 5000) -> str:
    """The id of the focused element once it is *expected*, or whatever has the focus after
    *timeout* ms: autofocus is applied at the browser's next rendering, not at load."""
    return _focused(page, "id", expected, timeout)


def focused_name(page: Any, expected: str, *, timeout: float = 5000) -> str:
    """Like ``focused_id``, for a field known by its name."""
    return _focused(page, "name", expected, timeout)
