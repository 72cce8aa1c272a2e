"""InMemCache's store features: dependencies, content hashes, events and hooks, stats, hot
entries and predictions, through the manual API and memoize."""

from __future__ import annotations

import sys
import threading

import pytest

import cachehaven
from cachehaven import CacheEntry, ConfigError, InMemCache, _core
from cachehaven.backends.memory import EVENT_KINDS, CacheEvent, tag_key

# ---------------------------------------------------------------------- dependencies


def test_invalidate_removes_transitive_dependents_through_the_manual_api():
    cache = InMemCache()
    cache.set("a", output=1, x=1)
    cache.set("b", output=2, x=1, depends_on=[("a", {"x": 1})])
    cache.set("c", output=3, x=1, depends_on=[CacheEntry("b", {"x": 1})])
    cache.set("d", output=4, x=1)  # unrelated
    assert cache.invalidate("a", x=1) == 3
    assert [cache.get(f, x=1) for f in "abcd"] == [..., ..., ..., 4]
    assert cache.stats()["invalidations"] >= 3


def test_invalidate_handles_cycles_and_counts_each_entry_once():
    cache = InMemCache()
    cache.set("a", output=1, depends_on=[("c", {})])
    cache.set("b", output=2, depends_on=[("a", {})])
    cache.set("c", output=3, depends_on=[("b", {})])
    assert cache.invalidate("b") == 3
    assert len(cache) == 0
    assert cache.invalidate("b") == 0


def test_invalidating_a_key_that_is_not_stored_still_removes_its_dependents():
    cache = InMemCache()
    cache.set("report", output="r", depends_on=[("source", {"id": 7})])
    assert cache.get("source", id=7) is ...
    assert cache.invalidate("source", {"id": 7}) == 1
    assert cache.get("report") is ...


def test_tags_group_entries_for_invalidation():
    cache = InMemCache()
    cache.set("page", output="home", name="home", depends_on=["config", ("user", 1)])
    cache.set("page", output="about", name="about", depends_on=["config"])
    cache.set("page", output="user", name="user", depends_on=[("user", 1)])
    assert cache.invalidate_tag("unused") == 0
    assert cache.invalidate_tag(("user", 1)) == 2
    assert cache.get("page", name="about") == "about"
    assert cache.invalidate_tag("config") == 1
    assert len(cache) == 0


def test_a_tag_never_collides_with_a_call_key():
    assert tag_key("f") != _core.call_key("f", {})
    assert tag_key(("f", {})) != _core.call_key("f", {})


def test_remove_removes_one_entry_and_invalidate_also_its_dependents():
    cache = InMemCache()
    cache.set("a", output=1)
    cache.set("b", output=2, depends_on=[("a", {})])
    assert cache.remove("a") is True
    assert cache.get("b") == 2  # remove() is for one entry
    cache.set("a", output=1)
    assert cache.invalidate(CacheEntry("a", {})) == 2


def test_a_rewrite_replaces_the_entrys_dependencies():
    cache = InMemCache()
    cache.set("b", output=1, depends_on=["old"])
    cache.set("b", output=2, depends_on=["new"])
    assert cache.invalidate_tag("old") == 0
    assert cache.invalidate_tag("new") == 1


def test_memoize_depends_on_a_static_list_keeps_the_native_hit_path():
    cache = InMemCache()
    runs = []

    @cache.memoize(depends_on=["settings"])
    def render(page):
        runs.append(page)
        return page.upper()

    assert isinstance(render, _core.Memoized)
    assert render("a") == "A" and render("b") == "B" and render("a") == "A"
    assert runs == ["a", "b"]
    assert cache.invalidate_tag("settings") == 2
    assert render("a") == "A"
    assert runs == ["a", "b", "a"]


