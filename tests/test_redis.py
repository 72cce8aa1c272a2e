"""RedisCache against a real, private Redis server (the ``redis_server``/``redis_url`` fixtures
of ``tests/servers.py``: a password-protected instance on 127.0.0.1, one flushed database
index per test)."""

from __future__ import annotations

import contextlib
import datetime
import logging
import socket
import threading
import time
import warnings
from typing import Any, Iterator, List

import pytest

redis = pytest.importorskip("redis")

from cachehaven import CacheEntry, ahvn_key  # noqa: E402
from cachehaven.backends.redis import RedisCache  # noqa: E402
from cachehaven.errors import BackendError, ConfigError, SerializationError  # noqa: E402


@pytest.fixture
def cache(redis_url: str) -> Iterator[RedisCache]:
    """A RedisCache on a flushed database index, default namespace."""
    c = RedisCache(redis_url)
    assert len(c) == 0
    yield c
    c.close()


@pytest.fixture
def admin(redis_url: str) -> Iterator[Any]:
    """A plain redis-py client on the same database, to look at and plant raw keys."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def storage_key(entry_key: int, namespace: str = "cachehaven") -> str:
    return f"{namespace}:{entry_key:032x}"


@contextlib.contextmanager
def round_trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[List[bytes]]:
    """Record every write redis-py makes to a socket (one per round trip), as bytes."""
    sent: List[bytes] = []
    original = redis.connection.AbstractConnection.send_packed_command

    def spy(self: Any, command: Any, check_health: bool = True) -> Any:
        chunks = [command] if isinstance(command, (bytes, str)) else list(command)
        sent.append(b"".join(c.encode() if isinstance(c, str) else bytes(c) for c in chunks))
        return original(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", spy)
    try:
        yield sent
    finally:
        monkeypatch.undo()


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------- basic operations


def test_get_set_remove(cache: RedisCache, admin: Any) -> None:
    assert cache.get("f", x=1) is ...
    cache.set("f", output=10, x=1)
    assert cache.get("f", x=1) == 10
    assert cache.get("f", {"x": 1}) == 10
    assert cache.exists("f", x=1)
    assert not cache.exists("f", x=2)
    entry = cache.retrieve("f", x=1)
    assert (entry.func, entry.inputs, entry.output) == ("f", {"x": 1}, 10)
    # stored under <namespace>:<digest as 32 hex digits>
    assert admin.exists(storage_key(entry.key)) == 1
    assert cache.remove("f", x=1) is True
    assert cache.remove("f", x=1) is False
    assert cache.get("f", x=1) is ...
    assert admin.exists(storage_key(entry.key)) == 0


def test_overwrite_annotate_and_entry_forms(cache: RedisCache) -> None:
    cache.set("f", output=1, x=1)
    cache.set("f", output=2, x=1)
    assert cache.get("f", x=1) == 2
    cache.annotate("f", expected=3, metadata={"by": "me"}, x=1)
    entry = cache.retrieve("f", x=1)
    assert (entry.output, entry.expected, entry.metadata) == (2, 3, {"by": "me"})
    assert cache.get("f", x=1) == 3  # the expected value wins
    other = CacheEntry(func="g", inputs={"y": [1, 2]}, output={"k": "v"})
    cache.add(other)
    assert cache[other.key] == other
    assert other in cache
    del cache[other]
    assert other not in cache


def test_iteration_len_and_clear(cache: RedisCache) -> None:
    for i in range(25):
        cache.set("f", output=i * i, x=i)
    for i in range(5):
        cache.set("g", output=str(i), y=i)
    assert len(cache) == 30
    got = {(e.func, e.inputs["x" if e.func == "f" else "y"]): e.output for e in cache}
    want = {("f", i): i * i for i in range(25)} | {("g", i): str(i) for i in range(5)}
    assert got == want
    cache.clear()
    assert len(cache) == 0
    assert list(cache) == []
    assert cache.get("f", x=3) is ...


def test_iteration_spans_many_scan_batches(cache: RedisCache) -> None:
    cache.set_many("f", [({"x": i}, i) for i in range(2500)])
    assert len(cache) == 2500
    assert sorted(e.output for e in cache) == list(range(2500))
    cache.clear()
    assert len(cache) == 0


def test_clear_never_uses_keys_or_flushdb(cache: RedisCache, admin: Any) -> None:
    for i in range(10):
        cache.set("f", output=i, x=i)

    def calls(name: str) -> int:
        return int(admin.info("commandstats").get(f"cmdstat_{name}", {}).get("calls", 0))

    before = {name: calls(name) for name in ("keys", "flushdb", "flushall", "scan", "unlink")}
    cache.clear()
    after = {name: calls(name) for name in before}
    assert after["keys"] == before["keys"]
    assert after["flushdb"] == before["flushdb"]
    assert after["flushall"] == before["flushall"]
    assert after["scan"] > before["scan"]
    assert after["unlink"] > before["unlink"]
    assert len(cache) == 0


def test_memoize_hits_and_per_function_clear(cache: RedisCache) -> None:
    calls: List[int] = []

    @cache.memoize
    def square(x: int) -> int:
        calls.append(x)
        return x * x

    @cache.memoize
    def cube(x: int) -> int:
        return x**3

    assert [square(i) for i in range(4)] == [0, 1, 4, 9]
    assert [square(i) for i in range(4)] == [0, 1, 4, 9]
    assert calls == [0, 1, 2, 3]
    assert cube(2) == 8
    info = square.cache_info()
    assert (info.hits, info.misses, info.currsize) == (4, 4, 4)
    assert cube.cache_info().currsize == 1
    square.cache_clear()
    assert square.cache_info().currsize == 0
    assert cube.cache_info().currsize == 1
    assert cube.cache_get(2) == 8
    assert square(3) == 9
    assert calls == [0, 1, 2, 3, 3]


# ---------------------------------------------------------------- values


EXACT_VALUES = [
    None,
    True,
    0,
    -(2**100),
    1.5,
    float("inf"),
    "text é 漢字",
    b"\x00\xffbytes",
    (1, (2, 3), [4, (5,)]),
    [1, "a", None],
    {1: "int key", "s": "str key", (1, 2): "tuple key"},
    {1, 2, 3},
    frozenset({"a", "b"}),
    datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=datetime.timezone.utc),
    datetime.date(2024, 5, 6),
    [..., {"e": ...}],
    {"nested": {"list": [(1, b"x"), {2.5}], "empty": {}}},
]


def _same(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return bool(a == b)


@pytest.mark.parametrize("value", EXACT_VALUES, ids=lambda v: type(v).__name__)
def test_values_round_trip_exactly(cache: RedisCache, value: Any) -> None:
    cache.set("f", output=value, x=1)
    assert _same(cache.get("f", x=1), value)
    (entry,) = list(cache)
    assert _same(entry.output, value)


def test_exact_inputs_survive_iteration(cache: RedisCache) -> None:
    inputs = {"t": (1, 2), "b": b"\x01", "d": {3: "x"}}
    cache.set("f", output="ok", **inputs)
    (entry,) = list(cache)
    assert _same(entry.inputs, inputs)
    assert cache.get(entry.func, entry.inputs) == "ok"


def test_unserializable_value_raises_before_writing(cache: RedisCache) -> None:
    with pytest.raises(SerializationError):
        cache.set("f", output=object(), x=1)
    with pytest.raises(SerializationError):
        cache.set_many("f", [({"x": 2}, 2), ({"x": 3}, object())])
    assert len(cache) == 0


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)


def test_pickle_serializer_signed(redis_url: str) -> None:
    a = RedisCache(redis_url, serializer="pickle", secret=b"secret-one")
    a.set("f", output=Point(1, 2), x=1)
    assert a.get("f", x=1) == Point(1, 2)
    forger = RedisCache(redis_url, serializer="pickle", secret=b"another-secret")
    with pytest.warns(RuntimeWarning):
        assert forger.get("f", x=1) is ...  # signed with another secret: refused, not unpickled
    a.close()
    forger.close()


# ---------------------------------------------------------------- namespaces


@pytest.mark.parametrize(
    ("name", "neighbour"),
    [
        ("app-one", "app-two"),
        ("a", "a:b"),  # a prefix of the other
        ("a*[b]?", "aZZbX"),  # glob metacharacters that would match the neighbour if unescaped
        ("x\\y", "x\\\\y"),
    ],
)
def test_namespaces_are_isolated(redis_url: str, admin: Any, name: str, neighbour: str) -> None:
    mine = RedisCache(redis_url, namespace=name)
    theirs = RedisCache(redis_url, namespace=neighbour)
    for i in range(5):
        mine.set("f", output=f"mine{i}", x=i)
        theirs.set("f", output=f"theirs{i}", x=i)
    admin.set(f"{name}:notes", b"not a cache entry")
    admin.set(f"{name}:sub:{'0' * 32}", b"not a cache entry either")
    assert mine.get("f", x=1) == "mine1"
    assert theirs.get("f", x=1) == "theirs1"
    assert len(mine) == 5
    assert len(theirs) == 5
    assert {e.output for e in mine} == {f"mine{i}" for i in range(5)}
    mine.clear()
    assert len(mine) == 0
    assert len(theirs) == 5
    assert theirs.get("f", x=4) == "theirs4"
    assert admin.get(f"{name}:notes") == b"not a cache entry"
    assert admin.exists(f"{name}:sub:{'0' * 32}") == 1
    mine.close()
    theirs.close()


@pytest.mark.parametrize("bad", ["", "has space", "tab\there", "new\nline", 5, None, b"bytes"])
def test_invalid_namespace_is_a_config_error(bad: Any) -> None:
    with pytest.raises(ConfigError, match="namespace"):
        RedisCache("redis://127.0.0.1:1/0", namespace=bad)


def test_invalid_options_are_config_errors(redis_url: str) -> None:
    with pytest.raises(ConfigError, match="ttl"):
        RedisCache(redis_url, ttl=-1)
    with pytest.raises(ConfigError, match="socket_timeout"):
        RedisCache(redis_url, socket_timeout=0)
    with pytest.raises(ConfigError, match="decode_responses"):
        RedisCache(redis_url, decode_responses=True)
    with pytest.raises(ConfigError, match="decode_responses"):
        RedisCache(client=redis.Redis.from_url(redis_url, decode_responses=True))
    with pytest.raises(ConfigError, match="url"):
        RedisCache("http://127.0.0.1:1/0")


def test_existing_client_is_used_and_left_open(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    cache = RedisCache(client=client, namespace="shared")
    cache.set("f", output=1, x=1)
    assert client.exists(storage_key(CacheEntry("f", {"x": 1}).key, "shared")) == 1
    cache.close()
    assert client.ping()
    client.close()


@pytest.mark.parametrize("scheme", ["md5", "ahvn"])
def test_key_schemes_choose_the_storage_key(redis_url: str, admin: Any, scheme: str) -> None:
    cache = RedisCache(redis_url, key_scheme=scheme, namespace="schemes")
    cache.set("f", output=5, x=1)
    entry = CacheEntry("f", {"x": 1})
    digest = ahvn_key("f", {"x": 1}) if scheme == "ahvn" else entry.key_for("md5")
    assert admin.exists(storage_key(digest, "schemes")) == 1
    assert cache.get("f", x=1) == 5
    assert [e.output for e in cache] == [5]
    cache.close()


# ---------------------------------------------------------------- TTL


def test_ttl_is_server_side(redis_url: str, admin: Any) -> None:
    cache = RedisCache(redis_url, ttl=0.2)
    cache.set("f", output=1, x=1)  # the default ttl
    cache.set("f", output=2, x=2, ttl=60)  # a per-call ttl overrides it
    k1 = storage_key(CacheEntry("f", {"x": 1}).key)
    k2 = storage_key(CacheEntry("f", {"x": 2}).key)
    assert 0 < admin.pttl(k1) <= 200
    assert 50_000 < admin.pttl(k2) <= 60_000
    assert cache.get("f", x=1) == 1
    time.sleep(0.35)
    assert admin.exists(k1) == 0  # removed by the server, not by a read
    assert cache.get("f", x=1) is ...
    assert cache.get("f", x=2) == 2
    assert len(cache) == 1
    cache.close()


def test_no_ttl_means_no_expiry(cache: RedisCache, admin: Any) -> None:
    cache.set("f", output=1, x=1)
    assert admin.pttl(storage_key(CacheEntry("f", {"x": 1}).key)) == -1


def test_memoize_ttl_and_batch_ttl(cache: RedisCache, admin: Any) -> None:
    @cache.memoize(ttl=datetime.timedelta(seconds=30))
    def one(x: int) -> int:
        return x

    @cache.batch_memoize(ttl=20)
    def many(xs: List[int]) -> List[int]:
        return xs

    one(1)
    many([1, 2])
    assert 25_000 < admin.pttl(storage_key(one.cache_key(1))) <= 30_000
    assert 15_000 < admin.pttl(storage_key(many.cache_key([2]))) <= 20_000


# ---------------------------------------------------------------- bulk paths


def test_get_many_is_one_mget(cache: RedisCache, monkeypatch: pytest.MonkeyPatch) -> None:
    cache.set_many("f", [({"x": i}, i * 10) for i in range(0, 200, 2)])
    with round_trips(monkeypatch) as sent:
        got = cache.get_many("f", [{"x": i} for i in range(200)])
    assert got == [i * 10 if i % 2 == 0 else ... for i in range(200)]
    assert len(sent) == 1
    assert b"MGET" in sent[0]


def test_set_many_is_one_mset(cache: RedisCache, admin: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    cache.ping()  # connect first, so the handshake is not counted
    with round_trips(monkeypatch) as sent:
        cache.set_many("f", [({"x": i}, i) for i in range(300)])
    assert len(sent) == 1
    assert sent[0].count(b"\r\nMSET\r\n") == 1
    assert sent[0].count(b"\r\ncachehaven:") == 300
    assert cache.get_many("f", [{"x": i} for i in range(300)]) == list(range(300))
    assert admin.pttl(storage_key(CacheEntry("f", {"x": 7}).key)) == -1


def test_set_many_with_ttl_is_one_pipeline(
    cache: RedisCache, admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache.ping()
    with round_trips(monkeypatch) as sent:
        cache.set_many("f", [({"x": i}, i) for i in range(300)], ttl=30)
    assert len(sent) == 1
    assert sent[0].count(b"\r\nSET\r\n") == 300
    assert sent[0].count(b"\r\nPX\r\n") == 300
    assert cache.get_many("f", [{"x": i} for i in range(300)]) == list(range(300))
    assert 25_000 < admin.pttl(storage_key(CacheEntry("f", {"x": 7}).key)) <= 30_000


def test_batch_memoize_is_two_round_trips_then_one(
    cache: RedisCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    computed: List[int] = []

    @cache.batch_memoize
    def double(xs: List[int]) -> List[int]:
        computed.extend(xs)
        return [x * 2 for x in xs]

    cache.ping()
    with round_trips(monkeypatch) as sent:
        assert double(list(range(500))) == [x * 2 for x in range(500)]
    assert len(sent) == 2  # one MGET for the lookups, one MSET for the stores
    assert b"MGET" in sent[0]
    assert sent[1].count(b"\r\ncachehaven:") == 500
    with round_trips(monkeypatch) as sent:
        assert double(list(range(250, 750))) == [x * 2 for x in range(250, 750)]
    assert len(sent) == 2
    assert sent[1].count(b"\r\ncachehaven:") == 250  # only the misses are stored
    with round_trips(monkeypatch) as sent:
        assert double(list(range(750))) == [x * 2 for x in range(750)]
    assert len(sent) == 1  # all hits: one MGET
    assert computed == list(range(750))


# ---------------------------------------------------------------- unreadable values


def test_corrupt_value_is_a_miss_with_a_warning(
    cache: RedisCache, admin: Any, caplog: pytest.LogCaptureFixture
) -> None:
    calls: List[int] = []

    @cache.memoize
    def double(x: int) -> int:
        calls.append(x)
        return 2 * x

    key = storage_key(double.cache_key(3))
    admin.set(key, b"\x00\x01 definitely not a record")
    with caplog.at_level(logging.WARNING, logger="cachehaven"), pytest.warns(RuntimeWarning, match=key):
        assert double.cache_get(3) is ...
    assert any(key in r.getMessage() and "RedisCache" in r.getMessage() for r in caplog.records)
    with pytest.warns(RuntimeWarning):
        assert double(3) == 6  # computed, and the corrupt value replaced
    assert double(3) == 6
    assert calls == [3]


def test_truncated_record_is_a_miss(cache: RedisCache, admin: Any) -> None:
    cache.set("f", output="x" * 100, x=1)
    key = storage_key(CacheEntry("f", {"x": 1}).key)
    admin.set(key, admin.get(key)[:-7])
    with pytest.warns(RuntimeWarning):
        assert cache.get("f", x=1) is ...
    with pytest.warns(RuntimeWarning):
        assert cache.get_many("f", [{"x": 1}]) == [...]
    with pytest.warns(RuntimeWarning):
        assert list(cache) == []


def test_wrong_type_at_key_is_a_miss(cache: RedisCache, admin: Any) -> None:
    key = storage_key(CacheEntry("f", {"x": 1}).key)
    admin.hset(key, "field", "value")
    with pytest.warns(RuntimeWarning):
        assert cache.get("f", x=1) is ...
    cache.set("f", output=1, x=1)  # SET replaces it
    assert cache.get("f", x=1) == 1


def test_record_of_another_call_is_never_returned(cache: RedisCache, admin: Any) -> None:
    """A record whose canonical key differs (what a digest collision looks like) is a miss."""
    cache.set("f", output="one", x=1)
    k1 = storage_key(CacheEntry("f", {"x": 1}).key)
    k2 = storage_key(CacheEntry("f", {"x": 2}).key)
    admin.set(k2, admin.get(k1))
    assert cache.get("f", x=2) is ...
    assert cache.get_many("f", [{"x": 2}, {"x": 1}]) == [..., "one"]
    assert cache.remove("f", x=2) is False


def test_keys_removed_between_scan_and_mget_are_skipped(
    cache: RedisCache, admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another client deletes keys after SCAN listed them and before MGET reads them."""
    cache.set_many("f", [({"x": i}, i) for i in range(40)])
    doomed = [storage_key(CacheEntry("f", {"x": i}).key) for i in range(0, 40, 2)]
    original = redis.connection.AbstractConnection.send_packed_command
    state = {"deleting": False, "done": False}

    def delete_before_mget(self: Any, command: Any, check_health: bool = True) -> Any:
        chunks = [command] if isinstance(command, (bytes, str)) else list(command)
        if not state["done"] and not state["deleting"] and any(b"MGET" in bytes(c) for c in chunks):
            state["deleting"] = True
            admin.unlink(*doomed)
            state["done"] = True
        return original(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", delete_before_mget)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a vanished key is not an unreadable record
        outputs = sorted(e.output for e in cache)
    assert state["done"]
    assert outputs == list(range(1, 40, 2))


def test_clear_while_iterating(cache: RedisCache) -> None:
    cache.set_many("f", [({"x": i}, i) for i in range(3000)])
    seen = 0
    for entry in cache:
        if seen == 0:
            cache.clear()
        seen += 1
        assert entry.func == "f"
    assert 1 <= seen < 3000
    assert len(cache) == 0


# ---------------------------------------------------------------- credentials


def test_password_never_in_repr_or_errors(redis_server: Any, redis_url: str) -> None:
    password = redis_server.password
    cache = RedisCache(redis_url)
    assert password not in repr(cache)
    assert "***" in repr(cache)
    assert password not in str(cache)
    port = closed_port()
    urls = [
        f"redis://:{password}@127.0.0.1:{port}/0",
        f"redis://someone:{password}@127.0.0.1:{port}/0",
        f"redis://127.0.0.1:{port}/0?password={password}",
    ]
    for url in urls:
        dead = RedisCache(url, socket_timeout=1)
        assert password not in repr(dead)
        with pytest.raises(BackendError) as info:
            dead.get("f", x=1)
        text = f"{info.value} {info.value!r}"
        assert password not in text
        assert "get" in str(info.value)
        assert f"127.0.0.1:{port}" in str(info.value)
        dead.close()
    # a wrong password against the live server
    wrong = redis_url.replace(password, "not-" + password[::-1])
    denied = RedisCache(wrong)
    with pytest.raises(BackendError) as info:
        denied.set("f", output=1, x=1)
    assert password[::-1] not in str(info.value)
    assert password not in str(info.value)
    assert "set" in str(info.value)
    denied.close()
    cache.close()


# ---------------------------------------------------------------- threads


def test_eight_threads_of_mixed_operations(cache: RedisCache) -> None:
    errors: List[BaseException] = []
    finals: List[dict] = []
    computed: List[int] = []
    lock = threading.Lock()

    @cache.memoize
    def shared(x: int) -> int:
        with lock:
            computed.append(x)
        return x * 7

    def worker(t: int) -> None:
        model: dict = {}
        try:
            for i in range(150):
                k = i % 17
                op = (i * 7 + t) % 5
                if op in (0, 1):
                    cache.set("w", output=(t, i), t=t, k=k)
                    model[k] = (t, i)
                elif op == 2:
                    assert cache.get("w", t=t, k=k) == model.get(k, ...)
                elif op == 3:
                    assert cache.remove("w", t=t, k=k) == (k in model)
                    model.pop(k, None)
                else:
                    assert shared(i % 10) == (i % 10) * 7
            finals.append({(t, k): v for k, v in model.items()})
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    want = {k: v for final in finals for k, v in final.items()}
    got = {(e.inputs["t"], e.inputs["k"]): e.output for e in cache if e.func == "w"}
    assert got == want
    assert sorted(computed) == list(range(10))  # each shared value computed once


# ---------------------------------------------------------------- faults


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_stopped_server_then_recovery(redis_server: Any, redis_url: str, how: str) -> None:
    cache = RedisCache(redis_url, socket_timeout=2)
    cache.set("f", output=1, x=1)
    computed: List[int] = []

    @cache.memoize(fail_open=True)
    def lenient(x: int) -> int:
        computed.append(x)
        return x + 1

    @cache.memoize
    def strict(x: int) -> int:
        return x

    @cache.batch_memoize(fail_open=True)
    def batch(xs: List[int]) -> List[int]:
        return [-x for x in xs]

    getattr(redis_server, how)()
    try:
        with pytest.raises(BackendError, match="get") as info:
            cache.get("f", x=1)
        assert redis_server.password not in str(info.value)
        with pytest.raises(BackendError, match="set"):
            cache.set("f", output=2, x=2)
        with pytest.raises(BackendError, match="remove"):
            cache.remove("f", x=1)
        with pytest.raises(BackendError, match="get_many"):
            cache.get_many("f", [{"x": 1}])
        with pytest.raises(BackendError, match="set_many"):
            cache.set_many("f", [({"x": 1}, 1)])
        with pytest.raises(BackendError, match="set_many"):
            cache.set_many("f", [({"x": 1}, 1)], ttl=5)
        with pytest.raises(BackendError):
            len(cache)
        with pytest.raises(BackendError):
            cache.clear()
        with pytest.raises(BackendError):
            list(cache)
        with pytest.raises(BackendError):
            strict(1)
        assert lenient(1) == 2
        assert lenient(1) == 2
        assert computed == [1, 1]  # computed without the cache, each time
        assert batch([1, 2]) == [-1, -2]
    finally:
        redis_server.start()
    # the same object works again, with no restart of the client
    assert cache.get("f", x=1) == 1  # the server's append-only file kept it
    cache.set("f", output=2, x=2)
    assert cache.get("f", x=2) == 2
    assert lenient(5) == 6
    assert lenient(5) == 6
    assert computed == [1, 1, 5]
    assert strict(3) == 3
    cache.close()


def test_dropped_connections_are_retried(cache: RedisCache, admin: Any) -> None:
    cache.set("f", output=1, x=1)
    admin.client_kill_filter(_type="normal", skipme=True)  # drop the cache's pooled connection
    assert cache.get("f", x=1) == 1
    admin.client_kill_filter(_type="normal", skipme=True)
    cache.set_many("f", [({"x": 2}, 2)])
    admin.client_kill_filter(_type="normal", skipme=True)
    assert cache.get_many("f", [{"x": 1}, {"x": 2}]) == [1, 2]


def test_batches_on_a_single_connection_client(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, single_connection_client=True)
    cache = RedisCache(client=client, namespace="single")
    try:

        @cache.batch_memoize
        def double(xs: List[int]) -> List[int]:
            return [x * 2 for x in xs]

        assert double([1, 2]) == [2, 4]
        assert double([2, 3]) == [4, 6]
        assert cache.get_many(double, [{"xs": [3]}, {"xs": [4]}]) == [6, ...]
    finally:
        cache.clear()
        cache.close()
        client.close()
