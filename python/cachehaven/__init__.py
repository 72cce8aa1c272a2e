"""cachehaven: caching and memoization for Python, with a Rust core.

One decorator, ``@cache.memoize``, for sync, async, generator and async-generator functions
and methods; keys built from arguments bound to parameter names, deterministic across
processes; backends with one API.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Iterator

from . import _core
from ._core import POLICIES, Key, Store
from .backends import CallbackCache, InMemCache, NoCache
from .backends.memory import CacheEvent
from .base import BaseCache, CacheInfo
from .entry import MISSING, CacheEntry
from .errors import (
    BackendError,
    CachehavenError,
    ConfigError,
    KeyDepthError,
    KeyTypeError,
    SerializationError,
    SnapshotCorruptError,
    SnapshotError,
    SnapshotForeignError,
    SnapshotVersionError,
)
from .keys import KEY_SCHEMES, ahvn_key, call_key, identity

__version__: str = _core.__version__

__all__ = [
    "KEY_SCHEMES",
    "BackendError",
    "DatabaseCache",
    "DiskCache",
    "JsonCache",
    "RedisCache",
    "SerializationError",
    "SnapshotCorruptError",
    "SnapshotError",
    "SnapshotForeignError",
    "SnapshotVersionError",
    "MISSING",
    "POLICIES",
    "BaseCache",
    "CacheEntry",
    "CacheEvent",
    "CacheInfo",
    "CachehavenError",
    "CallbackCache",
    "ConfigError",
    "InMemCache",
    "Key",
    "KeyDepthError",
    "KeyTypeError",
    "NoCache",
    "Store",
    "__version__",
    "ahvn_key",
    "call_key",
    "disabled",
    "identity",
    "is_enabled",
    "set_enabled",
]


def __getattr__(name: str) -> Any:
    """The persistent backends load on first use (their drivers are optional extras)."""
    from . import backends

    if name in backends._LAZY:
        value = getattr(backends, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:
    from .backends.database import DatabaseCache
    from .backends.disk import DiskCache
    from .backends.json import JsonCache
    from .backends.redis import RedisCache


def set_enabled(enabled: bool) -> bool:
    """Turn caching on or off for every memoized function in the process (e.g. in tests).

    While off, memoized functions call straight through: no lookups, no stores. Returns the
    previous setting.
    """
    return _core.set_enabled(bool(enabled))


def is_enabled() -> bool:
    """Whether caching is on (see :func:`set_enabled`)."""
    return _core.is_enabled()


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """A context in which every memoized function calls straight through."""
    previous = _core.set_enabled(False)
    try:
        yield
    finally:
        _core.set_enabled(previous)
