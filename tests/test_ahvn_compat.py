"""Caches written by AgentHeaven 0.9.2, read (and written) by cachehaven with key_scheme="ahvn".

The fixtures in ``tests/data/ahvn`` were written by AgentHeaven itself
(``tests/data/ahvn/make_fixtures.py``); ``expected.json`` lists every entry as AgentHeaven
stored it. The fixtures are always copied to ``tmp_path`` before a cache opens them.
"""

from __future__ import annotations

import datetime
import json
import os
import pickle
import shutil
import sqlite3
import subprocess
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import pytest

import cachehaven
from cachehaven import CacheEntry
from cachehaven._ahvn import (
    DB_CONTENT_COLUMN,
    DB_ID_COLUMN,
    DB_ID_LENGTH,
    DB_TABLE,
    JSON_INDENT,
    JSON_SUFFIX,
    decode_record,
    digest_from_storage_key,
    dumps_record,
    encode_record,
    is_ahvn_record,
    loads_record,
    same_call,
    storage_key,
)
from cachehaven.errors import SerializationError

DATA = Path(__file__).parent / "data" / "ahvn"
EXPECTED = json.loads((DATA / "expected.json").read_text(encoding="utf-8"))
AHVN_PYTHON = Path("/tmp/ahvn-venv/bin/python")


