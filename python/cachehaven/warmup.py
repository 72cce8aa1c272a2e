"""The background warm-up worker pool: computes predicted cache entries off the caller's path.

A :class:`WarmupPool` runs tasks on a few daemon threads fed by a bounded queue:

* :meth:`WarmupPool.submit` never blocks. A task is dropped (and counted) when the queue is
  full, when the pool is closed, or when a task for the same key is already queued or
  running, so a hot prediction cannot flood the queue with copies of itself.
* Threads start on the first submission, so a cache that never prefetches owns no thread.
* A task's exception is logged (at debug level) and counted, never raised anywhere: a
  prefetch is a guess, and its failure must not surface in an unrelated call.
* :meth:`WarmupPool.wait_idle` waits until the queue is empty and no task runs (for tests
  and for programs that want their prefetches finished, e.g. before a snapshot).
* :meth:`WarmupPool.close` stops accepting work, discards what is still queued, lets running
  tasks finish, and joins the threads. It is idempotent, and runs at interpreter exit for
  every pool still open (with a bounded wait, so a stuck task cannot hang the exit).

The pool knows nothing about caches: ``InMemCache`` submits closures that recheck the store,
run the loader under the cache's single-flight (so a prefetch racing a normal miss runs the
function once) and store the result. No task ever runs while a store borrow is held: the
store's borrow only spans pure-Rust work, and tasks are plain Python calls.
"""

from __future__ import annotations

import atexit
import collections
import logging
import threading
import time
import weakref
from typing import Any, Callable, Deque, Dict, Hashable, Optional, Set, Tuple

__all__ = ["BoundedMap", "WarmupPool"]

logger = logging.getLogger("cachehaven")

#: How long interpreter exit waits for the running tasks of each open pool (seconds).
EXIT_TIMEOUT = 2.0

_live: weakref.WeakSet[WarmupPool] = weakref.WeakSet()
_live_lock = threading.Lock()
_atexit_registered = False


def _close_all_at_exit() -> None:
    with _live_lock:
        pools = list(_live)
    for pool in pools:
        pool.close(timeout=EXIT_TIMEOUT)


def _register(pool: WarmupPool) -> None:
    global _atexit_registered
    with _live_lock:
        _live.add(pool)
        if not _atexit_registered:
            atexit.register(_close_all_at_exit)
            _atexit_registered = True


