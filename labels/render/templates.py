"""Declarative label templates (JSON) and the placeholders they may show."""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

#: placeholders a template may use, with what they show
PLACEHOLDERS = {
    "barcode": "The specimen's barcode (also what the symbols encode)",
    "participant_code": "Pseudonymous participant code",
    "material_type": "MIABIS material type",
    "collection_date": "Collection date (YYYY-MM-DD)",
    "volume": "Quantity with unit, e.g. 0.5 mL",
    "sprec_code": "SPREC code",
    "label": "Human-readable label text",
    "container": "Container name (box labels)",
    "site": "Site name",
    "destination": "Shipping destination",
    "text": "Free text",
    "gs1": "GS1 element string, human-readable: (01)GTIN(17)YYMMDD(10)lot",
}
_FIELD = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
#: the symbols and text a template can place (linear symbols: see labels.render.linear)
ELEMENT_TYPES = {"datamatrix", "code128", "code39", "gs1-128", "text"}


class LabelError(ValueError):
    """A template or value that cannot make a correct label; the message says which, and
    *field* names the placeholder whose value is at fault, when one is."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Element:
    type: str
    x: float  # mm from the left edge
    y: float  # mm from the top edge
    value: str  # text with {placeholders}
    width: float = 0.0  # mm available (text, linear symbols)
    height: float = 0.0  # mm (bar height of linear symbols)
    font_size: float = 6.0  # points (text)
    min_font_size: float = 4.0
    max_lines: int = 1
    module: float = 0.0  # mm per module (symbols)

    @functools.cached_property
    def placeholders(self) -> tuple[str, ...]:
        """The placeholders of ``value``, sorted (computed once: labels are many)."""
        return tuple(sorted(set(_FIELD.findall(self.value))))

    def fields(self) -> set[str]:
        return set(self.placeholders)

    def fill(self, values: dict[str, Any]) -> str:
        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in values or values[name] is None:
                raise LabelError(f"no value for placeholder {{{name}}}", field=name)
            return str(values[name])

        return _FIELD.sub(sub, self.value)


@dataclass(frozen=True)
class Template:
    name: str
    title: str
    width_mm: float
    height_mm: float
    elements: tuple[Element, ...] = field(default_factory=tuple)

    @property
    def fields(self) -> set[str]:
        return set().union(*(e.fields() for e in self.elements))


def parse_template(data: dict[str, Any], *, name: str) -> Template:
    """Build a template from its JSON form, refusing unknown placeholders and elements.

    Parameters
    ----------
    data
        ``{"title", "width_mm", "height_mm", "elements": [{"type", "x", "y", "value", ...}]}``
    name
        Template name, used in error messages.
    """
    try:
        elements = []
        for i, raw in enumerate(data["elements"]):
            if raw.get("type") not in ELEMENT_TYPES:
                raise LabelError(
                    f"{name}: element {i} has unknown type {raw.get('type')!r} "
                    f"(use {', '.join(sorted(ELEMENT_TYPES))})"
                )
            element = Element(**raw)
            unknown = element.fields() - set(PLACEHOLDERS)
            if unknown:
                raise LabelError(
                    f"{name}: element {i} refers to unknown placeholder(s) {', '.join(sorted(unknown))}"
                )
            if element.type != "text" and element.module <= 0:
                raise LabelError(f"{name}: element {i} needs a module size in mm")
            elements.append(element)
        return Template(
            name=name,
            title=data["title"],
            width_mm=float(data["width_mm"]),
            height_mm=float(data["height_mm"]),
            elements=tuple(elements),
        )
    except (KeyError, TypeError) as error:
        raise LabelError(f"{name}: malformed template ({error})") from None


def template_names() -> list[str]:
    """Names of the templates shipped with the package."""
    folder = resources.files("labels") / "templates"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


def load_template(name: str) -> Template:
    """Load a shipped template by name (e.g. ``cryovial-2d``)."""
    if name not in template_names():
        raise LabelError(f"unknown template {name!r} (known: {', '.join(template_names())})")
    text = (resources.files("labels") / "templates" / f"{name}.json").read_text()
    return parse_template(json.loads(text), name=name)


def templates_fitting(available: set[str] | frozenset[str]) -> list[str]:
    """Names of the shipped templates whose every placeholder is among *available* (the
    values an object can give): the only ones that can print it."""
    return [name for name in template_names() if load_template(name).fields <= available]
