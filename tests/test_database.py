"""DatabaseCache: SQLite (in memory and in a file), PostgreSQL and MySQL/MariaDB.

The server-backed cases use the throwaway servers of ``tests/servers.py`` (the
``postgres_url``/``mysql_url`` fixtures, which conftest.py provides); they skip when a server
cannot be provided (and fail instead with ``CACHEHAVEN_REQUIRE_SERVERS=1``).
"""

from __future__ import annotations

import datetime
import decimal
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
import traceback
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
import sqlalchemy as sa

from cachehaven import CacheEntry
from cachehaven.backends import database as database_module
from cachehaven.backends.database import DatabaseCache
from cachehaven.errors import BackendError, ConfigError, SerializationError
from servers import require_mysqlclient

ALL = ["sqlite-memory", "sqlite-file", "postgresql", "mysql", "mysqlclient"]
SHARED = ["sqlite-file", "postgresql", "mysql", "mysqlclient"]  # databases two cache objects can open
SERVERS = ["postgresql", "mysql", "mysqlclient"]
AHVN_DATA = Path(__file__).parent / "data" / "ahvn"


class Target:
    """One database to test against; ``make()`` opens caches on it (closed after the test)."""

    def __init__(self, kind: str, options: Dict[str, Any], server: Any = None) -> None:
        self.kind = kind
        self.options = options
        self.server = server
        self.made: List[DatabaseCache] = []

    def make(self, **kwargs: Any) -> DatabaseCache:
        cache = DatabaseCache(**{**self.options, **kwargs})
        self.made.append(cache)
        return cache

    def close_all(self) -> None:
        for cache in self.made:
            cache.close()


def _target(request: pytest.FixtureRequest, kind: str, tmp_path: Path) -> Target:
    if kind == "sqlite-memory":
        return Target(kind, {"provider": "sqlite"})
    if kind == "sqlite-file":
        return Target(kind, {"provider": "sqlite", "database": str(tmp_path / "cache.db")})
    if kind == "postgresql":
        url = request.getfixturevalue("postgres_url")
        return Target(kind, {"url": url}, request.getfixturevalue("postgres_server"))
    url = request.getfixturevalue("mysql_url")  # mysql+pymysql://
    if kind == "mysqlclient":  # MariaDB again, through the C driver: the default when installed
        require_mysqlclient()
        url = url.replace("mysql+pymysql://", "mysql://", 1)
    return Target("mysql", {"url": url}, request.getfixturevalue("mysql_server"))


@pytest.fixture(params=ALL)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    t = _target(request, request.param, tmp_path)
    yield t
    t.close_all()


