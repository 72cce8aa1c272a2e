"""The warm-up worker pool (``cachehaven.warmup``), and prefetching through InMemCache."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import threading

import pytest

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
