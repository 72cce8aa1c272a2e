"""InMemCache snapshots: round trips, limits on load, atomic saves, and every way a file can
be wrong (corrupt, truncated, foreign, newer) raising a typed error with the cache untouched."""

from __future__ import annotations

import datetime
import decimal
import json
import os
import pathlib
import uuid
import zoneinfo

import pytest

from cachehaven import (
    CacheEntry,
    InMemCache,
    SerializationError,
    SnapshotCorruptError,
    SnapshotError,
    SnapshotForeignError,
    SnapshotVersionError,
    _core,
)
from cachehaven.snapshot import SNAPSHOT_VERSION

#: One value of every type the JSON serializer supports, nested where it matters.
VALUES = {
    "none": None,
    "bools": [True, False],
    "int": 7,
    "bigint": 2**200 + 1,
    "negbig": -(2**70),
    "float": 1.5,
    "negzero": -0.0,
    "inf": float("inf"),
    "complex": complex(1, -2),
    "str": "héllo\nworld \udcff",
    "bytes": b"\x00\xff",
    "bytearray": bytearray(b"ab"),
    "tuple": (1, (2, "x")),
    "list": [1, [2, {"k": (3,)}]],
    "dict_intkeys": {1: "a", (2, 3): "b"},
    "dict_tagkey": {"__ch__": "not a tag"},
    "set": {1, 2, 3},
    "frozenset": frozenset({"a"}),
    "datetime": datetime.datetime(2024, 5, 6, 7, 8, 9, 10, tzinfo=zoneinfo.ZoneInfo("Europe/Paris")),
    "naive": datetime.datetime(2024, 1, 1),
    "date": datetime.date(2020, 2, 29),
    "time": datetime.time(1, 2, 3, tzinfo=datetime.timezone.utc),
    "timedelta": datetime.timedelta(days=-1, seconds=5),
    "decimal": decimal.Decimal("1.10"),
    "uuid": uuid.UUID(int=12345),
    "path": pathlib.PurePosixPath("/a/b"),
    "ellipsis": [..., (...,)],
}


def _contents(cache):
    return sorted((repr(e.func), repr(e.inputs), repr(e.output), repr(e.expected)) for e in cache)


def _filled(**options):
    cache = InMemCache(**options)
    for name, value in VALUES.items():
        cache.set("v", output=value, name=name)
    return cache


# ---------------------------------------------------------------------- round trips


def test_every_supported_value_round_trips(tmp_path):
    path = tmp_path / "cache.snap"
    cache = _filled()
    assert cache.save(path) == len(VALUES)
    loaded = InMemCache.load(path)
    assert len(loaded) == len(VALUES)
    for name, value in VALUES.items():
        got = loaded.get("v", name=name)
        assert type(got) is type(value), name
        assert repr(got) == repr(value), name


def test_entries_keep_expected_metadata_and_memoized_entries_are_hits(tmp_path):
    path = tmp_path / "s.snap"
    cache = InMemCache()
    cache.set(CacheEntry("f", {"x": 1}, output=1, expected=2, metadata={"m": (1,)}))
    runs = []

    def square(x, power=2):
        runs.append(x)
        return x**power

    memo = cache.memoize(name="square")(square)
    assert memo(3) == 9
    cache.save(path)

    other = InMemCache.load(path)
    again = other.memoize(name="square")(square)
    assert again(3) == 9 and runs == [3]  # a hit in the new cache
    entry = other.retrieve("f", x=1)
    assert (entry.output, entry.expected, entry.metadata, entry.value) == (1, 2, {"m": (1,)}, 2)


