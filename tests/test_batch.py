"""``@cache.batch_memoize``: a batch function cached item by item."""

from __future__ import annotations

import asyncio

import pytest

from cachehaven import ConfigError


def test_guide_example(cache):
    seen = []

    @cache.batch_memoize()
    def process_batch(items):
        seen.append(list(items))
        return [item * item for item in items]

    assert process_batch([1, 2, 3, 4, 5]) == [1, 4, 9, 16, 25]
    assert process_batch([1, 2, 3, 4, 5]) == [1, 4, 9, 16, 25]
    assert seen == [[1, 2, 3, 4, 5]]


def test_only_missing_items_are_computed_in_order(cache):
    seen = []

    @cache.batch_memoize
    def double(batch):
        seen.append(list(batch))
        return [x * 2 for x in batch]

    assert double([1, 2, 3]) == [2, 4, 6]
    assert double([5, 3, 4, 1, 6]) == [10, 6, 8, 2, 12]
    assert seen == [[1, 2, 3], [5, 4, 6]]
    assert double([6, 5, 4, 3, 2, 1]) == [12, 10, 8, 6, 4, 2]
    assert seen == [[1, 2, 3], [5, 4, 6]]


def test_duplicates_are_computed_once(cache):
    seen = []

    @cache.batch_memoize
    def double(batch):
        seen.append(list(batch))
        return [x * 2 for x in batch]

    assert double([3, 1, 3, 2, 1]) == [6, 2, 6, 4, 2]
    assert seen == [[3, 1, 2]]
    assert double([2, 2, 7, 7]) == [4, 4, 14, 14]
    assert seen == [[3, 1, 2], [7]]


def test_results_follow_input_order_with_distinct_results(cache):
    @cache.batch_memoize
    def label(batch):
        return [f"<{x}>" for x in batch]

    assert label(["b", "a"]) == ["<b>", "<a>"]
    assert label(["a", "c", "b"]) == ["<a>", "<c>", "<b>"]


def test_empty_batch(cache):
    seen = []

    @cache.batch_memoize
    def f(batch):
        seen.append(list(batch))
        return [x for x in batch]

    assert f([]) == []


def test_item_is_cached_as_a_one_item_call(cache):
    @cache.batch_memoize
    def double(batch):
        return [x * 2 for x in batch]

    double([1, 2])
    assert double.cache_get([1]) == 2
    assert double.cache_get([2]) == 4
    assert double.cache_get([3]) is ...
    assert cache.get(double, batch=[2]) == 4
    assert cache.get(double, {"batch": [1]}) == 2
    entries = sorted(cache, key=lambda e: e.inputs["batch"])
    assert [(e.inputs, e.output) for e in entries] == [({"batch": [1]}, 2), ({"batch": [2]}, 4)]
    assert [e.metadata for e in entries] == [{}, {}]
    entries[0].metadata["note"] = 1  # an entry's metadata is its own, even when empty
    assert all(e.metadata == {} for e in cache)


def test_batch_entries_match_single_calls_entries(cache):
    @cache.memoize(name="same", annotation={"by": "test"})
    def one(batch):
        return [x * 2 for x in batch]

    @cache.batch_memoize(name="same", annotation={"by": "test"})
    def many(batch):
        return [x * 2 for x in batch]

    one([1])
    many([2, 3])
    entries = sorted(cache, key=lambda e: e.inputs["batch"])
    assert [(e.func, e.inputs, e.output, e.expected, e.metadata) for e in entries] == [
        ("same", {"batch": [x]}, [x * 2] if x == 1 else x * 2, ..., {"annotation": {"by": "test"}})
        for x in (1, 2, 3)
    ]
    entries[1].metadata["annotation"]["by"] = "changed"  # entries never share their metadata
    assert entries[2].metadata == {"annotation": {"by": "test"}}
    assert many([1, 2, 3]) == [[2], 4, 6]


def test_manually_set_item_is_used(cache):
    seen = []

    @cache.batch_memoize
    def double(batch):
        seen.append(list(batch))
        return [x * 2 for x in batch]

    double.cache_set(-1, [5])
    assert double([4, 5, 6]) == [8, -1, 12]
    assert seen == [[4, 6]]


