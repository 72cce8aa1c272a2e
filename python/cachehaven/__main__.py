"""``python -m cachehaven``: a short demo, then the hot-path figures against lru_cache.

``python -m cachehaven --no-bench`` runs the demo only.
"""

from __future__ import annotations

import asyncio
import functools
import statistics
import sys
import time
import timeit

import cachehaven


def demo() -> None:
    cache = cachehaven.InMemCache(max_entries=10_000)

    @cache.memoize
    def fibonacci(n: int) -> int:
        return n if n <= 1 else fibonacci(n - 2) + fibonacci(n - 1)

    t0 = time.perf_counter()
    print(f"fibonacci(200) = {fibonacci(200)}  ({(time.perf_counter() - t0) * 1e3:.2f} ms, cold)")
    t0 = time.perf_counter()
    fibonacci(200)
    print(f"fibonacci(200) again: {(time.perf_counter() - t0) * 1e6:.2f} µs (a cache hit)")
    print(f"fibonacci.cache_info() = {fibonacci.cache_info()}")

    @cache.memoize(exclude=["verbose"])
    def embed(text: str, options: dict, verbose: bool = False) -> list:
        return [len(text), len(options)]

    embed("hello", {"model": "small", "dims": [1, 2]})
    embed("hello", {"dims": [1, 2], "model": "small"}, verbose=True)  # same key: dicts are fine
    print(f"embed: {embed.cache_info().misses} computation for 2 calls with a dict argument")

    runs = []

    @cache.memoize
    async def fetch(x: int) -> int:
        runs.append(x)
        await asyncio.sleep(0.01)
        return x * 2

    async def main() -> list:
        return await asyncio.gather(*(fetch(21) for _ in range(5)))

    print(f"5 concurrent awaits of fetch(21) -> {asyncio.run(main())}, the function ran {len(runs)} time")
    entry = next(e for e in cache if e.func == fetch.__cachehaven_name__)
    print(f"an entry: func={entry.func!r} inputs={entry.inputs} output={entry.output} key={entry.key}")


def bench(number: int = 300_000) -> None:
    cache = cachehaven.InMemCache()

    @cache.memoize
    def f(x: int) -> int:
        return x

    @functools.cache
    def g(x: int) -> int:
        return x

    f(5)
    g(5)

    # the two are timed in turns, so a burst of load elsewhere on the machine hits both
    timers = {name: timeit.Timer(f"{name}(5)", globals={"f": f, "g": g}) for name in ("f", "g")}
    runs: dict = {"f": [], "g": []}
    for _ in range(7):
        for name, timer in timers.items():
            runs[name].append(timer.timeit(number))
    ours, lru = (statistics.median(runs[name]) / number * 1e9 for name in ("f", "g"))
    print(f"\nhot path, memoized hit f(int), median of 7 x {number:,} calls:")
    print(f"  functools.lru_cache   {lru:6.1f} ns")
    print(f"  cachehaven.InMemCache {ours:6.1f} ns   ({ours / lru:.2f}x lru_cache; keys are canonical,")
    print("                                     work for dicts/lists, and are the same in every process)")
    print("full comparison with cachetools, cachebox and moka-py: python benches/hotpath.py")


if __name__ == "__main__":
    demo()
    if "--no-bench" not in sys.argv:
        bench()
