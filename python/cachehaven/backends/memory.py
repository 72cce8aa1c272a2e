"""``InMemCache``: the in-memory backend, on the Rust store (``cachehaven._core.Store``).

Each entry is stored as one tuple ``(value, func, inputs, output, expected, metadata)``
under its canonical key bytes; item 0 is what a hit returns, so the native memoize wrapper
can answer a hit without running Python. Entries are grouped by function identity so that
``cache_info().currsize`` is O(1) and ``cache_clear()`` removes one function's entries.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, Iterable, Iterator, Optional

from .. import _core
from ..base import BaseCache, Call
from ..entry import MISSING, CacheEntry

__all__ = ["InMemCache"]


def _entry(record: tuple) -> CacheEntry:
    _, func, inputs, output, expected, metadata = record
    return CacheEntry(func, inputs, output, expected, metadata)


class InMemCache(BaseCache):
    """The fastest backend: entries live in this process's memory, in a Rust store.

    ``InMemCache(exclude=None, *, max_entries=None, max_bytes=None, ttl=None,
    policy="adaptive", weigher=None, clock=None, key_scheme="blake3")``

    * ``max_entries``: at most this many entries (``None``: unbounded; ``0``: store nothing);
      beyond it the eviction policy removes the entry least likely to be used again.
    * ``max_bytes``: bound on the total weight of entries; a value is weighed by
      ``weigher(value)`` or by a deep size estimate. A single value heavier than the whole
      budget is not stored (its call still returns normally).
    * ``ttl``: default time-to-live (seconds or timedelta); ``memoize(ttl=...)`` and
      ``set(..., ttl=...)`` override it per entry. Expiry uses a monotonic clock (or
      ``clock()``, a zero-argument callable returning seconds, for tests).
    * ``policy``: ``"adaptive"`` (recency + frequency, W-TinyLFU; the default) or ``"lru"``.

    Thread-safe. Memoized hits of plain functions run entirely in Rust.
    """

    def __init__(
        self,
        exclude: Optional[Iterable[str]] = None,
        *,
        max_entries: Optional[int] = None,
        max_bytes: Optional[int] = None,
        ttl: Any = None,
        policy: str = "adaptive",
        weigher: Optional[Callable[[Any], int]] = None,
        clock: Optional[Callable[[], float]] = None,
        key_scheme: str = "blake3",
    ) -> None:
        super().__init__(exclude, key_scheme=key_scheme)
        if weigher is not None and not callable(weigher):
            raise TypeError("weigher must be callable: weigher(value) -> int bytes")
        store_weigher = None if weigher is None else (lambda _key, value: weigher(value))
        self._store = _core.Store(
            max_entries=max_entries,
            max_bytes=max_bytes,
            ttl=ttl,
            policy=policy,
            weigher=store_weigher,
            clock=clock,
        )
        self._groups: Dict[str, int] = {}
        self._groups_lock = threading.Lock()

    @property
    def maxsize(self) -> Optional[int]:  # type: ignore[override]
        """``max_entries`` (what ``cache_info().maxsize`` reports)."""
        return self._store.max_entries

    @property
    def store(self) -> _core.Store:
        """The underlying Rust store."""
        return self._store

    def _group(self, func: str) -> int:
        group = self._groups.get(func)
        if group is None:
            with self._groups_lock:
                group = self._groups.setdefault(func, len(self._groups) + 1)
        return group

    # ------------------------------------------------------------------ storage protocol
    def _fetch(self, call: Call) -> Optional[CacheEntry]:
        record = self._store._get_raw(call.key)
        return None if record is None else _entry(record)

    def _fetch_value(self, call: Call) -> Any:
        record = self._store._get_raw(call.key)
        return MISSING if record is None else record[0]

    def _recheck(self, call: Call) -> Any:
        record = self._store._peek_raw(call.key)
        return MISSING if record is None else record[0]

    def _put(self, call: Call, entry: CacheEntry, ttl: Any = None) -> None:
        record = (entry.value, entry.func, entry.inputs, entry.output, entry.expected, entry.metadata)
        self._store._set_raw(call.key, record, self._group(entry.func), ttl, entry.value)

    def _put_result(self, call: Call, result: Any, metadata: Dict[str, Any], ttl: Any = None) -> None:
        record = (result, call.func, call.inputs, result, ..., metadata)
        self._store._set_raw(call.key, record, self._group(call.func), ttl, result)

    def _delete(self, call: Call) -> bool:
        return self._store._remove_raw(call.key)

    def _entries(self) -> Iterator[CacheEntry]:
        for record in self._store._records():
            yield _entry(record)

    def _wipe(self) -> None:
        self._store.clear()

    def _size(self) -> int:
        return len(self._store)

    def _func_size(self, func: str) -> int:
        group = self._groups.get(func)
        return 0 if group is None else self._store._group_len(group)

    def _func_clear(self, func: str) -> int:
        group = self._groups.get(func)
        return 0 if group is None else self._store._remove_group(group)

    def _native_engine(self, memo: Any) -> Any:
        native = _core.Memoized(memo.func, memo.binder, self._store, memo.native_miss)
        memo.native = native
        return native

    # ------------------------------------------------------------------ extras
    def stats(self) -> Dict[str, Any]:
        """The store's counters and sizes (see ``cachehaven.Store.stats``)."""
        return self._store.stats()

    def hot_entries(self, n: int = 10) -> list[CacheEntry]:
        """Up to ``n`` entries the eviction policy values most (most valuable first)."""
        return [_entry(r) for r in self._store._hottest(n)]

    def __repr__(self) -> str:
        return f"InMemCache({self._store!r})"
