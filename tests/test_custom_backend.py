"""A backend written against AgentHeaven's storage protocol (``_get``/``_set``/``_remove``/
``_itervalues``/``_clear``, keyed by the entry's int key) gets the whole cache API from
``BaseCache`` (guide 4.5.2)."""

from __future__ import annotations

from typing import Any, Dict, Iterator

import pytest

from cachehaven import BaseCache, CacheEntry


class DictCache(BaseCache):
    """Rows are ``CacheEntry.to_dict()`` dicts in a plain dict, keyed by ``CacheEntry.key``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rows: Dict[int, Dict[str, Any]] = {}

    def _get(self, key: int, default: Any = ...) -> Any:
        return self.rows.get(key, default)

    def _set(self, key: int, value: Dict[str, Any]) -> None:
        entry = CacheEntry.from_dict(value)  # validate, as the guide's example does
        self.rows[key] = entry.to_dict()

    def _remove(self, key: int) -> None:
        self.rows.pop(key, None)

    def _itervalues(self) -> Iterator[Dict[str, Any]]:
        return iter(list(self.rows.values()))

    def _clear(self) -> None:
        self.rows.clear()


@pytest.fixture
def dcache() -> DictCache:
    return DictCache()


def test_rows_are_keyed_by_entry_key(dcache):
    dcache.set(CacheEntry(func="my_function", inputs={"x": 5}, output=25))
    key = CacheEntry("my_function", {"x": 5}).key
    assert list(dcache.rows) == [key]
    assert dcache.rows[key] == {"func": "my_function", "inputs": {"x": 5}, "output": 25, "metadata": {}}
    assert dcache.get("my_function", x=5) == 25
    assert key in dcache
    assert dcache.remove("my_function", {"x": 5}) is True
    assert dcache.rows == {}


def test_memoize_plain_function(dcache):
    calls = []

    @dcache.memoize
    def f(x, y=1):
        calls.append(x)
        return x + y

    assert f(1) == 2
    assert f(x=1, y=1) == 2
    assert calls == [1]
    assert f.cache_info()[:2] == (1, 1)
    assert f.cache_info().currsize == 1
    assert list(dcache.rows) == [f.cache_key(1)]


async def test_memoize_async_function(dcache):
    calls = []

    @dcache.memoize
    async def f(x):
        calls.append(x)
        return x

    assert await f(1) == 1
    assert await f(1) == 1
    assert calls == [1]


def test_memoize_method(dcache):
    class Model:
        def __init__(self):
            self.calls = 0

        @dcache.memoize
        def predict(self, x):
            self.calls += 1
            return x * 2

    m = Model()
    assert m.predict(2) == 4
    assert m.predict(2) == 4
    assert m.calls == 1
    other = Model()
    assert other.predict(2) == 4
    assert other.calls == 1


def test_memoize_method_with_cache_key(dcache):
    calls = []

    class Model:
        def __init__(self, name):
            self.name = name

        def __cache_key__(self):
            return self.name

        @dcache.memoize
        def predict(self, x):
            calls.append(x)
            return x

    assert Model("a").predict(1) == 1
    assert Model("a").predict(1) == 1
    assert calls == [1]


def test_memoize_classmethod(dcache):
    calls = []

    class A:
        @dcache.memoize
        @classmethod
        def make(cls, x):
            calls.append(x)
            return (cls.__name__, x)

    assert A.make(1) == ("A", 1)
    assert A.make(1) == ("A", 1)
    assert calls == [1]


def test_a_foreign_row_under_the_key_is_never_returned(dcache):
    key = CacheEntry("f", {"x": 1}).key
    dcache.rows[key] = {"func": "f", "inputs": {"x": 2}, "output": "wrong", "metadata": {}}
    assert dcache.get("f", x=1) is ...
    assert not dcache.exists("f", x=1)
    calls = []

    @dcache.memoize(name="f")
    def f(x):
        calls.append(x)
        return "right"

    assert f(1) == "right"
    assert calls == [1]
    assert dcache.get("f", x=1) == "right"


def test_manual_ops_and_clear(dcache):
    dcache.set("f", output=1, x=1)
    dcache.set("f", output=2, x=2)
    dcache.annotate("f", expected=10, x=1)
    assert dcache.get("f", x=1) == 10
    assert len(dcache) == 2
    assert sorted(e.inputs["x"] for e in dcache) == [1, 2]

    @dcache.memoize(name="g")
    def g(x):
        return x

    g(1)
    g.cache_clear()
    assert len(dcache) == 2
    dcache.clear()
    assert len(dcache) == 0


def test_reads_rows_written_by_agentheaven():
    cache = DictCache(key_scheme="ahvn")
    cache.rows[6452910756379405413525593858603593943] = {
        "func": "add",
        "inputs": {"x": 5, "y": 10},
        "output": 15,
        "metadata": {},
    }
    calls = []

    @cache.memoize
    def add(x, y):
        calls.append((x, y))
        return x + y

    assert add(5, 10) == 15
    assert calls == []
    assert add(1, 2) == 3
    assert CacheEntry("add", {"x": 1, "y": 2}).key_for("ahvn") in cache.rows
