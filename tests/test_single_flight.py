"""Single-flight: concurrent callers with the same key share one computation."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from cachehaven import _core

N_THREADS = 8


class Arrivals:
    """Counts callers that have started a call, so the computation can wait for all of them."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.lock = threading.Lock()
        self.all_in = threading.Event()

    def arrive(self) -> None:
        with self.lock:
            self.count += 1
            if self.count == self.expected:
                self.all_in.set()

    def wait_for_everyone(self) -> None:
        # every caller has entered the wrapper; give the last ones a moment to reach the
        # single-flight wait (this is only a grace period, nothing is asserted about time)
        assert self.all_in.wait(10), "callers did not all start"
        time.sleep(0.25)


def _run_threads(target, n=N_THREADS):
    results = [None] * n
    errors = [None] * n

    def run(i):
        try:
            results[i] = target()
        except BaseException as e:
            errors[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "a caller is stuck"
    return results, errors


def test_threads_with_the_same_key_run_the_function_once(cache):
    arrivals = Arrivals(N_THREADS)
    calls = []

    @cache.memoize
    def slow(x):
        calls.append(x)
        arrivals.wait_for_everyone()
        return {"value": x * 2}

    def call():
        arrivals.arrive()
        return slow(21)

    results, errors = _run_threads(call)
    assert errors == [None] * N_THREADS
    assert calls == [21]
    assert all(r == {"value": 42} for r in results)
    assert slow(21) == {"value": 42}
    assert calls == [21]


def test_threads_share_the_exception_and_nothing_is_cached(cache):
    arrivals = Arrivals(N_THREADS)
    calls = []

    @cache.memoize
    def slow(x):
        calls.append(x)
        if len(calls) == 1:
            arrivals.wait_for_everyone()
            raise RuntimeError("backend down")
        return x

    def call():
        arrivals.arrive()
        return slow(1)

    _, errors = _run_threads(call)
    assert calls == [1], "waiters must not recompute after the leader failed"
    assert all(isinstance(e, RuntimeError) and str(e) == "backend down" for e in errors), errors
    assert slow.cache_get(1) is ...
    assert len(cache) == 0
    assert slow(1) == 1
    assert calls == [1, 1]


def test_threads_with_different_keys_do_not_wait_for_each_other(cache):
    barrier = threading.Barrier(2, timeout=10)

    @cache.memoize
    def f(x):
        barrier.wait()  # both computations must be running at the same time
        return x

    results = {}

    def call(x):
        results[x] = f(x)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == {0: 0, 1: 1}


def test_reentrant_call_with_the_same_key_does_not_deadlock(cache):
    state = {"depth": 0}

    @cache.memoize
    def f(x):
        if state["depth"] < 2:
            state["depth"] += 1
            return f(x) + 1
        return 0

    out = {}
    t = threading.Thread(target=lambda: out.setdefault("r", f(1)), daemon=True)
    t.start()
    t.join(10)
    assert not t.is_alive(), "a function that calls itself with the same key deadlocked"
    assert out["r"] == 2


async def test_async_tasks_with_the_same_key_run_once(cache):
    release = asyncio.Event()
    calls = []

    @cache.memoize
    async def fetch(x):
        calls.append(x)
        await release.wait()
        return [x]

    tasks = [asyncio.create_task(fetch(7)) for _ in range(10)]
    for _ in range(5):
        await asyncio.sleep(0)
    release.set()
    results = await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert results == [[7]] * 10
    assert calls == [7]
    assert await fetch(7) == [7]
    assert calls == [7]


async def test_async_tasks_share_the_exception(cache):
    release = asyncio.Event()
    calls = []

    @cache.memoize
    async def fetch(x):
        calls.append(x)
        await release.wait()
        if len(calls) == 1:
            raise RuntimeError("nope")
        return x

    tasks = [asyncio.create_task(fetch(1)) for _ in range(10)]
    for _ in range(5):
        await asyncio.sleep(0)
    release.set()
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)
    assert all(isinstance(r, RuntimeError) for r in results), results
    assert calls == [1]
    assert fetch.cache_get(1) is ...
    assert await fetch(1) == 1