def test_memoize_depends_on_a_callable_gets_the_calls_arguments():
    cache = InMemCache()
    runs = []

    @cache.memoize
    def load_user(user_id):
        runs.append(("user", user_id))
        return {"id": user_id}

    @cache.memoize(depends_on=lambda user_id, style="short": [(load_user, {"user_id": user_id}), style])
    def profile(user_id, style="short"):
        runs.append(("profile", user_id, style))
        return f"{load_user(user_id)['id']}:{style}"

    assert profile(1) == "1:short" and profile(2) == "2:short" and profile(1, style="long") == "1:long"
    runs.clear()
    # load_user(1), and through it both profiles of user 1
    assert cache.invalidate(load_user, user_id=1) == 3
    assert profile(2) == "2:short" and runs == []
    assert profile(1) == "1:short"
    assert runs == [("profile", 1, "short"), ("user", 1)]
    assert cache.invalidate_tag("long") == 0  # already gone with user 1
    assert profile(1, style="long") == "1:long"
    assert cache.invalidate_tag("long") == 1


def test_memoized_dependencies_chain_transitively():
    cache = InMemCache()

    @cache.memoize
    def rows(n):
        return list(range(n))

    @cache.memoize(depends_on=lambda n: [(rows, {"n": n})])
    def total(n):
        return sum(rows(n))

    @cache.memoize(depends_on=lambda n: [(total, {"n": n})])
    def report(n):
        return f"total={total(n)}"

    assert report(4) == "total=6" and report(5) == "total=10"
    assert len(cache) == 6
    assert cache.invalidate(rows, n=4) == 3
    assert report.cache_info().currsize == 1 and cache.get(report, n=5) == "total=10"


def test_memoized_methods_can_declare_dependencies():
    cache = InMemCache()

    class Repo:
        def __init__(self, name):
            self.name = name

        def __cache_key__(self):
            return self.name

        @cache.memoize(depends_on=lambda self, n: [("repo", self.name)])
        def head(self, n):
            return f"{self.name}:{n}"

    a, b = Repo("a"), Repo("b")
    assert a.head(1) == "a:1" and a.head(2) == "a:2" and b.head(1) == "b:1"
    assert cache.invalidate_tag(("repo", "a")) == 2
    assert len(cache) == 1


def test_memoize_options_are_validated_at_decoration():
    cache = InMemCache()
    with pytest.raises(ConfigError, match="depends_on"):
        cache.memoize(depends_on="config")(lambda: 1)
    with pytest.raises(ConfigError, match="content_hash"):
        cache.memoize(content_hash="v1")(lambda: 1)
    with pytest.raises(ConfigError, match="prefetch"):
        cache.memoize(prefetch="yes")(lambda: 1)

    async def coro():
        return 1

    with pytest.raises(ConfigError, match="plain"):
        cache.memoize(prefetch=True)(coro)
    with pytest.raises(TypeError, match="depends_on"):
        cache.memoize(depends_on=[object()])(lambda: 1)


def test_a_bad_dependency_from_a_callable_raises_when_storing():
    cache = InMemCache()

    @cache.memoize(depends_on=lambda x: x)
    def f(x):
        return x

    with pytest.raises(TypeError, match=r"depends_on\(.*f\)"):
        f(object)  # a class is keyable as an argument, but depends_on returned it, not a list
    assert f([("g", {})]) == [("g", {})]


@pytest.mark.parametrize("make", [cachehaven.NoCache, lambda: cachehaven.CallbackCache()])
def test_other_backends_refuse_inmem_only_options_clearly(make):
    cache = make()
    for option, value in (("depends_on", ["x"]), ("content_hash", lambda: 1), ("prefetch", True)):
        with pytest.raises(ConfigError, match=f"{option}.*InMemCache"):
            cache.memoize(**{option: value})(lambda: 1)


def test_invalidate_on_a_persistent_backend_removes_the_one_entry(tmp_path):
    cache = cachehaven.JsonCache(tmp_path / "j")
    cache.set("f", output=1, x=1)
    assert cache.invalidate("f", x=1) == 1
    assert cache.invalidate("f", x=1) == 0


# ---------------------------------------------------------------------- content hashes