class WarmupPool:
    """A bounded queue of warm-up tasks served by ``workers`` daemon threads.

    ``WarmupPool(workers=2, queue_size=256, name="cachehaven-warmup")``

    Thread-safe. Use as a context manager, or call :meth:`close`; interpreter exit closes
    every pool still open.
    """

    def __init__(self, workers: int = 2, queue_size: int = 256, *, name: str = "cachehaven-warmup") -> None:
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise ValueError(f"workers must be an int >= 1, not {workers!r}")
        if not isinstance(queue_size, int) or isinstance(queue_size, bool) or queue_size < 1:
            raise ValueError(f"queue_size must be an int >= 1, not {queue_size!r}")
        self._workers = workers
        self._queue_size = queue_size
        self._name = name
        self._cond = threading.Condition(threading.Lock())
        self._queue: Deque[Tuple[Hashable, Callable[[], Any]]] = collections.deque()
        self._pending: Set[Hashable] = set()  # keys queued or running
        self._running = 0
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._counts: Dict[str, int] = {
            "submitted": 0,
            "dropped": 0,
            "duplicates": 0,
            "completed": 0,
            "failed": 0,
        }
        _register(self)

    # ------------------------------------------------------------------ properties
    @property
    def workers(self) -> int:
        """The number of worker threads (started on the first submission)."""
        return self._workers

    @property
    def queue_size(self) -> int:
        """The queue's capacity; submissions beyond it are dropped."""
        return self._queue_size

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return self._closed

    def threads(self) -> list[threading.Thread]:
        """The worker threads started so far (alive or finished)."""
        with self._cond:
            return list(self._threads)

    # ------------------------------------------------------------------ work
    def submit(self, key: Hashable, task: Callable[[], Any]) -> bool:
        """Queue ``task`` (identified by ``key``) without blocking.

        Returns True if it was queued; False if it was dropped: the queue is full, the pool
        is closed, or a task with the same ``key`` is already queued or running.
        """
        with self._cond:
            if key in self._pending:
                self._counts["duplicates"] += 1
                return False
            if self._closed or len(self._queue) >= self._queue_size:
                self._counts["dropped"] += 1
                return False
            self._queue.append((key, task))
            self._pending.add(key)
            self._counts["submitted"] += 1
            if len(self._threads) < self._workers:
                self._start_thread()
            self._cond.notify()
            return True

    def pending(self, key: Hashable) -> bool:
        """Whether a task for ``key`` is queued or running."""
        with self._cond:
            return key in self._pending

    def _start_thread(self) -> None:
        # called with the condition held
        t = threading.Thread(target=self._work, name=f"{self._name}-{len(self._threads) + 1}", daemon=True)
        self._threads.append(t)
        t.start()

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                key, task = self._queue.popleft()
                self._running += 1
            ok = True
            try:
                task()
            except BaseException as e:  # a prefetch is a guess: never let it escape
                ok = False
                logger.debug("cachehaven: warm-up task %r failed: %s: %s", key, type(e).__name__, e)
            finally:
                del task
                with self._cond:
                    self._running -= 1
                    self._pending.discard(key)
                    self._counts["completed" if ok else "failed"] += 1
                    self._cond.notify_all()

    # ------------------------------------------------------------------ waiting and closing
    def wait_idle(self, timeout: Optional[float] = None) -> bool:
        """Wait until no task is queued or running; True if so, False on timeout.

        Tasks submitted while waiting are waited for too. A closed pool is idle once its
        running tasks have finished.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._queue or self._running:
                if deadline is None:
                    self._cond.wait()
                else:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._cond.wait(left)
            return True

    def close(self, timeout: Optional[float] = None) -> bool:
        """Stop the pool: refuse new tasks, discard queued ones (counted as dropped), let
        running tasks finish and join the threads (up to ``timeout`` seconds each, None: no
        limit). Idempotent; returns True once every thread has ended.

        Called from a worker thread itself (a task closing its own cache), it does not wait
        for that thread.
        """
        with self._cond:
            if not self._closed:
                self._closed = True
                self._counts["dropped"] += len(self._queue)
                for key, _ in self._queue:
                    self._pending.discard(key)
                self._queue.clear()
                self._cond.notify_all()
            threads = list(self._threads)
        me = threading.current_thread()
        for t in threads:
            if t is not me:
                t.join(timeout)
        with _live_lock:
            _live.discard(self)
        return not any(t.is_alive() for t in threads if t is not me)

    def stats(self) -> Dict[str, int]:
        """Counters: ``submitted``, ``dropped`` (queue full or pool closed), ``duplicates``
        (a task for that key was already queued or running), ``completed``, ``failed``; and
        ``queued``, ``running`` right now."""
        with self._cond:
            out = dict(self._counts)
            out["queued"] = len(self._queue)
            out["running"] = self._running
            return out

    def __enter__(self) -> WarmupPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<WarmupPool {state} workers={self._workers} queue_size={self._queue_size}>"


class BoundedMap:
    """A thread-safe map that keeps only its ``capacity`` most recently written keys.

    ``InMemCache`` keeps in one what it needs to recompute a key later (a memoized call's
    arguments, or a manual call's function name and inputs): prefetching a predicted key
    that was evicted needs them, and the store only has the key's bytes by then.
    """

    def __init__(self, capacity: int) -> None:
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
            raise ValueError(f"capacity must be an int >= 1, not {capacity!r}")
        self._capacity = capacity
        self._data: collections.OrderedDict[Hashable, Any] = collections.OrderedDict()
        self._lock = threading.Lock()

    @property
    def capacity(self) -> int:
        """The most keys kept."""
        return self._capacity

    def put(self, key: Hashable, value: Any) -> None:
        """Set ``key`` (now the most recent), dropping the oldest key beyond capacity."""
        with self._lock:
            data = self._data
            data[key] = value
            data.move_to_end(key)
            if len(data) > self._capacity:
                data.popitem(last=False)

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The value for ``key`` (recency unchanged), or ``default``."""
        with self._lock:
            return self._data.get(key, default)

    def pop(self, key: Hashable, default: Any = None) -> Any:
        """Remove ``key`` and return its value, or ``default``."""
        with self._lock:
            return self._data.pop(key, default)

    def clear(self) -> None:
        """Remove every key."""
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._data
