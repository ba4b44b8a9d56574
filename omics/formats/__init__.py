"""Readers of omics file formats (pure: no Flask, no SQLAlchemy), chosen through a registry.

``read(path)`` picks the reader for a file by its content and name; every reader raises
:class:`FormatError` naming the file, and the line or column where it can, for input it
cannot read.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from omics.formats.errors import FormatError

#: format name → (test of a path, reader class)
REGISTRY: dict[str, tuple[Callable[[Path], bool], Callable[..., Any]]] = {}


#: formats tried only when no other accepts the file (a generic table takes any .txt)
FALLBACKS: set[str] = set()


def register(name: str, accepts: Callable[[Path], bool], *,
             fallback: bool = False) -> Callable[[Any], Any]:
    def decorate(cls: Any) -> Any:
        REGISTRY[name] = (accepts, cls)
        if fallback:
            FALLBACKS.add(name)
        cls.format_name = name
        return cls

    return decorate


def detect(path: str | Path) -> str:
    path = Path(path)
    ordered = sorted(REGISTRY.items(), key=lambda item: item[0] in FALLBACKS)
    for name, (accepts, _cls) in ordered:
        if accepts(path):
            return name
    known = ", ".join(REGISTRY)
    raise FormatError(f"no reader for this file (known formats: {known})", path=path)


def open_reader(path: str | Path, fmt: str | None = None, **options: Any) -> Any:
    fmt = fmt or detect(path)
    if fmt not in REGISTRY:
        raise FormatError(f"unknown format {fmt!r}", path=Path(path))
    return REGISTRY[fmt][1](Path(path), **options)


from omics.formats import alignments, bedmethyl, maf, matrix, vcf  # noqa: E402,F401  (readers)

__all__ = ["REGISTRY", "FormatError", "detect", "open_reader", "register"]