def test_a_stale_content_hash_is_a_miss_and_drops_the_entry():
    cache = InMemCache()
    cache.set("doc", output="parsed-v1", path="a.txt", content_hash="v1")
    assert cache.get("doc", path="a.txt", content_hash="v1") == "parsed-v1"
    assert cache.get("doc", path="a.txt") == "parsed-v1"  # no hash given: not checked
    before = cache.stats()["invalidations"]
    assert cache.get("doc", {"path": "a.txt"}, content_hash="v2") is ...
    assert cache.get("doc", path="a.txt") is ...  # dropped, not just hidden
    assert cache.stats()["invalidations"] == before + 1


def test_an_entry_without_a_hash_fails_a_hashed_lookup():
    cache = InMemCache()
    cache.set("doc", output=1)
    assert cache.get("doc", content_hash=b"\x00") is ...
    assert len(cache) == 0


@pytest.mark.parametrize("h", [1, "1", b"1"])
def test_content_hashes_of_each_type_match_only_themselves(h):
    cache = InMemCache()
    cache.set("doc", output=1, content_hash=h)
    assert cache.get("doc", content_hash=h) == 1
    others = [x for x in (1, "1", b"1") if x != h or type(x) is not type(h)]
    assert cache.get("doc", content_hash=others[0]) is ...


def test_bad_content_hash_types_raise_type_errors():
    cache = InMemCache()
    with pytest.raises(TypeError, match="content_hash"):
        cache.set("doc", output=1, content_hash=1.5)
    with pytest.raises(TypeError, match="content_hash"):
        cache.get("doc", content_hash=["x"])


def test_memoize_content_hash_recomputes_when_the_source_changes():
    cache = InMemCache()
    versions = {"a.txt": 1}
    runs = []

    @cache.memoize(content_hash=lambda path: versions[path])
    def parse(path):
        runs.append((path, versions[path]))
        return f"{path}@{versions[path]}"

    assert parse("a.txt") == "a.txt@1" and parse("a.txt") == "a.txt@1"
    versions["a.txt"] = 2
    assert parse("a.txt") == "a.txt@2" and parse("a.txt") == "a.txt@2"
    assert runs == [("a.txt", 1), ("a.txt", 2)]
    assert parse.cache_info().hits == 2 and parse.cache_info().currsize == 1


def test_memoize_content_hash_must_return_a_hashable_kind():
    cache = InMemCache()

    @cache.memoize(content_hash=lambda x: [x])
    def f(x):
        return x

    with pytest.raises(TypeError, match=r"content_hash of .*must return"):
        f(1)


async def test_content_hash_works_for_async_functions():
    cache = InMemCache()
    version = {"v": "a"}
    runs = []

    @cache.memoize(content_hash=lambda x: version["v"])
    async def f(x):
        runs.append(version["v"])
        return x * 2

    assert await f(2) == 4 and await f(2) == 4
    version["v"] = "b"
    assert await f(2) == 4
    assert runs == ["a", "b"]


# ---------------------------------------------------------------------- events and hooks


def test_the_event_log_keeps_the_last_events_in_order():
    cache = InMemCache(events=4)
    cache.set("f", output=1, x=1)
    cache.get("f", x=1)
    cache.get("f", x=2)
    kinds = [e.kind for e in cache.events()]
    assert kinds == ["WRITE", "HIT", "MISS"]
    last = cache.events(1)[0]
    assert isinstance(last, CacheEvent)
    assert (last.func, last.inputs, last.entry) == ("f", {"x": 2}, None)
    assert isinstance(last.time, float) and last.time > 1e9
    for i in range(10):
        cache.get("f", x=i)
    assert len(cache.events()) == 4


def test_no_event_log_by_default():
    cache = InMemCache()
    cache.set("f", output=1)
    cache.get("f")
    assert cache.events() == []


def test_on_evict_receives_the_evicted_entry():
    evicted = []
    cache = InMemCache(max_entries=2, policy="lru", on_evict=evicted.append)
    for i in range(3):
        cache.set("f", output=i * 10, x=i)
    assert len(evicted) == 1
    ev = evicted[0]
    assert ev.kind == "EVICT" and ev.func == "f" and ev.inputs == {"x": 0}
    assert ev.value == 0 and ev.entry == CacheEntry("f", {"x": 0}, 0)


