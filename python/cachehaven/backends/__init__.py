"""Cache backends: where entries live. Each one implements the storage protocol of
:mod:`cachehaven.base` and inherits the whole public API from ``BaseCache``.

The persistent and shared backends import their driver only when first used, so
``import cachehaven`` needs none of them; a missing driver raises an ``ImportError`` that
names the extra to install (``pip install "cachehaven[disk]"``, ``[sql]``, ``[postgres]``,
``[mysql]``, ``[redis]`` or ``[all]``).
"""

from __future__ import annotations

import importlib
from typing import Any

from .callback import CallbackCache
from .memory import InMemCache
from .null import NoCache

__all__ = ["CallbackCache", "DatabaseCache", "DiskCache", "InMemCache", "JsonCache", "NoCache", "RedisCache"]

#: backend name -> (module, the extra that installs its driver)
_LAZY = {
    "DiskCache": ("disk", "disk"),
    "JsonCache": ("json", None),
    "DatabaseCache": ("database", "sql"),
    "RedisCache": ("redis", "redis"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, extra = _LAZY[name]
    try:
        mod = importlib.import_module(f".{module}", __name__)
    except ImportError as e:
        if extra is None or e.name is None or e.name.startswith("cachehaven"):
            raise
        raise ImportError(
            f'{name} needs the {e.name!r} package: pip install "cachehaven[{extra}]"', name=e.name
        ) from e
    value = getattr(mod, name)
    globals()[name] = value
    return value