async def test_cancelled_leader_does_not_break_waiters(cache):
    release = asyncio.Event()
    calls = []

    @cache.memoize
    async def fetch(x):
        calls.append(x)
        await release.wait()
        return x * 2

    leader = asyncio.create_task(fetch(5))
    await asyncio.sleep(0)
    assert calls == [5], "the leader has started"
    waiters = [asyncio.create_task(fetch(5)) for _ in range(4)]
    for _ in range(3):
        await asyncio.sleep(0)
    leader.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader
    for _ in range(3):
        await asyncio.sleep(0)
    release.set()
    results = await asyncio.wait_for(asyncio.gather(*waiters), 10)
    assert results == [10] * 4
    assert len(calls) == 2, "one waiter takes over after the leader is cancelled, once"
    assert fetch.cache_get(5) == 10


async def test_cancelled_waiter_does_not_break_the_leader(cache):
    release = asyncio.Event()
    calls = []

    @cache.memoize
    async def fetch(x):
        calls.append(x)
        await release.wait()
        return x

    leader = asyncio.create_task(fetch(3))
    await asyncio.sleep(0)
    waiter = asyncio.create_task(fetch(3))
    other = asyncio.create_task(fetch(3))
    await asyncio.sleep(0)
    waiter.cancel()
    release.set()
    assert await asyncio.wait_for(leader, 10) == 3
    assert await asyncio.wait_for(other, 10) == 3
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert calls == [3]


# ---------------------------------------------------------------------- the Flight itself


def _lead_in_background(flight, key, result="leader"):
    """Start a thread leading ``key``'s flight until the returned event is set."""
    started, release = threading.Event(), threading.Event()
    out = {}

    def compute():
        started.set()
        assert release.wait(10)
        return result

    t = threading.Thread(target=lambda: out.setdefault("r", flight.run(key, compute)))
    t.start()
    assert started.wait(10)
    return t, release, out


def test_try_run_returns_at_once_while_its_key_is_in_flight():
    flight = _core.Flight()
    key, other = _core.call_key("f", {"x": 1}), _core.call_key("f", {"x": 2})
    t, release, out = _lead_in_background(flight, key)
    assert len(flight) == 1
    ran = []
    assert flight.try_run(key, lambda: ran.append("same key")) is False
    assert flight.try_run(other, lambda: ran.append("other key")) is True
    assert ran == ["other key"]
    release.set()
    t.join(10)
    assert out["r"] == "leader"
    assert len(flight) == 0


@pytest.mark.parametrize("outcome", ["value", "error"])
def test_waiters_get_the_leaders_value_or_exception_object_and_the_flight_ends(outcome):
    flight = _core.Flight()
    key = _core.call_key("f", {"x": 1})
    arrivals = Arrivals(N_THREADS)
    calls = []
    error = RuntimeError("leader failed")

    def compute():
        calls.append(1)
        arrivals.wait_for_everyone()
        if outcome == "error":
            raise error
        return {"shared": True}

    def call():
        arrivals.arrive()
        return flight.run(key, compute)

    results, errors = _run_threads(call)
    assert calls == [1]
    if outcome == "value":
        assert errors == [None] * N_THREADS
        assert all(r is results[0] for r in results), "every caller gets the leader's object"
    else:
        assert all(e is error for e in errors), errors
    assert len(flight) == 0


def test_a_flight_reentered_by_its_own_thread_computes_directly():
    flight = _core.Flight()
    key = _core.call_key("f", {"x": 1})
    inner = []

    def outer():
        assert flight.try_run(key, lambda: inner.append("prefetch")) is False
        return flight.run(key, lambda: "inner") + " in outer"

    assert flight.run(key, outer) == "inner in outer"
    assert inner == [] and len(flight) == 0