def test_on_expire_and_on_invalidate_fire(clock):
    expired, invalidated = [], []
    cache = InMemCache(clock=clock, on_expire=expired.append, on_invalidate=invalidated.append)
    cache.set("f", output=1, x=1, ttl=10)
    cache.set("g", output=2, depends_on=["t"])
    cache.set("h", output=3, depends_on=[("g", {})])
    clock.advance(11)
    assert cache.get("f", x=1) is ...
    assert [(e.kind, e.func, e.value) for e in expired] == [("EXPIRE", "f", 1)]
    assert cache.invalidate_tag("t") == 2
    assert sorted((e.kind, e.func, e.value) for e in invalidated) == [
        ("INVALIDATE", "g", 2),
        ("INVALIDATE", "h", 3),
    ]


def test_memoized_native_hits_reach_subscribers():
    cache = InMemCache()
    seen = []
    cache.subscribe("hit", seen.append)

    @cache.memoize
    def f(x):
        return x

    f(1)
    f(1)
    f(1)
    assert [(e.kind, e.func.endswith("f"), e.inputs) for e in seen] == [("HIT", True, {"x": 1})] * 2


def test_an_exception_in_a_hook_is_reported_and_never_breaks_the_call(monkeypatch):
    reported = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: reported.append(u.exc_value))

    def bad_hook(event):
        raise RuntimeError("hook failed")

    cache = InMemCache(max_entries=1, on_evict=bad_hook)
    cache.subscribe("WRITE", bad_hook)

    @cache.memoize
    def f(x):
        return x * 2

    assert f(1) == 2 and f(2) == 4 and f(2) == 4
    assert cache.get(f, x=2) == 4
    assert reported and all(isinstance(e, RuntimeError) for e in reported)


def test_a_hook_may_use_the_cache_itself():
    cache = InMemCache(max_entries=1)
    log = []

    def on_evict(event):
        cache.set("evicted", output=event.func, n=len(log))  # re-entering the store is fine
        log.append(event.func)

    cache.subscribe("EVICT", on_evict)
    cache.set("a", output=1)
    cache.set("b", output=2)
    assert log and len(cache) <= 1


def test_subscribe_and_unsubscribe():
    cache = InMemCache()
    seen = []
    cache.subscribe("MISS", seen.append)
    cache.subscribe("MISS", seen.append)  # once is enough
    cache.get("f", x=1)
    cache.unsubscribe("miss", seen.append)
    with pytest.raises(ValueError, match="not subscribed to MISS"):
        cache.unsubscribe("miss", seen.append)
    cache.get("f", x=2)
    assert [e.inputs for e in seen] == [{"x": 1}]
    with pytest.raises(ValueError, match="BOGUS"):
        cache.subscribe("BOGUS", seen.append)
    with pytest.raises(TypeError, match="callable"):
        cache.subscribe("HIT", None)
    assert set(EVENT_KINDS) == {"HIT", "MISS", "WRITE", "EVICT", "EXPIRE", "INVALIDATE", "WARMUP", "PREDICT"}


# ---------------------------------------------------------------------- stats, hot entries, predictions


def test_stats_report_every_counter():
    cache = InMemCache(max_entries=2)
    cache.set("f", output=1, x=1)
    cache.get("f", x=1)
    cache.get("f", x=9)
    cache.set("f", output=2, x=2)
    cache.set("f", output=3, x=3)
    st = cache.stats()
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
        "prefetch_submitted",
        "prefetch_dropped",
    ):
        assert name in st, name
    assert (st["hits"], st["misses"], st["entries"], st["evictions"]) == (1, 1, 2, 1)
    assert st["hit_rate"] == 0.5 and st["prediction_accuracy"] == 0.0


