"""The manual cache API (guide sections 5.4 to 5.6): set, get, remove, annotate, iterate."""

from __future__ import annotations

import pytest

from cachehaven import CacheEntry, InMemCache, KeyTypeError


def _entry():
    return CacheEntry(
        func="my_function",
        inputs={"x": 5},
        output=25,
        metadata={"version": "1.0", "timestamp": "2024-01-01"},
    )


def test_guide_5_4(cache):
    cache.set(_entry())
    assert cache.get("my_function", {"x": 5}) == 25
    assert cache.get("my_function", x=5) == 25
    cache.remove("my_function", {"x": 5})
    assert cache.get("my_function", {"x": 5}) is ...
    cache.set(_entry())
    cache.clear()
    assert len(cache) == 0
    assert cache.get("my_function", x=5) is ...


def test_misses_return_ellipsis(cache):
    assert cache.get("nothing", x=1) is ...
    assert cache.get("nothing", {}) is ...
    assert cache.retrieve("nothing", x=1) is ...
    cache.set(_entry())
    assert cache.get("my_function", x=6) is ...
    assert cache.get("my_function", x=5.0) is ..., "5.0 is not the same input as 5"
    assert cache.get("my_function", x=5, y=None) is ...
    assert cache.get("other_function", x=5) is ...


def test_retrieve_returns_the_entry(cache):
    cache.set(_entry())
    got = cache.retrieve("my_function", x=5)
    assert isinstance(got, CacheEntry)
    assert got == _entry()
    assert got.metadata == {"version": "1.0", "timestamp": "2024-01-01"}


def test_set_with_keyword_inputs(cache):
    cache.set("f", output=25, x=5, y=[1, 2])
    assert cache.get("f", x=5, y=[1, 2]) == 25
    assert cache.get("f", {"y": [1, 2], "x": 5}) == 25
    assert cache.get("f", x=5, y=(1, 2)) is ...


def test_set_requires_output_or_expected(cache):
    with pytest.raises(ValueError):
        cache.set("f", x=1)


def test_set_expected_only(cache):
    cache.set("f", expected=3, x=1)
    assert cache.get("f", x=1) == 3
    assert cache.retrieve("f", x=1).annotated


def test_none_is_a_value_not_a_miss(cache):
    cache.set("f", output=None, x=1)
    assert cache.get("f", x=1) is None
    assert cache.exists("f", x=1)
    assert len(cache) == 1


def test_overwrite_keeps_one_entry(cache):
    cache.set("f", output=1, x=1)
    cache.set("f", output=2, x=1)
    cache.set(CacheEntry("f", {"x": 1}, output=3))
    assert len(cache) == 1
    assert cache.get("f", x=1) == 3


def test_exists_and_remove(cache):
    assert not cache.exists("my_function", x=5)
    cache.set(_entry())
    assert cache.exists("my_function", x=5)
    assert cache.exists("my_function", {"x": 5})
    assert cache.remove("my_function", x=5) is True
    assert cache.remove("my_function", x=5) is False
    assert not cache.exists("my_function", x=5)
    cache.set(_entry())
    assert cache.remove(_entry()) is True
    assert len(cache) == 0
    cache.set(_entry())
    assert cache.unset("my_function", x=5) is True
    assert len(cache) == 0


def test_remove_only_the_named_entry(cache):
    cache.set("f", output=1, x=1)
    cache.set("f", output=2, x=2)
    cache.set("g", output=3, x=1)
    cache.remove("f", x=1)
    assert cache.get("f", x=1) is ...
    assert cache.get("f", x=2) == 2
    assert cache.get("g", x=1) == 3
    assert len(cache) == 2


def test_annotate_existing_entry(cache):
    cache.set(_entry())
    cache.annotate("my_function", expected=24, metadata={"reviewer": "ann"}, x=5)
    entry = cache.retrieve("my_function", x=5)
    assert entry.output == 25
    assert entry.expected == 24
    assert entry.metadata == {"version": "1.0", "timestamp": "2024-01-01", "reviewer": "ann"}
    assert cache.get("my_function", x=5) == 24, "an annotated entry's value is its expected output"
    assert len(cache) == 1


def test_annotate_defaults_expected_to_output(cache):
    cache.set(_entry())
    cache.annotate("my_function", x=5)
    entry = cache.retrieve("my_function", x=5)
    assert entry.expected == 25
    assert entry.annotated


