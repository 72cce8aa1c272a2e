"""``cachehaven.Store`` features: dependencies, content hashes, events and subscribers,
access-pattern learning, warm-up accounting, hot entries, and the raw API under InMemCache."""

from __future__ import annotations

import dataclasses
import gc
import sys
import time
import weakref

import pytest

from cachehaven import InMemCache, KeyTypeError, Store, _core


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def kinds(store: Store) -> list:
    return [(e.kind, e.key) for e in store.events()]


# ---------------------------------------------------------------- dependencies


def test_invalidate_removes_transitive_dependents_and_nothing_else():
    s = Store()
    s["a"] = 1
    s.set("b", 2, depends_on=["a"])
    s.set("c", 3, depends_on=["b"])
    s.set("d", 4, depends_on=["a", "x"])
    s["e"] = 5
    assert s.invalidate("a") == 4
    assert s.keys() == ["e"]
    assert s.invalidate("a") == 0
    assert s.stats()["invalidations"] == 4


def test_invalidate_works_for_keys_that_are_not_stored():
    s = Store()
    s.set(1, "one", depends_on=[("config", "v1")])
    s.set(2, "two", depends_on=[("config", "v1"), ("config", "v2")])
    s.set(3, "three", depends_on=[("config", "v2")])
    assert ("config", "v1") not in s
    assert s.invalidate(("config", "v1")) == 2
    assert s.keys() == [3]


def test_invalidate_handles_cycles():
    s = Store()
    s.set("a", 1, depends_on=["c"])
    s.set("b", 2, depends_on=["a"])
    s.set("c", 3, depends_on=["b", "c"])
    s["z"] = 0
    assert s.invalidate("b") == 3
    assert s.keys() == ["z"]
    s._check()


def test_dependency_keys_may_be_any_canonicalizable_value():
    s = Store()
    parent = {"user": [1, 2], "at": Point(1, 2)}
    s.set([1, "list key"], "v", depends_on=[parent, Point(3, 4)])
    assert s.invalidate({"at": Point(1, 2), "user": [1, 2]}) == 1
    assert len(s) == 0
    # equal but differently typed keys stay distinct
    s.set("child", 1, depends_on=[1])
    assert s.invalidate(1.0) == 0
    assert s.invalidate(True) == 0
    assert s.invalidate(1) == 1


def test_rewrite_replaces_dependencies():
    s = Store()
    s.set("x", 1, depends_on=["p"])
    s.set("x", 2, depends_on=["q"])
    assert s.invalidate("p") == 0
    assert s["x"] == 2
    s.set("x", 3)
    assert s.invalidate("q") == 0
    assert s["x"] == 3


def test_chain_survives_eviction_of_the_middle_entry():
    # c depends on b, b on a; b is evicted, then a is invalidated: c must not be served
    s = Store(max_entries=3, policy="lru")
    s["a"] = 1
    s.set("b", 2, depends_on=["a"])
    s.set("c", 3, depends_on=["b"])
    s.get("a")
    s.get("c")
    s["d"] = 4  # evicts b, the least recently used
    assert "b" not in s and "c" in s
    assert s.invalidate("a") == 2
    assert "c" not in s
    s._check()


def test_chain_survives_expiry_and_deletion_of_the_middle_entry():
    clock = Clock()
    s = Store(clock=clock)
    s["a"] = 1
    s.set("b", 2, ttl=5, depends_on=["a"])
    s.set("c", 3, depends_on=["b"])
    s.set("b2", 2, depends_on=["a"])
    s.set("c2", 3, depends_on=["b2"])
    clock.now += 10
    del s["b2"]
    assert s.keys() == ["a", "c", "c2"]
    assert s.invalidate("a") == 3
    assert len(s) == 0


def test_dependency_records_do_not_outlive_their_entries():
    s = Store(max_entries=100)
    for i in range(20_000):
        s.set(("k", i), i, depends_on=[("p", i), "shared"])
    s._check()
    before = s.stats()["memory"]
    for i in range(20_000, 60_000):
        s.set(("k", i), i, depends_on=[("p", i), "shared"])
    # memory depends on the live entries, not on how many ever had dependencies
    assert s.stats()["memory"] <= before * 1.5
    assert s.invalidate("shared") == 100
    s._check()