def test_hot_entries_are_the_ones_the_policy_values_most():
    for policy in ("adaptive", "lru"):
        cache = InMemCache(max_entries=100, policy=policy)
        for i in range(20):
            cache.set("f", output=i, x=i)
        for _ in range(30):
            cache.get("f", x=7)
        for _ in range(10):
            cache.get("f", x=3)
        hot = cache.hot_entries(2)
        assert all(isinstance(e, CacheEntry) for e in hot)
        assert {e.inputs["x"] for e in hot} == {7, 3}, policy
        if policy == "lru":
            assert [e.inputs["x"] for e in hot] == [3, 7]  # most recent first
        assert len(cache.hot_entries(100)) == 20


def test_predict_next_ranks_by_frequency_not_first_seen():
    cache = InMemCache(track_patterns=True)
    cache.get("a")
    cache.get("rare")  # seen first after a
    for _ in range(3):
        cache.get("a")
        cache.get("common")
    assert cache.predict_next("a") == [("common", {}), ("rare", {})]
    assert cache.predict_next("a", None, 1) == [("common", {})]
    cache.get("page", n=1)
    cache.get("page", n=2)
    assert cache.predict_next("page", n=1) == [("page", {"n": 2})]  # n=... is an input here
    assert cache.predict_next("page", {"n": 1}, 0) == []
    with pytest.raises(ValueError, match="n must be"):
        cache.predict_next("page", {"n": 1}, -1)
    assert cache.predict_next("never-seen") == []


def test_predict_next_is_empty_without_pattern_learning():
    cache = InMemCache()
    cache.get("a")
    cache.get("b")
    assert cache.predict_next("a") == []
    cache.track_patterns = True
    cache.get("a")
    cache.get("b")
    assert cache.predict_next("a") == [("b", {})]


def test_predictions_emit_predict_events():
    cache = InMemCache(track_patterns=True, events=32)
    cache.get("a")
    cache.get("b", k=1)
    cache.predict_next("a")
    ev = cache.events(1)[0]
    assert ev.kind == "PREDICT" and (ev.func, ev.inputs) == ("b", {"k": 1})


def test_memoized_calls_teach_the_patterns():
    cache = InMemCache(track_patterns=True)

    @cache.memoize(name="step")
    def step(n):
        return n

    for _ in range(3):
        step(1)
        step(2)
    assert cache.predict_next("step", n=1)[:1] == [("step", {"n": 2})]


def test_hooks_run_outside_the_store_lock_under_threads():
    cache = InMemCache(max_entries=8, policy="lru")
    counts = {"evict": 0}
    lock = threading.Lock()

    def on_evict(event):
        cache.get("probe")  # would deadlock or raise if the store were still borrowed
        with lock:
            counts["evict"] += 1

    cache.subscribe("EVICT", on_evict)
    errors = []

    def run(seed):
        try:
            for i in range(300):
                cache.set("f", output=i, k=(seed, i))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and counts["evict"] >= 1200 - 8 - 1
    assert len(cache) <= 8


# ---------------------------------------------------------------------- native misses


def _memoized_session(**opts):
    """Entries, counters, events and stats after the same calls of a memoized function and
    method on a fresh cache (with ``opts`` for both)."""
    cache = InMemCache(events=50)

    @cache.memoize(annotation={"team": "a"}, ttl=60, **opts)
    def f(x, y=2, *rest, **kw):
        return [x, y, rest, kw]

    class Model:
        def __init__(self, n):
            self.n = n

        def __cachehaven_key__(self):
            return self.n

        @cache.memoize(cache_if=lambda r: r > 0, **opts)
        def predict(self, x):
            return self.n * x

    m = Model(3)
    for _ in range(2):
        f(1), f(1, y=3), f(1, 2, 3, k="v"), m.predict(2), m.predict(0)
    assert isinstance(f, _core.Memoized)
    # (not the keys: a method's instance is keyed by a per-object token)
    entries = sorted((e.func, repr(e.inputs), repr(e.output), e.expected, e.metadata) for e in cache)
    events = [(e.kind, e.func, repr(e.inputs)) for e in cache.events()]
    stats = {k: v for k, v in cache.stats().items() if k != "memory"}
    return entries, f.cache_info(), m.predict.cache_info(), events, stats


