"""The one error readers raise."""

from __future__ import annotations

import re
from pathlib import Path

#: an absolute path inside a message from a library (``b'<server folder>/x.vcf'``)
_ABSOLUTE = re.compile(r"(?<![\w/.])(?:/[\w.+-]+)*/(?=[\w.+-]*[A-Za-z])([\w.+-]+)")


class FormatError(ValueError):
    """A file a reader cannot read: which file, and where in it when that is known."""

    def __init__(
        self, message: str, *, path: Path | str, line: int | None = None, column: str | None = None
    ) -> None:
        message = _ABSOLUTE.sub(r"\1", message)  # never a server's folder in a message
        where = f"{Path(path).name}"
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column}"
        super().__init__(f"{where}: {message}")
        self.message, self.path, self.line, self.column = message, str(path), line, column
