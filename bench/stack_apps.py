"""The floor under any request's cost: what gunicorn serves with no application work.

``bare`` is a WSGI callable answering two bytes; ``flask_app`` is a Flask app with one route
answering the same. ``bench_scans`` serves each with the workers it gives the LIMS.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask


def bare(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


flask_app = Flask(__name__)


@flask_app.get("/")
def index() -> str:
    return "ok"
