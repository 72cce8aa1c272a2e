"""Eviction policies through the public API: names, errors, and the behaviour users rely on.

Every test replays a small deterministic workload through ``cachehaven.Store`` (or
``InMemCache``) and asserts which entries survive; none measures time.
"""

from __future__ import annotations

import random

import pytest

import cachehaven
from cachehaven import POLICIES, InMemCache, Store, _core

# ---------------------------------------------------------------------------- names


def test_policies_lists_the_default_first_and_matches_the_core():
    assert isinstance(POLICIES, tuple)
    assert POLICIES == _core.POLICIES
    assert POLICIES[0] == "adaptive"
    assert set(POLICIES) == {"adaptive", "lru", "lfu"}
    assert "POLICIES" in cachehaven.__all__


def test_the_default_policy_is_the_first_name():
    assert Store().policy == POLICIES[0]
    assert Store(max_entries=10).stats()["policy"] == POLICIES[0]
    assert InMemCache().store.policy == POLICIES[0]


@pytest.mark.parametrize("policy", POLICIES)
def test_each_name_round_trips(policy):
    s = Store(max_entries=5, policy=policy)
    assert s.policy == policy
    assert s.stats()["policy"] == policy
    assert policy in repr(s)
    assert InMemCache(max_entries=5, policy=policy).store.policy == policy


@pytest.mark.parametrize("bad", ["fifo", "LRU", "Adaptive", "", "tinylfu", " lru"])
def test_a_bad_name_is_a_value_error_listing_every_policy(bad):
    with pytest.raises(ValueError, match="policy") as ei:
        Store(policy=bad)
    message = str(ei.value)
    for name in POLICIES:
        assert repr(name) in message
    assert "(default)" in message
    assert repr(bad) in message or f'"{bad}"' in message
    with pytest.raises(ValueError, match="policy"):
        InMemCache(policy=bad)