@pytest.mark.parametrize(
    "bad, exc, message",
    [
        ("abc", TypeError, "depends_on must be an iterable of keys, not str"),
        (b"abc", TypeError, "depends_on must be an iterable of keys, not bytes"),
        (5, TypeError, "depends_on must be an iterable of keys, not int"),
        ([1, object()], KeyTypeError, "depends_on[1]"),
    ],
)
def test_bad_depends_on_raises_naming_the_argument(bad, exc, message):
    s = Store()
    with pytest.raises(exc) as info:
        s.set("k", 1, depends_on=bad)
    assert message in str(info.value)
    assert "k" not in s


def test_depends_on_accepts_any_iterable():
    s = Store()
    s.set("k", 1, depends_on=(p for p in ["a", "b"]))
    s.set("j", 1, depends_on={"b"})
    assert s.invalidate("b") == 2


# ---------------------------------------------------------------- content hashes


def test_content_hash_match_hits_and_mismatch_drops_the_entry():
    s = Store()
    s.set("doc", "parsed v1", content_hash="sha-1")
    assert s.get("doc", content_hash="sha-1") == "parsed v1"
    assert s.get("doc", "stale", content_hash="sha-2") == "stale"
    assert s.get("doc") is None, "a stale entry is dropped, never served later"
    st = s.stats()
    assert (st["hits"], st["misses"], st["invalidations"]) == (1, 2, 1)


def test_entry_without_a_hash_fails_a_hash_check_and_rewrites_clear_the_hash():
    s = Store()
    s["k"] = 1
    assert s.get("k", content_hash="h") is None
    assert "k" not in s
    s.set("k", 1, content_hash="h")
    s.set("k", 2)
    assert s.get("k", content_hash="h") is None
    s.set("k", 3, content_hash="h")
    assert s.get("k") == 3, "a lookup without content_hash does not check"


@pytest.mark.parametrize(
    "stored, asked, hit",
    [
        ("1", "1", True),
        (b"1", b"1", True),
        (1, 1, True),
        (2**200 + 1, 2**200 + 1, True),
        (-5, -5, True),
        ("1", b"1", False),
        ("1", 1, False),
        (b"1", 1, False),
        (2**200, 2**200 + 1, False),
        ("\ud800", "\ud800", True),
        ("\ud800", "?", False),
    ],
)
def test_content_hash_types_are_distinct(stored, asked, hit):
    s = Store()
    s.set("k", "v", content_hash=stored)
    assert (s.get("k", content_hash=asked) == "v") is hit


@pytest.mark.parametrize("bad", [1.5, True, ["h"], object()])
def test_bad_content_hash_raises_naming_the_argument(bad):
    s = Store()
    with pytest.raises(TypeError, match="content_hash must be a str, bytes or int"):
        s.set("k", 1, content_hash=bad)
    assert "k" not in s
    s["k"] = 1
    with pytest.raises(TypeError, match="content_hash"):
        s.get("k", content_hash=bad)
    with pytest.raises(TypeError, match="content_hash"):
        s._get_raw(_core.call_key("f", {}), content_hash=bad)
    assert s["k"] == 1, "a rejected lookup changes nothing"


# ---------------------------------------------------------------- events


def test_no_event_log_by_default():
    s = Store()
    s["a"] = 1
    s.get("a")
    assert s.events() == []
    assert s.stats()["events"] == 0


def test_event_log_keeps_the_newest_events_oldest_first():
    clock = Clock()
    s = Store(max_entries=2, policy="lru", events=6, clock=clock, track_patterns=True)
    before = time.time()
    s["a"] = 1  # WRITE a
    s.set("b", 2, ttl=1)  # WRITE b
    s.get("a")  # HIT a
    s.get("zz")  # MISS zz
    s["c"] = 3  # WRITE c, EVICT b
    s.set("w", 0, warmup=True)  # WARMUP w, EVICT a
    s.invalidate("c")  # INVALIDATE c
    assert s.predict_next("a", 1) == ["zz"]  # PREDICT zz (a -> b and a -> zz: latest wins)
    assert kinds(s) == [
        ("WRITE", "c"),
        ("EVICT", "b"),
        ("WARMUP", "w"),
        ("EVICT", "a"),
        ("INVALIDATE", "c"),
        ("PREDICT", "zz"),
    ]
    events = s.events()
    assert all(before - 1 <= e.time <= time.time() + 1 for e in events)
    assert [e.time for e in events] == sorted(e.time for e in events)
    assert all(e.value is None for e in events), "the log keeps no values"
    assert [e.kind for e in s.events(2)] == ["INVALIDATE", "PREDICT"]
    assert s.events(0) == []
    assert len(s.events(100)) == 6
    e = events[0]
    assert e.raw_key == _core.Key(_core.encode("c"))
    assert "WRITE" in repr(e) and "'c'" in repr(e)