def test_ttl_left_survives_and_keeps_running(tmp_path, clock):
    path = tmp_path / "s.snap"
    cache = InMemCache(clock=clock)
    cache.set("short", output=1, ttl=100)
    cache.set("forever", output=2)
    clock.advance(60)  # 40 s left
    cache.save(path)

    clock2 = type(clock)(start=5.0)
    loaded = InMemCache.load(path, clock=clock2)
    clock2.advance(30)
    assert loaded.get("short") == 1
    clock2.advance(20)  # 50 s after the load: past the 40 s it had left
    assert loaded.get("short") is ...
    assert loaded.get("forever") == 2


def test_expired_entries_are_not_saved(tmp_path, clock):
    cache = InMemCache(clock=clock)
    cache.set("a", output=1, ttl=5)
    cache.set("b", output=2)
    clock.advance(10)
    assert cache.save(tmp_path / "s.snap") == 1


def test_dependencies_and_content_hashes_survive(tmp_path):
    path = tmp_path / "s.snap"
    cache = InMemCache()
    cache.set("base", output=1, k=1)
    cache.set("derived", output=2, depends_on=[("base", {"k": 1}), "tag"])
    cache.set("leaf", output=3, depends_on=[("derived", {})])
    cache.set("doc", output="parsed", content_hash=b"v1")
    cache.save(path)

    loaded = InMemCache.load(path)
    assert loaded.get("doc", content_hash=b"v1") == "parsed"
    assert loaded.get("doc", content_hash=b"v2") is ...
    assert loaded.invalidate("base", k=1) == 3

    again = InMemCache.load(path)
    assert again.invalidate_tag("tag") == 2 and again.get("base", k=1) == 1


def test_loading_into_an_existing_cache_adds_and_replaces(tmp_path):
    path = tmp_path / "s.snap"
    source = InMemCache()
    source.set("a", output="from file")
    source.set("b", output="from file")
    source.save(path)
    target = InMemCache()
    target.set("a", output="old")
    target.set("c", output="kept")
    assert target.load(path) == 2
    assert [target.get(f) for f in "abc"] == ["from file", "from file", "kept"]


def test_load_passes_options_to_the_new_cache(tmp_path):
    path = tmp_path / "s.snap"
    _filled().save(path)
    loaded = InMemCache.load(path, max_entries=500, policy="lru", events=8)
    assert isinstance(loaded, InMemCache)
    assert loaded.maxsize == 500 and loaded.store.policy == "lru"


def test_memoized_methods_round_trip(tmp_path):
    cache = InMemCache()

    class Model:
        def __init__(self, name):
            self.name = name

        def __cache_key__(self):
            return self.name

        @cache.memoize
        def predict(self, x):
            return f"{self.name}:{x}"

    assert Model("m").predict(1) == "m:1"
    cache.save(tmp_path / "s.snap")
    cache.clear()
    assert cache.load(tmp_path / "s.snap") == 1
    assert Model("m").predict.cache_get(1) == "m:1"


# ---------------------------------------------------------------------- limits


def test_limits_apply_on_load_and_the_hottest_entries_are_kept(tmp_path):
    path = tmp_path / "s.snap"
    cache = InMemCache(max_entries=100)
    for i in range(50):
        cache.set("f", output=i, x=i)
    for _ in range(20):
        for hot in (7, 8, 9):
            cache.get("f", x=hot)
    cache.save(path)

    small = InMemCache.load(path, max_entries=5)
    assert len(small) == 5
    assert {7, 8, 9} <= {e.inputs["x"] for e in small}

    by_bytes = InMemCache.load(path, max_bytes=1000, weigher=lambda v: 100)
    assert len(by_bytes) <= 10
    assert by_bytes.stats()["bytes"] <= 1000


def test_a_failing_weigher_fails_the_load_before_anything_is_stored(tmp_path):
    path = tmp_path / "s.snap"
    _filled().save(path)

    def weigher(value):
        if value == 7:
            raise RuntimeError("cannot weigh")
        return 1

    cache = InMemCache(weigher=weigher)
    cache.set("mine", output=1)
    with pytest.raises(RuntimeError, match="cannot weigh"):
        cache.load(path)
    assert _contents(cache) == [("'mine'", "{}", "1", "Ellipsis")]


