"""The warm-up worker pool (``cachehaven.warmup``), and prefetching through InMemCache."""

from __future__ import annotations

import collections
import gc
import random
import subprocess
import sys
import textwrap
import threading
import weakref

import pytest

import cachehaven
from cachehaven import ConfigError, InMemCache, _core
from cachehaven.warmup import BoundedMap, WarmupPool

WAIT = 30.0  # generous bound on waits that only guard against a hang; nothing asserts time


def _blocker():
    """A task that holds its worker until released, and an event set once it runs."""
    started = threading.Event()
    release = threading.Event()

    def task():
        started.set()
        release.wait(WAIT)

    return task, started, release


# ---------------------------------------------------------------------- WarmupPool


def test_tasks_run_in_the_background_and_wait_idle_waits_for_them():
    done = []
    with WarmupPool(workers=2, queue_size=16) as pool:
        assert pool.threads() == []  # no thread before the first submission
        for i in range(10):
            assert pool.submit(i, lambda i=i: done.append(i))
        assert pool.wait_idle(WAIT)
        assert sorted(done) == list(range(10))
        assert all(t.daemon for t in pool.threads())
        assert len(pool.threads()) == 2
        st = pool.stats()
        assert st["submitted"] == 10 and st["completed"] == 10
        assert st["queued"] == 0 and st["running"] == 0


def test_a_full_queue_drops_without_blocking():
    task, started, release = _blocker()
    pool = WarmupPool(workers=1, queue_size=3)
    try:
        assert pool.submit("busy", task)
        assert started.wait(WAIT)  # the only worker is held
        ran = []
        assert all(pool.submit(i, lambda i=i: ran.append(i)) for i in range(3))
        # the queue is full: these return at once, dropped
        assert not pool.submit(3, lambda: ran.append(3))
        assert not pool.submit(4, lambda: ran.append(4))
        assert pool.stats()["dropped"] == 2 and pool.stats()["queued"] == 3
        release.set()
        assert pool.wait_idle(WAIT)
        assert sorted(ran) == [0, 1, 2]
    finally:
        release.set()
        pool.close()


def test_a_key_already_queued_or_running_is_not_queued_twice():
    task, started, release = _blocker()
    with WarmupPool(workers=1, queue_size=10) as pool:
        assert pool.submit("k", task)
        assert started.wait(WAIT)
        assert pool.pending("k")
        assert not pool.submit("k", task)  # running
        assert pool.submit("j", lambda: None)
        assert not pool.submit("j", lambda: None)  # queued
        assert pool.stats()["duplicates"] == 2
        release.set()
        assert pool.wait_idle(WAIT)
        assert not pool.pending("k")
        assert pool.submit("k", lambda: None)  # done: may run again
        assert pool.wait_idle(WAIT)


def test_a_failing_task_is_counted_and_the_worker_keeps_serving():
    done = []

    def boom():
        raise RuntimeError("prefetch failed")

    with WarmupPool(workers=1) as pool:
        pool.submit("bad", boom)
        pool.submit("good", lambda: done.append(1))
        assert pool.wait_idle(WAIT)
        assert done == [1]
        assert pool.stats()["failed"] == 1 and pool.stats()["completed"] == 1


def test_close_is_idempotent_discards_queued_work_and_ends_every_thread():
    task, started, release = _blocker()
    pool = WarmupPool(workers=2, queue_size=10)
    ran = []
    pool.submit("a", task)
    assert started.wait(WAIT)
    pool.submit("b", task)  # the second worker holds this one
    for i in range(5):
        pool.submit(i, lambda i=i: ran.append(i))
    release.set()
    assert pool.close(WAIT)
    assert pool.close(WAIT)  # again: nothing to do
    assert pool.closed
    assert not any(t.is_alive() for t in pool.threads())
    assert not pool.submit("late", lambda: ran.append("late"))
    assert "late" not in ran
    st = pool.stats()
    assert st["submitted"] == st["completed"] + st["failed"] + (st["dropped"] - 1)  # 1: "late"
    assert pool.wait_idle(WAIT)


def test_close_from_inside_a_task_does_not_deadlock():
    pool = WarmupPool(workers=1)
    closed = threading.Event()

    def task():
        pool.close()
        closed.set()

    pool.submit("self-close", task)
    assert closed.wait(WAIT)
    assert pool.close(WAIT)
    assert not any(t.is_alive() for t in pool.threads())


