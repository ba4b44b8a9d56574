"""The one error readers raise."""

from __future__ import annotations

from pathlib import Path


class FormatError(ValueError):
    """A file a reader cannot read: which file, and where in it when that is known."""

    def __init__(self, message: str, *, path: Path | str, line: int | None = None,
                 column: str | None = None) -> None:
        where = f"{Path(path).name}"
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column}"
        super().__init__(f"{where}: {message}")
        self.message, self.path, self.line, self.column = message, str(path), line, column
