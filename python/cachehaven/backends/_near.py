"""A small, validated read cache in front of a file-based backend ("near cache").

A persistent backend's hit costs a read and a decode. When nothing changed since the last
read of an entry, both can be skipped: the backend keeps the decoded value here together
with a *stamp* of what it read (JsonCache: the file's identity; DiskCache: SQLite's
WAL-index header, or its ``data_version``), and serves it only while a fresh, cheap check
(one ``stat``, a read of shared memory, or one ``PRAGMA``) still yields the same stamp. Any
change, by this process or another, changes the stamp, so a near-cache hit is exactly what a
full read would have returned.

Values are kept *frozen*: immutable scalars as they are; plain data (dicts, lists, tuples,
sets of builtin scalars, as JSON records decode to) as a private copy that each hit copies
again with ``_core.fresh_copy`` (new dicts, lists and sets, shared immutable parts);
anything else as a private pickle that each hit unpickles. So a caller mutating what it got
can never alter what the next caller gets (the same guarantee as a full read). These
pickles are made and read by this process only, from values the backend itself decoded;
they are never stored or used as keys.
"""

from __future__ import annotations

import pickle
from typing import Any, Dict, Hashable, Optional, Tuple

from .. import _core
from ..entry import MISSING
from ..errors import ConfigError

__all__ = ["NearCache", "DEFAULT_NEAR_ENTRIES"]

#: Default capacity (entries) of a backend's near cache.
DEFAULT_NEAR_ENTRIES = 1024
#: Values whose private pickle (or estimated copy) is larger than this are not kept (bytes).
MAX_FROZEN_BYTES = 64 * 1024

# how a kept value is returned
_AS_IS, _COPIED, _PICKLED = 0, 1, 2

_SCALARS = frozenset({type(None), bool, int, float, complex, str, bytes, type(...)})


def check_capacity(near_cache: Any) -> int:
    """Validate a ``near_cache=`` argument (entries; 0 disables)."""
    if isinstance(near_cache, bool) or not isinstance(near_cache, int) or near_cache < 0:
        raise ConfigError(f"near_cache must be a number of entries >= 0 (0 disables it), not {near_cache!r}")
    return near_cache


class NearCache:
    """At most ``capacity`` frozen values, each with the stamp it was read under, its
    canonical key bytes (so a digest collision is never served; ``None`` when the name is
    itself the exact canonical key, a ``Key``) and its expiry time.
    Oldest-inserted entries leave first. Thread-safe under the GIL: every operation is a
    single dict operation, and a racing reader sees an old or a new item, both complete."""

    __slots__ = ("_capacity", "_items")

    def __init__(self, capacity: int = DEFAULT_NEAR_ENTRIES) -> None:
        self._capacity = capacity
        self._items: Dict[Hashable, Tuple[Any, Optional[bytes], Optional[float], Any, int]] = {}

    def __len__(self) -> int:
        return len(self._items)

    def get(self, name: Hashable, stamp: Any, key: Optional[bytes], now: float) -> Any:
        """A fresh copy of the value kept for ``name`` if it was read under ``stamp`` for the
        call whose key bytes are ``key`` and has not expired at ``now``; else ``MISSING``."""
        item = self._items.get(name)
        if item is None:
            return MISSING
        kept_stamp, kept_key, expires_at, payload, how = item
        if kept_stamp != stamp or kept_key != key:
            return MISSING
        if expires_at is not None and now >= expires_at:
            self._items.pop(name, None)
            return MISSING
        if how == _COPIED:
            return _core.fresh_copy(payload)
        return pickle.loads(payload) if how == _PICKLED else payload

    def put(
        self, name: Hashable, stamp: Any, key: Optional[bytes], expires_at: Optional[float], value: Any
    ) -> None:
        """Keep ``value`` (frozen) for ``name``; values that cannot be frozen are skipped."""
        if self._capacity <= 0:
            return
        if type(value) in _SCALARS:
            payload, how = value, _AS_IS
        else:
            try:
                payload, how = _core.fresh_copy(value, MAX_FROZEN_BYTES), _COPIED
            except (TypeError, ValueError):  # not plain data, shared parts, or too big
                try:
                    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
                except Exception:  # not picklable: serve it by full reads only
                    return
                if len(payload) > MAX_FROZEN_BYTES:
                    return
                how = _PICKLED
        items = self._items
        if name not in items and len(items) >= self._capacity:
            try:
                del items[next(iter(items))]
            except (StopIteration, KeyError, RuntimeError):  # emptied or changed by another thread
                pass
        items[name] = (stamp, key, expires_at, payload, how)

    def discard(self, name: Hashable) -> None:
        """Forget ``name``."""
        self._items.pop(name, None)

    def clear(self) -> None:
        """Forget everything."""
        self._items.clear()
