"""Shared fixtures for the cachehaven test suite.

``cache`` runs a test against every backend that actually stores data. To cover a new
backend, add a factory to ``STORING_BACKENDS`` (a zero-argument callable returning a fresh,
empty cache; a backend that needs a directory or a server should create its own temporary
one).
"""

from __future__ import annotations

from typing import Callable, Iterator, List

import pytest

import cachehaven
from cachehaven import BaseCache, InMemCache
from servers import mysql_server, mysql_url, postgres_server, postgres_url, redis_server, redis_url  # noqa: F401

#: Factories of every backend that stores what it is given.
STORING_BACKENDS: List[Callable[[], BaseCache]] = [
    InMemCache,
]


def _backend_id(factory: Callable[[], BaseCache]) -> str:
    return getattr(factory, "__name__", repr(factory))


@pytest.fixture(params=STORING_BACKENDS, ids=_backend_id)
def cache(request: pytest.FixtureRequest) -> Iterator[BaseCache]:
    """A fresh, empty cache of each storing backend."""
    c = request.param()
    assert len(c) == 0
    yield c
    c.close()


@pytest.fixture(autouse=True)
def _caching_enabled() -> Iterator[None]:
    """Every test starts with caching on, and a test that turns it off cannot leak that."""
    cachehaven.set_enabled(True)
    yield
    cachehaven.set_enabled(True)


class FakeClock:
    """A settable clock in seconds for stores and caches that take ``clock=``."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
