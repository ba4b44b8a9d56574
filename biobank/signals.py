"""Signals through which packages react to each other without importing each other."""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

specimens_created = _signals.signal("specimens-created")
"""Sent after specimens are flushed. Sender: the acting ``User``. Kwargs: ``specimens`` (list)."""

custody_recorded = _signals.signal("custody-recorded")
"""Sent after a custody event is flushed. Sender: the ``Specimen``. Kwargs: ``event``, ``actor``."""

app_created = _signals.signal("app-created")
"""Sent at the end of ``create_app``. Sender: the Flask app. Packages register extras here."""