# ---------------------------------------------------------------------- bad files


@pytest.fixture
def snapshot(tmp_path):
    path = tmp_path / "good.snap"
    cache = InMemCache()
    for i in range(5):
        cache.set("f", output={"i": i, "t": (i,)}, x=i, depends_on=["t"], content_hash=str(i))
    cache.save(path)
    return path


@pytest.fixture
def victim():
    """A cache with content, to check that a failed load leaves it as it was."""
    cache = InMemCache()
    cache.set("mine", output=[1, 2], y=1)
    cache.set("other", output="x", depends_on=[("mine", {"y": 1})])
    return cache


def _assert_refused(victim, path, error):
    before = _contents(victim)
    with pytest.raises(error) as info:
        victim.load(path)
    assert str(path) in str(info.value)
    assert _contents(victim) == before
    meta = victim.store._meta_raw(_core.call_key("other", {}))
    assert meta is not None and meta[1] == [_core.call_key("mine", {"y": 1})]  # dependencies too
    with pytest.raises(error):
        InMemCache.load(path)


def test_every_truncation_is_refused(snapshot, victim, tmp_path):
    data = snapshot.read_bytes()
    cut = tmp_path / "cut.snap"
    for n in sorted({0, 1, 5, 20, 40, len(data) // 2, len(data) - 40, len(data) - 2, len(data) - 1}):
        cut.write_bytes(data[:n])
        before = _contents(victim)
        with pytest.raises(SnapshotError):
            victim.load(cut)
        assert _contents(victim) == before
    cut.write_bytes(data[: len(data) // 2])
    _assert_refused(victim, cut, SnapshotCorruptError)
    cut.write_bytes(data.rsplit(b"\n", 2)[0] + b"\n")  # cut at a line boundary: no trailer
    _assert_refused(victim, cut, SnapshotCorruptError)


def test_a_flipped_byte_is_refused(snapshot, victim):
    data = bytearray(snapshot.read_bytes())
    i = data.index(b'"i":3')
    data[i + 4] = ord("4")  # still valid JSON, still a valid record: only the checksum knows
    snapshot.write_bytes(bytes(data))
    _assert_refused(victim, snapshot, SnapshotCorruptError)


def test_an_edited_entry_with_a_fixed_checksum_is_still_refused(snapshot, victim):
    import hashlib

    lines = snapshot.read_bytes().split(b"\n")
    i = next(i for i, line in enumerate(lines) if b'"inputs":{"x":0}' in line)
    lines[i] = lines[i].replace(b'"inputs":{"x":0}', b'"inputs":{"x":99}')  # the key no longer matches
    body = b"\n".join(lines[:-2]) + b"\n"
    trailer = json.dumps({"end": len(lines) - 3, "sha256": hashlib.sha256(body).hexdigest()}).encode()
    snapshot.write_bytes(body + trailer + b"\n")
    with pytest.raises(SnapshotCorruptError, match=f"line {i + 1}: .*key does not match"):
        victim.load(snapshot)


def test_an_invalid_record_with_a_fixed_checksum_names_its_line(snapshot, victim):
    import hashlib

    lines = snapshot.read_bytes().split(b"\n")
    lines[3] = b'{"record": {"cachehaven": 1}}'
    body = b"\n".join(lines[:-2]) + b"\n"
    trailer = json.dumps({"end": len(lines) - 3, "sha256": hashlib.sha256(body).hexdigest()}).encode()
    snapshot.write_bytes(body + trailer + b"\n")
    with pytest.raises(SnapshotCorruptError, match="line 4"):
        victim.load(snapshot)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\x89PNG\r\n\x1a\n\x00\x00",
        b'{"cachehaven": 1, "func": "f", "inputs": {}, "metadata": {}, "key": "", "expires_at": null}\n',
        b'{"format": "something-else", "version": 1}\n',
        b"[1, 2, 3]\n",
        b"plain text\n",
    ],
    ids=["empty", "binary", "jsoncache-record", "other-format", "json-list", "text"],
)
def test_foreign_files_are_refused(tmp_path, victim, content):
    path = tmp_path / "foreign"
    path.write_bytes(content)
    _assert_refused(victim, path, SnapshotForeignError)


def test_a_newer_version_is_refused_whatever_follows(snapshot, victim):
    data = snapshot.read_bytes()
    header = data.split(b"\n", 1)[0]
    tree = json.loads(header)
    tree["version"] = SNAPSHOT_VERSION + 1
    snapshot.write_bytes(json.dumps(tree, separators=(",", ":")).encode() + b"\n" + b"future stuff")
    _assert_refused(victim, snapshot, SnapshotVersionError)


def test_another_key_format_is_refused(snapshot, victim):
    data = snapshot.read_bytes()
    snapshot.write_bytes(data.replace(b'"key_format":1', b'"key_format":2', 1))
    _assert_refused(victim, snapshot, SnapshotVersionError)


def test_a_missing_file_raises_file_not_found(tmp_path, victim):
    with pytest.raises(FileNotFoundError):
        victim.load(tmp_path / "nope.snap")


def test_snapshot_errors_are_value_errors():
    assert issubclass(SnapshotCorruptError, ValueError)
    assert issubclass(SnapshotForeignError, SnapshotError)
    assert issubclass(SnapshotVersionError, SnapshotError)


# ---------------------------------------------------------------------- atomic saves


def test_an_unserializable_value_fails_the_save_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "s.snap"
    good = InMemCache()
    good.set("a", output=1)
    good.save(path)
    before = path.read_bytes()

    bad = InMemCache()
    bad.set("a", output=1)
    bad.set("obj", output=object())
    with pytest.raises(SerializationError, match="'obj'"):
        bad.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["s.snap"]  # no temporary file left behind
    assert bad.save(path, strict=False) == 1
    assert InMemCache.load(path).get("a") == 1


def test_a_save_interrupted_before_the_rename_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "s.snap"
    cache = _filled()
    cache.save(path)
    before = path.read_bytes()
    cache.set("new", output="entry")

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space"):
        cache.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["s.snap"]
    assert InMemCache.load(path).get("new") is ...


def test_saving_twice_replaces_the_file(tmp_path):
    path = tmp_path / "s.snap"
    cache = InMemCache()
    cache.set("a", output=1)
    cache.save(path)
    cache.set("a", output=2)
    cache.save(str(path))
    assert InMemCache.load(path).get("a") == 2


def test_memoized_entries_with_exclusions_and_star_args_are_hits_after_a_load(tmp_path):
    def f(x, opts, *args, verbose=False, secret=None, **kw):
        return (x, args, kw)

    cache = InMemCache(exclude=["secret"])
    memo = cache.memoize(exclude=["verbose", "opts.key"], name="f")(f)
    memo(1, {"a": 1, "key": "s"}, 5, 6, verbose=True, secret="z", extra=3)
    cache.save(tmp_path / "s.snap")

    loaded = InMemCache.load(tmp_path / "s.snap", exclude=["secret"])
    again = loaded.memoize(exclude=["verbose", "opts.key"], name="f")(f)
    assert again(1, {"a": 1, "key": "other"}, 5, 6, secret="q", extra=3) == (1, (5, 6), {"extra": 3})
    assert again.cache_info().hits == 1


def test_an_unserializable_entry_error_names_the_function_and_the_way_out(tmp_path):
    cache = InMemCache()
    cache.set("holder", output={"lock": object()})
    with pytest.raises(SerializationError, match=r"'holder'.*output\['lock'\].*strict=False") as info:
        cache.save(tmp_path / "s.snap")
    assert "pickle" not in str(info.value)
