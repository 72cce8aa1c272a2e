"""Canonical keys: ``cachehaven._core.encode`` / ``decode`` and ``cachehaven.call_key``.

Two calls share a cache entry exactly when their canonical bytes are equal, so these tests
pin down which values are "the same argument" and which are not.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import math
import os
import pickle
import random
import struct
import subprocess
import sys
import uuid
from collections import namedtuple
from decimal import Decimal
from pathlib import Path, PurePosixPath, PureWindowsPath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cachehaven
from cachehaven import CacheEntry, KeyDepthError, KeyTypeError, _core

enc = _core.encode


def same(a, b) -> bool:
    return enc(a) == enc(b)


# ---------------------------------------------------------------- scalars


def test_none():
    assert same(None, None)
    assert not same(None, 0)
    assert not same(None, "")
    assert not same(None, False)
    assert not same(None, ...)


def test_bool():
    assert same(True, True)
    assert same(False, False)
    assert not same(True, False)


@pytest.mark.parametrize(
    "n",
    [
        0,
        1,
        -1,
        2**31,
        2**53 + 1,
        2**63 - 1,
        -(2**63),
        2**63,
        -(2**63) - 1,
        2**64,
        2**64 + 1,
        -(2**64),
        10**40,
        -(10**40),
    ],
)
def test_ints_of_any_size_round_trip_and_are_distinct_from_neighbours(n):
    assert _core.decode(enc(n)) == n
    assert type(_core.decode(enc(n))) is int
    assert not same(n, n + 1)
    assert not same(n, n - 1)
    assert not same(n, -n) or n == 0


def test_huge_ints_are_distinct():
    big = 2**200
    assert not same(big, big + 1)
    assert not same(big, -big)
    assert same(big, 2**200)


def test_one_one_point_zero_and_true_are_all_different():
    values = [1, 1.0, True, "1", b"1", (1,), [1], Decimal(1)]
    encodings = {enc(v) for v in values}
    assert len(encodings) == len(values)
    assert len({enc(0), enc(0.0), enc(False), enc(None), enc("")}) == 5


def test_floats():
    assert same(1.5, 1.5)
    assert not same(1.5, 1.5000000000000002)
    assert same(float("inf"), float("inf"))
    assert not same(float("inf"), float("-inf"))


def test_nan_equals_nan():
    assert same(float("nan"), float("nan"))
    assert same(float("nan"), math.copysign(float("nan"), -1))
    assert cachehaven.call_key("f", {"x": float("nan")}) == cachehaven.call_key("f", {"x": float("nan")})


def test_negative_zero_differs_from_zero():
    assert not same(-0.0, 0.0)
    r = _core.decode(enc(-0.0))
    assert r == 0.0 and math.copysign(1.0, r) == -1.0


def test_str():
    assert same("abc", "abc")
    assert not same("abc", "abd")
    assert not same("abc", b"abc")
    assert not same("", b"")
    assert same("héllo ✓ 𝄞", "héllo ✓ 𝄞")


def test_str_with_lone_surrogates():
    s = "a\ud800b"
    assert same(s, "a\ud800b")
    assert not same(s, "a\ud801b")
    assert not same(s, "ab")
    assert _core.decode(enc(s)) == s
    assert _core.decode(enc("\udfff")) == "\udfff"
    # a lone surrogate must not alias the bytes a replacement would give
    assert not same("\ud800", "\ufffd")
    assert not same("\ud800", "?")


def test_bytes():
    assert same(b"\x00\xff", b"\x00\xff")
    assert not same(b"\x00", b"\x00\x00")
    assert _core.decode(enc(b"\x00\xff")) == b"\x00\xff"


# ---------------------------------------------------------------- containers


def test_tuple_and_list_are_distinct():
    assert not same((1, 2), [1, 2])
    assert not same((), [])
    assert same((1, [2, (3,)]), (1, [2, (3,)]))
    assert not same((1, [2, (3,)]), (1, [2, [3]]))


def test_sequences_are_order_dependent_and_self_delimiting():
    assert not same([1, 2], [2, 1])
    assert not same(["ab", "c"], ["a", "bc"])
    assert not same([[1], [2, 3]], [[1, 2], [3]])
    assert not same((b"", b"x"), (b"x", b""))


def test_dict_is_order_independent():
    a = {"a": 1, "b": 2, "c": [1, 2]}
    b = {"c": [1, 2], "b": 2, "a": 1}
    assert list(a) != list(b)
    assert same(a, b)
    assert not same(a, {"a": 1, "b": 2, "c": [2, 1]})
    assert not same({"a": 1}, {"a": 1.0})
    assert not same({"a": 1, "b": 2}, {"a": 2, "b": 1})


def test_dict_with_non_str_keys():
    assert same({1: "a", (2, 3): "b"}, {(2, 3): "b", 1: "a"})
    assert not same({1: "a"}, {"1": "a"})
    assert not same({1: "a"}, {True: "a"})
    assert not same({1: "a"}, {1.0: "a"})


def _shuffled_set(items, kind):
    items = list(items)
    random.Random(7).shuffle(items)
    s = set()
    # churn so that the internal table layout differs from a straight build
    for junk in range(200):
        s.add(f"junk{junk}")
    for x in items:
        s.add(x)
    for junk in range(200):
        s.discard(f"junk{junk}")
    return kind(s)


@pytest.mark.parametrize("kind", [set, frozenset])
def test_set_and_frozenset_are_order_independent(kind):
    items = [f"s{i}" for i in range(50)] + list(range(20)) + [(1, 2), 2.5, None]
    a = kind(items)
    b = _shuffled_set(reversed(items), kind)
    assert a == b
    assert same(a, b)
    assert not same(a, kind(items[:-1]))


def test_set_is_not_a_list_or_tuple():
    assert not same({1, 2}, [1, 2])
    assert not same(frozenset({1, 2}), (1, 2))


def test_deep_but_legal_nesting_is_fine():
    v = []
    for _ in range(100):
        v = [v]
    assert _core.decode(enc(v)) == v


def test_recursive_list_raises_key_depth_error():
    lst = []
    lst.append(lst)
    with pytest.raises(KeyDepthError) as ei:
        enc(lst)
    assert isinstance(ei.value, ValueError)
    assert isinstance(ei.value, cachehaven.CachehavenError)


def test_recursive_dict_in_call_key_raises_key_depth_error():
    d = {}
    d["self"] = d
    with pytest.raises(KeyDepthError):
        cachehaven.call_key("f", {"d": d})


def test_recursive_argument_of_memoized_function_raises_key_depth_error(cache):
    calls = []

    @cache.memoize
    def f(x):
        calls.append(x)
        return 1

    lst = [1]
    lst.append(lst)
    with pytest.raises(KeyDepthError):
        f(lst)
    assert calls == []


# ---------------------------------------------------------------- rich types


class Token:
    def __init__(self, ident, noise=None):
        self.ident = ident
        self.noise = noise

    def __cache_key__(self):
        return ("token", self.ident)


class OtherToken:
    def __init__(self, ident):
        self.ident = ident

    def __cache_key__(self):
        return ("token", self.ident)


def test_cache_key_objects():
    assert same(Token(1, noise="a"), Token(1, noise="b"))
    assert not same(Token(1), Token(2))
    assert not same(Token(1), ("token", 1)), "an object must not alias its raw __cache_key__ value"
    assert not same(Token(1), OtherToken(1)), "two classes must not alias each other"


def test_cache_key_error_propagates():
    class Broken:
        def __cache_key__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        enc(Broken())


@dataclasses.dataclass
class Point:
    x: int
    y: int
    label: str = dataclasses.field(default="", compare=False)


@dataclasses.dataclass
class OtherPoint:
    x: int
    y: int


@dataclasses.dataclass(frozen=True)
class Nested:
    p: Point
    tags: tuple


def test_dataclasses():
    assert same(Point(1, 2), Point(1, 2))
    assert same(Point(1, 2, "a"), Point(1, 2, "b")), "compare=False fields are not part of the key"
    assert not same(Point(1, 2), Point(2, 1))
    assert not same(Point(1, 2), OtherPoint(1, 2))
    assert not same(Point(1, 2), {"x": 1, "y": 2})
    assert not same(Point(1, 2), (1, 2))
    assert same(Nested(Point(1, 2), ("a",)), Nested(Point(1, 2), ("a",)))
    assert not same(Nested(Point(1, 2), ("a",)), Nested(Point(1, 3), ("a",)))


def test_dataclass_class_object_is_not_an_instance():
    assert not same(Point, Point(1, 2))
    assert same(Point, Point)
    assert not same(Point, OtherPoint)


class Color(enum.Enum):
    RED = 1
    GREEN = 2


class Shade(enum.Enum):
    RED = 1


class Level(enum.IntEnum):
    LOW = 1


def test_enums():
    assert same(Color.RED, Color.RED)
    assert not same(Color.RED, Color.GREEN)
    assert not same(Color.RED, 1)
    assert not same(Color.RED, Shade.RED)
    assert not same(Level.LOW, 1)
    assert not same(Level.LOW, Color.RED)


def test_namedtuple_does_not_alias_tuple():
    P = namedtuple("P", "a b")
    assert same(P(1, 2), P(1, 2))
    assert not same(P(1, 2), P(2, 1))
    assert not same(P(1, 2), (1, 2))


UTC = dt.timezone.utc
PLUS2 = dt.timezone(dt.timedelta(hours=2))


def test_datetimes():
    a = dt.datetime(2024, 1, 2, 3, 4, 5, 6)
    assert same(a, dt.datetime(2024, 1, 2, 3, 4, 5, 6))
    assert not same(a, dt.datetime(2024, 1, 2, 3, 4, 5, 7))
    assert not same(a, a.replace(tzinfo=UTC)), "aware and naive datetimes must differ"
    assert not same(a.replace(tzinfo=UTC), a.replace(tzinfo=PLUS2))
    assert not same(dt.date(2024, 1, 2), dt.datetime(2024, 1, 2))
    assert not same(dt.date(2024, 1, 2), dt.date(2024, 1, 3))


def test_times_and_timedeltas():
    t = dt.time(1, 2, 3, 4)
    assert same(t, dt.time(1, 2, 3, 4))
    assert not same(t, t.replace(tzinfo=UTC)), "aware and naive times must differ"
    assert not same(t, dt.time(1, 2, 3, 5))
    assert same(dt.timedelta(days=1), dt.timedelta(hours=24))
    assert not same(dt.timedelta(seconds=1), dt.timedelta(seconds=-1))
    assert not same(dt.timedelta(0), 0)


def test_decimal_uuid_paths():
    assert same(Decimal("1.25"), Decimal("1.25"))
    assert not same(Decimal("1.25"), Decimal("1.26"))
    assert not same(Decimal("1.25"), 1.25)
    assert not same(Decimal("1.25"), "1.25")
    u = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert same(u, uuid.UUID(str(u)))
    assert not same(u, uuid.UUID(int=u.int + 1))
    assert not same(u, str(u))
    assert not same(u, u.bytes)
    assert same(Path("a/b"), Path("a/b"))
    assert not same(Path("a/b"), Path("a/c"))
    assert not same(Path("a/b"), "a/b")
    assert not same(PurePosixPath("a/b"), PureWindowsPath("a/b"))


ROUND_TRIP_VALUES = [
    None,
    True,
    False,
    0,
    -5,
    2**70,
    -(2**70),
    1.5,
    -0.0,
    float("inf"),
    "",
    "héllo",
    "\ud83d",
    b"",
    b"\x00\x01",
    (),
    (1, "a", None),
    [],
    [1, [2, [3]]],
    {},
    {"a": 1, "b": [1, 2]},
    {1: "x", (1, 2): {"n": None}},
    set(),
    {1, 2, 3},
    frozenset({"a", "b"}),
    ...,
    1 + 2j,
    dt.datetime(2024, 5, 6, 7, 8, 9, 10),
    dt.datetime(2024, 5, 6, 7, 8, 9, 10, tzinfo=PLUS2),
    dt.date(1999, 12, 31),
    dt.time(23, 59, 59, 999999),
    dt.time(1, 2, tzinfo=UTC),
    dt.timedelta(days=-3, seconds=5, microseconds=7),
    Decimal("-12.3400"),
    uuid.UUID(int=12345),
    PurePosixPath("/tmp/x"),
    PureWindowsPath("C:/x/y"),
]


@pytest.mark.parametrize("value", ROUND_TRIP_VALUES, ids=repr)
def test_decode_inverts_encode(value):
    back = _core.decode(enc(value))
    assert back == value
    assert type(back) is type(value)
    assert enc(back) == enc(value)


def test_decode_rejects_garbage():
    with pytest.raises(ValueError):
        _core.decode(enc([1, 2, 3])[:-1])
    with pytest.raises(ValueError):
        _core.decode(enc(1) + b"\x00")


# ---------------------------------------------------------------- property-based


def _norm(v):
    """A type-exact normal form: two values share a key iff their normal forms are equal."""
    if v is None:
        return ("none",)
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, int):
        return ("int", v)
    if isinstance(v, float):
        return ("float", struct.pack(">d", v))
    if isinstance(v, str):
        return ("str", v)
    if isinstance(v, bytes):
        return ("bytes", v)
    if isinstance(v, tuple):
        return ("tuple", tuple(_norm(i) for i in v))
    if isinstance(v, list):
        return ("list", tuple(_norm(i) for i in v))
    if isinstance(v, dict):
        return ("dict", frozenset((_norm(k), _norm(x)) for k, x in v.items()))
    if isinstance(v, frozenset):
        return ("frozenset", frozenset(_norm(i) for i in v))
    if isinstance(v, set):
        return ("set", frozenset(_norm(i) for i in v))
    raise AssertionError(type(v))


texts = st.one_of(
    st.text(max_size=8),
    st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=3),
)
hashable_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**130), max_value=2**130),
    st.floats(allow_nan=False),
    texts,
    st.binary(max_size=8),
)
hashables = st.recursive(
    hashable_scalars,
    lambda inner: st.one_of(st.tuples(inner, inner), st.frozensets(inner, max_size=4)),
    max_leaves=8,
)
values = st.recursive(
    hashable_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(hashables, inner, max_size=4),
        st.sets(hashables, max_size=4),
        st.frozensets(hashables, max_size=4),
    ),
    max_leaves=12,
)


def _rebuild(v, rng):
    """The same value built with dicts and sets filled in a different order."""
    if isinstance(v, list):
        return [_rebuild(i, rng) for i in v]
    if isinstance(v, tuple):
        return tuple(_rebuild(i, rng) for i in v)
    if isinstance(v, dict):
        items = list(v.items())
        rng.shuffle(items)
        return {k: _rebuild(x, rng) for k, x in items}
    if isinstance(v, (set, frozenset)):
        items = list(v)
        rng.shuffle(items)
        return type(v)(items)
    return v


@settings(max_examples=150, deadline=None)
@given(values)
def test_round_trip_is_type_exact(v):
    assert _norm(_core.decode(enc(v))) == _norm(v)


@settings(max_examples=150, deadline=None)
@given(values, st.randoms(use_true_random=False))
def test_rebuilt_value_has_the_same_key(v, rng):
    assert enc(_rebuild(v, rng)) == enc(v)


@settings(max_examples=300, deadline=None)
@given(values, values)
def test_equal_keys_iff_type_exact_equal(a, b):
    assert (enc(a) == enc(b)) == (_norm(a) == _norm(b))


# ---------------------------------------------------------------- errors


class Opaque:
    pass


def test_unsupported_type_raises_key_type_error():
    with pytest.raises(KeyTypeError) as ei:
        enc(Opaque())
    assert isinstance(ei.value, TypeError)
    assert isinstance(ei.value, cachehaven.CachehavenError)
    assert "Opaque" in str(ei.value)
    assert "0x" not in str(ei.value)


def test_key_type_error_names_parameter_path_and_type():
    with pytest.raises(KeyTypeError) as ei:
        cachehaven.call_key("f", {"config": {"a": [1, Opaque()]}})
    msg = str(ei.value)
    assert "config" in msg
    assert "Opaque" in msg
    assert "0x" not in msg


def test_key_type_error_from_memoized_call_names_the_parameter(cache):
    @cache.memoize
    def f(x, payload):
        return 1

    with pytest.raises(KeyTypeError) as ei:
        f(1, payload=Opaque())
    msg = str(ei.value)
    assert "payload" in msg
    assert "Opaque" in msg
    assert "0x" not in msg


@pytest.mark.parametrize("bad", [object(), lambda: 1, iter([1]), Opaque()])
def test_other_unsupported_values(bad):
    with pytest.raises(KeyTypeError) as ei:
        cachehaven.call_key("f", {"arg": bad})
    assert "arg" in str(ei.value)
    assert "0x" not in str(ei.value)


def test_inputs_must_have_str_keys():
    with pytest.raises(TypeError):
        cachehaven.call_key("f", {1: "x"})


# ---------------------------------------------------------------- call keys


def test_call_key_equality_and_hash():
    a = cachehaven.call_key("f", {"x": 1, "y": [1, 2]})
    b = cachehaven.call_key("f", {"y": [1, 2], "x": 1})
    assert a == b
    assert hash(a) == hash(b)
    assert a.digest() == b.digest()
    assert a != cachehaven.call_key("g", {"x": 1, "y": [1, 2]})
    assert a != cachehaven.call_key("f", {"x": 1, "y": (1, 2)})
    assert a != cachehaven.call_key("f", {"x": True, "y": [1, 2]})


def test_call_key_function_name_and_inputs_do_not_run_together():
    assert cachehaven.call_key("fa", {"b": 1}) != cachehaven.call_key("f", {"ab": 1})
    assert cachehaven.call_key("f", {}) != cachehaven.call_key("f", {"": None})


def test_call_key_exclude():
    a = cachehaven.call_key("f", {"x": 1, "debug": True}, exclude=["debug"])
    b = cachehaven.call_key("f", {"x": 1, "debug": False}, exclude=["debug"])
    assert a == b == cachehaven.call_key("f", {"x": 1})
    c = cachehaven.call_key("f", {"cfg": {"m": 1, "token": "a"}}, exclude=["cfg.token"])
    assert c == cachehaven.call_key("f", {"cfg": {"m": 1}})


def test_call_key_digests():
    k = cachehaven.call_key("f", {"x": 1})
    assert 0 <= k.digest("blake3") < 2**128
    assert 0 <= k.digest("md5") < 2**128
    assert k.digest("blake3") != k.digest("md5")
    assert k.digest() == CacheEntry("f", {"x": 1}).key


@pytest.mark.parametrize("x", [1, 2, "s", [0] * 50])
def test_key_hexdigest_is_the_digest_in_32_hex_digits(x):
    k = cachehaven.call_key("f", {"x": x})
    for scheme in ("blake3", "md5"):
        h = k.hexdigest(scheme)
        assert h == f"{k.digest(scheme):032x}" and len(h) == 32
    assert k.hexdigest() == k.hexdigest("blake3")
    with pytest.raises(ValueError, match="scheme"):
        k.hexdigest("sha1")


def test_key_pickles():
    k = cachehaven.call_key("f", {"x": [1, {"a": 2}]})
    assert pickle.loads(pickle.dumps(k)) == k


# ---------------------------------------------------------------- determinism across processes

_SNIPPET = """
import json
from cachehaven import CacheEntry, call_key, _core
e = CacheEntry.from_args(func="f", output=1, a={"x": {1, 2, 3}}, b=("s", 2.5))
s = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"}
print(json.dumps({
    "entry": e.key,
    "md5": e.key_for("md5"),
    "set": _core.encode(s).hex(),
    "dict": call_key("g", {"d": {k: len(k) for k in s}, "fs": frozenset(s)}).digest(),
}))
"""


def _keys_in_subprocess(seed: str) -> dict:
    env = dict(os.environ)
    env["PYTHONHASHSEED"] = seed
    out = subprocess.run(
        [sys.executable, "-c", _SNIPPET], env=env, capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(out.stdout)


def test_keys_are_deterministic_across_processes_and_hash_seeds():
    results = [_keys_in_subprocess(seed) for seed in ("0", "1", "4242", "random")]
    assert all(r == results[0] for r in results[1:]), results
    here = CacheEntry.from_args(func="f", output=1, a={"x": {1, 2, 3}}, b=("s", 2.5))
    assert results[0]["entry"] == here.key
    assert results[0]["md5"] == here.key_for("md5")
