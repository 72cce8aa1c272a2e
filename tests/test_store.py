"""``cachehaven.Store``: the thread-safe, dict-like Rust store."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import gc
import inspect
import math
import time
import weakref

import pytest

from cachehaven import POLICIES, InMemCache, KeyTypeError, Store


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int


class Color(enum.Enum):
    RED = "r"
    BLUE = "b"


class Holder:
    """Something that can sit in a reference cycle and be weakly referenced."""

    def __init__(self, ref=None):
        self.ref = ref


# ---------------------------------------------------------------- dict-like API


def test_basic_mapping_operations():
    s = Store()
    assert len(s) == 0
    s["a"] = 1
    s.set("b", 2)
    assert s["a"] == 1
    assert s.get("b") == 2
    assert s.get("missing") is None
    assert s.get("missing", "dflt") == "dflt"
    assert "a" in s
    assert "missing" not in s
    assert len(s) == 2
    s["a"] = 10
    assert s["a"] == 10
    assert len(s) == 2
    del s["a"]
    assert "a" not in s
    assert len(s) == 1
    with pytest.raises(KeyError):
        s["a"]
    with pytest.raises(KeyError):
        del s["a"]


def test_values_are_returned_as_the_same_object():
    s = Store()
    value = {"big": [1, 2, 3]}
    s["k"] = value
    assert s["k"] is value
    s["none"] = None
    assert s.get("none", "dflt") is None
    assert "none" in s


def test_pop():
    s = Store()
    s["a"] = 1
    assert s.pop("a") == 1
    assert "a" not in s
    with pytest.raises(KeyError):
        s.pop("a")
    assert s.pop("a", "dflt") == "dflt"
    assert s.pop("a", None) is None
    with pytest.raises(TypeError):
        s.pop("a", 1, 2)


def test_unhashable_keys():
    s = Store()
    s[[1, 2]] = "list"
    s[{"a": 1, "b": [2]}] = "dict"
    s[{1, 2}] = "set"
    assert s[[1, 2]] == "list"
    assert s[{"b": [2], "a": 1}] == "dict", "dict keys are order-independent"
    assert s[{2, 1}] == "set"
    assert (1, 2) not in s, "a tuple is not the list [1, 2]"
    assert len(s) == 3


def test_equal_but_differently_typed_keys_are_distinct():
    s = Store()
    s[1] = "int"
    s[1.0] = "float"
    s[True] = "bool"
    s["1"] = "str"
    assert len(s) == 4
    assert (s[1], s[1.0], s[True], s["1"]) == ("int", "float", "bool", "str")


def test_big_int_and_float_keys():
    s = Store()
    s[2**100] = "big"
    s[2**100 + 1] = "big+1"
    s[float("nan")] = "nan"
    s[-0.0] = "negzero"
    s[0.0] = "zero"
    assert s[2**100] == "big"
    assert s[2**100 + 1] == "big+1"
    assert s[float("nan")] == "nan"
    assert s[-0.0] == "negzero"
    assert s[0.0] == "zero"


# ---------------------------------------------------------------- get and [] (fast entries)

# `get` and `[]` serve exact int and str keys on a raw fast path with its own key encoding
# (see rust/py/rawcall.rs); every other key and call form goes through PyO3's general path.
EDGE_KEYS = [
    0,
    1,
    -1,
    2**63 - 1,
    -(2**63),
    2**63,
    -(2**63) - 1,
    2**64,
    "",
    "a",
    "é",
    "日本語",
    "x" * 200,
    "\ud800",
    "a\udcffb",
    True,
    False,
    1.0,
    (1,),
    b"1",
]


def test_get_and_getitem_find_what_set_stored_for_edge_int_and_str_keys():
    s = Store()
    for i, k in enumerate(EDGE_KEYS):
        s[k] = i
    assert len(s) == len(EDGE_KEYS), "1, True and 1.0 (and '1', b'1') stay distinct"
    for i, k in enumerate(EDGE_KEYS):
        assert s.get(k) == i, k
        assert s.get(k, "dflt") == i, k
        assert s[k] == i, k
    absent = [2, 2**63 - 2, 2**63 + 5, -(2**64), "b", "x" * 199, "\udfff", "日本"]
    for k in absent:
        assert s.get(k) is None, k
        assert s.get(k, "dflt") == "dflt", k
        with pytest.raises(KeyError) as ei:
            s[k]
        assert ei.value.args == (k,)
    st = s.stats()
    assert (st["hits"], st["misses"]) == (3 * len(EDGE_KEYS), 3 * len(absent)), "one count per call"


def test_get_call_forms_and_argument_errors():
    s = Store()
    s[1] = "one"
    s.set(3, "three", content_hash="h")
    assert s.get(key=1) == "one"
    assert s.get(2, default="d") == "d"
    assert s.get(2, "d", None) == "d"
    assert s.get(3, None, "h") == "three", "content_hash given positionally"
    assert s.get(3, content_hash="h") == "three"
    assert Store.get(s, 1) == "one"
    assert list(inspect.signature(Store.get).parameters) == ["self", "key", "default", "content_hash"]
    assert "content_hash" in (Store.get.__doc__ or "")
    with pytest.raises(TypeError, match="key"):
        s.get()
    with pytest.raises(TypeError):
        s.get(1, 2, 3, 4)
    with pytest.raises(TypeError, match="nope"):
        s.get(1, nope=2)
    with pytest.raises(TypeError):
        Store.get(object(), 1)
    assert s.get(3, None, "other") is None, "a content-hash mismatch still drops the entry"
    assert 3 not in s


@pytest.mark.parametrize("lookup", ["get", "getitem"])
def test_lookup_releases_an_expired_value_and_calls_subscribers_before_returning(lookup):
    s = Store(ttl=0.001)  # the default clock: the fast path reads it itself
    expired = []
    s.subscribe("EXPIRE", lambda e: expired.append((e.key, s.get("k"))))

    class Reentrant(Holder):
        def __del__(self):
            s.set("from_del", 1, ttl=60)  # runs when the value is dropped: the store must be free

    h = Reentrant()
    ref = weakref.ref(h)
    s["k"] = h
    del h
    time.sleep(0.02)
    if lookup == "get":
        assert s.get("k", "gone") == "gone"
    else:
        with pytest.raises(KeyError):
            s["k"]
    assert ref() is None, "the expired value is released during the call"
    assert s["from_del"] == 1
    assert expired == [("k", None)], "EXPIRE subscribers ran (and could use the store)"
    assert s.stats()["expirations"] == 1


def test_iteration_decodes_keys():
    s = Store()
    keys = [
        "a",
        7,
        2**80,
        1.5,
        None,
        (1, "x"),
        [1, [2]],
        {"k": {"n": 1}},
        frozenset({1, 2}),
        b"raw",
        dt.date(2024, 1, 1),
        Point(1, 2),
        Color.RED,
    ]
    for i, k in enumerate(keys):
        s[k] = i
    got = s.keys()
    assert len(got) == len(keys)
    for k in keys:
        matches = [g for g in got if type(g) is type(k) and g == k]
        assert len(matches) == 1, (k, got)
    assert Point(1, 2) in got
    assert any(g is Color.RED for g in got), "an enum key comes back as the member itself"
    assert sorted(s.values()) == list(range(len(keys)))
    items = s.items()
    assert all(s[k] == v for k, v in items)
    assert [type(k) for k, _ in items] == [type(k) for k in got]
    assert sorted(map(repr, iter(s))) == sorted(map(repr, got))


def test_dataclass_key_comes_back_as_the_original_object():
    s = Store()
    p = Point(3, 4)
    s[p] = "pt"
    [(k, v)] = s.items()
    assert k == p
    assert isinstance(k, Point)
    assert v == "pt"
    assert s[Point(3, 4)] == "pt", "an equal dataclass finds the entry"
    assert s.values() == ["pt"]
    assert s.get(p) == "pt"
    assert s.pop(Point(3, 4)) == "pt"
    assert len(s) == 0


def test_clear_keeps_stats():
    s = Store()
    for i in range(10):
        s[i] = i
    s.get(0)
    s.clear()
    assert len(s) == 0
    assert s.keys() == []
    assert s.get(0) is None
    st = s.stats()
    assert st["inserts"] == 10
    assert st["hits"] == 1
    assert st["entries"] == 0
    s[1] = 1
    assert s[1] == 1


def test_stats_fields_and_counts():
    s = Store(max_entries=2, policy="lru")
    s["a"] = 1
    s["b"] = 2
    s["a"] = 3  # update
    assert s.get("a") == 3  # hit
    assert s.get("zz") is None  # miss
    with pytest.raises(KeyError):
        s["zz"]  # miss
    s["c"] = 4  # evicts b (least recently used)
    del s["c"]  # removal
    st = s.stats()
    expected_fields = {
        "hits",
        "misses",
        "hit_rate",
        "inserts",
        "updates",
        "evictions",
        "expirations",
        "removals",
        "rejections",
        "entries",
        "bytes",
        "max_entries",
        "max_bytes",
        "policy",
        "memory",
    }
    assert expected_fields <= set(st)
    assert st["hits"] == 1
    assert st["misses"] == 2
    assert st["hit_rate"] == pytest.approx(1 / 3)
    assert st["inserts"] == 3
    assert st["updates"] == 1
    assert st["evictions"] == 1
    assert st["removals"] == 1
    assert st["entries"] == 1 == len(s)
    assert st["max_entries"] == 2
    assert st["max_bytes"] is None
    assert st["policy"] == "lru"
    assert st["memory"] > 0
    assert "b" not in s and "a" in s


def test_config_properties():
    s = Store(max_entries=10, max_bytes=1000, policy="lru")
    assert (s.max_entries, s.max_bytes, s.policy) == (10, 1000, "lru")
    d = Store()
    assert (d.max_entries, d.max_bytes, d.policy) == (None, None, "adaptive")
    assert set(POLICIES) == {"adaptive", "lru", "lfu"}


def test_unkeyable_key_raises_key_type_error():
    class Opaque:
        pass

    s = Store()
    with pytest.raises(KeyTypeError) as ei:
        s[Opaque()] = 1
    assert "0x" not in str(ei.value)
    with pytest.raises(KeyTypeError):
        s.get(Opaque())
    assert len(s) == 0


# ---------------------------------------------------------------- limits


@pytest.mark.parametrize("policy", ["adaptive", "lru"])
def test_max_entries_bound_holds(policy):
    s = Store(max_entries=50, policy=policy)
    for i in range(1000):
        s[i] = i
        if i % 7 == 0:
            s.get(i // 2)
        assert len(s) <= 50
    s._check()
    assert len(s) == 50
    st = s.stats()
    assert st["evictions"] == st["inserts"] - len(s)
    for k, v in s.items():
        assert k == v


@pytest.mark.parametrize("policy", ["adaptive", "lru"])
def test_max_entries_counts_overwrites_once(policy):
    s = Store(max_entries=3, policy=policy)
    for _ in range(10):
        s["a"] = 1
        s["b"] = 2
        s["c"] = 3
    assert len(s) == 3
    assert s.stats()["evictions"] == 0
    s._check()


def test_lru_evicts_the_least_recently_used():
    s = Store(max_entries=3, policy="lru")
    s["a"] = 1
    s["b"] = 2
    s["c"] = 3
    assert s.get("a") == 1
    s["d"] = 4
    assert set(s.keys()) == {"a", "c", "d"}
    s["c"] = 33  # a write is a use too
    s["e"] = 5
    assert set(s.keys()) == {"c", "d", "e"}
    s._check()


def test_adaptive_keeps_hot_entries_through_a_scan():
    s = Store(max_entries=100, policy="adaptive")
    hot = [f"hot{i}" for i in range(20)]
    for k in hot:
        s[k] = k
    for _ in range(10):
        for k in hot:
            assert s.get(k) == k
    for i in range(2000):
        s[f"cold{i}"] = i
    s._check()
    survivors = sum(1 for k in hot if k in s)
    assert survivors >= 15, f"a one-pass scan evicted {20 - survivors} of 20 hot entries"


def test_max_entries_zero_stores_nothing():
    s = Store(max_entries=0)
    s["a"] = 1
    s.set("b", 2)
    assert len(s) == 0
    assert "a" not in s
    assert s.get("a") is None
    assert s.stats()["rejections"] == 2
    s._check()


def test_inmemcache_max_entries_zero_still_returns_results():
    cache = InMemCache(max_entries=0)
    calls = []

    @cache.memoize
    def f(x):
        calls.append(x)
        return x + 1

    assert f(1) == 2
    assert f(1) == 2
    assert calls == [1, 1]
    assert len(cache) == 0


def test_max_bytes_with_weigher():
    s = Store(max_bytes=100, weigher=lambda k, v: len(v))
    for i in range(50):
        s[i] = "x" * (i % 30)
        assert s.stats()["bytes"] <= 100
        s._check()
    assert s.stats()["bytes"] == sum(len(v) for v in s.values())


def test_weigher_receives_key_and_value():
    seen = []

    def weigher(key, value):
        seen.append((key, value))
        return 1

    s = Store(max_bytes=10, weigher=weigher)
    s[("k", 1)] = "v"
    assert seen == [(("k", 1), "v")]


def test_weigher_without_max_bytes_still_tracks_bytes():
    s = Store(weigher=lambda k, v: 5)
    s["a"] = 1
    s["b"] = 2
    assert s.stats()["bytes"] == 10


def test_too_heavy_value_raises_and_leaves_the_store_intact():
    s = Store(max_bytes=100, weigher=lambda k, v: v)
    s["a"] = 50
    s["b"] = 40
    before = sorted(s.items())
    with pytest.raises(ValueError, match="max_bytes"):
        s["c"] = 101
    assert sorted(s.items()) == before
    with pytest.raises(ValueError):
        s["a"] = 1000  # an overwrite that is too heavy keeps the old value
    assert s["a"] == 50
    assert sorted(s.items()) == before
    assert s.stats()["bytes"] == 90
    s._check()


def test_default_weigher_with_max_bytes():
    s = Store(max_bytes=10_000)
    for i in range(200):
        s[i] = "y" * 500
    s._check()
    assert 0 < len(s) < 200
    assert s.stats()["bytes"] <= 10_000
    with pytest.raises(ValueError):
        s["huge"] = "z" * 100_000
    assert "huge" not in s


def test_bad_weigher_results():
    s = Store(max_bytes=10, weigher=lambda k, v: -1)
    with pytest.raises(ValueError):
        s["a"] = 1
    s = Store(max_bytes=10, weigher=lambda k, v: "heavy")
    with pytest.raises(TypeError):
        s["a"] = 1
    assert len(s) == 0


# ---------------------------------------------------------------- TTL


def test_default_ttl_with_fake_clock():
    now = [100.0]
    s = Store(ttl=10, clock=lambda: now[0])
    s["a"] = 1
    now[0] += 5
    s["b"] = 2
    now[0] += 4  # a: 9 s old
    assert s["a"] == 1
    assert len(s) == 2
    now[0] += 2  # a: 11 s old, b: 6 s old
    assert "a" not in s
    assert s.get("a") is None
    with pytest.raises(KeyError):
        s["a"]
    assert s["b"] == 2
    assert len(s) == 1
    assert s.keys() == ["b"]
    now[0] += 10
    assert len(s) == 0
    assert s.items() == []
    assert s.stats()["expirations"] >= 1
    s._check()


def test_per_entry_ttl():
    now = [0.0]
    s = Store(ttl=10, clock=lambda: now[0])
    s.set("long", 1, ttl=100)
    s.set("short", 2, ttl=dt.timedelta(seconds=1))
    s["default"] = 3
    now[0] = 2
    assert "short" not in s
    assert "default" in s
    now[0] = 50
    assert "default" not in s
    assert s["long"] == 1
    now[0] = 101
    assert "long" not in s
    assert len(s) == 0


def test_per_entry_ttl_without_default():
    now = [0.0]
    s = Store(clock=lambda: now[0])
    s.set("t", 1, ttl=5)
    s["forever"] = 2
    now[0] = 1e6
    assert "t" not in s
    assert s["forever"] == 2


def test_overwrite_refreshes_ttl():
    now = [0.0]
    s = Store(ttl=10, clock=lambda: now[0])
    s["a"] = 1
    now[0] = 8
    s["a"] = 2
    now[0] = 15
    assert s["a"] == 2
    now[0] = 19
    assert "a" not in s


def test_overwrite_without_ttl_uses_the_default():
    now = [0.0]
    s = Store(clock=lambda: now[0])
    s.set("a", 1, ttl=5)
    s["a"] = 2  # the latest write decides: no TTL
    now[0] = 100
    assert s["a"] == 2


def test_expired_entry_is_gone_for_every_operation():
    now = [0.0]
    s = Store(clock=lambda: now[0])
    s.set("k", 1, ttl=1)
    now[0] = 2
    with pytest.raises(KeyError):
        del s["k"]  # an expired key is absent: deleting it is a KeyError, as for any absent key
    assert "k" not in s
    with pytest.raises(KeyError):
        s["k"]


def test_expired_entry_is_not_popped():
    now = [0.0]
    s = Store(ttl=1, clock=lambda: now[0])
    s["a"] = 1
    now[0] = 5
    with pytest.raises(KeyError):
        s.pop("a")
    assert s.pop("a", "gone") == "gone"


def test_ttl_and_max_entries_together():
    now = [0.0]
    s = Store(max_entries=5, ttl=10, clock=lambda: now[0])
    for i in range(20):
        s[i] = i
        now[0] += 1
        assert len(s) <= 5
        s._check()


# ---------------------------------------------------------------- argument validation


@pytest.mark.parametrize(
    ("kwargs", "exc", "name"),
    [
        ({"max_entries": -1}, ValueError, "max_entries"),
        ({"max_bytes": -5}, ValueError, "max_bytes"),
        ({"ttl": -1}, ValueError, "ttl"),
        ({"ttl": 0}, ValueError, "ttl"),
        ({"ttl": math.inf}, ValueError, "ttl"),
        ({"ttl": math.nan}, ValueError, "ttl"),
        ({"ttl": dt.timedelta(seconds=-1)}, ValueError, "ttl"),
        ({"max_entries": 1.5}, TypeError, "max_entries"),
        ({"max_entries": "10"}, TypeError, "max_entries"),
        ({"max_entries": True}, TypeError, "max_entries"),
        ({"max_bytes": 2.0}, TypeError, "max_bytes"),
        ({"ttl": "1h"}, TypeError, "ttl"),
        ({"ttl": True}, TypeError, "ttl"),
        ({"weigher": 3}, TypeError, "weigher"),
        ({"clock": "now"}, TypeError, "clock"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(kwargs, exc, name):
    with pytest.raises(exc, match=name):
        Store(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "exc"),
    [
        ({"max_entries": -1}, ValueError),
        ({"max_bytes": -1}, ValueError),
        ({"ttl": 0}, ValueError),
        ({"max_entries": "3"}, TypeError),
        ({"policy": "fifo"}, ValueError),
        ({"bogus": 1}, TypeError),
    ],
)
def test_inmemcache_validates_the_same_way(kwargs, exc):
    with pytest.raises(exc):
        InMemCache(**kwargs)


def test_per_entry_ttl_is_validated():
    s = Store()
    with pytest.raises(ValueError, match="ttl"):
        s.set("a", 1, ttl=-3)
    with pytest.raises(TypeError, match="ttl"):
        s.set("a", 1, ttl="soon")
    assert len(s) == 0


def test_unknown_option_names_raise_type_error():
    with pytest.raises(TypeError):
        Store(max_entry=10)
    with pytest.raises(TypeError):
        Store(maxsize=10)


def test_bad_policy_name():
    with pytest.raises(ValueError, match="policy"):
        Store(policy="fifo")
    for p in POLICIES:
        assert Store(policy=p).policy == p


def test_limits_accept_zero_and_huge():
    assert Store(max_bytes=0).max_bytes == 0
    s = Store(max_entries=2**70)
    s["a"] = 1
    assert s["a"] == 1


# ---------------------------------------------------------------- garbage collection


def test_cycle_through_stored_value_is_collected():
    s = Store()
    h = Holder(s)
    s["k"] = h
    ref = weakref.ref(h)
    del s, h
    gc.collect()
    assert ref() is None


def test_cycle_through_opaque_key_is_collected():
    s = Store()

    class Key:
        def __init__(self, store):
            self.store = store

        def __cache_key__(self):
            return "k"

    k = Key(s)
    s[k] = "v"
    ref = weakref.ref(k)
    del s, k
    gc.collect()
    assert ref() is None


def test_cycle_through_clock_and_weigher_is_collected():
    holder = Holder()
    s = Store(ttl=5, clock=lambda h=holder: 0.0, weigher=lambda k, v, h=holder: 1)
    holder.ref = s
    s["a"] = 1
    ref = weakref.ref(holder)
    del s, holder
    gc.collect()
    assert ref() is None


def test_cycle_through_inmemcache_is_collected():
    cache = InMemCache()
    h = Holder(cache)
    cache.set("f", output=h, x=1)
    ref = weakref.ref(h)
    del cache, h
    gc.collect()
    assert ref() is None


def test_values_are_released_when_removed():
    s = Store(max_entries=2, policy="lru")
    refs = []
    for i in range(3):
        h = Holder()
        refs.append(weakref.ref(h))
        s[i] = h
        del h
    assert refs[0]() is None, "an evicted value is released"
    del s[1]
    assert refs[1]() is None, "a deleted value is released"
    s.clear()
    assert refs[2]() is None, "cleared values are released"


def test_value_with_del_that_touches_the_store():
    s = Store()

    class Reentrant:
        def __del__(self):
            s["from_del"] = len(s)

    s["a"] = Reentrant()
    s["a"] = 1  # the old value's __del__ runs and writes to the store: must not deadlock
    assert s["a"] == 1
    assert "from_del" in s
    s._check()
