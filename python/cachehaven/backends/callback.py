"""``CallbackCache``: stores nothing; fires callbacks on every set and asks feeds on every get."""

from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Iterable, Optional

from ..base import Call
from ..entry import MISSING, CacheEntry
from .null import NoCache

__all__ = ["CallbackCache"]

logger = logging.getLogger("cachehaven")


class CallbackCache(NoCache):
    """An event-driven cache that keeps no data.

    * ``callbacks``: each is called as ``callback(key: int, value: dict)`` on every set, in
      order; ``key`` is the entry's key and ``value`` its dict form (``func``, ``inputs``,
      ``output``, ``metadata``, and ``expected`` when set).
    * ``feeds``: on every get each is called as ``feed(func, **inputs)`` in order (``func``
      is the function object when memoizing, its name for manual gets); the first that
      returns something other than ``...`` provides the value, else it is a miss.

    A callback or feed that raises is logged (logger ``"cachehaven"``) and skipped; the
    others still run.
    """

    def __init__(
        self,
        callbacks: Optional[Iterable[Callable[[int, Dict[str, Any]], Any]]] = None,
        feeds: Optional[Iterable[Callable[..., Any]]] = None,
        exclude: Optional[Iterable[str]] = None,
        *,
        key_scheme: str = "blake3",
    ) -> None:
        super().__init__(exclude, key_scheme=key_scheme)
        self.callbacks = list(callbacks or [])
        self.feeds = list(feeds or [])
        for what, fns in (("callbacks", self.callbacks), ("feeds", self.feeds)):
            for fn in fns:
                if not callable(fn):
                    raise TypeError(f"{what} must be callables; got {type(fn).__name__}")

    def _fetch_value(self, call: Call) -> Any:
        for feed in self.feeds:
            try:
                result = feed(call.target, **call.inputs)
            except Exception:
                logger.exception("cachehaven: feed %r failed for %s; skipped", feed, call.func)
                continue
            if result is not ...:
                return result
        return MISSING

    def _recheck(self, call: Call) -> Any:
        return MISSING  # feeds were just asked; asking again would call them twice

    def _fetch(self, call: Call) -> Optional[CacheEntry]:
        value = self._fetch_value(call)
        return None if value is MISSING else call.entry(value)

    def _put(self, call: Call, entry: CacheEntry, ttl: Any = None) -> None:
        key, value = call.digest, entry.to_dict()
        for cb in self.callbacks:
            try:
                cb(key, value)
            except Exception:
                logger.exception("cachehaven: callback %r failed for key %s; skipped", cb, key)

    def __repr__(self) -> str:
        return f"CallbackCache(callbacks={len(self.callbacks)}, feeds={len(self.feeds)})"
