"""Pure label rendering: templates and values in, PDF or ZPL bytes out.

Nothing here imports Flask or SQLAlchemy, so renderers are usable from a notebook or a
script and testable on their own.
"""

from __future__ import annotations

from labels.render.templates import LabelError, Template, load_template, template_names

__all__ = ["LabelError", "Template", "load_template", "template_names"]