def test_native_misses_store_what_the_python_miss_path_stores():
    # a plain function's misses are computed and stored by the native wrapper; with
    # fail_open they come back to Python (memoize.py): nothing a user sees may differ
    native, python = _memoized_session(), _memoized_session(fail_open=True)
    assert native == python
    entries = native[0]
    assert len(entries) == 4  # predict(0) was rejected by cache_if
    assert all(e[4] in ({"annotation": {"team": "a"}}, {}) for e in entries)


def test_each_native_entry_has_its_own_metadata():
    cache = InMemCache()

    @cache.memoize(annotation={"team": "a"})
    def f(x):
        return x

    @cache.memoize
    def g(x):
        return x

    f(1), f(2), g(1), g(2)
    fa, fb = (e for e in cache if e.func == f.__cachehaven_name__)
    assert fa.metadata == fb.metadata == {"annotation": {"team": "a"}}
    assert fa.metadata is not fb.metadata
    assert fa.metadata["annotation"] is not fb.metadata["annotation"]
    ga, _ = (e for e in cache if e.func == g.__cachehaven_name__)
    ga.metadata["note"] = "mine"
    assert [e.metadata for e in cache if e.func == g.__cachehaven_name__] == [{}, {}]


def test_a_subclass_that_stores_results_its_own_way_gets_every_miss():
    seen = []

    class Recording(InMemCache):
        def _put_result(self, call, result, metadata, ttl=None, **extras):
            seen.append((call.inputs, result))
            super()._put_result(call, result, metadata, ttl, **extras)

    cache = Recording()

    @cache.memoize
    def f(x):
        return x * 2

    assert [f(1), f(1), f(2)] == [2, 2, 4]
    assert seen == [({"x": 1}, 2), ({"x": 2}, 4)]
    assert f.cache_info().hits == 1

    @cache.batch_memoize
    def double(batch):
        return [x * 2 for x in batch]

    seen.clear()
    assert double([3, 4, 3]) == [6, 8, 6]
    assert seen == [({"batch": [3]}, 6), ({"batch": [4]}, 8)]  # a batch's misses too


def test_records_of_atomic_values_are_left_out_of_the_garbage_collector():
    # the collector would traverse every stored record at each full collection; a record
    # that can never be in a reference cycle is untracked, as CPython does for such tuples
    import gc

    cache = InMemCache()

    @cache.memoize
    def f(x, y=None):
        return x if y is None else [x]

    @cache.memoize(annotation={"team": "a"})
    def g(x):
        return x

    f(1), f("s"), f(2, y=1), f([1, 2]), g(3)
    tracked = {repr(r[2]): gc.is_tracked(r) for r in cache.store._records()}
    assert tracked == {
        "{'x': 1, 'y': None}": False,
        "{'x': 's', 'y': None}": False,
        "{'x': 2, 'y': 1}": True,  # a list result
        "{'x': [1, 2], 'y': None}": True,  # a list argument
        "{'x': 3}": True,  # metadata (a dict holding a dict)
    }
    for entry in cache:
        entry.inputs["x"] = ["changed"]  # entries hand out copies of the stored inputs
    assert sorted(repr(e.inputs) for e in cache) == sorted(tracked)
    assert not any(gc.is_tracked(r[2]) for r in cache.store._records() if r[2]["x"] != [1, 2])


def test_a_cycle_through_a_stored_result_is_still_collected():
    import gc
    import weakref

    class Handle:
        def __init__(self, owner):
            self.owner = owner

    def make():
        cache = InMemCache()

        @cache.memoize
        def f(x):
            return Handle(cache)  # result -> cache -> store -> record -> result

        f(1)
        assert all(gc.is_tracked(r) for r in cache.store._records())
        return weakref.ref(cache)

    gone = make()
    gc.collect()
    assert gone() is None