def test_expiry_makes_expire_and_miss_events():
    clock = Clock()
    s = Store(events=10, clock=clock)
    s.set("k", 1, ttl=1)
    clock.now += 2
    assert s.get("k") is None
    assert kinds(s) == [("WRITE", "k"), ("EXPIRE", "k"), ("MISS", "k")]


def test_undecodable_keys_show_as_key_objects_in_the_log():
    s = Store(events=4)
    s[Point(1, 2)] = "p"
    (e,) = s.events()
    assert isinstance(e.key, _core.Key)
    assert e.key == e.raw_key == _core.Key(_core.encode(Point(1, 2)))


@pytest.mark.parametrize(
    "kwargs, exc, message",
    [
        ({"events": -1}, ValueError, "events must be >= 0"),
        ({"events": "10"}, TypeError, "events must be an int"),
        ({"events": True}, TypeError, "events must be an int"),
        ({"events": 1.5}, TypeError, "events must be an int"),
        ({"track_patterns": 1}, TypeError, "track_patterns"),
    ],
)
def test_bad_constructor_arguments_name_the_argument(kwargs, exc, message):
    with pytest.raises(exc, match=message):
        Store(**kwargs)


@pytest.mark.parametrize("method", ["events", "hot_entries", "predict_next"])
def test_negative_counts_raise_naming_n(method):
    s = Store(events=4)
    args = ("k",) if method == "predict_next" else ()
    with pytest.raises(ValueError, match="n must be >= 0"):
        getattr(s, method)(*args, n=-1)
    with pytest.raises(TypeError, match="n must be an int"):
        getattr(s, method)(*args, n="3")


# ---------------------------------------------------------------- subscribers


def test_subscribers_get_removed_values_after_the_operation():
    clock = Clock()
    s = Store(max_entries=2, policy="lru", clock=clock)  # no event log needed
    got = []

    def record(event):
        # the store is free again: reading it from a callback works
        got.append((event.kind, event.key, event.value, len(s)))

    for kind in ("EVICT", "EXPIRE", "INVALIDATE", "HIT", "WRITE"):
        s.subscribe(kind, record)
    s["a"] = "A"
    s.set("b", "B", ttl=1)
    s["c"] = "C"  # evicts a
    s.get("c")
    clock.now += 5
    s["d"] = "D"  # b expires
    s.set("e", "E", content_hash="1")
    s.get("e", content_hash="2")
    assert got == [
        ("WRITE", "a", None, 1),
        ("WRITE", "b", None, 2),
        ("WRITE", "c", None, 2),
        ("EVICT", "a", "A", 2),
        ("HIT", "c", None, 2),
        ("EXPIRE", "b", "B", 2),
        ("WRITE", "d", None, 2),
        ("WRITE", "e", None, 2),
        ("EVICT", "c", "C", 2),
        ("INVALIDATE", "e", "E", 1),
    ]


def test_subscriber_gets_the_original_key_object_and_value_of_an_opaque_key():
    s = Store(max_entries=1)
    got = []
    s.subscribe("evict", got.append)
    s[Point(1, 2)] = "p"
    s["other"] = 1
    assert [(e.key, e.value) for e in got] == [(Point(1, 2), "p")]


def test_subscriber_may_write_to_the_store():
    s = Store(max_entries=2, policy="lru")

    def keep_evicted(event):
        if not isinstance(event.key, tuple):
            s.set(("evicted", event.key), event.value)

    s.subscribe("EVICT", keep_evicted)
    s["a"] = 1
    s["b"] = 2
    s["c"] = 3  # evicts a, whose callback writes ("evicted", "a"), which evicts b, ...
    assert len(s) == 2
    values = {"a": 1, "b": 2, "c": 3}
    for key, value in s.items():
        assert key[0] == "evicted" and value == values[key[1]]
    s._check()


def test_failing_subscriber_goes_to_unraisablehook_and_never_breaks_the_store(monkeypatch):
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(u))
    s = Store()
    calls = []

    def bad(event):
        raise RuntimeError("boom")

    s.subscribe("WRITE", bad)
    s.subscribe("WRITE", calls.append)
    s["k"] = 1
    assert s["k"] == 1
    assert len(calls) == 1, "later subscribers still run"
    assert len(seen) == 1
    assert isinstance(seen[0].exc_value, RuntimeError)
    assert seen[0].object is bad


