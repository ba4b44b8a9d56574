"""The registry of readers: each reader module registers its class with the test of a path
it accepts; ``detect`` and ``open_reader`` choose among them. The readers import this module,
never the package that imports them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from omics.formats.errors import FormatError

#: format name → (test of a path, reader class)
REGISTRY: dict[str, tuple[Callable[[Path], bool], Callable[..., Any]]] = {}


#: formats tried only when no other accepts the file (a generic table takes any .txt)
FALLBACKS: set[str] = set()


def register(name: str, accepts: Callable[[Path], bool], *, fallback: bool = False) -> Callable[[Any], Any]:
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