def test_wait_idle_times_out_while_a_task_runs():
    task, started, release = _blocker()
    with WarmupPool(workers=1) as pool:
        pool.submit("slow", task)
        assert started.wait(WAIT)
        assert pool.wait_idle(0.01) is False
        release.set()
        assert pool.wait_idle(WAIT) is True


def test_bad_options_raise_value_errors_naming_them():
    with pytest.raises(ValueError, match="workers"):
        WarmupPool(workers=0)
    with pytest.raises(ValueError, match="queue_size"):
        WarmupPool(queue_size=0)
    with pytest.raises(ValueError, match="capacity"):
        BoundedMap(0)


def test_interpreter_exit_closes_open_pools_even_with_a_stuck_task():
    code = textwrap.dedent(
        """
        import threading
        from cachehaven.warmup import WarmupPool
        import cachehaven.warmup as w
        w.EXIT_TIMEOUT = 0.2
        pool = WarmupPool(workers=2)
        started = threading.Event()
        pool.submit("stuck", lambda: (started.set(), threading.Event().wait(3600)))
        for i in range(50):
            pool.submit(i, lambda: None)
        started.wait(30)
        print("bye", flush=True)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "bye"


# ---------------------------------------------------------------------- BoundedMap


def test_bounded_map_keeps_the_most_recently_written_keys():
    m = BoundedMap(3)
    for i in range(5):
        m.put(i, str(i))
    assert len(m) == 3 and 0 not in m and 1 not in m
    m.put(2, "two")  # rewritten: now the most recent
    m.put(5, "5")
    assert 3 not in m and m.get(2) == "two" and m.get(5) == "5"
    assert m.pop(2) == "two" and m.get(2, "gone") == "gone"
    m.clear()
    assert len(m) == 0


def test_bounded_map_is_thread_safe_and_stays_bounded():
    m = BoundedMap(50)
    errors = []

    def run(seed):
        try:
            for i in range(2000):
                m.put((seed, i % 97), i)
                m.get((seed, (i * 7) % 97))
                if i % 13 == 0:
                    m.pop((seed, i % 97))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert not errors and len(m) <= 50
    gc.collect()


# ---------------------------------------------------------------------- prefetch through InMemCache


def _chain_cache(**options):
    """A cache with a ``prefetch=True`` function ``step`` whose calls are counted."""
    cache = InMemCache(**options)
    calls = collections.Counter()

    @cache.memoize(name="step", prefetch=True)
    def step(n):
        calls[n] += 1
        return n * 10

    return cache, step, calls


def _teach(step, chain, times=3):
    for _ in range(times):
        for n in chain:
            step(n)


def test_prefetch_computes_the_predicted_next_call_so_it_is_a_hit():
    cache, step, calls = _chain_cache()
    _teach(step, [1, 2, 3])
    assert cache.predict_next("step", n=1)[0] == ("step", {"n": 2})
    step.cache_invalidate(2)  # gone, say evicted
    step.cache_invalidate(3)
    before = dict(calls)
    step(1)  # predicts 2: computed in the background
    assert cache.wait_idle(WAIT)
    assert calls[2] == before[2] + 1 and calls[3] == before[3]
    hits = step.cache_info().hits
    assert step(2) == 20  # a hit now; it predicts 3, which is prefetched in turn
    assert step.cache_info().hits == hits + 1
    assert calls[2] == before[2] + 1
    assert cache.wait_idle(WAIT)
    assert step(3) == 30 and calls[3] == before[3] + 1
    st = cache.stats()
    assert st["warmups"] == 2 and st["prediction_hits"] == 2 and st["prediction_accuracy"] == 1.0
    assert st["prefetch_completed"] >= 2
    cache.close()


def test_prefetch_depth_looks_further_ahead():
    cache, step, _ = _chain_cache(prefetch_depth=3)
    _teach(step, [1, 2, 3, 4, 5])
    for n in (2, 3, 4, 5):
        step.cache_invalidate(n)
    step(1)
    assert cache.wait_idle(WAIT)
    assert [step.cache_get(n) for n in (2, 3, 4, 5)] == [20, 30, 40, ...]
    cache.close()


def test_prefetched_entries_and_events():
    cache, step, _ = _chain_cache(events=64)
    _teach(step, [1, 2])
    step.cache_invalidate(2)
    step(1)
    assert cache.wait_idle(WAIT)
    kinds = [e.kind for e in cache.events()]
    assert "PREDICT" in kinds and kinds.count("WARMUP") == 1
    warm = next(e for e in cache.events() if e.kind == "WARMUP")
    assert (warm.func, warm.inputs) == ("step", {"n": 2})
    cache.close()


def test_a_warmer_loads_predicted_keys_of_the_manual_api():
    loads = []

    def warmer(func, inputs):
        loads.append((func, inputs))
        return f"{func}:{inputs['page']}"

    cache = InMemCache(warmer=warmer)
    assert cache.track_patterns
    for page in (1, 2, 3):
        cache.set("page", output=f"page:{page}", page=page)
    for _ in range(3):
        for page in (1, 2, 3):
            cache.get("page", page=page)
    cache.remove("page", page=2)
    cache.get("page", page=1)
    assert cache.wait_idle(WAIT)
    assert loads == [("page", {"page": 2})]
    assert cache.get("page", page=2) == "page:2"
    assert cache.stats()["prediction_hits"] == 1
    cache.close()


def test_a_warmer_returning_ellipsis_stores_nothing():
    cache = InMemCache(warmer=lambda func, inputs: ...)
    cache.set("a", output=1)
    cache.set("b", output=2)
    for _ in range(3):
        cache.get("a")
        cache.get("b")
    cache.remove("b")
    cache.get("a")
    assert cache.wait_idle(WAIT)
    assert cache.get("b") is ... and cache.stats()["warmups"] == 0
    cache.close()


def test_a_prefetch_racing_a_running_miss_does_not_run_the_function_again():
    cache = InMemCache()
    calls = collections.Counter()
    inside = threading.Event()
    release = threading.Event()

    @cache.memoize(name="slow", prefetch=True)
    def slow(n):
        calls[n] += 1
        if n == 2 and release is not None and not release.is_set():
            inside.set()
            release.wait(WAIT)
        return n

    release.set()
    _teach(slow, [1, 2])
    slow.cache_invalidate(2)
    release.clear()
    caller = threading.Thread(target=slow, args=(2,))
    caller.start()  # a normal miss of slow(2), held inside the function
    assert inside.wait(WAIT)
    slow(1)  # predicts slow(2): its prefetch finds the caller's flight and gives up
    assert cache.wait_idle(WAIT)
    assert cache.stats()["prefetch_completed"] == 1 and cache.stats()["warmups"] == 0
    release.set()
    caller.join(WAIT)
    assert calls[2] == 2  # once while teaching, once by the caller: never by the prefetch
    assert slow.cache_get(2) == 2
    cache.close()


def test_a_miss_racing_a_running_prefetch_waits_for_it_instead_of_recomputing():
    cache = InMemCache()
    calls = collections.Counter()
    inside = threading.Event()
    release = threading.Event()
    release.set()

    @cache.memoize(name="slow", prefetch=True)
    def slow(n):
        calls[n] += 1
        if n == 2 and not release.is_set():
            inside.set()
            release.wait(WAIT)
        return n * 2

    _teach(slow, [1, 2])
    slow.cache_invalidate(2)
    release.clear()
    slow(1)  # the prefetch of slow(2) starts and is held inside the function
    assert inside.wait(WAIT)
    results = []
    caller = threading.Thread(target=lambda: results.append(slow(2)))
    caller.start()  # misses, joins the prefetch's flight (or hits, if it already finished)
    release.set()
    caller.join(WAIT)
    assert cache.wait_idle(WAIT)
    assert results == [4] and calls[2] == 2  # once while teaching, once by the prefetch
    cache.close()


def test_prefetch_failures_stay_in_the_background():
    cache = InMemCache()
    fail = {"on": False}

    @cache.memoize(name="flaky", prefetch=True)
    def flaky(n):
        if fail["on"] and n == 2:
            raise RuntimeError("backend down")
        return n

    _teach(flaky, [1, 2])
    flaky.cache_invalidate(2)
    fail["on"] = True
    assert flaky(1) == 1  # the prefetch of flaky(2) fails quietly
    assert cache.wait_idle(WAIT)
    assert cache.stats()["prefetch_failed"] == 1
    with pytest.raises(RuntimeError, match="backend down"):
        flaky(2)  # a caller still sees its own call's exception
    fail["on"] = False
    assert flaky(2) == 2
    cache.close()


def test_a_full_prefetch_queue_drops_instead_of_blocking():
    cache = InMemCache(prefetch_workers=1, prefetch_queue=1)
    gate = threading.Event()
    gate.set()
    started = threading.Event()

    @cache.memoize(name="f", prefetch=True)
    def f(n):
        if not gate.is_set():
            started.set()
            gate.wait(WAIT)
        return n

    chains = [(10 * c + 1, 10 * c + 2) for c in range(5)]
    for _ in range(3):
        for a, b in chains:
            f(a)
            f(b)
    for _, b in chains:
        f.cache_invalidate(b)
    gate.clear()
    f(chains[0][0])  # prefetch 2, held in the only worker
    assert started.wait(WAIT)
    for a, _ in chains[1:]:
        f(a)  # 12 is queued (the queue holds one), 22 and 32 are dropped... at once
    gate.set()
    assert cache.wait_idle(WAIT)
    st = cache.stats()
    assert st["prefetch_dropped"] >= 2
    assert st["prefetch_completed"] == st["prefetch_submitted"]
    cache.close()


def test_prefetch_respects_max_entries():
    cache, step, _ = _chain_cache(max_entries=3, prefetch_depth=4)
    for _ in range(5):
        for n in range(10):
            step(n)
            assert len(cache) <= 3
    assert cache.wait_idle(WAIT)
    assert len(cache) <= 3
    cache.close()


def test_no_prefetch_while_caching_is_disabled():
    cache, step, _ = _chain_cache()
    _teach(step, [1, 2])
    step.cache_invalidate(2)
    with cachehaven.disabled():
        step(1)
    assert cache.wait_idle(WAIT)
    assert step.cache_get(2) is ...
    cache.close()


def test_a_prefetched_method_never_keeps_its_instance_alive():
    cache = InMemCache()

    class Page:
        def __init__(self, n):
            self.n = n

        def __cache_key__(self):
            return self.n

        @cache.memoize(prefetch=True)
        def render(self, part):
            return f"{self.n}/{part}"

    p = Page(1)
    for _ in range(3):
        p.render("head")
        p.render("body")
    Page.render.cache_invalidate(p, "body")
    ref = weakref.ref(p)
    p.render("head")
    assert cache.wait_idle(WAIT)
    assert Page.render.cache_get(p, "body") == "1/body"
    del p
    gc.collect()
    assert ref() is None
    cache.close()


def test_only_plain_sync_functions_may_prefetch_and_other_backends_refuse():
    cache = InMemCache()

    def gen():
        yield 1

    with pytest.raises(ConfigError, match="plain"):
        cache.memoize(prefetch=True)(gen)
    with pytest.raises(ConfigError, match="track_patterns=False"):
        InMemCache(track_patterns=False).memoize(prefetch=True)(lambda: 1)
    with pytest.raises(ConfigError, match="track_patterns"):
        InMemCache(warmer=lambda f, i: 1, track_patterns=False)
    with pytest.raises(ConfigError, match="warmer"):
        InMemCache(warmer="not callable")
    with pytest.raises(ConfigError, match="prefetch_workers"):
        InMemCache(prefetch_workers=0)
    with pytest.raises(ConfigError, match="prefetch_queue"):
        InMemCache(prefetch_queue=0)
    with pytest.raises(ConfigError, match="prefetch_depth"):
        InMemCache(prefetch_depth=0)


def test_normal_memoize_keeps_the_native_hit_path_next_to_prefetching_functions():
    cache = InMemCache()

    @cache.memoize
    def plain(x):
        return x

    @cache.memoize(prefetch=True)
    def ahead(x):
        return x

    assert isinstance(plain, _core.Memoized)
    assert not isinstance(ahead, _core.Memoized)


# ---------------------------------------------------------------------- shutting down


def _prefetch_threads(cache):
    pool = cache._pool
    return [] if pool is None else pool.threads()


def test_close_is_idempotent_ends_the_threads_and_the_cache_keeps_working():
    cache, step, _ = _chain_cache()
    _teach(step, [1, 2])
    step.cache_invalidate(2)
    step(1)
    assert cache.wait_idle(WAIT)
    threads = _prefetch_threads(cache)
    assert threads and all(t.is_alive() for t in threads)
    cache.close()
    cache.close()
    assert not any(t.is_alive() for t in threads)
    step.cache_invalidate(2)
    assert step(1) == 10  # still a cache...
    assert cache.wait_idle(WAIT)
    assert step.cache_get(2) is ...  # ...that no longer prefetches
    assert _prefetch_threads(cache) == threads


def test_the_context_manager_closes():
    with InMemCache() as cache:

        @cache.memoize(name="f", prefetch=True)
        def f(n):
            return n

        _teach(f, [1, 2])
        f.cache_invalidate(2)
        f(1)
        assert cache.wait_idle(WAIT)
        threads = _prefetch_threads(cache)
    assert threads and not any(t.is_alive() for t in threads)


def test_a_dropped_cache_stops_its_threads():
    cache, step, _ = _chain_cache()
    _teach(step, [1, 2])
    step.cache_invalidate(2)
    step(1)
    assert cache.wait_idle(WAIT)
    threads = _prefetch_threads(cache)
    assert threads
    ref = weakref.ref(cache)
    del cache, step
    gc.collect()
    assert ref() is None
    for t in threads:
        t.join(WAIT)
    assert not any(t.is_alive() for t in threads)


def test_a_process_with_running_prefetches_exits_cleanly():
    code = textwrap.dedent(
        """
        import time
        from cachehaven import InMemCache
        cache = InMemCache()

        @cache.memoize(name="f", prefetch=True)
        def f(n):
            time.sleep(0.01)
            return n

        for _ in range(3):
            for n in range(20):
                f(n)
        for n in range(20):
            f.cache_invalidate(n)
        for n in range(20):
            f(n)
        print("done", flush=True)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "done" and out.stderr == ""


# ---------------------------------------------------------------------- thread stress


def test_stress_eight_threads_with_the_warm_up_workers_running():
    limit = 48
    cache = InMemCache(max_entries=limit, events=64, prefetch_workers=2, prefetch_queue=8, prefetch_depth=2)
    evicted = collections.Counter()
    cache.subscribe("EVICT", lambda e: evicted.update([e.kind]))

    @cache.memoize(name="walk", prefetch=True)
    def walk(n):
        return [n] * (n % 5)

    @cache.memoize(name="plain")
    def plain(n):
        return n * 2

    errors = []
    over = []
    stop = threading.Event()

    def worker(seed):
        rng = random.Random(seed)
        try:
            for _ in range(1500):
                op = rng.randrange(10)
                n = rng.randrange(120)
                if op < 4:
                    start = rng.randrange(0, 100, 10)
                    for k in range(start, start + 5):  # chains of five
                        assert walk(k) == [k] * (k % 5)
                elif op == 4:
                    assert plain(n) == n * 2
                elif op == 5:
                    cache.set("m", output=n, n=n, depends_on=[("walk", {"n": n % 7})])
                elif op == 6:
                    cache.invalidate("walk", n=rng.randrange(7))
                elif op == 7:
                    v = cache.get("m", n=n)
                    assert v is ... or v == n
                elif op == 8:
                    cache.predict_next("walk", n=n)
                    cache.events(5)
                    cache.hot_entries(3)
                else:
                    cache.get("h", n=n, content_hash=rng.randrange(3))
                    cache.set("h", output=n, n=n, content_hash=rng.randrange(3))
                if len(cache) > limit:
                    over.append(len(cache))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    stop.set()
    assert not any(t.is_alive() for t in threads), "a thread is stuck"
    assert not errors, errors[0]
    assert cache.wait_idle(WAIT)
    assert not over and len(cache) <= limit
    cache.store._check()
    st = cache.stats()
    assert st["entries"] == len(cache) <= limit
    assert st["warmups"] > 0 and evicted["EVICT"] > 0
    cache.close()
    assert not any(t.is_alive() for t in _prefetch_threads(cache))


def test_a_method_of_an_instance_without_weak_references_still_works_unprefetched():
    cache = InMemCache()

    class Slotted:
        __slots__ = ("n",)

        def __init__(self, n):
            self.n = n

        def __cache_key__(self):
            return self.n

        @cache.memoize(prefetch=True)
        def part(self, i):
            return (self.n, i)

    s = Slotted(1)
    for _ in range(3):
        assert s.part(1) == (1, 1) and s.part(2) == (1, 2)
    Slotted.part.cache_invalidate(s, 2)
    assert s.part(1) == (1, 1)
    assert cache.wait_idle(WAIT)
    assert Slotted.part.cache_get(s, 2) is ...  # its arguments could not be kept weakly
    assert s.part(2) == (1, 2)
    cache.close()
