"""The file-backed caches: JsonCache (one JSON file per entry) and DiskCache (diskcache).

Both are run through the same behaviour tests (persistence, exact round trips, TTL, corrupt
storage, path safety, failed writes, concurrency); then each gets the tests of its own
format (human-readable files and temp files; SafeDisk and the pickle opt-in).
"""

from __future__ import annotations

import datetime
import errno
import json
import os
import sqlite3
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Iterator, List

import diskcache
import pytest

from cachehaven import CacheEntry, ConfigError
from cachehaven.backends.disk import DiskCache, SafeDisk
from cachehaven.backends.json import STALE_TEMP_AGE, JsonCache
from cachehaven.errors import BackendError, SerializationError
from cachehaven.keys import ahvn_key

KINDS = ["json", "disk"]


def open_cache(kind: str, path: Path, **kwargs: Any) -> Any:
    """A cache of ``kind`` on the directory ``path``."""
    return JsonCache(path, **kwargs) if kind == "json" else DiskCache(path, **kwargs)


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def fcache(kind: str, path: Path) -> Iterator[Any]:
    """A fresh cache of each file backend."""
    c = open_cache(kind, path)
    yield c
    c.close()


def digest_of(func: str, **inputs: Any) -> str:
    """The storage key of ``func(**inputs)``: the 32-hex blake3 digest."""
    return f"{CacheEntry(func, inputs).key:032x}"


def corrupt(kind: str, path: Path, func: str, data: bytes, **inputs: Any) -> None:
    """Replace the stored bytes of ``func(**inputs)`` with ``data``."""
    if kind == "json":
        (path / f"{digest_of(func, **inputs)}.json").write_bytes(data)
    else:
        with diskcache.Cache(str(path)) as raw:
            raw.set(digest_of(func, **inputs), data)