def test_unsubscribe():
    s = Store()
    got = []

    class Watcher:
        def on_hit(self, event):
            got.append(event.key)

    w = Watcher()
    s.subscribe("hit", w.on_hit)
    s["k"] = 1
    s.get("k")
    s.unsubscribe("HIT", w.on_hit)  # an equal (not identical) bound method
    s.get("k")
    assert got == ["k"]
    with pytest.raises(ValueError, match="not subscribed"):
        s.unsubscribe("HIT", w.on_hit)


def test_bad_subscriptions_raise():
    s = Store()
    with pytest.raises(ValueError, match=r"kind must be one of 'HIT', .*; got 'EVICTED'"):
        s.subscribe("EVICTED", print)
    with pytest.raises(ValueError, match="kind must be one of"):
        s.unsubscribe("nope", print)
    with pytest.raises(TypeError, match="callback must be callable"):
        s.subscribe("HIT", 42)


class Holder:
    pass


def test_store_and_subscriber_cycle_is_collected():
    def make() -> weakref.ref:
        s = Store()
        h = Holder()
        s.subscribe("WRITE", lambda e: (h, s.get(e.key)))  # store -> callback -> store
        s["k"] = 1
        return weakref.ref(h)

    ref = make()
    gc.collect()
    assert ref() is None


# ---------------------------------------------------------------- patterns


def test_predict_next_needs_track_patterns():
    s = Store()
    for _ in range(3):
        s.get("a")
        s.get("b")
    assert s.predict_next("a") == []
    assert s.track_patterns is False
    s.track_patterns = True
    for _ in range(3):
        s.get("a")
        s.get("b")
    assert s.predict_next("a") == ["b"]
    assert s.stats()["track_patterns"] is True


def test_predict_next_ranks_by_frequency_not_first_seen():
    s = Store(track_patterns=True)
    for nxt in ["first", "often", "often", "often", "late", "late"]:
        s.get("start")
        s.set(nxt, 1)
    assert s.predict_next("start") == ["often", "late", "first"]
    assert s.predict_next("start", 1) == ["often"]
    assert s.predict_next("start", n=0) == []
    assert s.predict_next("never seen") == []


def test_predict_next_excludes_the_key_itself_and_decodes_keys():
    s = Store(track_patterns=True)
    for _ in range(3):
        s.get((1, "a"))
        s.get((1, "a"))
        s.get([2, {"b": None}])
    assert s.predict_next((1, "a")) == [[2, {"b": None}]]
    s.get(Point(0, 0))
    s.get("x")
    s.get(Point(0, 0))
    (succ,) = s.predict_next("x")
    assert isinstance(succ, _core.Key), "undecodable keys come back as Key objects"


def test_track_patterns_setter_validates():
    s = Store()
    with pytest.raises(TypeError, match="track_patterns"):
        s.track_patterns = 1
    assert s.track_patterns is False


def test_learning_can_be_turned_off_and_keeps_what_it_learned():
    s = Store(track_patterns=True)
    s.get("a")
    s.get("b")
    s.track_patterns = False
    s.get("a")
    s.get("c")
    assert s.predict_next("a") == ["b"]


# ---------------------------------------------------------------- warm-ups, stats, hot entries


def test_warmups_count_prediction_hits_once():
    s = Store(max_entries=10)
    s.set("p1", 1, warmup=True)
    s.set("p2", 2, warmup=True)
    s.set("p3", 3, warmup=True)
    s.get("p1")
    s.get("p1")
    s["p2"] = 20  # rewritten by a normal write before any hit
    s.get("p2")
    st = s.stats()
    assert (st["warmups"], st["prediction_hits"]) == (3, 1)
    assert st["prediction_accuracy"] == pytest.approx(1 / 3)
    s._check()


def test_stats_has_every_documented_field():
    st = Store().stats()
    for name in (
        "hits",
        "misses",
        "hit_rate",
        "evictions",
        "expirations",
        "invalidations",
        "warmups",
        "prediction_hits",
        "prediction_accuracy",
        "entries",
        "bytes",
    ):
        assert name in st, name
    assert st["prediction_accuracy"] == 0.0


