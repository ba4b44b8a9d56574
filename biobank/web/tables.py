"""Tables on pages: sorted by a column, paged, with their total and a CSV of every row.

A page describes its table once (columns: title, CSV value, optional sort expression) and
hands it the statement its service built, scoping included; the table adds order, offset and
limit, or streams every row as CSV in the same order. The filters stay the page's own: they
are conditions on the statement before it reaches the table. ``_table.html`` draws the sort
links, the total, the pager and the CSV link.
"""

from __future__ import annotations

import csv
import enum
import io
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import Response, abort, stream_with_context

from biobank.db import db
from biobank.models.vocab import display_name
from biobank.services.common import count_of


@dataclass(frozen=True)
class Column:
    title: str
    #: what the CSV holds for a row (display names, not codes)
    value: Callable[[Any], Any]
    #: the expression the table orders by when this column is chosen; None: not sortable
    sort: Any = None
    #: False: in the CSV only (long text a screen row has no room for)
    shown: bool = True


@dataclass
class Page:
    table: Table
    rows: list[Any]
    total: int
    number: int
    pages: int
    sort: str
    descending: bool
    #: the request's other arguments, for links that keep the filters
    args: dict[str, Any]

    def link_args(self, **changes: Any) -> dict[str, Any]:
        """The arguments of a link to another page or order of the same filtered table."""
        args = {**self.args, "sort": self.sort_arg, "page": self.number, **changes}
        return {k: v for k, v in args.items() if v not in (None, "")}

    @property
    def sort_arg(self) -> str:
        return f"-{self.sort}" if self.descending else self.sort

    def sort_link(self, key: str) -> dict[str, Any]:
        """Arguments ordering by *key*: ascending first, descending when it is already ascending."""
        again = key == self.sort and not self.descending
        return self.link_args(sort=f"-{key}" if again else key, page=None)


@dataclass(frozen=True)
class Table:
    name: str
    columns: dict[str, Column]
    #: a column key, with ``-`` in front for descending
    default_sort: str
    #: a unique column that breaks ties, so that pages neither repeat nor skip rows
    tie: Any
    page_size: int = 50

    def _order(self, args: Any) -> tuple[str, bool]:
        text = args.get("sort") or self.default_sort
        key = text.removeprefix("-")
        column = self.columns.get(key)
        if column is None or column.sort is None:
            sortable = ", ".join(k for k, c in self.columns.items() if c.sort is not None)
            abort(400, f"cannot sort {self.name} by {key!r}: sort by one of {sortable}")
        return key, text.startswith("-")

    def _ordered(self, stmt: sa.Select, key: str, descending: bool) -> sa.Select:
        order = [self.columns[key].sort, self.tie]
        return stmt.order_by(None).order_by(*(o.desc() if descending else o.asc() for o in order))

    def page(self, stmt: sa.Select, args: Any) -> Page:
        """One page of *stmt*'s rows as *args* (``sort``, ``page``) ask."""
        key, descending = self._order(args)
        text = args.get("page") or "1"
        if not text.isdigit() or int(text) < 1 or len(text) > 9:
            abort(400, f"no page {text!r} of {self.name}: pages are numbered from 1")
        number = int(text)
        total = count_of(stmt)
        pages = max(1, math.ceil(total / self.page_size))
        number = min(number, pages)
        rows = db.session.scalars(
            self._ordered(stmt, key, descending).offset((number - 1) * self.page_size).limit(self.page_size)
        ).all()
        kept = {k: v for k, v in args.items() if k not in ("sort", "page")}
        return Page(self, list(rows), total, number, pages, key, descending, kept)

    def csv(self, stmt: sa.Select, args: Any, *, filename: str | None = None) -> Response:
        """Every row of *stmt*, in the order the page shows, as a streamed CSV download."""
        key, descending = self._order(args)
        ordered = self._ordered(stmt, key, descending)

        def lines() -> Iterator[str]:
            buffer = io.StringIO()
            out = csv.writer(buffer)
            out.writerow(c.title for c in self.columns.values())
            for row in db.session.scalars(ordered.execution_options(yield_per=500)):
                out.writerow(_text(c.value(row)) for c in self.columns.values())
                if buffer.tell() > 64 * 1024:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
            yield buffer.getvalue()

        return Response(
            stream_with_context(lines()),
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{filename or self.name}.csv"'},
        )


def _text(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, enum.Enum):
        return display_name(value)
    if hasattr(value, "isoformat"):
        return value.isoformat(timespec="seconds") if hasattr(value, "hour") else value.isoformat()
    return value
