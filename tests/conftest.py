"""Shared fixtures for the cachehaven test suite.

``cache`` runs a test against every backend that actually stores data. To cover a new
backend, add a factory to ``STORING_BACKENDS``: a callable taking the pytest request and
returning a fresh, empty cache (it may ask for ``tmp_path`` or a server fixture through
``request.getfixturevalue``).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator

import pytest

import cachehaven
from cachehaven import BaseCache, InMemCache
from servers import (  # noqa: F401
    mysql_server,
    mysql_url,
    postgres_server,
    postgres_url,
    redis_server,
    redis_url,
    require_mysqlclient,
)


def _json(request: pytest.FixtureRequest) -> BaseCache:
    return cachehaven.JsonCache(request.getfixturevalue("tmp_path") / "json")


def _disk(request: pytest.FixtureRequest) -> BaseCache:
    return cachehaven.DiskCache(request.getfixturevalue("tmp_path") / "disk")


def _sqlite(request: pytest.FixtureRequest) -> BaseCache:
    return cachehaven.DatabaseCache(
        provider="sqlite", database=str(request.getfixturevalue("tmp_path") / "c.db")
    )


def _postgresql(request: pytest.FixtureRequest) -> BaseCache:
    return cachehaven.DatabaseCache(url=request.getfixturevalue("postgres_url"))


def _mysql(request: pytest.FixtureRequest) -> BaseCache:
    return cachehaven.DatabaseCache(url=request.getfixturevalue("mysql_url"))


def _mysqlclient(request: pytest.FixtureRequest) -> BaseCache:
    """MariaDB through mysqlclient (the C driver DatabaseCache prefers when it is installed)."""
    require_mysqlclient()
    url = request.getfixturevalue("mysql_url").replace("mysql+pymysql://", "mysql://", 1)
    cache = cachehaven.DatabaseCache(url=url)
    assert cache.engine.dialect.driver == "mysqldb"
    return cache


def _redis(request: pytest.FixtureRequest) -> BaseCache:
    return cachehaven.RedisCache(request.getfixturevalue("redis_url"), namespace="suite")


#: Every backend that stores what it is given: name -> factory(request) of a fresh, empty cache.
#: The shared behaviour suite (every test taking the ``cache`` fixture) runs on each of them.
STORING_BACKENDS: Dict[str, Callable[[pytest.FixtureRequest], BaseCache]] = {
    "InMemCache": lambda request: InMemCache(),
    "JsonCache": _json,
    "DiskCache": _disk,
    "DatabaseCache-sqlite": _sqlite,
    "DatabaseCache-postgresql": _postgresql,
    "DatabaseCache-mysql": _mysql,
    "DatabaseCache-mysqlclient": _mysqlclient,
    "RedisCache": _redis,
}


@pytest.fixture(params=list(STORING_BACKENDS))
def cache(request: pytest.FixtureRequest) -> Iterator[BaseCache]:
    """A fresh, empty cache of each storing backend."""
    c = STORING_BACKENDS[request.param](request)
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


@pytest.fixture
def wal_views(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Room for new WAL-index views (DiskCache's near-cache stamp) in this process, whose
    allowance earlier tests may have used up; gives the ``_walindex`` module."""
    from cachehaven.backends import _walindex

    monkeypatch.setattr(_walindex, "MAX_VIEWS", len(_walindex._KEPT) + 8)
    return _walindex