class FakeTime:
    """A settable ``time.time`` (wall clock) for expiry tests."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    clock = FakeTime()
    monkeypatch.setattr(time, "time", clock)
    return clock


def files_under(root: Path) -> List[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


# ---------------------------------------------------------------- basics, both backends


def test_set_get_remove_iterate_len_clear(fcache: Any) -> None:
    assert len(fcache) == 0
    assert fcache.get("f", x=1) is ...
    fcache.set("f", output=10, x=1)
    fcache.set("f", output=20, x=2)
    fcache.set("g", output="a", x=1)
    assert fcache.get("f", x=1) == 10
    assert fcache.get("f", {"x": 2}) == 20
    assert fcache.get("g", x=1) == "a"
    assert fcache.exists("f", x=1)
    assert len(fcache) == 3
    assert sorted((e.func, e.inputs["x"], e.output) for e in fcache) == [
        ("f", 1, 10),
        ("f", 2, 20),
        ("g", 1, "a"),
    ]
    fcache.set("f", output=11, x=1)  # overwrite
    assert fcache.get("f", x=1) == 11
    assert len(fcache) == 3
    assert fcache.remove("f", x=1) is True
    assert fcache.remove("f", x=1) is False
    assert fcache.get("f", x=1) is ...
    assert len(fcache) == 2
    fcache.clear()
    assert len(fcache) == 0
    assert list(fcache) == []
    assert fcache.get("g", x=1) is ...


def test_none_is_a_value_not_a_miss(fcache: Any) -> None:
    fcache.set("f", output=None, x=1)
    assert fcache.get("f", x=1) is None
    assert fcache.exists("f", x=1)


def test_values_round_trip_exactly(fcache: Any, kind: str, path: Path) -> None:
    value = {
        "tuple": (1, "a", (2.5, None)),
        "list": [1, [2, (3,)]],
        "set": {1, 2, 3},
        "frozenset": frozenset({"x", "y"}),
        "bytes": b"\x00\xff raw",
        "datetime": datetime.datetime(2024, 5, 6, 7, 8, 9, 123456),
        "aware": datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc),
        "date": datetime.date(2024, 5, 6),
        "int_keys": {1: "one", 2: "two"},
        "big": 2**100,
        "float": 0.1,
        "unicode": "héllo ✓",
        "bool": True,
        "order": {"zeta": 1, "alpha": 2, "mid": {"b": 1, "a": 2}},
    }
    fcache.set("f", output=value, metadata={"source": ("m", 1)}, x=(1, 2))
    reopened = open_cache(kind, path)
    for c in (fcache, reopened):
        got = c.get("f", x=(1, 2))
        assert got == value
        assert type(got["tuple"]) is tuple and type(got["tuple"][2]) is tuple
        assert type(got["list"][1][1]) is tuple
        assert type(got["set"]) is set
        assert type(got["frozenset"]) is frozenset
        assert type(got["bytes"]) is bytes
        assert type(got["datetime"]) is datetime.datetime and got["datetime"].tzinfo is None
        assert got["aware"].utcoffset() == datetime.timedelta(0)
        assert type(got["date"]) is datetime.date
        assert list(got["int_keys"]) == [1, 2]
        assert list(got) == list(value)  # dicts keep their order
        assert list(got["order"]) == ["zeta", "alpha", "mid"] and list(got["order"]["mid"]) == ["b", "a"]
        entry = c.retrieve("f", x=(1, 2))
        assert type(entry.inputs["x"]) is tuple
        assert entry.metadata == {"source": ("m", 1)}
        assert type(entry.metadata["source"]) is tuple
        assert entry.expected is ...  # unset stays unset
    reopened.close()


def test_expected_only_and_annotation_round_trip(fcache: Any) -> None:
    fcache.set("f", expected=5, x=1)
    entry = fcache.retrieve("f", x=1)
    assert entry.output is ... and entry.expected == 5
    assert fcache.get("f", x=1) == 5
    fcache.set("g", output=1, x=1)
    fcache.annotate("g", expected=2, metadata={"ok": False}, x=1)
    entry = fcache.retrieve("g", x=1)
    assert (entry.output, entry.expected, entry.metadata) == (1, 2, {"ok": False})
    assert fcache.get("g", x=1) == 2


def test_entry_objects_are_stored_as_they_are(fcache: Any) -> None:
    entry = CacheEntry("f", {"a": [1, 2], "b": {"k": (1,)}}, output={"r": 1}, metadata={"m": 1})
    fcache.add(entry)
    assert fcache.retrieve(entry) == entry
    assert entry in fcache
    assert fcache[entry.key] == entry
    assert fcache.pop() == entry
    assert len(fcache) == 0


def test_memoize_hits_across_instances_on_one_path(kind: str, path: Path) -> None:
    calls: List[int] = []

    def square(x: int) -> dict:
        calls.append(x)
        return {"square": x * x, "pair": (x, x)}

    first = open_cache(kind, path)
    f1 = first.memoize(name="square")(square)
    assert f1(3) == {"square": 9, "pair": (3, 3)}
    assert f1(3) == {"square": 9, "pair": (3, 3)}
    assert calls == [3]
    first.close()

    second = open_cache(kind, path)  # e.g. the next run of the program
    f2 = second.memoize(name="square")(square)
    result = f2(3)
    assert result == {"square": 9, "pair": (3, 3)}
    assert type(result["pair"]) is tuple
    assert calls == [3]
    assert f2(4) == {"square": 16, "pair": (4, 4)}
    assert calls == [3, 4]
    info = f2.cache_info()
    assert (info.hits, info.misses, info.currsize) == (1, 1, 2)
    second.close()


def test_cache_clear_removes_only_that_function(fcache: Any) -> None:
    @fcache.memoize
    def f(x: int) -> int:
        return x + 1

    @fcache.memoize
    def g(x: int) -> int:
        return x + 2

    for i in range(3):
        f(i)
        g(i)
    assert f.cache_info().currsize == 3
    f.cache_clear()
    assert f.cache_info().currsize == 0
    assert g.cache_info().currsize == 3
    assert len(fcache) == 3


def test_batch_memoize_stores_each_item(fcache: Any) -> None:
    calls: List[List[int]] = []

    @fcache.batch_memoize
    def double(items: List[int]) -> List[int]:
        calls.append(list(items))
        return [i * 2 for i in items]

    assert double([1, 2, 3]) == [2, 4, 6]
    assert double([3, 4]) == [6, 8]
    assert calls == [[1, 2, 3], [4]]


async def test_async_memoize(fcache: Any) -> None:
    calls: List[int] = []

    @fcache.memoize
    async def f(x: int) -> tuple:
        calls.append(x)
        return (x, "done")

    assert await f(1) == (1, "done")
    assert await f(1) == (1, "done")
    assert calls == [1]


# ---------------------------------------------------------------- TTL


def test_ttl_expires_entries(fcache: Any, kind: str, path: Path, fake_time: FakeTime) -> None:
    fcache.set("f", output=1, ttl=10, x=1)
    fcache.set("f", output=2, x=2)  # no ttl: lives forever
    fake_time.now += 9
    assert fcache.get("f", x=1) == 1
    fake_time.now += 2
    assert fcache.get("f", x=1) is ...
    assert not fcache.exists("f", x=1)
    assert [e.output for e in fcache] == [2]
    assert fcache.remove("f", x=1) is False
    assert fcache.get("f", x=2) == 2
    if kind == "json":  # deleted lazily, when read
        assert not (path / f"{digest_of('f', x=1)}.json").exists()


def test_default_ttl_and_memoize_ttl(kind: str, path: Path, fake_time: FakeTime) -> None:
    cache = open_cache(kind, path, ttl=datetime.timedelta(seconds=5))
    calls: List[int] = []

    @cache.memoize(ttl=60)
    def long_lived(x: int) -> int:
        calls.append(x)
        return x

    cache.set("f", output=1, x=1)
    long_lived(1)
    fake_time.now += 6
    assert cache.get("f", x=1) is ...  # the cache's default ttl
    long_lived(1)
    assert calls == [1]  # memoize's own ttl overrides the default
    fake_time.now += 60
    long_lived(1)
    assert calls == [1, 1]
    cache.close()


def test_ttl_with_the_real_clock(fcache: Any) -> None:
    fcache.set("f", output=1, ttl=0.3, x=1)
    assert fcache.get("f", x=1) == 1
    time.sleep(0.5)
    assert fcache.get("f", x=1) is ...


def test_bad_ttl_is_a_config_error(kind: str, path: Path) -> None:
    with pytest.raises(ConfigError, match="ttl"):
        open_cache(kind, path, ttl=-1)


# ---------------------------------------------------------------- unreadable storage

CORRUPTIONS = {
    "garbage": b"\x00\x01 not a record",
    "truncated": b'{"func": "f", "inp',
    "not_utf8": b"\xff\xfe\xfa{}",
    "wrong_shape": b"[1, 2, 3]",
}


@pytest.mark.parametrize("damage", list(CORRUPTIONS))
def test_corrupt_entry_is_a_miss_with_one_warning(fcache: Any, kind: str, path: Path, damage: str) -> None:
    fcache.set("f", output=1, x=1)
    fcache.set("f", output=2, x=2)
    corrupt(kind, path, "f", CORRUPTIONS[damage], x=1)
    with pytest.warns(RuntimeWarning) as record:
        assert fcache.get("f", x=1) is ...
    assert len(record) == 1
    assert digest_of("f", x=1) in str(record[0].message)
    with pytest.warns(RuntimeWarning):
        assert [e.output for e in fcache] == [2]  # iteration skips it
    if kind == "json":  # left for inspection
        assert (path / f"{digest_of('f', x=1)}.json").read_bytes() == CORRUPTIONS[damage]
    # a new set replaces it
    fcache.set("f", output=3, x=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fcache.get("f", x=1) == 3


def test_corrupt_entry_is_a_miss_for_memoize(fcache: Any, kind: str, path: Path) -> None:
    calls: List[int] = []

    @fcache.memoize(name="f")
    def f(x: int) -> int:
        calls.append(x)
        return x * 10

    assert f(1) == 10
    corrupt(kind, path, "f", b"{", x=1)
    with pytest.warns(RuntimeWarning):
        assert f(1) == 10  # recomputed, and the damaged entry is replaced
    assert calls == [1, 1]
    assert f(1) == 10
    assert calls == [1, 1]


def test_a_record_stored_under_another_key_is_never_returned(fcache: Any, kind: str, path: Path) -> None:
    """What a digest collision would look like: a valid record under a key that is not its own."""
    fcache.set("f", output="for x=1", x=1)
    if kind == "json":
        src = path / f"{digest_of('f', x=1)}.json"
        (path / f"{digest_of('f', x=2)}.json").write_bytes(src.read_bytes())
    else:
        with diskcache.Cache(str(path)) as raw:
            raw.set(digest_of("f", x=2), raw.get(digest_of("f", x=1)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not a corrupt record: a plain miss
        assert fcache.get("f", x=2) is ...
        assert fcache.remove("f", x=2) is False
    assert fcache.get("f", x=1) == "for x=1"


# ---------------------------------------------------------------- path safety


def test_inputs_and_names_cannot_escape_the_directory(kind: str, tmp_path: Path) -> None:
    root = tmp_path / "root"
    path = root / "a" / "b" / "cache"
    cache = open_cache(kind, path)
    hostile = ["../../etc/passwd", "/etc/passwd", "..", "a/../../b", "\x00", "C:\\x", "~root"]
    for i, text in enumerate(hostile):
        cache.set(text, output=i, p=text)
        cache.set("f", output=i, p=text, **{"../x": text})

    @cache.memoize(name="../../../evil/name")
    def f(p: str) -> str:
        return p

    for text in hostile:
        assert f(text) == text
    assert files_under(root) == files_under(path)  # nothing outside the cache directory
    if kind == "json":
        names = [p.name for p in path.iterdir()]
        assert all(len(n) == 37 and n.endswith(".json") for n in names)
        assert len(names) == 3 * len(hostile)
    for i, text in enumerate(hostile):
        assert cache.get(text, p=text) == i
    cache.close()


# ---------------------------------------------------------------- failed writes


def test_unserializable_value_raises_before_writing(fcache: Any, kind: str, path: Path) -> None:
    fcache.set("f", output="old", x=1)
    before = {p: p.read_bytes() for p in files_under(path)} if kind == "json" else None
    for bad in (object(), lambda: 1, {"deep": [threading.Lock()]}):
        with pytest.raises(SerializationError):
            fcache.set("f", output=bad, x=1)
        with pytest.raises(SerializationError):
            fcache.set("g", output=bad, x=1)
    assert fcache.get("f", x=1) == "old"
    assert fcache.get("g", x=1) is ...
    assert len(fcache) == 1
    if kind == "json":
        assert {p: p.read_bytes() for p in files_under(path)} == before


def test_unserializable_result_in_a_batch_writes_nothing(fcache: Any) -> None:
    @fcache.batch_memoize
    def f(items: List[int]) -> List[Any]:
        return [object() if i == 3 else i for i in items]

    with pytest.raises(SerializationError):
        f([1, 2, 3])
    assert len(fcache) == 0


@pytest.mark.parametrize("target", ["replace", "fsync"])
def test_json_failed_write_keeps_old_value_and_leaves_no_temp(
    path: Path, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    cache = JsonCache(path)
    cache.set("f", output="old", x=1)

    def fail(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(os, target, fail)
        with pytest.raises(BackendError, match="No space left"):
            cache.set("f", output="new", x=1)
        with pytest.raises(BackendError):
            cache.set("f", output="new", x=2)
    assert cache.get("f", x=1) == "old"
    assert cache.get("f", x=2) is ...
    assert [p.name for p in path.iterdir()] == [f"{digest_of('f', x=1)}.json"]


def test_json_interrupted_write_leaves_no_temp(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = JsonCache(path)
    cache.set("f", output="old", x=1)

    def interrupt(*args: Any) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(os, "fsync", interrupt)
        with pytest.raises(KeyboardInterrupt):
            cache.set("f", output="new", x=1)
    assert cache.get("f", x=1) == "old"
    assert len(list(path.iterdir())) == 1


def test_disk_failed_write_keeps_old_value(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = DiskCache(path, disk_min_file_size=0)  # every value in its own file
    cache.set("f", output="old", x=1)

    def disk_full(*args: Any, **kwargs: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr(SafeDisk, "_write", disk_full)
        with pytest.raises(BackendError, match="No space left"):
            cache.set("f", output="new", x=1)
    assert cache.get("f", x=1) == "old"
    assert len(cache) == 1


class _BrokenConnection:
    """A SQLite connection whose every statement fails, as on a failing disk."""

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        raise sqlite3.OperationalError("disk I/O error")

    def close(self) -> None:
        pass


def break_sqlite(m: pytest.MonkeyPatch, cache: DiskCache) -> None:
    """Make every SQLite statement of ``cache`` fail until ``m`` is undone."""
    cache.close()  # drop this thread's open connection: the next one is broken
    m.setattr(diskcache.Cache, "_con", property(lambda self: _BrokenConnection()))


def test_disk_storage_errors_are_backend_errors(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = DiskCache(path)
    cache.set("f", output=1, x=1)
    assert cache.get("f", x=1) == 1
    with monkeypatch.context() as m:
        break_sqlite(m, cache)
        for op in (
            lambda: cache.get("f", x=1),
            lambda: cache.set("f", output=2, x=1),
            lambda: cache.remove("f", x=1),
            lambda: list(cache),
            lambda: len(cache),
            cache.clear,
        ):
            with pytest.raises(BackendError, match=r"DiskCache at .*(disk I/O error|locked)") as info:
                op()
            assert isinstance(info.value.__cause__, (sqlite3.OperationalError, diskcache.Timeout))
    assert cache.get("f", x=1) == 1  # works again once the disk does


def test_memoize_fail_open_computes_without_a_broken_cache(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = DiskCache(path)

    @cache.memoize(fail_open=True)
    def f(x: int) -> int:
        return x + 1

    with monkeypatch.context() as m:
        break_sqlite(m, cache)
        with pytest.raises(BackendError):
            cache.get("f", x=1)
        assert f(1) == 2
        assert f(1) == 2
    assert f(1) == 2  # the cache works again
    assert f.cache_get(1) == 2


# ---------------------------------------------------------------- threads


def test_threads_mixed_operations(fcache: Any) -> None:
    errors: List[BaseException] = []
    last: dict = {}
    barrier = threading.Barrier(8)

    @fcache.memoize
    def shared(x: int) -> int:
        return x * 3

    def worker(t: int) -> None:
        try:
            barrier.wait()
            for i in range(25):
                key = i % 5
                fcache.set("w", output=(t, i), t=t, k=key)
                last[(t, key)] = (t, i)
                got = fcache.get("w", t=t, k=key)
                assert got == (t, i)
                assert shared(i % 7) == (i % 7) * 3
                if i % 9 == 0:
                    assert fcache.remove("w", t=t, k=key) is True
                    del last[(t, key)]
                fcache.get("w", t=(t + 1) % 8, k=key)  # another thread's keys
                if i % 13 == 0:
                    list(fcache)
                    len(fcache)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    for (t, key), value in last.items():
        assert fcache.get("w", t=t, k=key) == value
    stored = {(e.inputs["t"], e.inputs["k"]) for e in fcache if e.func == "w"}
    assert stored == set(last)


# ---------------------------------------------------------------- configuration and repr


def test_repr_names_the_directory(fcache: Any, path: Path) -> None:
    assert str(path) in repr(fcache)
    assert fcache.path == str(path)


def test_path_that_is_a_file_is_a_config_error(kind: str, tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        open_cache(kind, f)


def test_jsoncache_rejects_other_serializers(path: Path) -> None:
    with pytest.raises(ConfigError, match="serializer"):
        JsonCache(path, serializer="pickle")
    assert JsonCache(path, serializer="json").get("f", x=1) is ...


def test_diskcache_unknown_option_is_named(path: Path) -> None:
    with pytest.raises(ConfigError, match="'size_limt'"):
        DiskCache(path, size_limt=10)
    with pytest.raises(ConfigError, match="'disk'"):
        DiskCache(path, disk=diskcache.Disk)
    with pytest.raises(ConfigError, match="eviction_policy"):
        DiskCache(path, eviction_policy="random")
    with pytest.raises(ConfigError, match="size_limit"):
        DiskCache(path, size_limit=-5)


def test_diskcache_options_reach_diskcache(path: Path) -> None:
    cache = DiskCache(path, size_limit=2**20, eviction_policy="least-recently-used", cull_limit=5)
    assert cache.size_limit == 2**20
    cache.close()
    with diskcache.Cache(str(path)) as raw:
        assert raw.eviction_policy == "least-recently-used"
        assert raw.cull_limit == 5
    reopened = DiskCache(path)  # size_limit=None keeps the directory's own limit
    assert reopened.size_limit == 2**20
    reopened.close()
    assert DiskCache(path.parent / "new").size_limit == 2**30


# ---------------------------------------------------------------- JsonCache files


def test_json_files_are_readable_and_named_by_digest(path: Path) -> None:
    cache = JsonCache(path)
    cache.set("f", output={"b": 1, "a": (1, 2)}, x=1)
    (file,) = path.iterdir()
    assert file.name == f"{digest_of('f', x=1)}.json"
    text = file.read_text("utf-8")
    assert text.startswith("{\n  ")  # indented
    tree = json.loads(text)
    assert list(tree) == sorted(tree)  # the record's fields in sorted order: stable diffs
    assert list(tree["output"]) == ["b", "a"]  # the value as it was
    assert '"f"' in text


def test_json_ahvn_layout_names_files_like_agentheaven(path: Path) -> None:
    cache = JsonCache(path, key_scheme="ahvn")
    cache.set("f", output=3, x=1, y=2)
    (file,) = path.iterdir()
    assert file.name == f"{ahvn_key('f', {'x': 1, 'y': 2}):040d}.json"
    assert JsonCache(path, key_scheme="ahvn").get("f", x=1, y=2) == 3


def test_json_stale_temp_files_are_removed(path: Path) -> None:
    cache = JsonCache(path)
    cache.set("f", output=1, x=1)
    stale = path / ".0123abcd.00112233aabbccdd.tmp"
    fresh = path / ".4567abcd.00112233aabbccdd.tmp"
    other = path / "notes.txt"
    for p in (stale, fresh, other):
        p.write_bytes(b"partial")
    old = time.time() - STALE_TEMP_AGE - 5
    os.utime(stale, (old, old))
    assert len(cache) == 1  # temp files are not entries
    JsonCache(path)  # opening removes the dead writer's file, not a live one's
    assert not stale.exists() and fresh.exists() and other.exists()
    os.utime(fresh, (old, old))
    cache.clear()
    assert sorted(p.name for p in path.iterdir()) == ["notes.txt"]


def test_json_directory_in_place_of_an_entry_is_a_miss(path: Path) -> None:
    cache = JsonCache(path)
    (path / f"{digest_of('f', x=1)}.json").mkdir()
    with pytest.warns(RuntimeWarning):
        assert cache.get("f", x=1) is ...


# ---------------------------------------------------------------- DiskCache pickles


class _SideEffect:
    """Unpickling this creates a directory: proof that code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (os.mkdir, (self.marker,))


