"""How the API reads arguments: webargs' Flask parser, with multipart form fields."""

from __future__ import annotations

from typing import Any

from webargs.flaskparser import FlaskParser
from werkzeug.datastructures import CombinedMultiDict


class MultipartParser(FlaskParser):
    """Reads the ``files`` location as the whole multipart body: its files and its form
    fields, so that one schema describes (and OpenAPI documents) a file upload with the
    fields sent beside it."""

    def load_files(self, req: Any, schema: Any) -> Any:
        return self._makeproxy(CombinedMultiDict([req.files, req.form]), schema)