def test_a_non_string_policy_is_a_type_error():
    with pytest.raises(TypeError):
        Store(policy=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Store(policy=1)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- behaviour


def replay(store: Store, keys) -> int:
    """get, and set on a miss; returns the hits."""
    missing = object()
    hits = 0
    for k in keys:
        if store.get(k, missing) is missing:
            store[k] = k
        else:
            hits += 1
    return hits


@pytest.mark.parametrize("policy", POLICIES)
def test_every_policy_keeps_its_bound_and_its_invariants(policy):
    rng = random.Random(7)
    s = Store(max_entries=50, policy=policy)
    for _ in range(5000):
        k = rng.randrange(300)
        if rng.random() < 0.3:
            s[k] = k
        else:
            s.get(k)
        assert len(s) <= 50
    s._check()
    st = s.stats()
    assert st["evictions"] == st["inserts"] - len(s)
    for k, v in s.items():
        assert k == v


@pytest.mark.parametrize("policy", POLICIES)
def test_when_everything_fits_nothing_is_evicted(policy):
    s = Store(max_entries=100, policy=policy)
    keys = [i % 100 for i in range(2000)]
    assert replay(s, keys) == 1900
    assert s.stats()["evictions"] == 0


def test_lru_evicts_the_least_recently_used():
    s = Store(max_entries=3, policy="lru")
    for k in "abc":
        s[k] = k
    s.get("a")
    s["d"] = "d"
    assert set(s.keys()) == {"a", "c", "d"}


def test_lfu_evicts_the_least_used_then_the_least_recent():
    s = Store(max_entries=3, policy="lfu")
    for k in "abc":
        s[k] = k
    for _ in range(3):
        s.get("a")
    s.get("b")  # uses: a 4, b 2, c 1
    s["d"] = "d"  # c is the least used
    assert set(s.keys()) == {"a", "b", "d"}
    s["e"] = "e"  # d is the only other entry used once: it leaves, not the newcomer
    assert set(s.keys()) == {"a", "b", "e"}
    s.get("e")  # e: 2 uses, tied with b, which reached 2 earlier
    s["f"] = "f"
    assert set(s.keys()) == {"a", "e", "f"}
    assert s.get("f") == "f", "a new entry is never its own victim"


def test_lfu_keeps_the_most_used_keys_through_a_flood():
    s = Store(max_entries=20, policy="lfu")
    for _ in range(5):
        for k in range(10):
            s.get(k) if k in s else s.set(k, k)
    for k in range(1000, 3000):
        s[k] = k
    assert all(k in s for k in range(10))


@pytest.mark.parametrize("policy", ["adaptive", "lfu"])
def test_frequency_aware_policies_keep_a_hot_set_through_a_scan(policy):
    s = Store(max_entries=100, policy=policy)
    hot = [f"hot{i}" for i in range(40)]
    for _ in range(10):
        replay(s, hot)
    replay(s, [f"cold{i}" for i in range(5000)])  # one pass, never repeated
    survivors = sum(1 for k in hot if k in s)
    assert survivors >= 38, f"a one-pass scan evicted {40 - survivors} of 40 hot keys"
    lru = Store(max_entries=100, policy="lru")
    for _ in range(10):
        replay(lru, hot)
    replay(lru, [f"cold{i}" for i in range(5000)])
    assert sum(1 for k in hot if k in lru) == 0


def test_adaptive_keeps_hitting_on_a_loop_larger_than_the_cache():
    keys = [i % 1000 for i in range(60_000)]
    assert replay(Store(max_entries=200, policy="lru"), keys) == 0
    hits = replay(Store(max_entries=200, policy="adaptive"), keys)
    assert hits / len(keys) > 0.15  # the optimum is 0.2


def test_adaptive_follows_recency_like_lru():
    # a working set that drifts: what was used recently is what is used next
    rng = random.Random(3)
    keys = [i // 8 + rng.randrange(400) for i in range(80_000)]
    lru = replay(Store(max_entries=200, policy="lru"), keys)
    lfu = replay(Store(max_entries=200, policy="lfu"), keys)
    # each adaptive store is salted at random (hit ratios vary by about +-1%): take the mean
    adaptive = sum(replay(Store(max_entries=200, policy="adaptive"), keys) for _ in range(3)) / 3
    assert lfu < lru * 0.1  # frequency alone collapses on this trace...
    assert adaptive >= lru * 0.92, (adaptive, lru)  # ...the adaptive window follows recency


@pytest.mark.parametrize("policy", POLICIES)
def test_in_mem_cache_memoize_with_each_policy(policy):
    cache = InMemCache(max_entries=30, policy=policy)
    calls = []

    @cache.memoize
    def square(x):
        calls.append(x)
        return x * x

    for _ in range(5):
        for x in range(10):
            assert square(x) == x * x
    assert calls == list(range(10))  # the hot ten stay
    for x in range(100, 400):
        assert square(x) == x * x
    assert len(cache) <= 30
    cache.store._check()
    if policy != "lru":
        calls.clear()
        for x in range(10):
            square(x)
        assert len(calls) <= 1, f"{policy} lost {len(calls)} of 10 hot entries to a scan"


# ---------------------------------------------------------------------------- weighted capacity


def weighed(policy: str, max_bytes: int = 1000) -> Store:
    """A store whose values are their own weight in bytes."""
    return Store(max_bytes=max_bytes, policy=policy, weigher=lambda key, value: value)


def fill_hot(s: Store, n: int = 20, weight: int = 40, reads: int = 3) -> list:
    keys = [f"small{i}" for i in range(n)]
    for k in keys:
        s[k] = weight
    for _ in range(reads):
        for k in keys:
            assert s.get(k) == weight
    return keys


@pytest.mark.parametrize("policy", POLICIES)
def test_a_value_heavier_than_the_budget_is_rejected_and_changes_nothing(policy):
    s = weighed(policy)
    keys = fill_hot(s)
    before = (len(s), s.stats()["bytes"], s.stats()["evictions"])
    with pytest.raises(ValueError, match="max_bytes=1000") as ei:
        s["giant"] = 1001
    assert "1001" in str(ei.value) and "not stored" in str(ei.value)
    assert "giant" not in s
    assert (len(s), s.stats()["bytes"], s.stats()["evictions"]) == before
    assert s.stats()["rejections"] == 1
    assert all(k in s for k in keys)


def test_in_mem_cache_returns_but_does_not_store_a_result_heavier_than_the_budget():
    cache = InMemCache(max_bytes=100, weigher=lambda value: value)

    @cache.memoize
    def weight(n):
        return n

    assert weight(10) == 10
    assert weight(500) == 500
    assert len(cache) == 1


@pytest.mark.parametrize("policy", POLICIES)
def test_a_value_up_to_half_the_budget_is_always_stored(policy):
    s = weighed(policy)
    fill_hot(s)
    s["half"] = 500
    assert s.get("half") == 500
    assert s.stats()["bytes"] <= 1000
    s._check()


def test_adaptive_a_large_new_value_cannot_flush_hotter_entries():
    s = weighed("adaptive")
    keys = fill_hot(s)  # 20 x 40 bytes, each read 3 times
    s["big"] = 900  # more than half the budget, never seen before
    assert "big" not in s, "a cold large value must not displace hotter entries"
    assert all(k in s for k in keys)
    assert s.stats()["bytes"] == 800
    assert s.stats()["evictions"] == 1  # the large value itself
    s._check()


def test_adaptive_a_large_value_gets_in_once_it_is_used_more_than_what_it_displaces():
    s = weighed("adaptive")
    fill_hot(s, reads=1)
    for _ in range(10):  # asked for again and again (each miss is a set)
        if s.get("big") is None:
            s["big"] = 900
    assert s.get("big") == 900
    assert s.stats()["bytes"] <= 1000
    assert len(s) >= 2  # it displaced only what it had to: 900 + 2 x 40 <= 1000
    s._check()


def test_lfu_a_large_new_value_displaces_only_entries_used_once():
    s = weighed("lfu")
    keys = fill_hot(s, reads=1)  # every resident used twice
    s["big"] = 900
    assert "big" not in s and all(k in s for k in keys)
    t = weighed("lfu")
    keys = fill_hot(t, reads=0)  # residents used once: the newcomer may replace them
    t["big"] = 900
    assert t.get("big") == 900
    assert sum(1 for k in keys if k in t) == 2


def test_lru_a_large_value_evicts_by_recency():
    s = weighed("lru")
    keys = fill_hot(s)
    s["big"] = 900
    assert s.get("big") == 900
    assert [k for k in keys if k in s] == keys[-2:]
    assert s.stats()["evictions"] == 18