def test_annotate_creates_missing_entry_with_expected(cache):
    cache.annotate("g", expected=7, metadata={"source": "ground_truth"}, n=3)
    entry = cache.retrieve("g", n=3)
    assert entry.expected == 7
    assert entry.value == 7
    assert entry.metadata == {"source": "ground_truth"}
    assert cache.get("g", n=3) == 7


def test_annotate_missing_entry_without_expected_raises(cache):
    with pytest.raises(ValueError):
        cache.annotate("g", n=3)
    assert len(cache) == 0


def test_annotation_is_served_to_memoized_function(cache):
    calls = []

    @cache.memoize(name="square")
    def square(x):
        calls.append(x)
        return x * x

    assert square(3) == 9
    cache.annotate("square", expected=10, x=3)
    assert square(3) == 10
    assert calls == [3]


def test_len_and_clear(cache):
    for i in range(10):
        cache.set("f", output=i, i=i)
    assert len(cache) == 10
    cache.clear()
    assert len(cache) == 0
    assert list(cache) == []


def test_contains_with_entry_and_int_key(cache):
    entry = _entry()
    assert entry not in cache
    assert entry.key not in cache
    cache.set(entry)
    assert entry in cache
    assert entry.key in cache
    assert CacheEntry("my_function", {"x": 5}) in cache, "membership ignores output and metadata"
    assert CacheEntry("my_function", {"x": 6}).key not in cache
    assert CacheEntry("other", {"x": 5}) not in cache


def test_mapping_access_by_key(cache):
    entry = _entry()
    cache.set(entry)
    assert cache[entry.key] == entry
    assert cache[entry] == entry
    assert cache[CacheEntry("nope").key] is ...
    del cache[entry.key]
    assert entry not in cache
    with pytest.raises(KeyError):
        del cache[entry.key]
    cache[entry.key] = entry
    assert cache.get("my_function", x=5) == 25
    cache[entry.key] = entry.to_dict()
    assert len(cache) == 1


def test_iteration_yields_entries(cache):
    cache.set(_entry())
    cache.set("f", output=[1], a=1, b="x")
    entries = list(cache)
    assert all(isinstance(e, CacheEntry) for e in entries)
    assert sorted((e.func, tuple(sorted(e.inputs.items())), repr(e.output)) for e in entries) == [
        ("f", (("a", 1), ("b", "x")), "[1]"),
        ("my_function", (("x", 5),), "25"),
    ]


def test_memoized_entries_carry_annotation_metadata(cache):
    @cache.memoize(annotation={"purpose": "user_profile", "team": "backend"})
    def get_user_profile(user_id: int) -> dict:
        return {"id": user_id}

    @cache.memoize(annotation={"priority": "high", "ttl": "1h"})
    def get_realtime_data(sensor_id: str) -> dict:
        return {"sensor": sensor_id}

    @cache.memoize
    def plain(x):
        return x

    get_user_profile(1)
    get_user_profile(2)
    get_realtime_data("s1")
    plain(1)

    backend_entries = [
        entry for entry in cache if entry.metadata.get("annotation", {}).get("team") == "backend"
    ]
    assert sorted(e.inputs["user_id"] for e in backend_entries) == [1, 2]
    assert all(e.func.endswith("get_user_profile") for e in backend_entries)
    assert all(
        e.metadata["annotation"] == {"purpose": "user_profile", "team": "backend"} for e in backend_entries
    )
    high = [e for e in cache if e.metadata.get("annotation", {}).get("priority") == "high"]
    assert [(e.inputs, e.output) for e in high] == [({"sensor_id": "s1"}, {"sensor": "s1"})]
    [p] = [e for e in cache if e.func.endswith("plain")]
    assert "annotation" not in p.metadata

    # guide 5.5: remove the entries of one annotation while iterating
    for entry in cache:
        if entry.metadata.get("annotation", {}).get("purpose") == "user_profile":
            cache.remove(entry.func, entry.inputs)
    assert len(cache) == 2
    assert get_user_profile.cache_info().currsize == 0
    assert get_realtime_data.cache_get("s1") == {"sensor": "s1"}


def test_entries_of_memoized_methods_can_be_keyed_and_removed(cache):
    class Profile:
        def __init__(self, user):
            self.user = user

        def __cache_key__(self):
            return self.user

        @cache.memoize(annotation={"purpose": "user_profile"})
        def load(self, field):
            return f"{self.user}.{field}"

    p = Profile("ann")
    p.load("name")
    p.load("email")
    [key] = [e.key for e in cache if e.inputs["field"] == "name"]
    assert key == Profile.load.cache_key(p, "name")
    for entry in cache:
        if entry.metadata.get("annotation", {}).get("purpose") == "user_profile":
            cache.remove(entry.func, entry.inputs)
    assert len(cache) == 0


