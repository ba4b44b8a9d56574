"""Keyset pagination: ordered by id, the cursor is the last id of the page."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from flask import current_app, request

from biobank.db import db


def paginate(stmt: sa.Select, id_column: Any, args: dict[str, Any]) -> tuple[list[Any], dict]:
    """Run *stmt* for one page and return the rows and the `Link`/`X-Next-Cursor` headers."""
    limit = args.get("limit") or current_app.config["API_DEFAULT_PAGE_SIZE"]
    limit = min(limit, current_app.config["API_MAX_PAGE_SIZE"])
    after = args.get("after")
    if after is not None:
        stmt = stmt.where(id_column > after)
    rows = list(db.session.scalars(stmt.order_by(id_column).limit(limit + 1)).unique())
    headers: dict[str, str] = {}
    if len(rows) > limit:
        rows = rows[:limit]
        cursor = rows[-1].id
        query = {k: v for k, v in request.args.items() if k != "after"}
        query["after"] = str(cursor)
        headers["X-Next-Cursor"] = str(cursor)
        headers["Link"] = f'<{request.path}?{urlencode(query)}>; rel="next"'
    return rows, headers
