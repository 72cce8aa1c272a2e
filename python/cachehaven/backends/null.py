"""``NoCache``: always a miss, stores nothing. For tests and for debugging caching."""

from __future__ import annotations

from typing import Any, Iterator, Optional

from ..base import BaseCache, Call
from ..entry import MISSING, CacheEntry

__all__ = ["NoCache"]


class NoCache(BaseCache):
    """A cache that never stores anything: every lookup misses and every call recomputes.

    Use it to switch caching off for a component without changing its code.
    """

    maxsize = 0

    def _fetch(self, call: Call) -> Optional[CacheEntry]:
        return None

    def _fetch_value(self, call: Call) -> Any:
        return MISSING

    def _put(self, call: Call, entry: CacheEntry, ttl: Any = None) -> None:
        return None

    def _delete(self, call: Call) -> bool:
        return False

    def _entries(self) -> Iterator[CacheEntry]:
        return iter(())

    def _wipe(self) -> None:
        return None

    def _size(self) -> int:
        return 0

    def _func_size(self, func: str) -> int:
        return 0
