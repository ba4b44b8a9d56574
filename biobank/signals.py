"""Signals through which packages react to each other without importing each other."""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

specimens_created = _signals.signal("specimens-created")
"""Sent after specimens are flushed. Sender: the acting ``User``. Kwargs: ``specimens`` (list)."""

aliquots_created = _signals.signal("aliquots-created")
"""Sent after a parent is split into aliquots or derivatives. Sender: the acting ``User``.
Kwargs: ``parent`` (``Specimen``), ``children`` (list), ``print_request`` (``None`` or a dict
with ``template``, ``printer_id``, ``copies``): the labels package prints the new labels in the
same transaction, so a rolled-back split never gets labels."""

labels_wanted = _signals.signal("labels-wanted")
"""Sent when new specimens made in one action want one print job for all their labels (every
aliquot of a request's processing tasks). Sender: the acting ``User``. Kwargs: ``specimens``
(list), ``print_request`` (a dict with ``template``, ``printer_id``, ``copies``), ``source``
(text). The labels package prints them in the caller's transaction and returns the print job,
so the caller can name it."""

custody_recorded = _signals.signal("custody-recorded")
"""Sent after a custody event is flushed. Sender: the ``Specimen``. Kwargs: ``event``, ``actor``."""

app_created = _signals.signal("app-created")
"""Sent at the end of ``create_app``. Sender: the Flask app. Packages register extras here."""

demo_loaded = _signals.signal("demo-loaded")
"""Sent after the demo biobank has been committed. Sender: ``None``. Kwargs: ``seed``.
Receivers add their own demo data (in their own transactions) and return a dict of counts."""
