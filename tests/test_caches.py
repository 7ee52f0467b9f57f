"""IdentityCache: keyed by the objects themselves, bounded."""

from __future__ import annotations

from aetherflow.caches import IdentityCache


class Thing:
    pass


def test_identity_cache_never_answers_for_an_object_that_only_shares_an_id() -> None:
    """CPython gives a freed object's id to the next one; the cache keeps its keys alive instead."""
    cache: IdentityCache[str] = IdentityCache(limit=8)
    a, b = Thing(), Thing()
    cache.put(a, b, "for a and b")
    ids = (id(a), id(b))
    del a, b
    for _ in range(100):  # while the entry exists, no new object can take its keys' ids
        c, d = Thing(), Thing()
        assert (id(c), id(d)) != ids
        assert cache.get(c, d) is None


def test_identity_cache_drops_its_oldest_entries_past_its_limit() -> None:
    cache: IdentityCache[int] = IdentityCache(limit=3)
    keys = [(Thing(), Thing()) for _ in range(5)]
    for n, (a, b) in enumerate(keys):
        cache.put(a, b, n)
    assert len(cache) == 3
    assert [cache.get(a, b) for a, b in keys] == [None, None, 2, 3, 4]