def test_hot_entries_most_valuable_first():
    s = Store(max_entries=100, policy="lru")
    for i in range(50):
        s[i] = str(i)
    for i in (7, 3, 5):
        s.get(i)
    assert s.hot_entries(3) == [(5, "5"), (3, "3"), (7, "7")]
    assert len(s.hot_entries()) == 10
    assert s.hot_entries(0) == []
    assert len(s.hot_entries(1000)) == 50
    s[Point(1, 1)] = "pt"
    assert s.hot_entries(1) == [(Point(1, 1), "pt")]


# ---------------------------------------------------------------- InMemCache and the raw API


def test_memoized_hits_feed_learning_events_and_stats():
    cache = InMemCache()
    store = cache.store
    store.track_patterns = True
    hits = []
    store.subscribe("HIT", hits.append)

    @cache.memoize
    def f(x):
        return x * 10

    for _ in range(3):
        for x in (1, 2, 3):
            assert f(x) == x * 10
    assert len(hits) == 6, "memoized hits report HIT events like get"
    assert store.stats()["hits"] == 6
    k1, k2 = (e.raw_key for e in hits[:2])
    assert store._predict_raw(k1) == [k2]
    assert store._predict_raw(k1, 0) == []


def test_raw_api_round_trips_through_dump():
    clock = Clock()
    src = Store(clock=clock, policy="lru")
    k = [_core.call_key("f", {"x": i}) for i in range(4)]
    tag = _core.call_key("tag", {})
    src._set_raw(k[0], ("v0",), 1)
    src._set_raw(k[1], ("v1",), 2, 30, depends_on=[k[0], tag], content_hash=b"\x00h")
    src._set_raw(k[2], ("v2",), 2, None, "weigh me", content_hash=2**70)
    src._set_raw(k[3], ("v3",), 1, warmup=True)
    src._get_raw(k[0])
    clock.now += 10
    rows = src._dump()
    assert [r[0] for r in rows] == [k[1], k[2], k[3], k[0]], "coldest first"
    _, rec1, group1, ttl1, hash1, parents1 = rows[0]
    assert (rec1, group1, hash1) == (("v1",), 2, b"\x00h")
    assert ttl1 == pytest.approx(20)
    assert sorted(parents1, key=lambda p: p.bytes) == sorted([k[0], tag], key=lambda p: p.bytes)
    assert rows[1][4] == 2**70 and rows[1][3] is None

    dst = Store(clock=clock, policy="lru")
    for key, record, group, ttl, content_hash, parents in rows:
        dst._set_raw(key, record, group, ttl, depends_on=parents, content_hash=content_hash)
    assert dst._dump() == rows
    assert dst._meta_raw(k[2]) == (2**70, [])
    assert dst._meta_raw(_core.call_key("absent", {})) is None
    assert dst._get_raw(k[1], b"\x00h") == ("v1",)
    assert dst._invalidate_raw(tag) == 1
    clock.now += 100
    dst._check()


def test_raw_depends_on_must_be_keys():
    s = Store()
    with pytest.raises(TypeError, match=r"depends_on\[0\] must be a cachehaven Key, not str"):
        s._set_raw(_core.call_key("f", {}), ("v",), depends_on=["x"])


def test_threads_with_dependencies_and_reentrant_subscribers():
    import random
    import threading

    s = Store(max_entries=200, events=64, track_patterns=True)
    seen = []
    # subscribers run with the store released: they may read and write it
    s.subscribe("EVICT", lambda e: s.get(("shadow", 0)))
    s.subscribe("INVALIDATE", lambda e: seen.append(e.kind))
    errors = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(3000):
                k = rng.randrange(400)
                op = rng.random()
                if op < 0.5:
                    parents = [rng.randrange(400) for _ in range(rng.randrange(3))]
                    s.set(k, k, depends_on=[*parents, ("tag", k % 5)], content_hash=k % 3)
                elif op < 0.85:
                    v = s.get(k, None, content_hash=rng.randrange(3))
                    assert v is None or v == k
                elif op < 0.95:
                    s.invalidate(rng.choice([k, ("tag", k % 5)]))
                else:
                    s.predict_next(k)
                    s.hot_entries(5)
                    s.events(10)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(s) <= 200
    assert seen and set(seen) == {"INVALIDATE"}
    s._check()
    for i in range(5):
        s.invalidate(("tag", i))
    assert len(s) == 0, "every entry depended on a tag"
    s._check()
