"""Many threads hammering one Store / InMemCache: no errors, no wrong values, limits hold."""

from __future__ import annotations

import asyncio
import random
import threading
import time

import pytest

from cachehaven import InMemCache, Store

N_THREADS = 8
DURATION = 0.25  # seconds per scenario (only bounds the work; nothing is asserted about time)


def _hammer(worker, n_threads=N_THREADS):
    errors = []
    stop = time.monotonic() + DURATION

    def run(seed):
        rng = random.Random(seed)
        try:
            while time.monotonic() < stop:
                worker(rng)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a thread is stuck"
    if errors:
        raise errors[0]


def _key(rng):
    n = rng.randrange(200)
    kind = n % 4
    if kind == 0:
        return n
    if kind == 1:
        return f"k{n}"
    if kind == 2:
        return ("t", n)
    return [n, {"n": n}]


def _value_for(key):
    return ("value-of", repr(key))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_entries": 64, "policy": "adaptive"},
        {"max_entries": 64, "policy": "lru"},
        {"max_entries": 64, "ttl": 0.01},
        {"max_bytes": 2000, "weigher": lambda k, v: 25},
    ],
    ids=["adaptive", "lru", "ttl", "bytes"],
)
def test_store_mixed_operations(kwargs):
    store = Store(**kwargs)
    limit = kwargs.get("max_entries")

    def worker(rng):
        op = rng.random()
        key = _key(rng)
        if op < 0.35:
            store[key] = _value_for(key)
        elif op < 0.42:
            store.set(key, _value_for(key), ttl=rng.choice([0.001, 1.0]))
        elif op < 0.75:
            got = store.get(key)
            assert got is None or got == _value_for(key), (key, got)
        elif op < 0.82:
            try:
                del store[key]
            except KeyError:
                pass
        elif op < 0.87:
            got = store.pop(key, None)
            assert got is None or got == _value_for(key)
        elif op < 0.92:
            n = len(store)
            if limit is not None:
                assert n <= limit
        elif op < 0.97:
            for k, v in store.items():
                assert v == _value_for(k), (k, v)
            if limit is not None:
                assert len(store.keys()) <= limit
        elif op < 0.99:
            store.stats()
        else:
            store._check()

    _hammer(worker)
    store._check()
    if limit is not None:
        assert len(store) <= limit
    if "max_bytes" in kwargs:
        assert store.stats()["bytes"] <= kwargs["max_bytes"]
    for k, v in store.items():
        assert v == _value_for(k)


def test_inmemcache_mixed_operations():
    cache = InMemCache(max_entries=40)
    computed = []

    @cache.memoize
    def square(x):
        computed.append(x)
        return x * x

    @cache.memoize
    def label(x, tag="t"):
        return f"{tag}:{x}"

    def worker(rng):
        op = rng.random()
        x = rng.randrange(80)
        if op < 0.40:
            assert square(x) == x * x
        elif op < 0.55:
            assert label(x, tag="a") == f"a:{x}"
        elif op < 0.65:
            cache.set("manual", output=-x, x=x)
        elif op < 0.75:
            got = cache.get("manual", x=x)
            assert got is ... or got == -x
        elif op < 0.80:
            cache.remove("manual", x=x)
        elif op < 0.85:
            got = square.cache_get(x)
            assert got is ... or got == x * x
        elif op < 0.90:
            for entry in cache:
                if entry.func == "manual":
                    assert entry.output == -entry.inputs["x"]
                elif entry.func.endswith("square"):
                    assert entry.output == entry.inputs["x"] ** 2
            assert len(cache) <= 40
        elif op < 0.95:
            info = square.cache_info()
            assert info.currsize <= 40
        elif op < 0.97:
            square.cache_clear()
        elif op < 0.99:
            square.cache_invalidate(x)
        else:
            cache.store._check()

    _hammer(worker)
    cache.store._check()
    assert len(cache) <= 40
    assert all(0 <= x < 80 for x in computed)


def test_async_and_threads_share_one_cache():
    cache = InMemCache(max_entries=50)

    @cache.memoize
    async def fetch(x):
        await asyncio.sleep(0)
        return [x]

    @cache.memoize
    def compute(x):
        return (x,)

    def worker(rng):
        async def batch():
            xs = [rng.randrange(100) for _ in range(10)]
            results = await asyncio.gather(*(fetch(x) for x in xs))
            assert results == [[x] for x in xs]

        asyncio.run(batch())
        x = rng.randrange(100)
        assert compute(x) == (x,)

    _hammer(worker, n_threads=4)
    cache.store._check()
    assert len(cache) <= 50
