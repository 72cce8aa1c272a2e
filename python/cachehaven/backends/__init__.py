"""Cache backends: where entries live. Each one implements the storage protocol of
:mod:`cachehaven.base` and inherits the whole public API from ``BaseCache``."""

from .callback import CallbackCache
from .memory import InMemCache
from .null import NoCache

__all__ = ["CallbackCache", "InMemCache", "NoCache"]
