"""The free-space search of the aliquot page: one walk over the boxes gives the same
suggestion and the same boxes with room as the two searches it replaces."""

from __future__ import annotations

import pytest

from biobank.errors import Conflict
from biobank.models.vocab import ContainerKind, StorageTemperature
from biobank.services import storage


def test_suggest_space_agrees_with_find_free_space_and_boxes_with_room(make, site, technician):
    freezer = make.container(
        site=site, kind=ContainerKind.FREEZER, temperature=StorageTemperature.MINUS_60_85
    )
    rack = make.container(site=site, kind=ContainerKind.RACK, parent=freezer)
    person = make.participant(site=site)
    # boxes of 2×2 holding 4, 1, 4, 3 and 0 tubes: free 0, 3, 0, 1, 4
    for held in (4, 1, 4, 3, 0):
        box = make.box(site=site, parent=rack, n_rows=2, n_cols=2)
        for n in range(held):
            make.specimen(participant=person, container=box, pos_row=1 + n // 2, pos_col=1 + n % 2)
    where = {"actor": technician, "site_id": site.id, "temperature": StorageTemperature.MINUS_60_85}
    for count in range(1, 9):
        expected = storage.find_free_space(count=count, **where)
        space, room = storage.suggest_space(count=count, **where)
        assert [(e["container"].id, e["positions"]) for e in space] == [
            (e["container"].id, e["positions"]) for e in expected
        ], count
        assert room == storage.boxes_with_room(**where)
    # only 2 boxes listed: a box that fits beyond them is still found, as the search finds it
    space, room = storage.suggest_space(count=4, limit=2, **where)
    assert [n for _box, n in room] == [3, 1] and [len(e["positions"]) for e in space] == [4]
    with pytest.raises(Conflict):
        storage.suggest_space(count=9, **where)
