"""Labels: rendering (``labels.render``, free of Flask and SQLAlchemy) and printing of specimen
and container labels."""

from __future__ import annotations