def test_extra_arguments_are_part_of_the_item_key(cache):
    seen = []

    @cache.batch_memoize
    def scale(batch, factor, *, offset=0):
        seen.append((list(batch), factor, offset))
        return [x * factor + offset for x in batch]

    assert scale([1, 2], 10) == [10, 20]
    assert scale([1, 2], 10, offset=0) == [10, 20]
    assert scale([1, 2], 3) == [3, 6]
    assert scale([2, 3], 10, offset=1) == [21, 31]
    assert seen == [([1, 2], 10, 0), ([1, 2], 3, 0), ([2, 3], 10, 1)]


def test_unhashable_items(cache):
    seen = []

    @cache.batch_memoize
    def size(batch):
        seen.append(len(batch))
        return [len(x) for x in batch]

    assert size([{"a": 1}, [1, 2, 3]]) == [1, 3]
    assert size([[1, 2, 3], {"a": 1}, {"b": 1, "c": 2}]) == [3, 1, 2]
    assert seen == [2, 1]


def test_wrong_result_count_raises_value_error(cache):
    @cache.batch_memoize
    def broken(batch):
        return [0] * (len(batch) + 1)

    with pytest.raises(ValueError):
        broken([1, 2])
    assert len(cache) == 0

    @cache.batch_memoize
    def short(batch):
        return batch[:-1]

    with pytest.raises(ValueError):
        short([1, 2, 3])
    assert len(cache) == 0


def test_exceptions_are_not_cached(cache):
    calls = []

    @cache.batch_memoize
    def f(batch):
        calls.append(list(batch))
        if len(calls) == 1:
            raise RuntimeError("boom")
        return list(batch)

    with pytest.raises(RuntimeError):
        f([1, 2])
    assert len(cache) == 0
    assert f([1, 2]) == [1, 2]
    assert calls == [[1, 2], [1, 2]]


def test_cache_if_per_item(cache):
    seen = []

    @cache.batch_memoize(cache_if=lambda r: r is not None)
    def lookup(batch):
        seen.append(list(batch))
        return [None if x < 0 else x for x in batch]

    assert lookup([1, -1]) == [1, None]
    assert lookup([1, -1]) == [1, None]
    assert seen == [[1, -1], [-1]]


def test_batch_cache_info_counts_items(cache):
    @cache.batch_memoize
    def f(batch):
        return list(batch)

    f([1, 2, 3])
    f([2, 3, 4])
    info = f.cache_info()
    assert (info.hits, info.misses, info.currsize) == (2, 4, 4)


def test_batch_method(cache):
    class Embedder:
        def __init__(self, dim):
            self.dim = dim
            self.seen = []

        def __cache_key__(self):
            return self.dim

        @cache.batch_memoize
        def embed(self, texts):
            self.seen.append(list(texts))
            return [(t, self.dim) for t in texts]

    e = Embedder(3)
    assert e.embed(["a", "b"]) == [("a", 3), ("b", 3)]
    assert e.embed(["b", "c"]) == [("b", 3), ("c", 3)]
    assert e.seen == [["a", "b"], ["c"]]
    other = Embedder(4)
    assert other.embed(["a"]) == [("a", 4)]
    assert other.seen == [["a"]]


async def test_async_batch(cache):
    seen = []

    @cache.batch_memoize
    async def fetch(ids):
        seen.append(list(ids))
        await asyncio.sleep(0)
        return [f"user{i}" for i in ids]

    assert await fetch([1, 2, 3]) == ["user1", "user2", "user3"]
    assert await fetch([3, 4, 4, 1]) == ["user3", "user4", "user4", "user1"]
    assert seen == [[1, 2, 3], [4]]
    assert fetch.cache_get([4]) == "user4"


async def test_async_batch_wrong_count(cache):
    @cache.batch_memoize
    async def fetch(ids):
        return []

    with pytest.raises(ValueError):
        await fetch([1])
    assert len(cache) == 0


def test_batch_memoize_rejects_generators(cache):
    def gen(batch):
        yield from batch

    with pytest.raises(ConfigError):
        cache.batch_memoize(gen)