def untag(value: Any) -> Any:
    """A value from expected.json's own tagging (see make_fixtures.py) back to Python."""
    if isinstance(value, list):
        return [untag(v) for v in value]
    if isinstance(value, dict):
        if len(value) == 1:
            [(tag, data)] = value.items()
            if tag == "$tuple":
                return tuple(untag(v) for v in data)
            if tag == "$set":
                return {untag(v) for v in data}
            if tag == "$datetime":
                return datetime.datetime.fromisoformat(data)
            if tag == "$ellipsis":
                return ...
            if tag == "$dict":
                return {untag(k): untag(v) for k, v in data}
        return {k: untag(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class Stored:
    """One entry of a fixture: as AgentHeaven stored it, and the inputs it was called with."""

    backend: str
    key: int
    via: str
    entry: CacheEntry
    call_inputs: Dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.backend}-{self.entry.func}-{storage_key(self.key)[-6:]}"


def _stored(backend: str) -> List[Stored]:
    out = []
    for e in EXPECTED["backends"][backend]["entries"]:
        entry = CacheEntry(
            e["func"],
            untag(e["inputs"]),
            untag(e["output"]) if "output" in e else ...,
            untag(e["expected"]) if "expected" in e else ...,
            untag(e["metadata"]),
        )
        passed = e.get("passed", {})
        call_inputs = untag(passed["inputs"]) if "inputs" in passed else entry.inputs
        out.append(Stored(backend, e["key"], e["via"], entry, call_inputs))
    return out


STORED = {name: _stored(name) for name in ("json", "disk", "db")}
ALL_STORED = [s for entries in STORED.values() for s in entries]


@pytest.fixture(autouse=True)
def _utc() -> Iterator[None]:
    """AgentHeaven reads datetimes back in the local zone; the fixtures were written in UTC."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def test_fixtures_cover_what_they_should():
    for name, entries in STORED.items():
        funcs = {s.entry.func for s in entries}
        assert {"f", "add", "g", "u", "kl_store", "lookup", "judge"} <= funcs, name
        assert {s.via for s in entries} == {name}
        assert any(s.entry.annotated and s.entry.output != s.entry.expected for s in entries), name
        assert 10 <= len(entries) <= 20
    assert {"when"} <= {s.entry.func for s in STORED["db"]}
    assert EXPECTED["backends"]["json"]["rejected"], "the JSON fixture documents a write AgentHeaven refused"


# ================================================================ (a) raw fixture data


@pytest.mark.parametrize("stored", ALL_STORED, ids=lambda s: s.id)
def test_ahvn_key_is_the_stored_key(stored: Stored):
    assert cachehaven.ahvn_key(stored.entry.func, stored.call_inputs) == stored.key


def test_json_files_decode_to_the_expected_entries():
    want = {s.key: s.entry for s in STORED["json"]}
    names = sorted(os.listdir(DATA / "json"))
    assert names == sorted(storage_key(k) + JSON_SUFFIX for k in want)
    for name in names:
        text = (DATA / "json" / name).read_text(encoding="utf-8")
        assert decode_record(json.loads(text)) == want[digest_from_storage_key(name)], name
        assert loads_record(text) == want[digest_from_storage_key(name)], name


def test_json_files_lose_tuples_but_keep_the_tuple_key():
    # AgentHeaven's JsonCache writes through json.dump, which skips its type tagging: the
    # file of g((1, 2)) is named by the key of the tuple but holds a list
    [g] = [s for s in STORED["json"] if s.entry.func == "g"]
    assert g.call_inputs == {"a": (1, 2)}
    assert g.entry.inputs == {"a": [1, 2]}
    assert cachehaven.ahvn_key("g", {"a": [1, 2]}) != g.key
    assert same_call(g.entry, "g", {"a": (1, 2)})


def test_json_broken_dir_holds_a_truncated_file_next_to_a_good_one():
    broken = EXPECTED["backends"]["json"]["broken"]
    [truncated] = broken["truncated"]
    text = (DATA / broken["path"] / truncated["file"]).read_text(encoding="utf-8")
    with pytest.raises(SerializationError):
        loads_record(text)
    [good] = broken["good_keys"]
    entry = loads_record((DATA / broken["path"] / (storage_key(good) + JSON_SUFFIX)).read_text("utf-8"))
    assert entry == CacheEntry("add", {"x": 5, "y": 10}, 15)


def _db_rows(path: Path) -> List[tuple]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(f"SELECT {DB_ID_COLUMN}, {DB_CONTENT_COLUMN} FROM {DB_TABLE}").fetchall()
    finally:
        conn.close()


def test_db_schema_is_agentheavens():
    conn = sqlite3.connect(f"file:{DATA / 'db.sqlite'}?mode=ro", uri=True)
    try:
        columns = [(r[1], r[2], r[3], r[5]) for r in conn.execute(f"PRAGMA table_info({DB_TABLE})")]
    finally:
        conn.close()
    assert columns == [
        (DB_ID_COLUMN, f"VARCHAR({DB_ID_LENGTH})", 1, 1),
        (DB_CONTENT_COLUMN, "TEXT", 0, 0),
    ]


def test_db_rows_decode_to_the_expected_entries():
    want = {s.key: s.entry for s in STORED["db"]}
    rows = _db_rows(DATA / "db.sqlite")
    assert sorted(digest_from_storage_key(i) for i, _ in rows) == sorted(want)
    for ident, content in rows:
        assert isinstance(ident, str) and ident == storage_key(int(ident))
        assert loads_record(content) == want[int(ident)], ident


def test_db_rows_reencode_byte_for_byte():
    for ident, content in _db_rows(DATA / "db.sqlite"):
        assert dumps_record(loads_record(content)) == content, ident


def test_db_rows_restore_tagged_types():
    by_kind = {s.entry.inputs.get("kind"): s.entry for s in STORED["db"] if s.entry.func == "shape"}
    rows = {int(i): loads_record(c) for i, c in _db_rows(DATA / "db.sqlite")}
    decoded = {e.inputs.get("kind"): e for e in rows.values() if e.func == "shape"}
    assert decoded == by_kind
    assert decoded["tuple"].output == ((1, "a"), [2, (3,)])
    assert decoded["set"].output == {"s": {1, 2, 3}, "words": {"a", "b"}}
    assert decoded["ellipsis"].output == [1, ..., {"e": ...}]
    assert decoded["nested"].output["big"] == 2**70
    assert decoded["nested"].output["edge1"] == 2**53 + 1
    # datetimes: a naive one comes back as written (same zone), an aware one as naive local
    assert decoded["datetime"].output["naive"] == datetime.datetime(2024, 5, 6, 7, 8, 9, 123456)
    assert decoded["datetime"].output["aware"] == datetime.datetime(2024, 5, 6, 5, 8, 9)
    [when] = [e for e in rows.values() if e.func == "when"]
    assert when.inputs == {"at": datetime.datetime(2024, 1, 1, 12), "tags": {"a", "b"}, "span": (1, 2)}


def _copy(tmp_path: Path, name: str) -> Path:
    src, dst = DATA / name, tmp_path / name
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copyfile(src, dst)
    return dst


def test_disk_values_are_pickled_dicts_under_int_keys(tmp_path: Path):
    diskcache = pytest.importorskip("diskcache")
    want = {s.key: s.entry for s in STORED["disk"]}
    path = _copy(tmp_path, "disk")
    with diskcache.Cache(str(path)) as cache:
        keys = list(cache)
        assert sorted(keys) == sorted(want)
        assert all(type(k) is int for k in keys)
        for key in keys:
            data = cache[key]
            assert isinstance(data, dict) and is_ahvn_record(data)
            assert decode_record(data, tagged=False) == want[key]
    conn = sqlite3.connect(path / "cache.db")
    try:
        rows = conn.execute("SELECT key, raw, mode, filename FROM Cache").fetchall()
    finally:
        conn.close()
    for key, raw, mode, filename in rows:
        assert (mode, filename) == (4, None)  # diskcache's MODE_PICKLE, inline in the row
        # ints beyond int64 (every md5 key, in practice) are stored as pickles, raw=0
        digest = pickle.loads(key) if not raw else key
        assert digest in want
        assert raw == (digest < 2**63)


@pytest.mark.parametrize("stored", ALL_STORED, ids=lambda s: s.id)
def test_same_call_accepts_the_stored_entry(stored: Stored):
    assert same_call(stored.entry, stored.entry.func, stored.call_inputs)
    assert not same_call(stored.entry, stored.entry.func + "_", stored.call_inputs)


# ================================================================ decode_record / encode_record


def test_decode_undoes_every_tag():
    tree = {
        "func": "f",
        "inputs": {"t": {"__obj_type__": "tuple", "__obj_data__": [1, {"__obj_type__": "ellipsis"}]}},
        "output": {
            "s": {"__obj_type__": "set", "__obj_data__": [{"__obj_type__": "tuple", "__obj_data__": [1]}]},
            "d": {"__obj_type__": "datetime", "__obj_data__": 0.5},
            "b": {"__obj_type__": "bigint", "__obj_data__": "-123456789012345678901234567890"},
            "other": {"__obj_type__": "custom", "x": [{"__obj_type__": "ellipsis"}]},
        },
        "expected": None,
        "metadata": None,
    }
    entry = decode_record(tree)
    assert entry == CacheEntry(
        "f",
        {"t": (1, ...)},
        {
            "s": {(1,)},
            "d": datetime.datetime(1970, 1, 1, 0, 0, 0, 500000),
            "b": -123456789012345678901234567890,
            "other": {"__obj_type__": "custom", "x": [...]},
        },
        None,
        {},
    )
    assert entry.value is None and entry.annotated


def test_decode_untagged_keeps_values_as_they_are():
    tree = {"func": "f", "inputs": {}, "output": {"__obj_type__": "ellipsis"}, "metadata": {}}
    assert decode_record(tree, tagged=False).output == {"__obj_type__": "ellipsis"}
    assert decode_record(tree).output is ...


def test_decode_refuses_a_serialized_function_without_loading_it():
    tree = {
        "func": "f",
        "inputs": {},
        "output": {"__obj_type__": "function", "__obj_data__": {"name": "x", "hex_dumps": "80"}},
    }
    with pytest.raises(SerializationError, match=r"output.*function"):
        decode_record(tree)


MALFORMED = {
    "not-a-dict": ["func", "f"],
    "no-func": {"inputs": {}},
    "func-not-str": {"func": 1, "inputs": {}},
    "no-inputs": {"func": "f"},
    "inputs-not-dict": {"func": "f", "inputs": [1]},
    "metadata-not-dict": {"func": "f", "inputs": {}, "metadata": [1]},
    "unknown-field": {"func": "f", "inputs": {}, "key": b"k"},
    "tuple-without-data": {"func": "f", "inputs": {"a": {"__obj_type__": "tuple"}}},
    "tuple-of-str": {"func": "f", "inputs": {}, "output": {"__obj_type__": "tuple", "__obj_data__": "ab"}},
    "set-of-lists": {"func": "f", "inputs": {}, "output": {"__obj_type__": "set", "__obj_data__": [[1]]}},
    "datetime-str": {"func": "f", "inputs": {}, "output": {"__obj_type__": "datetime", "__obj_data__": "x"}},
    "datetime-huge": {
        "func": "f",
        "inputs": {},
        "output": {"__obj_type__": "datetime", "__obj_data__": 1e300},
    },
    "bigint-junk": {"func": "f", "inputs": {}, "output": {"__obj_type__": "bigint", "__obj_data__": "12a"}},
    "bigint-list": {"func": "f", "inputs": {}, "output": {"__obj_type__": "bigint", "__obj_data__": [1]}},
}


@pytest.mark.parametrize("obj", list(MALFORMED.values()), ids=list(MALFORMED))
def test_decode_malformed_record_is_a_serialization_error(obj: Any):
    with pytest.raises(SerializationError):
        decode_record(obj)


def test_loads_record_refuses_bad_json():
    with pytest.raises(SerializationError, match="JSON"):
        loads_record('{"func": "f", "inputs": ')


def test_is_ahvn_record():
    assert is_ahvn_record({"func": "f", "inputs": {}, "metadata": {}})
    assert not is_ahvn_record({"func": "f", "inputs": {}, "key": "00"})
    assert not is_ahvn_record({"entry": {}, "key": "00", "expires_at": None})
    assert not is_ahvn_record([("func", "f")])


RICH = CacheEntry(
    "rich",
    {"t": (1, (2, "x")), "s": {"b", "a"}, "when": datetime.datetime(2024, 2, 29, 23, 59, 59, 999999)},
    {"big": -(2**100), "edge": 2**53, "nested": [{"e": ...}, None, True, 1.5, "ü"]},
    {"ok": (None,)},
    {"by": "me", "at": datetime.datetime(2000, 1, 1)},
)


def test_encode_is_agentheavens_tagging():
    assert encode_record(RICH) == {
        "func": "rich",
        "inputs": {
            "t": {
                "__obj_type__": "tuple",
                "__obj_data__": [1, {"__obj_type__": "tuple", "__obj_data__": [2, "x"]}],
            },
            "s": {"__obj_type__": "set", "__obj_data__": ["a", "b"]},
            "when": {"__obj_type__": "datetime", "__obj_data__": 1709251199.999999},
        },
        "output": {
            "big": {"__obj_type__": "bigint", "__obj_data__": str(-(2**100))},
            "edge": 2**53,
            "nested": [{"e": {"__obj_type__": "ellipsis"}}, None, True, 1.5, "ü"],
        },
        "expected": {"ok": {"__obj_type__": "tuple", "__obj_data__": [None]}},
        "metadata": {"by": "me", "at": {"__obj_type__": "datetime", "__obj_data__": 946684800.0}},
    }


def test_encode_then_decode_round_trips():
    assert decode_record(encode_record(RICH)) == RICH
    assert loads_record(dumps_record(RICH, indent=JSON_INDENT)) == RICH
    assert decode_record(encode_record(RICH, tagged=False), tagged=False) == RICH


def test_encode_leaves_out_unset_output_and_expected():
    assert encode_record(CacheEntry("f", {"x": 1})) == {"func": "f", "inputs": {"x": 1}, "metadata": {}}
    plain = encode_record(CacheEntry("f", {"x": (1,)}, output=None), tagged=False)
    assert plain == {"func": "f", "inputs": {"x": (1,)}, "output": None, "metadata": {}}


def _point() -> Any:
    from collections import namedtuple

    return namedtuple("Point", "x y")(1, 2)


LOSSY = {
    "bytes": ({"blob": b"x"}, "output['blob']"),
    "callable": ([len], "output[0]"),
    "namedtuple": ({"p": _point()}, "output['p']"),
    "int-key": ({"a": {1: "x"}}, "output['a']"),
    "aware-datetime": (datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc), "output"),
    "unsortable-set": ({1, "a"}, "output"),
    "frozenset": (frozenset({1}), "output"),
    "tag-like-dict": ({"__obj_type__": "tuple", "__obj_data__": []}, "output"),
    "lone-surrogate": ("\ud800", "output"),
}


@pytest.mark.parametrize(("value", "path"), list(LOSSY.values()), ids=list(LOSSY))
def test_encode_refuses_what_agentheaven_would_corrupt(value: Any, path: str):
    with pytest.raises(SerializationError) as info:
        encode_record(CacheEntry("f", {}, value))
    assert str(info.value).startswith(path)


def test_encode_refuses_non_str_input_and_metadata_keys():
    with pytest.raises(SerializationError, match="metadata"):
        encode_record(CacheEntry("f", {}, 1, metadata={2: "x"}))
    with pytest.raises(SerializationError, match=r"inputs\['a'\]"):
        encode_record(CacheEntry("f", {"a": b"x"}, 1))


def test_storage_key():
    assert storage_key(6452910756379405413525593858603593943) == "0006452910756379405413525593858603593943"
    assert storage_key(0) == "0" * 40
    assert storage_key(2**128 - 1) == str(2**128 - 1).zfill(40)
    for name in ("0006452910756379405413525593858603593943", "0006452910756379405413525593858603593943.json"):
        assert digest_from_storage_key(name) == 6452910756379405413525593858603593943
    for bad in (-1, 2**128):
        with pytest.raises(ValueError):
            storage_key(bad)
    with pytest.raises(TypeError):
        storage_key("12")  # type: ignore[arg-type]
    for bad_name in ("12.json", "x" * 40, "9" * 40, "0" * 39 + "٣", ".json", "0" * 40 + ".txt"):
        with pytest.raises(ValueError):
            digest_from_storage_key(bad_name)


def test_same_call_compares_in_agentheavens_form():
    stored = CacheEntry("g", {"a": [1, 2], "when": datetime.datetime(2024, 1, 1, 0, 0)}, 0)
    aware = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    assert same_call(stored, "g", {"a": (1, 2), "when": aware})
    assert not same_call(stored, "g", {"a": (1, 3), "when": aware})
    assert not same_call(stored, "g", {"a": (1, 2.0), "when": aware})
    assert not same_call(stored, "g", {"a": (1, True), "when": aware})
    assert not same_call(stored, "g", {"a": (1, 2), "when": aware, "extra": None})
    assert not same_call(stored, "h", {"a": (1, 2), "when": aware})
    # inputs AgentHeaven's JSON cannot express fall back to ==
    odd = CacheEntry("g", {"cb": len}, 0)
    assert same_call(odd, "g", {"cb": len})
    assert not same_call(odd, "g", {"cb": abs})


# ================================================================ (b) through cachehaven's backends


def open_json(tmp_path: Path) -> cachehaven.BaseCache:
    return cachehaven.JsonCache(str(_copy(tmp_path, "json")), key_scheme="ahvn")


def open_disk(tmp_path: Path) -> cachehaven.BaseCache:
    return cachehaven.DiskCache(str(_copy(tmp_path, "disk")), key_scheme="ahvn", trust_pickle=True)


def open_db(tmp_path: Path) -> cachehaven.BaseCache:
    return cachehaven.DatabaseCache(
        provider="sqlite", database=str(_copy(tmp_path, "db.sqlite")), key_scheme="ahvn"
    )


OPENERS: Dict[str, Callable[[Path], cachehaven.BaseCache]] = {
    "json": open_json,
    "disk": open_disk,
    "db": open_db,
}


@pytest.fixture
def opened(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[cachehaven.BaseCache]:
    cache = OPENERS[request.param](tmp_path)
    yield cache
    cache.close()


def _stored_by_func(backend: str, func: str, **inputs: Any) -> CacheEntry:
    [s] = [s for s in STORED[backend] if s.entry.func == func and s.call_inputs == inputs]
    return s.entry


@pytest.mark.parametrize("stored", ALL_STORED, ids=lambda s: s.id)
def test_backend_get_returns_the_stored_value(stored: Stored, tmp_path: Path):
    cache = OPENERS[stored.backend](tmp_path)
    try:
        assert cache.get(stored.entry.func, stored.call_inputs) == stored.entry.value
        assert cache.retrieve(stored.entry.func, stored.call_inputs) == stored.entry
        assert cache.exists(stored.entry.func, stored.call_inputs)
    finally:
        cache.close()


@pytest.mark.parametrize("opened", list(OPENERS), indirect=True)
def test_backend_iterates_every_entry(opened: cachehaven.BaseCache, request: pytest.FixtureRequest):
    want = [s.entry for s in STORED[request.node.callspec.params["opened"]]]
    got = list(opened)
    assert len(got) == len(want) == len(opened)
    for entry in want:
        assert entry in got
    for entry in got:
        assert entry in want


@pytest.mark.parametrize("opened", list(OPENERS), indirect=True)
def test_backend_memoized_functions_hit(opened: cachehaven.BaseCache, request: pytest.FixtureRequest):
    backend = request.node.callspec.params["opened"]
    calls: List[Any] = []

    @opened.memoize
    def add(x, y):
        calls.append(("add", x, y))
        return x + y

    @opened.memoize
    def f(a, b=2):
        calls.append(("f", a, b))
        return "computed"

    @opened.memoize
    def kl_store(kid):
        calls.append(("kl_store", kid))
        return "computed"

    @opened.memoize
    def maybe(x):
        calls.append(("maybe", x))
        return "computed"

    @opened.memoize
    def u(s, n, l):  # noqa: E741
        calls.append(("u", s))
        return "computed"

    assert add(5, 10) == 15
    assert add(2, 2) == 5, "an annotated entry answers with its expected value"
    assert f(1) == _stored_by_func(backend, "f", a=1, b=2).output
    assert kl_store(123) == {"kid": 123, "name": "知识-123"}
    assert kl_store(2**64 + 1)["kid"] == 2**64 + 1
    assert maybe(0) is None, "a cached None is a hit, not a miss"
    assert u("héllo", None, [1, 2.5, True]) == {"s": "HÉLLO", "n": None, "l": [True, 2.5, 1]}
    assert calls == []
    assert add(6, 10) == 16
    assert calls == [("add", 6, 10)]


@pytest.mark.parametrize("opened", list(OPENERS), indirect=True)
def test_backend_memoized_tuple_argument_hits(opened: cachehaven.BaseCache):
    # for JsonCache, AgentHeaven stored the tuple argument as a list (see same_call)
    calls = []

    @opened.memoize
    def g(a):
        calls.append(a)
        return "computed"

    assert g((1, 2)) == [10, 20]
    assert calls == []


@pytest.mark.parametrize("opened", list(OPENERS), indirect=True)
def test_backend_writes_next_to_agentheaven_entries(opened: cachehaven.BaseCache, tmp_path: Path):
    n = len(opened)
    value = {"t": (1, 2), "n": None, "s": "ü"}
    opened.set("fresh", output=value, x=1)
    assert opened.get("fresh", {"x": 1}) == value
    assert CacheEntry("fresh", {"x": 1}, value) in list(opened)
    assert len(opened) == n + 1

    # overwriting an AgentHeaven entry replaces it under the same storage key
    opened.set("add", output=99, x=5, y=10)
    assert opened.get("add", {"x": 5, "y": 10}) == 99
    assert len(opened) == n + 1

    calls = []

    @opened.memoize
    def brand_new(a):
        calls.append(a)
        return [a, a]

    assert brand_new(3) == [3, 3]
    assert brand_new(3) == [3, 3]
    assert calls == [3]

    assert opened.remove("kl_store", {"kid": 123})
    assert opened.get("kl_store", {"kid": 123}) is ...
    assert len(opened) == n + 1  # + fresh + brand_new(3) - kl_store(123)
    assert opened.get("judge", {"question": "q1"}) == "yes"


def test_json_backend_skips_agentheavens_truncated_file(tmp_path: Path):
    cache = cachehaven.JsonCache(str(_copy(tmp_path, "json_broken")), key_scheme="ahvn")
    try:
        with pytest.warns(RuntimeWarning):
            entries = list(cache)
        assert entries == [CacheEntry("add", {"x": 5, "y": 10}, 15)]
        with pytest.warns(RuntimeWarning):
            assert cache.get("shape", {"kind": "set"}) is ...
        assert cache.get("add", {"x": 5, "y": 10}) == 15
    finally:
        cache.close()


# ================================================================ AgentHeaven reads what cachehaven encodes

#: The start of every AgentHeaven script: a minimal config (no files under $HOME).
AHVN_CONFIG = textwrap.dedent(
    """
    import pickle, sys
    from ahvn.utils.basic.config_utils import HEAVEN_CM

    HEAVEN_CM._global_config = {
        "core": {"encoding": "utf-8", "debug": False},
        "ukf": {"text": {"id": 63, "long": 65535}},
        "db": {"default_provider": "sqlite", "providers": {"sqlite": {"dialect": "sqlite"}}},
    }
    HEAVEN_CM._local_config = {}
    HEAVEN_CM._config = None
    """
)

READER = AHVN_CONFIG + textwrap.dedent(
    """
    from ahvn.cache import DatabaseCache, DiskCache, JsonCache

    calls = pickle.load(open("calls.pkl", "rb"))
    caches = {
        "json": JsonCache("json"),
        "disk": DiskCache("disk"),
        "db": DatabaseCache(provider="sqlite", database="db.sqlite"),
    }
    out = {}
    for name, cache in caches.items():
        @cache.memoize
        def add(x, y):
            raise AssertionError("AgentHeaven missed an entry cachehaven wrote")

        out[name] = {
            "get": [cache.get(func, **inputs) for func, inputs in calls],
            "all": [entry.to_dict() for entry in cache],
            "len": len(cache),
            "memo": add(5, 10),
        }
        cache.close()
    pickle.dump(out, open("result.pkl", "wb"))
    """
)

WRITTEN = [
    RICH,
    CacheEntry("add", {"x": 5, "y": 10}, 15),
    CacheEntry("g", {"a": (1, 2)}, [10, 20], metadata={"m": {"n": [1]}}),
    CacheEntry("u", {"s": "héllo", "n": None, "l": [1, 2.5, True]}, None, "expected", {}),
    CacheEntry("kl_store", {"kid": 2**64 + 1}, {"kid": 2**64 + 1}),
]


@pytest.mark.skipif(not AHVN_PYTHON.exists(), reason=f"AgentHeaven 0.9.2 venv not found at {AHVN_PYTHON}")
def test_agentheaven_reads_what_encode_record_writes(tmp_path: Path):
    diskcache = pytest.importorskip("diskcache")
    (tmp_path / "json").mkdir()
    for entry in WRITTEN:
        name = storage_key(entry.key_for("ahvn")) + JSON_SUFFIX
        (tmp_path / "json" / name).write_text(dumps_record(entry, indent=JSON_INDENT), encoding="utf-8")
    conn = sqlite3.connect(tmp_path / "db.sqlite")
    with conn:
        conn.execute(
            f"CREATE TABLE {DB_TABLE} ({DB_ID_COLUMN} VARCHAR({DB_ID_LENGTH}) NOT NULL, "
            f"{DB_CONTENT_COLUMN} TEXT, PRIMARY KEY ({DB_ID_COLUMN}))"
        )
        conn.executemany(
            f"INSERT INTO {DB_TABLE} VALUES (?, ?)",
            [(storage_key(e.key_for("ahvn")), dumps_record(e)) for e in WRITTEN],
        )
    conn.close()
    with diskcache.Cache(str(tmp_path / "disk"), size_limit=int(32e9)) as dc:
        for entry in WRITTEN:
            dc.set(entry.key_for("ahvn"), encode_record(entry, tagged=False))
    with open(tmp_path / "calls.pkl", "wb") as fp:
        pickle.dump([(e.func, e.inputs) for e in WRITTEN], fp, protocol=4)

    env = {"PATH": os.environ.get("PATH", ""), "TZ": "UTC", "HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [str(AHVN_PYTHON), "-c", READER], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(tmp_path / "result.pkl", "rb") as fp:
        result = pickle.load(fp)

    for backend in ("json", "disk", "db"):
        got = result[backend]
        assert got["get"] == [e.value for e in WRITTEN], backend
        assert got["len"] == len(WRITTEN), backend
        assert got["memo"] == 15, backend
        by_func = sorted(got["all"], key=lambda d: d["func"])
        assert by_func == sorted((e.to_dict() for e in WRITTEN), key=lambda d: d["func"]), backend


# ================================================================ AgentHeaven writing beside cachehaven

AHVN_DISK_WRITER = AHVN_CONFIG + textwrap.dedent(
    """
    from ahvn.cache import DiskCache

    cache = DiskCache(sys.argv[1])

    @cache.memoize(name="ahvn.g")
    def g(x):
        return {"from": "agentheaven", "x": x}

    assert g(1) == {"from": "agentheaven", "x": 1}
    if sys.argv[2] == "clear":
        cache.clear()
    cache.close()
    """
)


@pytest.mark.skipif(not AHVN_PYTHON.exists(), reason=f"AgentHeaven 0.9.2 venv not found at {AHVN_PYTHON}")
def test_agentheaven_writing_the_same_directory_is_seen_by_diskcache_hits(tmp_path: Path, wal_views: Any):
    # cachehaven's DiskCache serves repeated hits from its near cache, validated against
    # SQLite's WAL-index header: AgentHeaven's writes in another process must be seen.
    path = tmp_path / "disk"
    cache = cachehaven.DiskCache(str(path))
    calls: List[int] = []

    @cache.memoize(name="f")
    def f(x: int) -> dict:
        calls.append(x)
        return {"x": x, "n": len(calls)}

    def agentheaven(what: str) -> None:
        env = {"PATH": os.environ.get("PATH", ""), "TZ": "UTC", "HOME": str(tmp_path / "home")}
        proc = subprocess.run(
            [str(AHVN_PYTHON), "-c", AHVN_DISK_WRITER, str(path), what],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]

    try:
        assert f(1) == f(1) == {"x": 1, "n": 1}
        assert cache._local.con[4] is not None  # the WAL-index stamp is the one in use
        agentheaven("write")  # an entry of its own: ours is untouched
        assert f(1) == f(1) == {"x": 1, "n": 1}
        agentheaven("clear")  # everything in the directory is gone, ours included
        assert f(1) == f(1) == {"x": 1, "n": 2}
        assert calls == [1, 1]
    finally:
        cache.close()
