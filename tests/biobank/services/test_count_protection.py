"""Researchers' counts cannot be differenced into a count of 1 to 4.

Each published count stands for a set of true counts (``<5``: 1-4; 10: 8-12). An attacker
who subtracts two answers, or a facet's shown buckets from its total, learns a range; the
tests check, on the demo biobank, that whenever the true difference is 1 to 4 that range
holds more than one value.
"""

from __future__ import annotations

import random

import pytest
import sqlalchemy as sa

from biobank import create_app
from biobank.db import db
from biobank.models import User
from biobank.services import query
from tests.conftest import separate_database

PAIRS = 150


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    url = separate_database(tmp_path_factory.mktemp("counts"), "counts")
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "x", "SESSION_COOKIE_SECURE": False})
    with app.app_context():
        from biobank import migrate
        from biobank.demo import load_demo

        migrate.upgrade()
        load_demo(seed=5, participants=120)
        admin = db.session.scalar(sa.select(User).where(User.username == "admin"))
        researcher = db.session.scalar(sa.select(User).where(User.username == "researcher"))
        fields = {f.name: f for f in query.registry() if f.facet}
        db.session.commit()  # end the read: the tests query through this same session
        yield app, admin, researcher, fields
        db.session.remove()
        db.engine.dispose()


def consistent(published, app):
    """The true counts that publish as *published*."""
    if published == 0:
        return {0}
    small = app.config["COUNT_SMALL_CELL"]
    if published == f"<{small}":
        return set(range(1, small))
    base = app.config["COUNT_ROUNDING_BASE"]
    return {
        n
        for n in range(small, published + base + 1)
        if max(small, (2 * n + base) // (2 * base) * base) == published
    }


def eq(field, value):
    return {"op": "=", "content": {"field": field, "value": value}}


def _values(app, admin, field):
    result = query.run_query(actor=admin, level="cases", facets=[field], size=0)
    return [b["key"] for b in result.facets[field]["buckets"]]


def test_the_differencing_attack_of_the_issue_learns_no_small_count(demo):
    app, admin, researcher, _fields = demo
    melanoma = eq("cases.disease_group", "melanoma")
    without = {
        "op": "and",
        "content": [melanoma, {"op": "!=", "content": {"field": "specimens.material_type", "value": "DNA"}}],
    }
    exact = [
        query.run_query(actor=admin, level="cases", filters=f, size=0).total for f in (melanoma, without)
    ]
    shown = [
        query.run_query(actor=researcher, level="cases", filters=f, size=0).total for f in (melanoma, without)
    ]
    possible = {a - b for a in consistent(shown[0], app) for b in consistent(shown[1], app) if a >= b}
    assert exact[0] - exact[1] in possible
    assert len(possible) > 1


def test_random_differences_and_facets_over_the_demo_never_pin_a_small_count(demo):
    app, admin, researcher, fields = demo
    rng = random.Random(20261205)
    pinned = []
    values = {name: _values(app, admin, name) for name in fields}
    names = [n for n, v in values.items() if v]
    for _ in range(PAIRS):
        a, b = rng.sample(names, 2)
        clause_a = eq(a, rng.choice(values[a]))
        clause_b = eq(b, rng.choice(values[b]))
        both = {"op": "and", "content": [clause_a, clause_b]}
        level = rng.choice(["participants", "cases", "specimens"])
        exact = [query.run_query(actor=admin, level=level, filters=f, size=0).total for f in (clause_a, both)]
        diff = exact[0] - exact[1]
        if not 1 <= diff <= 4:
            continue
        shown = [
            query.run_query(actor=researcher, level=level, filters=f, size=0).total for f in (clause_a, both)
        ]
        possible = {x - y for x in consistent(shown[0], app) for y in consistent(shown[1], app) if x >= y}
        if possible == {diff}:
            pinned.append((level, clause_a, clause_b, diff))
    # facets: a hidden bucket is never the shown total minus the shown buckets, exactly; where
    # one bucket alone would be hidden, a second one is (complementary suppression)
    for name in names:
        result = query.run_query(actor=researcher, level="cases", facets=[name], size=0)
        buckets = result.facets[name]["buckets"]
        small = [b for b in buckets if b["doc_count"] == "<5"]
        second = [b for b in buckets if b["doc_count"] == query.SUPPRESSED]
        if len(small) == 1 and any(isinstance(b["doc_count"], int) and b["doc_count"] for b in buckets):
            assert len(second) == 1, (name, buckets)
        if len(small) != 1 or second or isinstance(result.total, str):
            continue
        others = [consistent(b["doc_count"], app) for b in buckets if b not in small]
        low = min(consistent(result.total, app)) - sum(max(o) for o in others)
        high = max(consistent(result.total, app)) - sum(min(o) for o in others)
        if low == high:
            pinned.append((name, "facet", low))
    assert pinned == []


def test_a_lone_hidden_bucket_takes_the_smallest_shown_one_with_it():
    buckets = [
        {"key": "a", "doc_count": 40},
        {"key": "b", "doc_count": 10},
        {"key": "c", "doc_count": "<5"},
        {"key": "d", "doc_count": 0},
    ]
    query._suppress_second(buckets)
    assert [b["doc_count"] for b in buckets] == [40, query.SUPPRESSED, "<5", 0]
    two_hidden = [
        {"key": "a", "doc_count": 40},
        {"key": "b", "doc_count": "<5"},
        {"key": "c", "doc_count": "<5"},
    ]
    query._suppress_second(two_hidden)
    assert [b["doc_count"] for b in two_hidden] == [40, "<5", "<5"]