@pytest.fixture(params=SHARED)
def shared(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    t = _target(request, request.param, tmp_path)
    yield t
    t.close_all()


@pytest.fixture(params=SERVERS)
def server_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    t = _target(request, request.param, tmp_path)
    yield t
    t.close_all()


@pytest.fixture
def cache(target: Target) -> DatabaseCache:
    return target.make()


class Clock:
    """A settable ``time.time``."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(time, "time", c)
    return c


def sql(cache: DatabaseCache, statement: str, **params: Any) -> List[Tuple[Any, ...]]:
    """Run SQL directly on the cache's database (to inspect or tamper with rows)."""
    with cache.engine.connect() as conn:
        result = conn.execute(sa.text(statement), params)
        rows = [tuple(r) for r in result] if result.returns_rows else []
        conn.commit()
    return rows


def row_key(cache: DatabaseCache, func: str, **inputs: Any) -> str:
    return f"{cache._call(func, inputs, {}).digest:032x}"


class Statements:
    """Records the SQL statements sent through the cache's engine."""

    def __init__(self, cache: DatabaseCache) -> None:
        self.engine = cache.engine
        self.seen: List[Tuple[str, bool]] = []

    def __enter__(self) -> Statements:
        sa.event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc: Any) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._record)

    def _record(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        self.seen.append((statement, many))

    def touching(self, verb: str, table: str = "cachehaven") -> List[Tuple[str, bool]]:
        return [
            (s, many) for s, many in self.seen if s.lstrip().upper().startswith(verb) and table in s.lower()
        ]


# ---------------------------------------------------------------- the basic API


def test_get_set_remove_len_iterate_clear(cache: DatabaseCache):
    assert len(cache) == 0
    assert cache.get("f", x=1) is ...
    cache.set("f", output=10, x=1)
    cache.set("f", output=20, x=2)
    cache.set("g", output="g", expected="G", metadata={"by": "me"}, y=1)
    assert cache.get("f", x=1) == 10
    assert cache.get("f", {"x": 2}) == 20
    assert cache.get("g", y=1) == "G"  # the value is expected when set
    assert cache.exists("f", x=1) and not cache.exists("f", x=3)
    assert len(cache) == 3
    entries = sorted(cache, key=lambda e: (e.func, sorted(e.inputs.items())))
    assert [(e.func, e.inputs, e.output) for e in entries] == [
        ("f", {"x": 1}, 10),
        ("f", {"x": 2}, 20),
        ("g", {"y": 1}, "g"),
    ]
    assert entries[2].expected == "G" and entries[2].metadata == {"by": "me"}
    cache.set("f", output=11, x=1)  # overwrite
    assert cache.get("f", x=1) == 11 and len(cache) == 3
    assert cache.remove("f", x=1) is True
    assert cache.remove("f", x=1) is False
    assert cache.get("f", x=1) is ...
    assert len(cache) == 2
    cache.clear()
    assert len(cache) == 0 and list(cache) == []
    assert cache.get("f", x=2) is ...


def test_memoize_hits_and_per_function_clear(cache: DatabaseCache):
    calls: List[int] = []

    @cache.memoize
    def square(x: int) -> int:
        calls.append(x)
        return x * x

    @cache.memoize
    def cube(x: int) -> int:
        return x**3

    assert [square(i) for i in (1, 2, 1, 2)] == [1, 4, 1, 4]
    assert calls == [1, 2]
    assert cube(2) == 8
    assert square.cache_info().currsize == 2
    square.cache_clear()
    assert square.cache_info().currsize == 0
    assert cube.cache_info().currsize == 1  # another function's rows are untouched
    assert square(1) == 1 and calls == [1, 2, 1]


def test_long_function_identities(cache: DatabaseCache):
    long_a, long_b = "m." + "a" * 300, "m." + "a" * 299 + "b"  # same 255-character prefix

    @cache.memoize(name=long_a)
    def a(x: int) -> int:
        return x

    @cache.memoize(name=long_b)
    def b(x: int) -> int:
        return -x

    assert (a(1), a(2), b(1)) == (1, 2, -1)
    assert a.cache_info().currsize == 2 and b.cache_info().currsize == 1
    a.cache_clear()
    assert a.cache_info().currsize == 0 and b.cache_info().currsize == 1
    assert cache.retrieve(long_b, x=1).func == long_b


def test_iteration_spans_pages(cache: DatabaseCache):
    n = database_module._PAGE + 7
    cache.set_many("p", [({"i": i}, i) for i in range(n)])
    assert sorted(e.inputs["i"] for e in cache) == list(range(n))
    assert len(cache) == n


ODD_FLOATS = [0.1, -0.0, 1e308, float("inf"), float("-inf")]

VALUES: List[Any] = [
    None,
    True,
    0,
    -(2**100),
    2**64 + 1,
    3.5,
    "",
    "héllo \u4e16\u754c \U0001f600",
    b"\x00\xffbytes",
    bytearray(b"ba"),
    (1, (2, 3), [4, (5,)]),
    [1, [2, [3]]],
    {"a": {"b": [1, 2]}, "c": None},
    {1: "int key", (1, 2): "tuple key", None: "none"},
    {3, 1, 2},
    frozenset({"x", "y"}),
    datetime.datetime(2024, 5, 6, 7, 8, 9, 123456),
    datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
    datetime.date(2024, 1, 2),
    datetime.timedelta(days=1, microseconds=5),
    decimal.Decimal("1.10"),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    1 + 2j,
    [1, ..., {"e": ...}],
]


def test_values_round_trip_exactly(target: Target):
    cache = target.make()
    for i, value in enumerate(VALUES):
        cache.set("v", output=value, i=i)
    for i, value in enumerate(VALUES):
        got = cache.get("v", i=i)
        assert type(got) is type(value), (i, value, got)
        assert got == value, (i, value, got)
    for i, x in enumerate(ODD_FLOATS):
        cache.set("float", output=x, i=i)
        got = cache.get("float", i=i)
        assert type(got) is float and math.copysign(1, got) == math.copysign(1, x) and got == x
    cache.set("float", output=float("nan"), i=99)
    assert math.isnan(cache.get("float", i=99))
    # inputs, expected and metadata come back exactly too
    inputs = {"t": (1, 2), "s": {1, 2}, "d": {"k": b"v"}}
    cache.set("full", output=[1], expected=(2,), metadata={"when": datetime.date(2020, 1, 1)}, **inputs)
    entry = cache.retrieve("full", inputs)
    assert entry == CacheEntry("full", inputs, [1], (2,), {"when": datetime.date(2020, 1, 1)})
    assert type(entry.inputs["t"]) is tuple and type(entry.expected) is tuple
    # a reader opening the database afresh sees the same values
    if target.kind != "sqlite-memory":
        other = target.make()
        assert other.retrieve("full", inputs) == entry
        assert other.get("v", i=13) == VALUES[13]


def test_unserializable_value_raises_before_writing(cache: DatabaseCache):
    with pytest.raises(SerializationError, match=r"output"):
        cache.set("f", output=object(), x=1)
    with pytest.raises(SerializationError):
        cache.set_many("f", [({"x": 2}, 2), ({"x": 3}, object())])
    assert len(cache) == 0  # neither the single write nor any of the batch happened


def test_pickle_serializer_and_wrong_secret(tmp_path: Path):
    path = str(tmp_path / "p.db")

    class Point:  # a local class: not JSON, and not importable by pickle either
        pass

    with DatabaseCache("sqlite", path, serializer="pickle", secret="s1") as c1:
        value = datetime.timezone.utc, {1, 2}, Path("/x")
        c1.set("f", output=value, x=1)
        assert c1.get("f", x=1) == value
        with pytest.raises(SerializationError):
            c1.set("f", output=Point(), x=2)
    with (
        DatabaseCache("sqlite", path, serializer="pickle", secret="another") as c2,
        pytest.warns(RuntimeWarning, match="unreadable record"),
    ):
        assert c2.get("f", x=1) is ...  # signed with another secret: refused, never unpickled


# ---------------------------------------------------------------- sharing a database


def test_persistence_across_cache_objects(shared: Target):
    first = shared.make()
    first.set("f", output={"v": (1, 2)}, x=1)

    @first.memoize(name="persist.g")
    def g(x: int) -> int:
        return x + 1

    assert g(1) == 2
    first.close()
    second = shared.make()
    assert second.get("f", x=1) == {"v": (1, 2)}
    assert len(second) == 2

    @second.memoize(name="persist.g")
    def g2(x: int) -> int:
        raise AssertionError("must be a hit")

    assert g2(1) == 2
    second.set("f", output="new", x=1)
    third = shared.make()
    assert third.get("f", x=1) == "new"


def test_tables_are_isolated(shared: Target):
    a = shared.make(table="cache_a")
    b = shared.make(table="cache_b")
    a.set("f", output="a", x=1)
    b.set("f", output="b", x=1)
    b.set("f", output="b2", x=2)
    assert a.get("f", x=1) == "a" and b.get("f", x=1) == "b"
    assert a.get("f", x=2) is ...
    assert len(a) == 1 and len(b) == 2
    assert [e.output for e in a] == ["a"]
    a.clear()
    assert len(a) == 0 and len(b) == 2 and b.get("f", x=1) == "b"
    assert a.remove("f", x=2) is False and b.get("f", x=2) == "b2"


def test_same_table_name_on_the_default_table(shared: Target):
    default = shared.make()
    other = shared.make(table="other")
    default.set("f", output=1, x=1)
    assert other.get("f", x=1) is ...
    assert shared.make(table="cachehaven").get("f", x=1) == 1


# ---------------------------------------------------------------- expiry


def test_ttl_expiry(target: Target, clock: Clock):
    cache = target.make()
    cache.set("f", output=1, x=1, ttl=10)
    cache.set("f", output=2, x=2, ttl=datetime.timedelta(seconds=30))
    cache.set("f", output=3, x=3)  # no expiry
    clock.now += 9
    assert [cache.get("f", x=i) for i in (1, 2, 3)] == [1, 2, 3]
    clock.now += 2  # 11 s: the first has expired
    assert cache.get("f", x=1) is ...
    assert not cache.exists("f", x=1)
    assert len(cache) == 2
    assert sorted(e.output for e in cache) == [2, 3]
    assert cache.get_many("f", [{"x": 1}, {"x": 2}]) == [..., 2]
    assert cache.remove("f", x=1) is False  # an expired entry was not there
    clock.now += 20
    assert cache.get("f", x=2) is ... and cache.get("f", x=3) == 3
    # expired rows are deleted from the table by an occasional cleanup
    clock.now += database_module._CLEANUP_EVERY + 1
    cache.set("f", output=4, x=4)
    assert sql(cache, "SELECT COUNT(*) FROM cachehaven") == [(2,)]
    cache.set_many("f", [({"x": 5}, 5)], ttl=1)
    clock.now += database_module._CLEANUP_EVERY + 1
    cache.set_many("f", [({"x": 6}, 6)])  # batches clean up too
    assert sql(cache, "SELECT COUNT(*) FROM cachehaven") == [(3,)]


def test_default_ttl_and_memoize_ttl(target: Target, clock: Clock):
    cache = target.make(ttl=5)
    calls: List[int] = []

    @cache.memoize
    def f(x: int) -> int:
        calls.append(x)
        return x

    @cache.memoize(ttl=60)
    def g(x: int) -> int:
        calls.append(-x)
        return x

    assert (f(1), g(1), f(1), g(1)) == (1, 1, 1, 1)
    assert calls == [1, -1]
    clock.now += 6  # past the cache's default, within g's own ttl
    assert (f(1), g(1)) == (1, 1)
    assert calls == [1, -1, 1]
    cache.set("s", output=1, x=1)  # the default applies to manual sets too
    clock.now += 6
    assert cache.get("s", x=1) is ...


def test_bad_ttl_is_a_config_error(cache: DatabaseCache):
    with pytest.raises(ConfigError, match="ttl"):
        cache.set("f", output=1, x=1, ttl=-1)
    with pytest.raises(ConfigError, match="ttl"):
        DatabaseCache(ttl="soon")


# ---------------------------------------------------------------- batches


def test_get_many_and_set_many_are_single_statements(cache: DatabaseCache, monkeypatch: pytest.MonkeyPatch):
    items = [({"x": i}, i * i) for i in range(50)]
    raw_ops: List[str] = []
    real_raw = cache._raw
    monkeypatch.setattr(cache, "_raw", lambda op, *a: raw_ops.append(op) or real_raw(op, *a))
    with Statements(cache) as st:
        cache.set_many("sq", items)
    inserts = st.touching("INSERT")
    if cache.provider == "postgresql":  # one unnest() upsert on the raw connection
        assert inserts == [] and raw_ops == ["set_many"], (st.seen, raw_ops)
    else:
        assert len(inserts) == 1, st.seen
        assert inserts[0][1] is True  # one executemany
    assert cache.get_many("sq", [{"x": 7}]) == [49]
    wanted = [{"x": i} for i in (3, 99, 0, 3, 49)]
    raw_ops.clear()
    with Statements(cache) as st:
        values = cache.get_many("sq", wanted)
    assert values == [9, ..., 0, 9, 49 * 49]  # in order, duplicates and misses included
    if cache.provider == "postgresql":  # one SELECT joining unnest(keys), on the raw connection
        assert st.touching("SELECT") == [] and raw_ops == ["get_many"], (st.seen, raw_ops)
    else:
        assert len(st.touching("SELECT")) == 1, st.seen
    # entries too, and a later duplicate wins
    cache.set_many(
        [CacheEntry("e", {"k": 1}, "a"), CacheEntry("e", {"k": 2}, "b"), CacheEntry("e", {"k": 1}, "c")]
    )
    assert cache.get_many("e", [{"k": 1}, {"k": 2}]) == ["c", "b"]
    assert cache.get_many("e", []) == []


def test_get_many_of_a_huge_list(cache: DatabaseCache):
    n = 1234
    cache.set_many("big", [({"i": i}, i) for i in range(0, n, 2)])
    with Statements(cache) as st:
        values = cache.get_many("big", [{"i": i} for i in range(n)])
    assert values == [i if i % 2 == 0 else ... for i in range(n)]
    # PostgreSQL: one SELECT joining unnest(keys) on the raw connection, whatever the count
    chunks = 0 if cache.provider == "postgresql" else math.ceil(n / database_module._CHUNK)
    assert len(st.touching("SELECT")) == chunks


def _install_failing_trigger(cache: DatabaseCache, kind: str) -> None:
    """A trigger that rejects rows of func "boom": a database failure in the middle of a batch."""
    if kind.startswith("sqlite"):
        sql(
            cache,
            "CREATE TRIGGER boom BEFORE INSERT ON cachehaven WHEN NEW.func = 'boom' "
            "BEGIN SELECT RAISE(ABORT, 'boom'); END",
        )
    elif kind == "postgresql":
        sql(
            cache,
            "CREATE FUNCTION boom() RETURNS trigger AS $$ BEGIN IF NEW.func = 'boom' THEN "
            "RAISE EXCEPTION 'boom'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
        )
        sql(cache, "CREATE TRIGGER boom BEFORE INSERT ON cachehaven FOR EACH ROW EXECUTE FUNCTION boom()")
    else:
        sql(
            cache,
            "CREATE TRIGGER boom BEFORE INSERT ON cachehaven FOR EACH ROW BEGIN IF NEW.func = 'boom' "
            "THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'boom'; END IF; END",
        )


def test_set_many_is_one_transaction(target: Target):
    cache = target.make()
    _install_failing_trigger(cache, target.kind)
    entries = [CacheEntry("ok", {"i": i}, i) for i in range(5)]
    entries.insert(3, CacheEntry("boom", {"i": 0}, 0))
    with pytest.raises(BackendError, match="set_many"):
        cache.set_many(entries)
    assert len(cache) == 0  # the rows before the failing one were rolled back
    cache.set_many(entries[:3])
    assert len(cache) == 3


def test_batch_memoize_over_rows_its_lookup_missed(target: Target, clock: Clock):
    """batch_memoize writes the items its lookup missed (on PostgreSQL a plain INSERT): a
    row that is there after all (expired, not yet cleaned up; or written meanwhile by
    another writer) is overwritten, as a single call's store would."""
    cache = target.make()
    other = target.make() if target.kind != "sqlite-memory" else cache
    computed: List[List[int]] = []

    @cache.batch_memoize(name="b")
    def b(xs: List[int]) -> List[int]:
        computed.append(list(xs))
        if 3 in xs:  # another writer stores item 3 between the lookup and the write
            other.set("b", output=-3, xs=[3])
        return [x * 10 for x in xs]

    cache.set("b", output=-1, xs=[1], ttl=5)
    clock.now += 6  # expired: a miss, but the row is still in the table
    assert b([1, 2]) == [10, 20]
    assert b([3, 4]) == [30, 40]
    assert b([1, 2, 3, 4]) == [10, 20, 30, 40]
    assert computed == [[1, 2], [3, 4]]
    assert sorted(e.output for e in cache) == [10, 20, 30, 40]
    if target.kind == "postgresql":  # the INSERT met the rows, and the upsert stored them
        assert cache._upsert_until > time.monotonic()
        cache._upsert_until = 0.0
        assert b([5, 6]) == [50, 60]
        assert cache._upsert_until == 0.0  # new rows: the INSERT alone


@pytest.mark.parametrize("table", ["k", "r", "t", "key"])
def test_batch_statements_on_tables_named_like_their_aliases(shared: Target, table: str):
    cache = shared.make(table=table)
    computed: List[List[int]] = []

    @cache.batch_memoize(name="b")
    def b(xs: List[int]) -> List[int]:
        computed.append(list(xs))
        return [x * 10 for x in xs]

    assert b([1, 2]) == [10, 20]
    assert b([2, 3, 1]) == [20, 30, 10]
    assert computed == [[1, 2], [3]]
    assert cache.get_many("b", [{"xs": [3]}, {"xs": [4]}, {"xs": [1]}]) == [30, ..., 10]
    assert len(cache) == 3


def test_batch_memoize_failure_writes_nothing(target: Target):
    cache = target.make()
    _install_failing_trigger(cache, target.kind)

    @cache.batch_memoize(name="boom")
    def boom(xs: List[int]) -> List[int]:
        return list(xs)

    with pytest.raises(BackendError, match="set_many"):
        boom([1, 2, 3])
    assert len(cache) == 0
    if target.kind == "postgresql":
        assert cache._upsert_until == 0.0  # a failure other than a conflict is not retried


def test_postgres_new_table_layout(postgres_url: str):
    """A new table compares keys and identities bytewise, and indexes only expiring rows by
    expiry (an entry stored without a TTL touches two indexes, not three)."""
    cache = DatabaseCache(url=postgres_url, ttl=60)
    try:
        cache.set("f", output=1, x=1)
        collations = sql(
            cache,
            "SELECT column_name, collation_name FROM information_schema.columns "
            "WHERE table_name = 'cachehaven' AND column_name IN ('key', 'func') ORDER BY 1",
        )
        assert collations == [("func", "C"), ("key", "C")]
        (index,) = sql(cache, "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_cachehaven_expires_at'")
        assert index[0].endswith("WHERE (expires_at IS NOT NULL)")
    finally:
        cache.close()


def test_postgres_table_created_by_an_earlier_version(postgres_url: str):
    """A table as earlier versions created it (the database's collation for the key and the
    identity, every row in the expires_at index) works as it is."""
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        for ddl in (
            "CREATE TABLE cachehaven (key VARCHAR(32) NOT NULL, func VARCHAR(255) NOT NULL, "
            "record BYTEA NOT NULL, expires_at DOUBLE PRECISION, PRIMARY KEY (key))",
            "CREATE INDEX ix_cachehaven_func ON cachehaven (func)",
            "CREATE INDEX ix_cachehaven_expires_at ON cachehaven (expires_at)",
        ):
            conn.exec_driver_sql(ddl)
    engine.dispose()
    cache = DatabaseCache(url=postgres_url)
    try:

        @cache.batch_memoize(name="b", ttl=60)
        def b(xs: List[int]) -> List[int]:
            return [x * 10 for x in xs]

        assert b(list(range(600))) == [x * 10 for x in range(600)]
        assert b([5, 700]) == [50, 7000]
        cache.set_many("s", [({"x": 1}, 1), ({"x": 2}, 2)])
        assert cache.get_many("s", [{"x": 2}, {"x": 1}, {"x": 3}]) == [2, 1, ...]
        assert len(cache) == 603 and b.cache_info().currsize == 601
        assert sorted(e.output for e in cache if e.func == "s") == [1, 2]
        b.cache_clear()
        assert len(cache) == 2
    finally:
        cache.close()


def test_postgres_binary_arrays_read_back_exactly(postgres_url: str):
    """The batch statements' array parameters, written in PostgreSQL's binary format by
    hand, are what the server reads: every text shape, including the one-pass case."""
    cache = DatabaseCache(url=postgres_url)
    cases = [
        [f"{i:032x}" for i in range(5)],  # storage keys: 32 ASCII characters
        ["mod.f"] * 3,  # one identity
        ["a", "bc", "", "déjà", "\u65e5\u672c"],  # mixed lengths, UTF-8
        ["x" * 200, "y" * 200],  # one length, too long for the one-pass case
        ["é" * 32, "a" * 32],  # one length, not ASCII
    ]
    try:
        raw = cache.engine.raw_connection()
        try:
            pgconn = raw.dbapi_connection.pgconn
            for texts in cases:
                params = [database_module._pq_text_array(texts)]
                result = pgconn.exec_params(b"SELECT array_to_json($1::text[])::text", params, None, [1], 0)
                assert json.loads(result.get_value(0, 0)) == texts
            blobs = [b"", b"\x00\xff" * 100, bytes(range(256))]
            params = [database_module._pq_array(database_module._PQ_BYTEA_OID, blobs)]
            result = pgconn.exec_params(
                b"SELECT encode(b, 'hex') FROM unnest($1::bytea[]) AS b", params, None, [1], 0
            )
            assert [bytes.fromhex(result.get_value(i, 0).decode()) for i in range(result.ntuples)] == blobs
        finally:
            raw.close()
    finally:
        cache.close()


# ---------------------------------------------------------------- bad rows


def test_digest_collision_is_a_miss(cache: DatabaseCache):
    cache.set("f", output="the value of x=2", x=2)
    # plant x=2's row under x=1's key, as a 128-bit digest collision would
    quoted = cache.engine.dialect.identifier_preparer.quote("key")
    sql(
        cache,
        f"UPDATE cachehaven SET {quoted} = :a WHERE {quoted} = :b",
        a=row_key(cache, "f", x=1),
        b=row_key(cache, "f", x=2),
    )
    assert cache.get("f", x=1) is ...
    assert cache.get_many("f", [{"x": 1}]) == [...]
    assert cache.retrieve("f", x=1) is ...
    assert cache.remove("f", x=1) is False  # another call's row: not reported, not deleted
    assert len(cache) == 1
    calls: List[int] = []

    @cache.memoize(name="f")
    def f(x: int) -> str:
        calls.append(x)
        return f"computed {x}"

    assert f(1) == "computed 1" and calls == [1]


def test_corrupt_record_is_a_miss_and_a_warning(cache: DatabaseCache, caplog: pytest.LogCaptureFixture):
    cache.set("f", output=1, x=1)
    cache.set("f", output=2, x=2)
    key = row_key(cache, "f", x=1)
    quoted = cache.engine.dialect.identifier_preparer.quote("key")
    sql(cache, f"UPDATE cachehaven SET record = :r WHERE {quoted} = :k", r=b'{"cachehaven": 1, "fu', k=key)
    with pytest.warns(RuntimeWarning, match=key):
        assert cache.get("f", x=1) is ...
    assert key in caplog.text and "unreadable" in caplog.text
    with pytest.warns(RuntimeWarning):
        assert cache.get_many("f", [{"x": 1}, {"x": 2}]) == [..., 2]
    with pytest.warns(RuntimeWarning):
        assert [e.output for e in cache] == [2]  # iteration skips it
    with pytest.warns(RuntimeWarning):

        @cache.memoize(name="f")
        def f(x: int) -> int:
            return 100 + x

        assert f(1) == 101  # recomputed and stored over the corrupt row
    assert cache.get("f", x=1) == 101


# ---------------------------------------------------------------- credentials


def _leaks(secret: str, err: BaseException) -> bool:
    text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    return secret in text or secret in repr(err) or secret in str(err)


def test_password_is_not_in_repr_or_url(server_target: Target):
    server = server_target.server
    cache = server_target.make()
    assert server.password not in repr(cache)
    assert server.password not in cache.url
    assert server.password not in repr(cache.engine)
    by_parts = DatabaseCache(
        server_target.kind,
        server.database,
        host=server.host,
        port=server.port,
        username=server.user,
        password=server.password,
    )
    server_target.made.append(by_parts)
    assert server.password not in repr(by_parts)
    assert by_parts.get("f", x=1) is ...


def test_wrong_password_error_hides_it(server_target: Target, caplog: pytest.LogCaptureFixture):
    server = server_target.server
    wrong = "Wr0ng-" + uuid.uuid4().hex
    with pytest.raises(BackendError) as info:
        DatabaseCache(
            server_target.kind,
            server.database,
            host=server.host,
            port=server.port,
            username=server.user,
            password=wrong,
        )
    assert server_target.kind in str(info.value)
    assert not _leaks(wrong, info.value) and not _leaks(server.password, info.value)
    url = f"{server_target.options['url'].split('://')[0]}://{server.user}:{wrong}@{server.host}:{server.port}/x"
    with pytest.raises(BackendError) as info:
        DatabaseCache(url=url)
    assert not _leaks(wrong, info.value)
    assert wrong not in caplog.text


def test_connection_refused_error_hides_password(server_target: Target):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket is closed
    secret = "S3cret-" + uuid.uuid4().hex
    with pytest.raises(BackendError) as info:
        DatabaseCache(server_target.kind, "db", host="127.0.0.1", port=port, username="u", password=secret)
    assert not _leaks(secret, info.value)
    assert str(port) in str(info.value)  # it still says where it tried to connect


def test_sqlite_rejects_server_options():
    with pytest.raises(ConfigError, match="password"):
        DatabaseCache("sqlite", password="x")


# ---------------------------------------------------------------- options


def test_bad_serializer_options_touch_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("CACHEHAVEN_PICKLE_SECRET", raising=False)
    path = tmp_path / "never.db"
    with pytest.raises(ConfigError, match="secret"):
        DatabaseCache("sqlite", str(path), serializer="pickle")
    with pytest.raises(ConfigError, match="serializer"):
        DatabaseCache("sqlite", str(path), key_scheme="ahvn", serializer="json")
    assert not path.exists()


def test_config_errors(tmp_path: Path):
    with pytest.raises(ConfigError) as info:
        DatabaseCache("oracle")
    for name in ("sqlite", "postgresql", "mysql"):
        assert name in str(info.value)
    with pytest.raises(ConfigError, match="url"):
        DatabaseCache(url="postgresql://u:p@localhost/db", host="localhost")
    with pytest.raises(ConfigError, match="table"):
        DatabaseCache(table="users; DROP TABLE users")
    with pytest.raises(ConfigError, match="table"):
        DatabaseCache(table="x" * 49)
    with pytest.raises(ConfigError, match="url"):
        DatabaseCache(url="not a url")
    with pytest.raises(ConfigError, match="pool_size"):
        DatabaseCache(pool_size=0)
    with pytest.raises(ConfigError, match="serializer"):
        DatabaseCache(serializer="yaml")
    with pytest.raises(ConfigError, match="does not match"):
        DatabaseCache("mysql", url="sqlite://")
    with pytest.raises(ConfigError, match="isolation_level"):
        DatabaseCache(engine_options={"isolation_level": "SERIALIZABLE"})
    with pytest.raises(ConfigError, match="engine_options"):
        DatabaseCache(engine_options={"no_such_option": 1})


@pytest.mark.parametrize(
    ("provider", "module", "package", "extra"),
    [
        ("postgresql", "psycopg", "psycopg[binary]", "cachehaven[postgres]"),
        ("mysql", "pymysql", "pymysql", "cachehaven[mysql]"),
    ],
)
def test_missing_driver_names_the_package(
    monkeypatch: pytest.MonkeyPatch, provider: str, module: str, package: str, extra: str
):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    monkeypatch.setitem(sys.modules, "MySQLdb", None)  # so does mysqlclient, preferred when there
    with pytest.raises(ConfigError) as info:
        DatabaseCache(provider, "db", host="127.0.0.1", username="u", password="pw-not-shown")
    assert package in str(info.value) and extra in str(info.value)
    assert "pw-not-shown" not in str(info.value)


def test_mysql_uses_mysqlclient_when_installed_else_pymysql(
    server_target: Target, monkeypatch: pytest.MonkeyPatch
):
    if server_target.kind != "mysql":
        pytest.skip("MariaDB only")
    require_mysqlclient()
    server = server_target.server
    database = sa.engine.make_url(server_target.options["url"]).database
    parts = {"host": server.host, "port": server.port, "username": server.user, "password": server.password}
    by_parts = server_target.make(provider="mysql", database=database, url=None, **parts)
    assert by_parts.engine.dialect.driver == "mysqldb"
    rest = server_target.options["url"].split("://", 1)[1]
    by_url = server_target.make(url=f"mariadb://{rest}")
    assert by_url.engine.dialect.driver == "mysqldb" and by_url.provider == "mariadb"
    explicit = server_target.make(url=f"mysql+pymysql://{rest}")
    assert explicit.engine.dialect.driver == "pymysql"  # a driver named in the url is kept
    by_parts.set("f", output=1, x=1)
    assert by_url.get("f", x=1) == explicit.get("f", x=1) == 1
    monkeypatch.setitem(sys.modules, "MySQLdb", None)  # not installed
    assert server_target.make(
        provider="mysql", database=server.database, url=None, **parts
    ).engine.dialect.driver == ("pymysql")
    assert database_module._drivername("mysql") == "mysql+pymysql"
    with pytest.raises(ConfigError, match="mysqlclient") as info:
        DatabaseCache(url="mysql+mysqldb://u:pw-not-shown@127.0.0.1/db")
    assert "pw-not-shown" not in str(info.value)


def test_provider_aliases_and_url_providers():
    for alias in ("pg", "postgres", "PostgreSQL"):
        assert database_module._canonical_provider(alias) == "postgresql"
    assert database_module._canonical_provider("mariadb") == "mariadb"
    with DatabaseCache(url="sqlite://") as c:
        assert c.provider == "sqlite"
        c.set("f", output=1, x=1)
        assert c.get("f", x=1) == 1


def test_existing_table_of_another_shape_is_refused(tmp_path: Path):
    path = tmp_path / "other.db"
    with DatabaseCache("sqlite", str(path)) as c:
        sql(c, "CREATE TABLE users (name TEXT)")
    with pytest.raises(ConfigError, match="users"):
        DatabaseCache("sqlite", str(path), table="users")


def test_closed_cache_raises_backend_error(target: Target):
    cache = target.make()
    cache.set("f", output=1, x=1)
    cache.close()
    with pytest.raises(BackendError, match="closed"):
        cache.get("f", x=1)


def test_sqlite_file_uses_wal(tmp_path: Path):
    with DatabaseCache("sqlite", str(tmp_path / "w.db")) as c:
        assert sql(c, "PRAGMA journal_mode") == [("wal",)]


def test_sqlite_file_shared_by_processes(tmp_path: Path):
    path = str(tmp_path / "mp.db")
    DatabaseCache("sqlite", path).close()  # create the table first
    script = textwrap.dedent(
        """
        import sys
        from cachehaven.backends.database import DatabaseCache
        cache = DatabaseCache("sqlite", sys.argv[1])
        for i in range(40):
            cache.set("w", output=i, worker=int(sys.argv[2]), i=i)
            cache.set_many("m", [({"worker": int(sys.argv[2]), "i": i}, i)])
        cache.close()
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, path, str(w)], stderr=subprocess.PIPE)
        for w in range(3)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    with DatabaseCache("sqlite", path) as c:
        assert len(c) == 3 * 40 * 2
        assert c.get("w", worker=2, i=39) == 39


# ---------------------------------------------------------------- threads


def test_threads_mixed_operations(target: Target):
    cache = target.make()
    errors: List[BaseException] = []
    n_threads, rounds = 8, 25

    @cache.memoize(name="shared.sq")
    def sq(x: int) -> int:
        return x * x

    def work(t: int) -> None:
        try:
            for i in range(rounds):
                cache.set("own", output=(t, i), t=t, i=i)
                assert cache.get("own", t=t, i=i) == (t, i)
                assert sq(i % 5) == (i % 5) ** 2
                if i % 5 == 0:
                    cache.set_many("batch", [({"t": t, "j": j}, j) for j in range(5)])
                    assert cache.get_many("batch", [{"t": t, "j": j} for j in range(5)]) == list(range(5))
                if i % 7 == 0:
                    assert cache.remove("own", t=t, i=i) is True
                    assert cache.get("own", t=t, i=i) is ...
                len(cache)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    removed = len([i for i in range(rounds) if i % 7 == 0])
    for t in range(n_threads):
        for i in range(rounds):
            assert cache.get("own", t=t, i=i) == (... if i % 7 == 0 else (t, i))
    assert len(cache) == n_threads * (rounds - removed) + n_threads * 5 + 5


def test_small_pool_many_threads_never_starves(target: Target):
    """Connections kept hot between single-statement calls never starve the pool's other
    users (iteration, len, batches), even with pool_size=1 and 12 threads."""
    if target.kind == "sqlite-memory":
        pytest.skip("one shared connection")
    cache = target.make(pool_size=1, engine_options={"pool_timeout": 5})
    cache.set_many("k", [({"i": i}, i) for i in range(20)])
    errors: List[BaseException] = []

    def work(t: int) -> None:
        try:
            for r in range(15):
                assert cache.get("k", i=r) == r
                cache.set("t", output=r, t=t)
                if r % 5 == t % 5:
                    assert len(list(cache)) >= 20
                    assert cache.get_many("k", [{"i": 1}, {"i": 2}]) == [1, 2]
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(12)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_uses_its_own_connections(target: Target):
    if target.kind == "sqlite-memory":
        pytest.skip("an in-memory database is not shared with a child")
    cache = target.make()
    cache.set("f", output="parent", x=1)
    assert cache.get("f", x=1) == "parent"  # a hot connection now exists in the parent
    pid = os.fork()
    if pid == 0:  # the child: works on its own connections, then leaves without cleanup
        code = 1
        try:
            cache.set("f", output="child", x=2)
            code = 0 if cache.get("f", x=1) == "parent" and cache.get("f", x=2) == "child" else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert cache.get("f", x=2) == "child"  # and the parent's connections still work
    assert cache.get("f", x=1) == "parent"


# ---------------------------------------------------------------- a failing server


def test_server_outage_and_recovery(server_target: Target):
    server = server_target.server
    cache = server_target.make()
    cache.set("f", output="before", x=1)
    calls: List[int] = []

    @cache.memoize(fail_open=True)
    def tolerant(x: int) -> int:
        calls.append(x)
        return x + 1

    @cache.memoize
    def strict(x: int) -> int:
        return x

    assert tolerant(1) == 2
    server.stop()
    try:
        with pytest.raises(BackendError) as info:
            cache.get("f", x=1)
        assert server_target.kind in str(info.value) and "get" in str(info.value)
        assert not _leaks(server.password, info.value)
        with pytest.raises(BackendError):
            cache.set("f", output="during", x=1)
        with pytest.raises(BackendError):
            strict(1)
        assert tolerant(5) == 6 and tolerant(5) == 6  # computed without the cache, every time
        assert calls == [1, 5, 5]
    finally:
        server.start()
    # the same cache object works again, with the data stored before the outage
    assert cache.get("f", x=1) == "before"
    assert tolerant(1) == 2 and calls == [1, 5, 5]  # a hit again
    cache.set("f", output="after", x=1)
    assert cache.get("f", x=1) == "after"
    assert strict(3) == 3


def _kill_other_sessions(target: Target) -> int:
    """End every session on the target's server but this one (the cache's connections)."""
    killer = sa.create_engine(target.options["url"], poolclass=sa.pool.NullPool)
    with killer.connect() as conn:
        if target.kind == "postgresql":
            rows = conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).all()
        else:
            rows = conn.exec_driver_sql(
                "SELECT id FROM information_schema.processlist "
                "WHERE db = DATABASE() AND id <> CONNECTION_ID()"
            ).all()
            for (session,) in rows:
                conn.exec_driver_sql(f"KILL {int(session)}")
        conn.commit()
    killer.dispose()
    return len(rows)


def test_dropped_connections_are_replaced(server_target: Target, monkeypatch: pytest.MonkeyPatch):
    """The server ends the cache's sessions (a restart, an idle timeout, a DBA's KILL): a
    connection found idle is pinged and replaced before use, so the call succeeds; one used
    just before fails its call, which replaces every connection as old as it."""
    cache = server_target.make()
    cache.set("f", output="one", x=1)

    @cache.memoize
    def f(x: int) -> int:
        return x * 10

    assert cache.get("f", x=1) == "one" and f(2) == 20 and f(2) == 20  # hot connections
    assert _kill_other_sessions(server_target) >= 1
    monkeypatch.setattr(database_module, "_PING_AFTER", 0.0)  # every connection is idle
    assert f(2) == 20 and cache.get("f", x=1) == "one"
    monkeypatch.undo()
    assert f(2) == 20
    assert _kill_other_sessions(server_target) >= 1
    with pytest.raises(BackendError):
        f(2)  # the statement on the dead connection fails, and says so
    assert f(2) == 20 and cache.get("f", x=1) == "one" and f(3) == 30


def test_an_interrupted_lookup_leaves_no_half_read_connection(server_target: Target):
    """Ctrl-C during a lookup the server is slow to answer (here: blocked by another
    session's table lock) interrupts it; the cache then works on with the right values."""
    import signal

    cache = server_target.make()
    cache.set("f", output="one", x=1)
    cache.set("f", output="two", x=2)
    assert cache.get("f", x=1) == "one"  # a hot connection, and the statement prepared
    lock = {
        "postgresql": ["BEGIN", f"LOCK TABLE {cache.table} IN ACCESS EXCLUSIVE MODE"],
        "mysql": [f"LOCK TABLES {cache.table} WRITE"],
    }[server_target.kind]

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    locker = sa.create_engine(server_target.options["url"]).connect()
    unlock = "ROLLBACK" if server_target.kind == "postgresql" else "UNLOCK TABLES"
    # mysqlclient waits for the server inside C and takes the signal only once the lock is
    # gone: the lock goes after two seconds whatever happens
    release = threading.Timer(2.0, lambda: locker.exec_driver_sql(unlock))
    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        for statement in lock:
            locker.exec_driver_sql(statement)
        release.start()
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        with pytest.raises(KeyboardInterrupt):
            cache.get("f", x=2)
            time.sleep(5)  # a driver that delivers the signal after the call returns
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        release.join()
        locker.close()
    assert [cache.get("f", x=i) for i in (2, 1, 2, 3)] == ["two", "one", "two", ...]
    cache.set("f", output="three", x=3)
    assert cache.get("f", x=3) == "three"


# ---------------------------------------------------------------- AgentHeaven


def _ahvn_expected() -> Dict[str, Any]:
    return json.loads((AHVN_DATA / "expected.json").read_text())["backends"]["db"]


def test_reads_a_table_written_by_agentheaven(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "ahvn.sqlite"
    shutil.copy(AHVN_DATA / "db.sqlite", path)
    expected = _ahvn_expected()
    with DatabaseCache("sqlite", str(path), key_scheme="ahvn") as cache:
        assert cache.table == "cache_orm" and cache.layout == "ahvn"
        entries = list(cache)
        assert len(entries) == len(cache) == len(expected["entries"])
        assert sorted(e.func for e in entries) == sorted(e["func"] for e in expected["entries"])
        assert cache.get("add", x=5, y=10) == 15
        assert cache.get("judge", question="q1") == "yes"
        assert cache.retrieve("judge", question="q1").output == "maybe"
        assert cache.get_many("add", [{"x": 5, "y": 10}, {"x": 2, "y": 2}, {"x": 0, "y": 0}]) == [15, 5, ...]

        @cache.memoize
        def f(a: int, b: int = 2) -> Any:
            raise AssertionError("AgentHeaven's entry must be a hit")

        assert f(1) == {"sum": 3, "pair": (1, 2)}

        # what this cache writes there, AgentHeaven's format can read: a plain tagged dict
        cache.set("mine", output=(1, {2, 3}), k=1)
        assert cache.get("mine", k=1) == (1, {2, 3})
        ident = f"{CacheEntry('mine', {'k': 1}).key_for('ahvn'):040d}"
        (content,) = sql(cache, "SELECT content FROM cache_orm WHERE id = :i", i=ident)[0]
        assert json.loads(content) == {
            "func": "mine",
            "inputs": {"k": 1},
            "output": {
                "__obj_type__": "tuple",
                "__obj_data__": [1, {"__obj_type__": "set", "__obj_data__": [2, 3]}],
            },
            "metadata": {},
        }
        assert cache.remove("mine", k=1) is True
        with pytest.raises(SerializationError):
            cache.set("mine", output=b"bytes", k=2)  # AgentHeaven's JSON cannot hold it


def test_ahvn_layout_on_every_database(target: Target, clock: Clock):
    cache = target.make(key_scheme="ahvn")
    assert cache.table == "cache_orm" and cache.layout == "ahvn"
    cache.set("f", output={"v": (1, 2)}, x=1)
    cache.set_many("f", [({"x": 2}, [2]), ({"x": 3}, None)])
    assert cache.get_many("f", [{"x": 1}, {"x": 2}, {"x": 3}, {"x": 4}]) == [{"v": (1, 2)}, [2], None, ...]
    assert len(cache) == 3 and sorted(e.inputs["x"] for e in cache) == [1, 2, 3]
    cache.set("t", output=1, x=1, ttl=5)
    clock.now += 6
    assert cache.get("t", x=1) is ...
    assert cache.remove("f", x=1) is True and len(cache) == 2
    # blake3 keys cannot find AgentHeaven's rows: refuse rather than miss silently
    if target.kind != "sqlite-memory":
        with pytest.raises(ConfigError, match="key_scheme"):
            target.make(table="cache_orm")
    # an explicit table keeps cachehaven's own layout, keyed by AgentHeaven's digests
    mine = target.make(key_scheme="ahvn", table="ahvn_mine")
    assert mine.layout == "cachehaven"
    mine.set("f", output=b"bytes are fine here", x=1)
    assert mine.get("f", x=1) == b"bytes are fine here"


def test_ahvn_table_rejects_serializer_option():
    with pytest.raises(ConfigError, match="serializer"):
        DatabaseCache(key_scheme="ahvn", serializer="json")


def test_driver_error_echoing_the_dsn_is_scrubbed(server_target: Target, monkeypatch: pytest.MonkeyPatch):
    server = server_target.server
    cache = server_target.make()
    dbapi = cache.engine.dialect.loaded_dbapi

    def refuse() -> Any:  # a driver that puts the connection string in its error
        raise dbapi.OperationalError(
            f"could not connect: user={server.user} password={server.password} "
            f"url={server_target.options['url']}"
        )

    monkeypatch.setattr(cache.engine, "raw_connection", refuse)
    with pytest.raises(BackendError) as info:
        cache.get("f", x=1)
    assert not _leaks(server.password, info.value)
    assert "could not connect" in str(info.value)


AHVN_DDL = {  # AgentHeaven 0.9.2's CREATE TABLE on each database (AHVN_FORMAT.md, section 6)
    "sqlite": "CREATE TABLE cache_orm (id VARCHAR(63) NOT NULL, content TEXT, PRIMARY KEY (id))",
    "postgresql": "CREATE TABLE cache_orm (id VARCHAR(63) NOT NULL, content JSONB, PRIMARY KEY (id))",
    "mysql": "CREATE TABLE cache_orm (id VARCHAR(63) NOT NULL, content TEXT, PRIMARY KEY (id))",
}


def test_agentheaven_tables_on_every_database(shared: Target, clock: Clock):
    import sqlite3

    with sqlite3.connect(AHVN_DATA / "db.sqlite") as fixture:
        rows = fixture.execute("SELECT id, content FROM cache_orm").fetchall()
    helper = shared.make(table="scratch")  # any cache object, for its engine
    kind = "sqlite" if shared.kind.startswith("sqlite") else shared.kind
    sql(helper, AHVN_DDL[kind])
    insert = "INSERT INTO cache_orm (id, content) VALUES (:i, :c)"
    if kind == "postgresql":
        insert = "INSERT INTO cache_orm (id, content) VALUES (:i, CAST(:c AS JSONB))"
    for ident, content in rows:
        sql(helper, insert, i=ident, c=content)

    cache = shared.make(key_scheme="ahvn")
    assert cache.layout == "ahvn" and len(cache) == len(rows)
    assert cache.get("add", x=5, y=10) == 15
    assert cache.get("kl_store", kid=2**64 + 1) == {"kid": 2**64 + 1, "name": f"知识-{2**64 + 1}"}
    assert cache.get("shape", kind="tuple") == ((1, "a"), [2, (3,)])
    assert sorted(e.func for e in cache).count("shape") == 5
    # a TTL needs an expiry column: added to AgentHeaven's table (which ignores it) on first use
    cache.set("t", output=[1], k=1, ttl=10)
    assert cache.get("t", k=1) == [1]
    reopened = shared.make(key_scheme="ahvn")
    assert reopened.get("t", k=1) == [1] and reopened.get("add", x=5, y=10) == 15
    clock.now += 11
    assert cache.get("t", k=1) is ... and reopened.get("t", k=1) is ...
    assert len(reopened) == len(rows)