def test_planted_pickle_is_never_unpickled_by_default(path: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    key_marker = tmp_path / "pwned-by-key"
    cache = DiskCache(path)
    cache.set("f", output="ok", x=2)
    with diskcache.Cache(str(path)) as raw:  # an attacker with write access to the directory
        raw.set(digest_of("f", x=1), _SideEffect(str(marker)))
        raw.set(_SideEffect(str(key_marker)), "a value under a pickled key")

    with pytest.warns(RuntimeWarning, match="trust_pickle") as record:
        assert cache.get("f", x=1) is ...
    assert len(record) == 1
    with pytest.warns(RuntimeWarning):
        assert [e.output for e in cache] == ["ok"]
    with pytest.warns(RuntimeWarning):
        assert cache.remove("f", x=1) is False

    @cache.memoize(name="f")
    def f(x: int) -> str:
        return "computed"

    with pytest.warns(RuntimeWarning):
        assert f(1) == "computed"
    assert f(1) == "computed"  # the planted value was replaced
    assert not marker.exists() and not key_marker.exists()


def test_trust_pickle_lets_diskcache_unpickle(path: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with diskcache.Cache(str(path)) as raw:
        raw.set(digest_of("f", x=1), _SideEffect(str(marker)))
    trusted = DiskCache(path, trust_pickle=True)
    with pytest.warns(RuntimeWarning):  # unpickled (trusted), but not a cachehaven record
        assert trusted.get("f", x=1) is ...
    assert marker.exists()


def test_agentheaven_pickled_dicts_need_trust_pickle(path: Path) -> None:
    key = ahvn_key("f", {"x": 1})
    with diskcache.Cache(str(path)) as raw:  # how AgentHeaven 0.9.2 stored an entry
        raw.set(key, {"func": "f", "inputs": {"x": 1}, "output": 42, "metadata": {}})
    safe = DiskCache(path, key_scheme="ahvn")
    with pytest.warns(RuntimeWarning, match="trust_pickle"):
        assert safe.get("f", x=1) is ...
    trusted = DiskCache(path, key_scheme="ahvn", trust_pickle=True)
    assert trusted.get("f", x=1) == 42
    assert [(e.func, e.inputs, e.output) for e in trusted] == [("f", {"x": 1}, 42)]
    assert trusted.get("f", x=2) is ...
    trusted.set("f", output=43, x=1)  # rewritten as a cachehaven record, safe to read
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert safe.get("f", x=1) == 43
        assert [e.output for e in safe] == [43]


def test_signed_pickle_serializer(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CACHEHAVEN_PICKLE_SECRET", raising=False)
    cache = DiskCache(path, serializer="pickle", secret="s3cret")
    cache.set("f", output=Point(1), x=1)
    assert cache.get("f", x=1) == Point(1)
    with pytest.raises(SerializationError):
        cache.set("f", output=lambda: 1, x=1)  # cannot be pickled: nothing written
    assert cache.get("f", x=1) == Point(1)
    other = DiskCache(path, serializer="pickle", secret="another")
    with pytest.warns(RuntimeWarning) as record:
        assert other.get("f", x=1) is ...  # signed with another secret: refused
    assert "s3cret" not in str(record[0].message)
    assert "s3cret" not in repr(cache)
    with pytest.raises(ConfigError):
        DiskCache(path, serializer="pickle")  # no secret


class Point:
    """A user class: storable with the signed pickle serializer only."""

    def __init__(self, x: int) -> None:
        self.x = x

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and other.x == self.x


# ---------------------------------------------------------------- DiskCache hit path

RECORD_VALUES = [
    {"x": 7, "ok": True, "name": "item"},
    None,
    "héllo \\u00e9 \ud800",
    (1, (2, 3)),
    {1: "int key", "__ch__": "a user key that looks like a tag"},
    [b"\x00", {1.5, 2.5}, datetime.datetime(2024, 1, 2, 3, 4, 5)],
    {"nested": {"output": 1, "key": "x", "expires_at": None, "metadata": {}}},
    float("inf"),
    2**80,
]


@pytest.mark.parametrize("value", RECORD_VALUES, ids=lambda v: type(v).__name__)
@pytest.mark.parametrize("annotated", [False, True])
def test_fast_record_reader_agrees_with_load_record(value: Any, annotated: bool) -> None:
    from cachehaven.backends.disk import _SLOW, _fast_record
    from cachehaven.keys import call_key
    from cachehaven.serialize import JsonSerializer, Record, dump_record, load_record

    inputs = {"q": 'a "quoted" ,"output": input', "t": (1, 2), "m": {"key": "k"}}
    key = call_key("mod.f", inputs).bytes
    entry = CacheEntry("mod.f", inputs, "computed", value if annotated else ..., {"m": [1]})
    if not annotated:
        entry = CacheEntry("mod.f", inputs, value, ..., {"m": [1]})
    for expires_at in (None, 2_000_000_000.25):
        data = dump_record(Record(entry, key, expires_at), JsonSerializer())
        stored = load_record(data, JsonSerializer())
        expected = stored.entry.value
        found = _fast_record(data, key)
        assert found is not _SLOW  # the layout dump_record writes is the one the hit path reads
        got, got_expires_at = found
        assert got == expected
        assert type(got) is type(expected)
        assert got_expires_at == stored.expires_at == expires_at
        other = call_key("mod.f", {**inputs, "q": "other"}).bytes
        assert _fast_record(data, other) is _SLOW  # load_record decides: another key
    assert _fast_record(b'{"cachehaven":2,"func":"f"}', key) is _SLOW
    assert _fast_record(data[:-3] + b"}", key) is _SLOW


@pytest.mark.parametrize("options", [{"statistics": True}, {"eviction_policy": "least-recently-used"}])
def test_diskcache_read_tracking_options_still_work(path: Path, options: dict) -> None:
    cache = DiskCache(path, **options)
    calls: List[int] = []

    @cache.memoize
    def f(x: int) -> int:
        calls.append(x)
        return x * 2

    assert [f(1), f(1), f(2), f(1)] == [2, 2, 4, 2]
    assert calls == [1, 2]
    if "statistics" in options:
        with diskcache.Cache(str(path)) as raw:
            hits, _ = raw.stats()
        assert hits >= 2  # diskcache saw the reads
    cache.close()


def test_diskcache_big_values_live_in_files(path: Path) -> None:
    cache = DiskCache(path)
    big = {"text": "x" * 100_000, "t": (1, 2)}
    cache.set("f", output=big, x=1)
    assert any(p.suffix == ".val" for p in files_under(path))  # diskcache stored a file
    assert cache.get("f", x=1) == big
    assert [e.output for e in cache] == [big]
    assert cache.remove("f", x=1)
    assert cache.get("f", x=1) is ...


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_diskcache_after_fork_uses_its_own_connection(path: Path) -> None:
    import multiprocessing

    cache = DiskCache(path)
    cache.set("f", output="parent", x=1)
    cache.set("f", output="parent", x=3)
    assert cache.get("f", x=1) == "parent"  # this thread's connection is now open
    assert cache.get("f", x=3) == cache.get("f", x=3) == "parent"  # and x=3 in its near cache

    def child() -> None:
        ok = cache.get("f", x=1) == "parent" and cache.get("f", x=3) == "parent"
        cache.set("f", output="child", x=2)
        cache.set("f", output="child", x=3)
        ok = ok and cache.get("f", x=2) == "child" and cache.get("f", x=3) == "child"
        os._exit(0 if ok else 1)

    proc = multiprocessing.get_context("fork").Process(target=child)
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0
    assert cache.get("f", x=2) == "child"
    assert cache.get("f", x=3) == "child"  # the child's write is seen by the parent's near cache
    assert cache.get("f", x=1) == "parent"


# ---------------------------------------------------------------- near cache (both backends)


def _near_of(cache: Any) -> Any:
    """The near cache serving this thread's hits (white-box: proves the path under test ran)."""
    if isinstance(cache, JsonCache):
        return cache._near
    return cache._local.con[2]


def _settle(kind: str, path: Path) -> None:
    """Age the entry files so JsonCache may keep them (it waits two seconds after a write)."""
    if kind == "json":
        old = time.time() - 10
        for p in path.glob("*.json"):
            os.utime(p, (old, old))


def test_near_cache_sees_writes_of_other_writers(kind: str, path: Path) -> None:
    reader, writer = open_cache(kind, path), open_cache(kind, path)
    calls: List[int] = []

    @reader.memoize(name="f")
    def f(x: int) -> dict:
        calls.append(x)
        return {"v": x, "items": [1, 2]}

    assert f(1) == {"v": 1, "items": [1, 2]}
    _settle(kind, path)
    assert f(1) == {"v": 1, "items": [1, 2]}
    assert len(_near_of(reader)) == 1  # the next hits are served from memory
    got = f(1)
    got["items"].append(3)  # a caller mutating its result never changes what others get
    assert f(1) == {"v": 1, "items": [1, 2]}

    writer.set("f", output={"v": "new"}, x=1)  # another object: another file / connection
    assert f(1) == {"v": "new"}
    writer.remove("f", {"x": 1})
    assert f(1) == {"v": 1, "items": [1, 2]}  # gone, so computed again
    assert calls == [1, 1]
    reader.close()
    writer.close()


def test_near_cache_sees_own_writes_and_clear(kind: str, path: Path) -> None:
    cache = open_cache(kind, path)
    cache.set("f", output="old", x=1)
    _settle(kind, path)

    @cache.memoize(name="f")
    def f(x: int) -> str:
        return "computed"

    assert f(1) == "old"
    assert f(1) == "old"
    cache.set("f", output="new", x=1)
    assert f(1) == "new"
    cache.clear()
    assert f(1) == "computed"
    cache.close()


def test_near_cache_respects_expiry(kind: str, path: Path, fake_time: FakeTime) -> None:
    cache = open_cache(kind, path)

    @cache.memoize(name="f", ttl=60)
    def f(x: int) -> list:
        return [x, fake_time.now]

    first = f(1)
    _settle(kind, path)
    assert f(1) == first
    assert f(1) == first
    fake_time.now += 61
    assert f(1) != first
    cache.close()


def test_near_cache_disabled_and_bad_sizes(kind: str, path: Path) -> None:
    cache = open_cache(kind, path, near_cache=0)
    cache.set("f", output=[1], x=1)
    _settle(kind, path)

    @cache.memoize(name="f")
    def f(x: int) -> list:
        return [0]

    assert f(1) == [1] and f(1) == [1]
    assert _near_of(cache) is None
    cache.close()
    for bad in (-1, 1.5, True, "10"):
        with pytest.raises(ConfigError, match="near_cache"):
            open_cache(kind, path, near_cache=bad)


# ---------------------------------------------------------------- DiskCache's WAL-index stamp
#
# DiskCache validates its near cache against SQLite's WAL-index header, read from a view of
# the directory's cache.db-shm (cachehaven.backends._walindex), falling back to
# PRAGMA data_version. These tests check that writes by any connection of any process are
# seen, through both stamps, and that the fast path really is the one running.


def _state(cache: DiskCache) -> Any:
    """This thread's hit-path state: (connection, generation, near, [stamp], view)."""
    return cache._local.con


def _statements_of(cache: DiskCache, op: Any) -> List[str]:
    """The SQL statements this thread's connection runs during ``op()``."""
    con = _state(cache)[0]
    ran: List[str] = []
    con.set_trace_callback(ran.append)
    try:
        op()
    finally:
        con.set_trace_callback(None)
    return ran


def _record(value: Any, **inputs: Any) -> str:
    """The stored bytes (hex) of ``f(**inputs) -> value``, as DiskCache writes them."""
    from cachehaven.keys import call_key
    from cachehaven.serialize import JsonSerializer, Record, dump_record

    entry = CacheEntry("f", inputs, value)
    return dump_record(Record(entry, call_key("f", inputs).bytes, None), JsonSerializer()).hex()


def _foreign(path: Path, code: str, *args: str) -> None:
    """Run ``code`` in another Python process that knows nothing of cachehaven: ``cache`` is
    a plain ``diskcache.Cache`` on ``path``, ``args`` is ``sys.argv[1:]``."""
    import subprocess
    import sys
    import textwrap

    script = "\n".join(
        [
            "import sys, diskcache",
            f"cache = diskcache.Cache({str(path)!r})",
            textwrap.dedent(code),
            "cache.close()",
        ]
    )
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]


def _foreign_set(path: Path, value: Any) -> None:
    """Another process, with a plain ``diskcache.Cache``, stores ``f(x=1) -> value``."""
    _foreign(
        path, "cache.set(sys.argv[1], bytes.fromhex(sys.argv[2]))", digest_of("f", x=1), _record(value, x=1)
    )


def _memoized(cache: DiskCache, calls: List[int]) -> Any:
    @cache.memoize(name="f")
    def f(x: int) -> dict:
        calls.append(x)
        return {"v": "computed", "x": x}

    return f


@pytest.mark.parametrize("stamp", ["header", "data_version"])
def test_diskcache_near_cache_sees_a_plain_diskcache_in_another_process(
    path: Path, wal_views: Any, monkeypatch: pytest.MonkeyPatch, stamp: str
) -> None:
    if stamp == "data_version":
        monkeypatch.setattr(wal_views, "MAX_VIEWS", 0)  # no view: the PRAGMA path
    cache = DiskCache(path)
    calls: List[int] = []
    f = _memoized(cache, calls)
    assert f(1) == f(1) == {"v": "computed", "x": 1}
    assert (_state(cache)[4] is not None) == (stamp == "header")
    assert len(_state(cache)[2]) == 1  # served from memory from now on
    want = [] if stamp == "header" else ["PRAGMA data_version"]
    assert _statements_of(cache, lambda: f(1)) == want

    _foreign_set(path, "foreign")
    assert f(1) == "foreign"
    assert f(1) == "foreign"
    _foreign(path, "assert cache.delete(sys.argv[1])", digest_of("f", x=1))
    assert f(1) == {"v": "computed", "x": 1}  # gone: computed again
    assert f(1) == {"v": "computed", "x": 1}
    _foreign(path, "cache.clear()")
    assert f(1) == {"v": "computed", "x": 1}
    assert calls == [1, 1, 1]
    cache.close()


def test_diskcache_near_cache_after_a_wal_reset(path: Path, wal_views: Any) -> None:
    # A checkpoint that resets the WAL brings mxFrame (the WAL's length in frames) back to
    # where it was: the header must still differ (new salts, iChange) and the write be seen.
    cache = DiskCache(path)
    calls: List[int] = []
    f = _memoized(cache, calls)
    set_and_reset = """
        con = cache._con
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        cache.set(sys.argv[1], bytes.fromhex(sys.argv[2]))
    """
    key = digest_of("f", x=1)
    for _ in range(2):  # the first write of a key adds pages; overwrites then repeat exactly
        _foreign(path, set_and_reset, key, _record("one", x=1))
    assert f(1) == "one" and f(1) == "one"
    view = _state(cache)[4]
    assert view is not None
    before = view[0:48]
    _foreign(path, set_and_reset, key, _record("two", x=1))  # the same write, after a reset
    after = view[0:48]
    assert after[16:20] == before[16:20]  # the same mxFrame...
    assert after != before  # ...but not the same header
    assert f(1) == "two"
    # a checkpoint alone changes nothing stored: what is served stays right
    _foreign(path, 'cache._con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()')
    assert f(1) == "two"
    assert calls == []
    cache.close()


def test_diskcache_near_cache_sees_other_connections_of_this_process(path: Path, wal_views: Any) -> None:
    cache = DiskCache(path)
    calls: List[int] = []
    f = _memoized(cache, calls)
    assert f(1) == f(1)
    assert _state(cache)[4] is not None
    with diskcache.Cache(str(path)) as raw:  # another connection, not through cachehaven
        raw.set(digest_of("f", x=1), bytes.fromhex(_record("raw", x=1)))
        assert f(1) == "raw"
        other = DiskCache(path)  # another DiskCache object: another connection
        other.set("f", output="other", x=1)
        assert f(1) == "other"
        other.close()
        del other
        raw.set(digest_of("f", x=1), bytes.fromhex(_record("raw again", x=1)))
        assert f(1) == "raw again"
    cache.close()


def test_diskcache_untrusted_header_falls_back_to_data_version(path: Path, wal_views: Any) -> None:
    cache = DiskCache(path)
    calls: List[int] = []
    f = _memoized(cache, calls)
    assert f(1) == f(1)
    con, generation, near, stamp, view = _state(cache)
    header = bytes(view[0:96])
    torn = bytearray(header)
    torn[60] ^= 0xFF  # the two copies differ: a writer is mid-update (or died there)
    uninitialized = bytearray(header)
    uninitialized[12] = uninitialized[60] = 0  # isInit = 0 in both copies
    for fake in (torn, uninitialized):
        cache._local.con = (con, generation, near, stamp, fake)
        f(1)  # another kind of stamp: the near cache starts over
        assert _statements_of(cache, lambda: f(1)) == ["PRAGMA data_version"]
        with diskcache.Cache(str(path)) as raw:
            raw.set(digest_of("f", x=1), bytes.fromhex(_record(f"after {fake[12]}", x=1)))
        assert f(1) == f"after {fake[12]}"  # the fake header never changes: the PRAGMA saw it
    cache._local.con = (con, generation, near, stamp, view)
    assert f(1) == f(1) == "after 0"
    assert _statements_of(cache, lambda: f(1)) == []
    assert calls == [1]
    cache.close()


def test_diskcache_without_wal_uses_data_version(path: Path, wal_views: Any) -> None:
    cache = DiskCache(path, sqlite_journal_mode="delete")
    calls: List[int] = []
    f = _memoized(cache, calls)
    assert f(1) == f(1)
    assert _state(cache)[4] is None
    assert _statements_of(cache, lambda: f(1)) == ["PRAGMA data_version"]
    _foreign_set(path, "foreign")
    assert f(1) == "foreign"
    cache.close()


@pytest.mark.skipif(not os.path.exists("/proc/locks"), reason="needs Linux's /proc/locks")
def test_wal_index_views_never_drop_sqlites_locks(path: Path, wal_views: Any) -> None:
    # Closing any descriptor of a file drops all of this process's POSIX locks on it,
    # SQLite's included: the view's descriptors must stay open for the process's life.
    import gc

    def locks_on(p: Path) -> List[Any]:
        """(kind, first byte, last byte) of this process's POSIX locks on ``p``."""
        ino = os.stat(p).st_ino
        me = str(os.getpid())
        with open("/proc/locks") as f:  # not the locked file: closing it drops nothing
            rows = [ln.split() for ln in f]
        return sorted(
            (r[3], r[6], r[7]) for r in rows if r[1] == "POSIX" and r[4] == me and r[5].endswith(f":{ino}")
        )

    cache = DiskCache(path)
    cache.set("f", output=1, x=1)
    assert cache.get("f", x=1) == 1 and cache.get("f", x=1) == 1
    shm = path / "cache.db-shm"
    assert _state(cache)[4] is not None
    held = locks_on(shm)
    assert ("READ", "128", "128") in held  # SQLite's lock on the DMS byte, while the connection is open
    for _ in range(3):  # more caches on the directory come and go
        other = DiskCache(path)
        assert other.get("f", x=1) == 1 and other.get("f", x=1) == 1
        assert _state(other)[4] is _state(cache)[4]  # one view per file
        other.close()
        del other
        gc.collect()
        assert locks_on(shm) == held
    cache.close()


@pytest.mark.skipif(not os.path.exists("/proc/locks"), reason="needs Linux's /proc/locks")
def test_wal_index_views_outlive_the_modules_that_made_them(path: Path) -> None:
    # At shutdown the interpreter clears every module; a view freed then would close its
    # descriptor and release SQLite's locks under a connection still in use. Emptying the
    # module's own lists here stands for that: the view must stay alive regardless.
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        f"""
        import gc, os
        from cachehaven import DiskCache
        from cachehaven.backends import _walindex

        cache = DiskCache({str(path)!r})
        cache.set("f", output=1, x=1)
        assert cache.get("f", x=1) == cache.get("f", x=1) == 1
        assert cache._local.con[4] is not None
        ino = os.stat({str(path / "cache.db-shm")!r}).st_ino

        def dms_locked():
            with open("/proc/locks") as f:
                rows = [ln.split() for ln in f]
            return any(
                r[1] == "POSIX" and r[4] == str(os.getpid()) and r[5].endswith(f":{{ino}}") and r[6] == "128"
                for r in rows
            )

        assert dms_locked()
        cache._local.__dict__.clear()  # this thread's state, with its reference to the view
        _walindex._KEPT.clear()
        _walindex._views.clear()
        gc.collect()
        print("locked" if dms_locked() else "released")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["locked"]