def test_guide_5_6_inspection(cache):
    @cache.memoize
    def compute(x, y):
        return x * y + x + y

    assert compute(5, 10) == 65
    [entry] = list(cache)
    assert entry.func.endswith("compute")
    assert entry.inputs == {"x": 5, "y": 10}
    assert entry.output == 65
    assert entry.metadata == {}


def test_manual_set_is_found_by_memoized_function_with_name(cache):
    cache.set(CacheEntry(func="my_function", inputs={"x": 5}, output=25))
    calls = []

    @cache.memoize(name="my_function")
    def my_function(x):
        calls.append(x)
        return -1

    assert my_function(5) == 25
    assert my_function(x=5) == 25
    assert calls == []
    assert my_function(6) == -1
    assert cache.get("my_function", x=6) == -1


def test_manual_set_by_function_object(cache):
    calls = []

    @cache.memoize
    def f(x):
        calls.append(x)
        return x

    cache.set(f, output="preset", x=1)
    assert f(1) == "preset"
    assert calls == []
    assert cache.remove(f, x=1)
    assert f(1) == 1


def test_add(cache):
    cache.add(_entry())
    assert cache.get("my_function", x=5) == 25
    with pytest.raises(TypeError):
        cache.add({"func": "f"})


def test_pop(cache):
    assert cache.pop() is None
    cache.set(_entry())
    cache.set("f", output=1, x=1)
    first = cache.pop()
    assert isinstance(first, CacheEntry)
    assert len(cache) == 1
    assert first not in cache
    second = cache.pop()
    assert {first.func, second.func} == {"my_function", "f"}
    assert cache.pop() is None
    assert len(cache) == 0


def test_popall(cache):
    assert cache.popall() == []
    cache.set(_entry())
    cache.set("f", output=1, x=1)
    cache.set("f", output=2, x=2)
    entries = cache.popall()
    assert len(entries) == 3
    assert len(cache) == 0
    assert sorted((e.func, e.output) for e in entries) == [("f", 1), ("f", 2), ("my_function", 25)]


def test_unsupported_input_raises_key_type_error(cache):
    class Opaque:
        pass

    with pytest.raises(KeyTypeError):
        cache.set("f", output=1, x=Opaque())
    with pytest.raises(KeyTypeError):
        cache.get("f", x=Opaque())


def test_cache_wide_exclude_applies_to_manual_ops():
    cache = InMemCache(exclude=["request_id"])
    cache.set("f", output=1, x=1, request_id="a")
    assert cache.get("f", x=1, request_id="b") == 1
    assert cache.get("f", x=1) == 1
    [entry] = list(cache)
    assert entry.inputs == {"x": 1}


def test_manual_set_with_ttl(clock):
    cache = InMemCache(clock=clock)
    cache.set("f", output=1, x=1, ttl=10)
    cache.set("f", output=2, x=2)
    clock.advance(11)
    assert cache.get("f", x=1) is ...
    assert cache.get("f", x=2) == 2
    assert len(cache) == 1


def test_context_manager_returns_the_cache(cache):
    with cache as c:
        assert c is cache
        c.set("f", output=1, x=1)


def test_get_many_and_set_many(cache):
    cache.set_many("sq", [({"x": 1}, 1), ({"x": 2}, 4), ({"x": 3}, (9, "nine"))])
    assert cache.get_many("sq", [{"x": 3}, {"x": 9}, {"x": 1}]) == [(9, "nine"), ..., 1]
    assert cache.get("sq", x=2) == 4
    assert cache.get_many("sq", []) == []


def test_set_many_with_entries_and_ttl_argument(cache):
    entries = [CacheEntry.from_args("h", output=i * 10, x=i) for i in range(5)]
    cache.set_many(entries)
    assert cache.get_many("h", [{"x": i} for i in range(5)]) == [0, 10, 20, 30, 40]
    assert sorted(e.output for e in cache if e.func == "h") == [0, 10, 20, 30, 40]


def test_set_many_rejects_malformed_items(cache):
    with pytest.raises(TypeError, match="pairs"):
        cache.set_many("sq", [{"x": 1}])
    with pytest.raises(TypeError, match="needs items"):
        cache.set_many("sq")
    with pytest.raises(TypeError, match="CacheEntry"):
        cache.set_many([{"x": 1}])
    assert len(cache) == 0
