"""Serializers and the stored record (``cachehaven.serialize``).

The JSON serializer must give back exactly what it was given (same type, same value, same
float bits), refuse what it cannot represent before anything is written, and never run code
on load. The pickle serializer must refuse any payload whose signature does not verify,
without unpickling it. A stored record must come back whole, or raise SerializationError.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import math
import os
import pickle
import struct
import subprocess
import sys
import threading
import uuid
import zoneinfo
from collections import OrderedDict, namedtuple
from decimal import Decimal
from pathlib import Path, PurePosixPath, PureWindowsPath

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cachehaven import CacheEntry, call_key
from cachehaven._core import RawKey
from cachehaven.errors import ConfigError, SerializationError
from cachehaven.serialize import (
    MAX_DEPTH,
    PICKLE_MAGIC,
    RECORD_VERSION,
    TAG,
    JsonSerializer,
    PickleSerializer,
    Record,
    Serializer,
    dump_record,
    encode_record,
    encode_results,
    from_jsonable,
    load_record,
    record_from_jsonable,
    record_to_jsonable,
    resolve_serializer,
    to_jsonable,
)

J = JsonSerializer()
SECRET = b"correct horse battery staple"
P = PickleSerializer(SECRET)
ENV = "CACHEHAVEN_PICKLE_SECRET"


# ---------------------------------------------------------------- exact comparison


def bits(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def same_tz(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if a is None:
        return True
    if isinstance(a, zoneinfo.ZoneInfo):
        return a.key == b.key
    return a == b and a.tzname(None) == b.tzname(None)


def same(a, b) -> bool:
    """``a`` and ``b`` are the same value of the same type, down to float bits and order."""
    if type(a) is not type(b):
        return False
    t = type(a)
    if t is float:
        return bits(a) == bits(b)
    if t is complex:
        return bits(a.real) == bits(b.real) and bits(a.imag) == bits(b.imag)
    if t is Decimal:
        return str(a) == str(b) and a.as_tuple() == b.as_tuple()
    if t in (list, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if t is dict:
        return len(a) == len(b) and all(
            same(ka, kb) and same(va, vb) for (ka, va), (kb, vb) in zip(a.items(), b.items())
        )
    if t in (set, frozenset):
        return len(a) == len(b) and all(any(same(x, y) for y in b) for x in a)
    if t in (dt.datetime, dt.time):
        return a == b and a.fold == b.fold and same_tz(a.tzinfo, b.tzinfo)
    if t is dt.timezone or t is zoneinfo.ZoneInfo:
        return same_tz(a, b)
    if t is RawKey:
        return a.bytes == b.bytes and a.label == b.label
    if isinstance(a, PurePosixPath | PureWindowsPath):
        return a == b and str(a) == str(b)
    return a == b


def roundtrip_all_ways(value):
    """The value back through JsonSerializer bytes, and through the tree as JsonCache
    writes it (``json.dumps(tree, indent=2)``)."""
    via_bytes = J.loads(J.dumps(value))
    via_tree = from_jsonable(json.loads(json.dumps(to_jsonable(value), indent=2)))
    return via_bytes, via_tree


# ---------------------------------------------------------------- exact round-trips per type

IST = dt.timezone(dt.timedelta(hours=5, minutes=30), "IST")
NEW_YORK = zoneinfo.ZoneInfo("America/New_York")

EXACT_VALUES = {
    "none": None,
    "true": True,
    "false": False,
    "zero": 0,
    "int_safe_max": 2**53 - 1,
    "int_beyond_safe": 2**53,
    "int_beyond_2_63": 2**63,
    "int_negative_huge": -(2**200) + 7,
    "int_beyond_str_limit": 10**5000,
    "float": 0.1,
    "float_negative_zero": -0.0,
    "float_tiny": 5e-324,
    "float_huge": 1.7976931348623157e308,
    "float_inf": math.inf,
    "float_neg_inf": -math.inf,
    "float_nan": math.nan,
    "float_negative_nan": -math.nan,
    "float_nan_payload": struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000123))[0],
    "complex": complex(1.5, -0.0),
    "complex_nan_inf": complex(math.nan, -math.inf),
    "str": "plain",
    "str_unicode": "héllo wörld ✓ 日本 🎉",
    "str_lone_surrogate": "a\ud800b",
    "str_control": "tab\tnul\x00",
    "bytes": b"\x00\xff\x80binary",
    "bytes_empty": b"",
    "bytearray": bytearray(b"\x01\x02"),
    "tuple": (1, "a", None),
    "tuple_empty": (),
    "tuple_nested": ((1, (2, (3,))), [4, (5,)]),
    "list_with_tuples": [(1, 2), [(3,)]],
    "dict_str_keys": {"a": 1, "b": [1, 2]},
    "dict_int_and_str_keys": {1: "int", "1": "str"},
    "dict_odd_keys": {None: 0, True: 1, 2.5: 2, (1, "x"): 3, b"k": 4, frozenset({1}): 5, -0.0: 6},
    "dict_order": {"z": 1, "a": 2, "m": 3},
    "set": {1, "two", (3, 4), None},
    "set_empty": set(),
    "frozenset": frozenset({b"a", 2.5}),
    "datetime_naive": dt.datetime(2024, 2, 29, 23, 59, 58, 999999),
    "datetime_utc": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
    "datetime_fixed_offset_named": dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=IST),
    "datetime_negative_offset_seconds": dt.datetime(
        1, 1, 1, tzinfo=dt.timezone(-dt.timedelta(hours=3, seconds=7, microseconds=1))
    ),
    "datetime_zoneinfo_fold": dt.datetime(2021, 11, 7, 1, 30, fold=1, tzinfo=NEW_YORK),
    "datetime_max": dt.datetime.max,
    "date": dt.date(1, 1, 1),
    "time": dt.time(13, 14, 15, 16),
    "time_aware": dt.time(1, 2, tzinfo=IST),
    "timedelta": dt.timedelta(days=-3, seconds=5, microseconds=7),
    "timedelta_max": dt.timedelta.max,
    "timezone": IST,
    "zoneinfo": NEW_YORK,
    "decimal": Decimal("3.14159265358979323846264338327950288"),
    "decimal_negative_zero": Decimal("-0.000"),
    "decimal_exponent": Decimal("1E+1000"),
    "decimal_nan": Decimal("NaN"),
    "decimal_snan_payload": Decimal("-sNaN42"),
    "decimal_infinity": Decimal("-Infinity"),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "pure_posix_path": PurePosixPath("/etc/hosts"),
    "pure_windows_path": PureWindowsPath("C:/Users/me/file.txt"),
    "path": Path("relative/dir/file.json"),
    "ellipsis": ...,
    "rawkey": RawKey(b"\x00canonical\xff", "self"),
    "nested_everything": {
        "when": [dt.date(2020, 1, 1), (dt.timedelta(1), {Decimal("1.5")})],
        "blob": {b"k": bytearray(b"v")},
        "unset": ...,
    },
}


@pytest.mark.parametrize("value", list(EXACT_VALUES.values()), ids=list(EXACT_VALUES))
def test_every_supported_type_round_trips_exactly(value):
    via_bytes, via_tree = roundtrip_all_ways(value)
    assert same(via_bytes, value), (via_bytes, value)
    assert same(via_tree, value), (via_tree, value)


def test_float_bits_survive():
    for x in [-0.0, 0.0, math.nan, -math.nan, 5e-324, math.inf, -math.inf, EXACT_VALUES["float_nan_payload"]]:
        back = J.loads(J.dumps(x))
        assert type(back) is float
        assert bits(back) == bits(x)


@pytest.mark.skipif(not hasattr(sys, "set_int_max_str_digits"), reason="no int/str conversion limit")
def test_big_ints_survive_the_lowest_int_str_conversion_limit():
    values = [2**1999 + 1, -(10**601), 10**5000 + 3]
    data = J.dumps(values)
    old = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)
    try:
        assert J.loads(data) == values
        assert J.loads(J.dumps(values)) == values
    finally:
        sys.set_int_max_str_digits(old)


def test_a_malformed_decimal_raises_even_when_the_context_does_not_trap():
    import decimal

    payload = json.dumps({TAG: "decimal", "v": "one"}).encode()
    with decimal.localcontext() as ctx:
        ctx.traps[decimal.InvalidOperation] = False
        with pytest.raises(SerializationError):
            J.loads(payload)
        assert same(J.loads(J.dumps(Decimal("-sNaN7"))), Decimal("-sNaN7"))


def test_tuple_stays_tuple_and_list_stays_list():
    back = J.loads(J.dumps({"t": (1, [2, (3,)]), "l": [(1,), []]}))
    assert type(back["t"]) is tuple
    assert type(back["t"][1]) is list
    assert type(back["t"][1][1]) is tuple
    assert type(back["l"][0]) is tuple
    assert back == {"t": (1, [2, (3,)]), "l": [(1,), []]}


def test_int_and_str_dict_keys_stay_distinct():
    back = J.loads(J.dumps({1: "a", "1": "b", (1,): "c", None: "d"}))
    assert back == {1: "a", "1": "b", (1,): "c", None: "d"}
    assert [type(k) for k in back] == [int, str, tuple, type(None)]


def test_bool_stays_bool_and_int_stays_int():
    back = J.loads(J.dumps([True, 1, False, 0, 1.0]))
    assert [type(x) for x in back] == [bool, int, bool, int, float]


def test_a_stored_posix_path_is_not_silently_turned_into_another_flavour():
    other = "WindowsPath" if os.name == "posix" else "PosixPath"
    payload = json.dumps({TAG: "path", "kind": other, "v": "x"}).encode()
    with pytest.raises(SerializationError, match=other):
        J.loads(payload)


# ---------------------------------------------------------------- plain JSON stays plain


def test_plain_data_is_plain_readable_json():
    value = {"name": "zoë", "n": 42, "ratio": 0.5, "ok": True, "none": None, "tags": ["a", "b"]}
    data = J.dumps(value)
    assert json.loads(data) == value
    assert TAG.encode() not in data
    assert "zoë".encode() in data  # UTF-8, not \\u escapes
    assert b" " not in data  # compact


def test_tree_of_plain_data_is_the_data_itself():
    value = {"a": [1, 2.5, "x"], "b": {"c": None}}
    assert to_jsonable(value) == value
    assert json.dumps(to_jsonable(value)) == json.dumps(value)


def test_encoding_does_not_mutate_the_value():
    value = {"a": [1, (2,), {3: "x"}], "b": "plain"}
    J.dumps(value)
    to_jsonable(value)
    assert value == {"a": [1, (2,), {3: "x"}], "b": "plain"}
    assert type(value["a"][1]) is tuple
    assert list(value["a"][2]) == [3]


def test_strings_that_look_like_tags_are_just_strings():
    value = {"note": '"__ch__"', "path": "C:\\users\\x", "esc": "\\u0041", TAG + "x": 1}
    assert same(J.loads(J.dumps(value)), value)


def test_sets_are_written_in_an_order_independent_of_the_hash_seed():
    code = (
        "import sys; from cachehaven.serialize import JsonSerializer; "
        "value = {'set': {'alpha', 'beta', 'gamma', 'delta', 1, (2, 'x')}}; "
        "sys.stdout.buffer.write(JsonSerializer().dumps(value))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            check=True,
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outputs) == 1


# ---------------------------------------------------------------- escaping the tag key


@pytest.mark.parametrize(
    "value",
    [
        {TAG: "tuple", "items": [1, 2]},
        {TAG: "bytes", "b64": "AA=="},
        {TAG: "ellipsis"},
        {TAG: "no such tag"},
        {TAG: 5, "other": [1]},
        {"outer": {TAG: "dict", "items": [[1, 2]]}},
        [{TAG: "int", "v": "1"}],
    ],
    ids=["tuple", "bytes", "ellipsis", "unknown", "non_str_tag", "nested_dict_tag", "in_list"],
)
def test_a_user_dict_containing_the_tag_key_comes_back_as_that_dict(value):
    via_bytes, via_tree = roundtrip_all_ways(value)
    assert same(via_bytes, value)
    assert same(via_tree, value)


def test_escaped_dict_is_written_in_pair_form():
    tree = to_jsonable({TAG: "tuple", "items": [1]})
    assert tree == {TAG: "dict", "items": [[TAG, "tuple"], ["items", [1]]]}


def test_a_tag_spelled_with_unicode_escapes_is_still_a_tag():
    data = b'{"\\u005f_ch__":"tuple","items":[1]}'
    assert J.loads(data) == (1,)
    assert J.loads(data) == from_jsonable(json.loads(data))


# ---------------------------------------------------------------- unsupported values


class Plain:
    pass


@dataclasses.dataclass
class DC:
    x: int = 1


class Color(enum.Enum):
    RED = 1


class Level(enum.IntEnum):
    HIGH = 3


Point = namedtuple("Point", "x y")


class UserStr(str):
    pass


class OddTz(dt.tzinfo):
    def utcoffset(self, d):
        return dt.timedelta(0)


UNSUPPORTED = {
    "object": Plain(),
    "dataclass": DC(),
    "enum": Color.RED,
    "int_enum": Level.HIGH,
    "namedtuple": Point(1, 2),
    "str_subclass": UserStr("x"),
    "ordered_dict": OrderedDict(a=1),
    "function": len,
    "lambda": lambda: 1,
    "class": Plain,
    "memoryview": memoryview(b"x"),
    "lock": threading.Lock(),
    "generator": (i for i in range(2)),
}


@pytest.mark.parametrize("value", list(UNSUPPORTED.values()), ids=list(UNSUPPORTED))
def test_unsupported_value_raises_naming_path_type_and_pickle(value):
    with pytest.raises(SerializationError) as info:
        J.dumps({"rows": [0, 1, 2, value]})
    msg = str(info.value)
    assert "value['rows'][3]" in msg
    assert type(value).__name__ in msg
    assert 'serializer="pickle"' in msg


def test_numpy_values_are_refused():
    np = pytest.importorskip("numpy")
    with pytest.raises(SerializationError, match="numpy"):
        J.dumps({"a": np.float64(1.5)})


def test_path_is_named_from_the_given_root():
    with pytest.raises(SerializationError, match=r"output\['rows'\]\[3\]: type .*Plain"):
        to_jsonable({"rows": [0, 1, 2, Plain()]}, path="output")


def test_path_through_tuple_dict_key_and_set_element():
    with pytest.raises(SerializationError, match=r"value\['a'\]\[1\]\[0\]"):
        J.dumps({"a": (0, [Plain()])})
    with pytest.raises(SerializationError, match=r"value\[5\]"):
        J.dumps({5: Plain()})
    with pytest.raises(SerializationError, match=r"dict key .*Plain"):
        J.dumps({"a": {Plain(): 1}})
    with pytest.raises(SerializationError, match=r"value<element \(1, .*\)>\[1\]"):
        J.dumps({(1, Color.RED)})


def test_unsupported_tzinfo_is_named():
    with pytest.raises(SerializationError, match=r"value\[0\]\.tzinfo.*OddTz"):
        J.dumps([dt.datetime(2024, 1, 1, tzinfo=OddTz())])


def test_serialization_error_is_a_type_error():
    with pytest.raises(TypeError):
        J.dumps(Plain())


def test_record_errors_name_the_field_and_path():
    rec = Record(CacheEntry("f", {"x": 1}, output={"rows": [0, 1, 2, Plain()]}), b"k")
    with pytest.raises(SerializationError, match=r"output\['rows'\]\[3\]"):
        dump_record(rec, J)
    with pytest.raises(SerializationError, match=r"output\['rows'\]\[3\]"):
        record_to_jsonable(rec)
    rec = Record(CacheEntry("f", {"cfg": {"obj": DC()}}), b"k")
    with pytest.raises(SerializationError, match=r"inputs\['cfg'\]\['obj'\]: type .*DC"):
        dump_record(rec, J)
    rec = Record(CacheEntry("f", {}, output=1, metadata={"m": Plain()}), b"k")
    with pytest.raises(SerializationError, match=r"metadata\['m'\]"):
        dump_record(rec, J)


# ---------------------------------------------------------------- recursion and depth


def test_a_list_containing_itself_raises():
    a = [1]
    a.append(a)
    with pytest.raises(SerializationError, match="contains itself"):
        J.dumps(a)


def test_a_cycle_through_dicts_tuples_and_lists_raises_naming_it():
    d = {"x": [None]}
    d["x"][0] = ({"back": d},)
    with pytest.raises(SerializationError, match=r"value\['x'\]\[0\]\[0\]\['back'\] is value\)"):
        to_jsonable(d)


def test_a_cycle_below_the_root_is_named_where_it_starts():
    inner = []
    inner.append(inner)
    with pytest.raises(SerializationError, match=r"cannot serialize output\['a'\]: it contains itself"):
        to_jsonable({"a": inner}, path="output")


def test_recursive_output_in_a_record_raises():
    out = {}
    out["self"] = out
    with pytest.raises(SerializationError, match="output"):
        dump_record(Record(CacheEntry("f", {}, output=out), b"k"), J)


def nested(depth: int, make=lambda v: [v]):
    v = 0
    for _ in range(depth):
        v = make(v)
    return v


@pytest.mark.parametrize("make", [lambda v: [v], lambda v: (v,), lambda v: {1: v}, lambda v: {"a": v}])
def test_deep_but_finite_values_round_trip_up_to_the_limit(make):
    value = nested(MAX_DEPTH, make)
    assert same(J.loads(J.dumps(value)), value)
    rec = Record(CacheEntry("f", {"x": nested(MAX_DEPTH - 1, make)}, output=value), b"k")
    assert load_record(dump_record(rec, J), J) == rec


def test_too_deep_values_raise():
    with pytest.raises(SerializationError, match=f"more than {MAX_DEPTH}"):
        J.dumps(nested(MAX_DEPTH + 1))


# ---------------------------------------------------------------- loads refuses malformed payloads


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not json",
        b'{"a": 1',
        b"\xff\xfe\x00garbage",
        b'"caf\xe9"',
        b"NaN",
        b"[Infinity]",
        b'{"a": 1} trailing',
        json.dumps({TAG: "nope"}).encode(),
        json.dumps({TAG: "tuple"}).encode(),
        json.dumps({TAG: "tuple", "items": 5}).encode(),
        json.dumps({TAG: "tuple", "items": [], "extra": 1}).encode(),
        json.dumps({TAG: "bytes", "b64": "!!!"}).encode(),
        json.dumps({TAG: "bytes", "b64": "AAA"}).encode(),
        json.dumps({TAG: "int", "v": "12a"}).encode(),
        json.dumps({TAG: "int", "v": "9" * 5000}).encode(),
        json.dumps({TAG: "float", "v": "1.5"}).encode(),
        json.dumps({TAG: "float", "bits": "xyz"}).encode(),
        json.dumps({TAG: "complex", "v": [1, 2]}).encode(),
        json.dumps({TAG: "set", "items": [[1]]}).encode(),
        json.dumps({TAG: "dict", "items": [[[1], 2]]}).encode(),
        json.dumps({TAG: "dict", "items": [[1, 2, 3]]}).encode(),
        json.dumps({TAG: "datetime", "v": "yesterday"}).encode(),
        json.dumps({TAG: "datetime", "v": "2024-01-01T00:00:00+01:00"}).encode(),
        json.dumps({TAG: "datetime", "v": "2024-01-01T00:00:00", "tz": 5}).encode(),
        json.dumps({TAG: "datetime", "v": "2024-01-01T00:00:00", "fold": 2}).encode(),
        json.dumps({TAG: "timedelta", "v": [10**10, 0, 0]}).encode(),
        json.dumps({TAG: "timezone", "offset": [1, 0, 0]}).encode(),
        json.dumps({TAG: "zoneinfo", "key": "No/Such_Zone"}).encode(),
        json.dumps({TAG: "zoneinfo", "key": "../../etc/passwd"}).encode(),
        json.dumps({TAG: "decimal", "v": "one"}).encode(),
        json.dumps({TAG: "uuid", "v": "nope"}).encode(),
        json.dumps({TAG: "path", "kind": "Path", "v": "x"}).encode(),
        json.dumps({TAG: "rawkey", "b64": "AA=="}).encode(),
        json.dumps({TAG: "ellipsis", "v": 1}).encode(),
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_loads_raises_serialization_error_on_malformed_payloads(payload):
    with pytest.raises(SerializationError):
        J.loads(payload)


def test_loads_accepts_bytes_like_and_rejects_other_types():
    data = J.dumps({"a": (1,)})
    assert J.loads(bytearray(data)) == {"a": (1,)}
    assert J.loads(memoryview(data)) == {"a": (1,)}
    with pytest.raises(SerializationError):
        J.loads(42)  # type: ignore[arg-type]


def test_from_jsonable_refuses_non_json_objects():
    with pytest.raises(SerializationError):
        from_jsonable({"a": Plain()})
    with pytest.raises(SerializationError):
        from_jsonable({1: "non-str key in a plain object"})


# ---------------------------------------------------------------- hypothesis round-trip

fixed_offsets = st.builds(
    dt.timezone,
    st.timedeltas(
        min_value=dt.timedelta(hours=-23, minutes=-59), max_value=dt.timedelta(hours=23, minutes=59)
    ),
)
named_offsets = st.builds(
    dt.timezone,
    st.timedeltas(min_value=dt.timedelta(hours=-23), max_value=dt.timedelta(hours=23)),
    st.text(max_size=5),
)
tzs = st.none() | fixed_offsets | named_offsets | st.timezones()
paths = st.builds(
    lambda cls, s: cls(s),
    st.sampled_from([PurePosixPath, PureWindowsPath, Path]),
    st.text(alphabet="ab/._- ", max_size=12),
).filter(lambda p: str(type(p)(str(p))) == str(p))  # the others raise: see the test below


def test_a_path_its_own_string_does_not_rebuild_is_refused():
    odd = PureWindowsPath("//a/")  # a UNC drive with an empty share: str() loses it
    assert str(PureWindowsPath(str(odd))) != str(odd)
    with pytest.raises(SerializationError, match="round trip"):
        J.dumps(odd)
    unc = PureWindowsPath("//server/share/x")
    assert J.loads(J.dumps(unc)) == unc


hashable_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**130), max_value=2**130),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.binary(max_size=8),
    st.complex_numbers(allow_nan=False),
    st.dates(),
    st.datetimes(timezones=tzs),
    st.times(timezones=st.none() | fixed_offsets),
    st.timedeltas(),
    st.decimals(allow_nan=False),
    st.uuids(),
    paths,
    st.just(...),
    st.builds(RawKey, st.binary(max_size=8), st.text(max_size=5)),
)
hashables = st.recursive(
    hashable_scalars,
    lambda c: st.tuples(c, c) | st.frozensets(c, max_size=3),
    max_leaves=6,
)
scalars = st.one_of(
    hashable_scalars,
    st.floats(allow_nan=True, allow_infinity=True),
    st.complex_numbers(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.binary(max_size=8).map(bytearray),
    st.text(alphabet=st.characters() | st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff"]), max_size=8),
    st.sampled_from([TAG, '"__ch__"', "\\u005f"]),
)
values = st.recursive(
    scalars,
    lambda c: (
        st.lists(c, max_size=4)
        | st.lists(c, max_size=4).map(tuple)
        | st.dictionaries(st.text(max_size=6) | st.just(TAG), c, max_size=4)
        | st.dictionaries(hashables, c, max_size=4)
        | st.sets(hashables, max_size=4)
        | st.frozensets(hashables, max_size=4)
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_any_nested_supported_value_round_trips_exactly(value):
    via_bytes, via_tree = roundtrip_all_ways(value)
    assert same(via_bytes, value)
    assert same(via_tree, value)
    data = J.dumps(value)
    data.decode("utf-8")  # always valid UTF-8
    assert same(PickleSerializer(SECRET).loads(P.dumps(value)), value)


json_trees = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
    | st.sampled_from([TAG, "items", "v", "b64", "tuple", "dict", "int", "float", "datetime", "path"]),
    lambda c: (
        st.lists(c, max_size=4)
        | st.dictionaries(
            st.sampled_from([TAG, "items", "v", "b64", "tz", "fold", "key", "kind", "x"]), c, max_size=4
        )
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(json_trees)
def test_decoding_any_json_tree_gives_a_value_or_serialization_error(tree):
    try:
        from_jsonable(tree)
    except SerializationError:
        pass
    try:
        J.loads(json.dumps(tree).encode())
    except SerializationError:
        pass


# ---------------------------------------------------------------- pickle: signing and tampering


@dataclasses.dataclass
class Payload:
    name: str
    items: list


def evil_payload(marker: Path) -> bytes:
    """A pickle whose unpickling creates the directory ``marker``."""

    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    return pickle.dumps(Evil())


def signed(body: bytes, secret: bytes = SECRET) -> bytes:
    import hashlib
    import hmac

    return PICKLE_MAGIC + hmac.new(secret, body, hashlib.sha256).digest() + body


def test_pickle_round_trips_arbitrary_objects():
    value = {"obj": Payload("x", [1, (2,)]), "color": Color.RED}
    back = P.loads(P.dumps(value))
    assert back == value
    assert type(back["obj"]) is Payload


def test_pickle_payload_layout_is_magic_mac_body():
    data = P.dumps([1, 2])
    assert data.startswith(PICKLE_MAGIC)
    assert data == signed(pickle.dumps([1, 2], protocol=pickle.HIGHEST_PROTOCOL))


def test_the_evil_payload_is_live_when_properly_signed(tmp_path):
    # Proves the payload used below would have a side effect if it were unpickled.
    marker = tmp_path / "pwned"
    P.loads(signed(evil_payload(marker)))
    assert marker.exists()


def _tamperings(body: bytes) -> dict:
    good = signed(body)
    m = len(PICKLE_MAGIC)
    flip_body = bytearray(good)
    flip_body[-2] ^= 0x01
    flip_mac = bytearray(good)
    flip_mac[m + 5] ^= 0x80
    return {
        "unsigned": body,
        "wrong_magic": b"XXpickle1\x00" + good[m:],
        "old_magic_prefix_only": PICKLE_MAGIC,
        "truncated_mac": good[: m + 10],
        "mac_without_body": good[: m + 32],
        "flipped_body_bit": bytes(flip_body),
        "flipped_mac_bit": bytes(flip_mac),
        "other_secret": signed(body, b"another secret"),
        "appended_bytes": good + b".",
        "empty": b"",
    }


@pytest.mark.parametrize("case", list(_tamperings(b"x")))
def test_unsigned_or_tampered_pickle_is_refused_and_never_unpickled(tmp_path, case):
    marker = tmp_path / "pwned"
    payload = _tamperings(evil_payload(marker))[case]
    with pytest.raises(SerializationError):
        P.loads(payload)
    assert not marker.exists()


def test_tampered_pickle_record_is_refused_and_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    good = dump_record(Record(CacheEntry("f", {"x": 1}, output=1), b"k"), P)
    body = evil_payload(marker)
    forged = good[: len(PICKLE_MAGIC) + 32] + body  # a valid MAC for another body
    with pytest.raises(SerializationError):
        load_record(forged, P)
    with pytest.raises(SerializationError):
        load_record(body, P)
    assert not marker.exists()


def test_unpicklable_value_raises_naming_its_path_and_type():
    with pytest.raises(SerializationError, match=r"value\['rows'\]\[2\]: type _thread.lock"):
        P.dumps({"rows": [1, 2, threading.Lock()]})
    with pytest.raises(SerializationError, match="function"):
        P.dumps(lambda: 1)
    rec = Record(CacheEntry("f", {"x": 1}, output={"a": (1, [lambda: 1])}), b"k")
    with pytest.raises(SerializationError, match=r"output\['a'\]\[1\]\[0\]: type function"):
        dump_record(rec, P)


def test_a_signed_but_unloadable_pickle_raises_serialization_error():
    body = pickle.dumps(Payload("x", []))
    body = body.replace(b"Payload", b"Paylaod")
    with pytest.raises(SerializationError):
        P.loads(signed(body))


def test_repr_and_errors_never_show_the_secret():
    s = PickleSerializer("hunter2-very-secret")
    assert "hunter2" not in repr(s)
    assert "hunter2" not in str(vars(s) if hasattr(s, "__dict__") else "")
    for payload in _tamperings(b"x").values():
        with pytest.raises(SerializationError) as info:
            s.loads(payload)
        assert "hunter2" not in str(info.value)


# ---------------------------------------------------------------- pickle: the secret


def test_secret_may_be_str_or_bytes():
    data = PickleSerializer("s3cret").dumps(1)
    assert PickleSerializer(b"s3cret").loads(data) == 1


def test_secret_from_the_environment(monkeypatch):
    monkeypatch.setenv(ENV, "from-env")
    data = PickleSerializer().dumps({"a": 1})
    assert PickleSerializer(b"from-env").loads(data) == {"a": 1}
    with pytest.raises(SerializationError):
        PickleSerializer(b"other").loads(data)


def test_argument_secret_overrides_the_environment(monkeypatch):
    monkeypatch.setenv(ENV, "from-env")
    data = PickleSerializer("from-arg").dumps(1)
    assert PickleSerializer(b"from-arg").loads(data) == 1
    with pytest.raises(SerializationError):
        PickleSerializer().loads(data)


@pytest.mark.parametrize("env", [None, ""])
def test_missing_or_empty_secret_is_a_config_error_naming_both_sources(monkeypatch, env):
    if env is None:
        monkeypatch.delenv(ENV, raising=False)
    else:
        monkeypatch.setenv(ENV, env)
    with pytest.raises(ConfigError) as info:
        PickleSerializer()
    assert "secret" in str(info.value)
    assert ENV in str(info.value)
    with pytest.raises(ConfigError, match=ENV):
        PickleSerializer("")
    with pytest.raises(ConfigError, match=ENV):
        resolve_serializer("pickle")


def test_secret_of_a_wrong_type_is_a_config_error(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(ConfigError, match="secret"):
        PickleSerializer(12345)  # type: ignore[arg-type]


# ---------------------------------------------------------------- resolve_serializer and the protocol


class Reversed:
    """A user-defined serializer: JSON, byte-reversed."""

    name = "reversed-json"

    def dumps(self, obj):
        return J.dumps(obj)[::-1]

    def loads(self, data):
        return J.loads(bytes(data)[::-1])


def test_resolve_serializer(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert type(resolve_serializer(None)) is JsonSerializer
    assert type(resolve_serializer("json")) is JsonSerializer
    assert type(resolve_serializer("json", secret="ignored")) is JsonSerializer
    pk = resolve_serializer("pickle", secret="s")
    assert type(pk) is PickleSerializer
    assert PickleSerializer("s").loads(pk.dumps(1)) == 1
    custom = Reversed()
    assert resolve_serializer(custom) is custom
    assert resolve_serializer(J) is J


@pytest.mark.parametrize("spec", ["yaml", "JSON ", 42, object(), JsonSerializer, b"json"])
def test_resolve_serializer_rejects_anything_else_naming_the_option(spec):
    with pytest.raises(ConfigError, match="serializer"):
        resolve_serializer(spec)  # type: ignore[arg-type]


def test_serializers_satisfy_the_protocol():
    assert isinstance(J, Serializer)
    assert isinstance(P, Serializer)
    assert isinstance(Reversed(), Serializer)
    assert not isinstance(object(), Serializer)
    assert (J.name, P.name) == ("json", "pickle")


# ---------------------------------------------------------------- records

SERIALIZERS = {"json": J, "pickle": P, "custom": Reversed()}


def sample_records():
    key = b"\x01canonical key bytes\x00\xff"
    return {
        "plain": Record(
            CacheEntry("mod.f", {"x": 1, "s": "a"}, output={"rows": [1, 2]}, metadata={"m": 1}), key, None
        ),
        "rich": Record(
            CacheEntry(
                "mod.Cls.method",
                {"self": RawKey(b"\x00self-key", "self"), "t": (1, 2), "when": dt.date(2024, 1, 1)},
                output={1: b"bytes", "1": {2.5, None}},
                expected=[(1,)],
                metadata={"created": dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)},
            ),
            key,
            1_700_000_000.25,
        ),
        "unset_output_and_expected": Record(CacheEntry("f", {"x": None}), key, 12.0),
        "expected_only": Record(CacheEntry("f", {}, expected="annotated"), key, None),
        "none_output_is_not_unset": Record(CacheEntry("f", {}, output=None, expected=None), key, None),
        "tag_key_in_inputs": Record(CacheEntry("f", {TAG: "tuple", "items": [1]}, output=1), key, None),
    }


def same_record(a: Record, b: Record) -> bool:
    ea, eb = a.entry, b.entry
    return (
        a.key == b.key
        and same(a.expires_at, b.expires_at)
        and ea.func == eb.func
        and same(ea.inputs, eb.inputs)
        and same(ea.output, eb.output)
        and same(ea.expected, eb.expected)
        and same(ea.metadata, eb.metadata)
    )


@pytest.mark.parametrize("ser", list(SERIALIZERS.values()), ids=list(SERIALIZERS))
@pytest.mark.parametrize("name", list(sample_records()))
def test_records_round_trip(ser, name):
    rec = sample_records()[name]
    back = load_record(dump_record(rec, ser), ser)
    assert type(back) is Record
    assert same_record(back, rec)


@pytest.mark.parametrize("name", list(sample_records()))
def test_records_round_trip_through_jsoncache_trees(name):
    rec = sample_records()[name]
    text = json.dumps(record_to_jsonable(rec), indent=2)
    assert same_record(record_from_jsonable(json.loads(text)), rec)


def test_unset_output_and_expected_stay_unset():
    rec = sample_records()["unset_output_and_expected"]
    for ser in SERIALIZERS.values():
        back = load_record(dump_record(rec, ser), ser).entry
        assert back.output is ...
        assert back.expected is ...
        assert back.annotated is False
    tree = record_to_jsonable(rec)
    assert "output" not in tree and "expected" not in tree
    back = load_record(dump_record(sample_records()["none_output_is_not_unset"], J), J).entry
    assert back.output is None and back.expected is None and back.annotated


def test_rawkey_in_inputs_comes_back_as_a_rawkey():
    rec = sample_records()["rich"]
    for ser in SERIALIZERS.values():
        self_key = load_record(dump_record(rec, ser), ser).entry.inputs["self"]
        assert type(self_key) is RawKey
        assert (self_key.bytes, self_key.label) == (b"\x00self-key", "self")


def test_record_json_is_readable():
    rec = sample_records()["plain"]
    tree = json.loads(dump_record(rec, J))
    assert tree["cachehaven"] == RECORD_VERSION
    assert tree["func"] == "mod.f"
    assert tree["inputs"] == {"x": 1, "s": "a"}
    assert tree["output"] == {"rows": [1, 2]}
    assert tree["expires_at"] is None
    assert tree == record_to_jsonable(rec)


def test_record_validates_its_fields():
    entry = CacheEntry("f")
    with pytest.raises(TypeError):
        Record(entry, "not bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Record({"func": "f"}, b"k")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Record(entry, b"k", True)
    with pytest.raises(ValueError):
        Record(entry, b"k", math.nan)
    assert Record(entry, bytearray(b"k"), 5).key == b"k"
    assert type(Record(entry, b"k", 5).expires_at) is float


# ---------------------------------------------------------------- load_record refuses malformed records


def _valid_tree() -> dict:
    return record_to_jsonable(sample_records()["rich"])


def _with(**changes) -> bytes:
    tree = _valid_tree()
    for name, value in changes.items():
        if value is KeyError:
            del tree[name]
        else:
            tree[name] = value
    return json.dumps(tree).encode()


BAD_RECORDS = {
    "version_2": _with(cachehaven=2),
    "version_str": _with(cachehaven="1"),
    "version_bool": _with(cachehaven=True),
    "no_version": _with(cachehaven=KeyError),
    "no_func": _with(func=KeyError),
    "no_inputs": _with(inputs=KeyError),
    "no_metadata": _with(metadata=KeyError),
    "no_key": _with(key=KeyError),
    "no_expires_at": _with(expires_at=KeyError),
    "unknown_field": _with(surprise=1),
    "func_int": _with(func=3),
    "inputs_list": _with(inputs=[1]),
    "inputs_tagged_tuple": _with(inputs={TAG: "tuple", "items": []}),
    "metadata_str": _with(metadata="m"),
    "key_int": _with(key=5),
    "key_bad_base64": _with(key="***"),
    "key_non_canonical_base64": _with(key="AB=="),
    "expires_at_str": _with(expires_at="soon"),
    "expires_at_bool": _with(expires_at=True),
    "output_bad_tag": _with(output={TAG: "tuple", "items": 1}),
    "not_a_dict": b"[1, 2]",
    "non_utf8": b'{"cachehaven": 1, "func": "\xff"}',
    "not_json": b"<html>",
    "empty": b"",
    "a_pickle": P.dumps({"cachehaven": 1}),
}


@pytest.mark.parametrize("payload", list(BAD_RECORDS.values()), ids=list(BAD_RECORDS))
def test_load_record_raises_serialization_error_on_malformed_json(payload):
    with pytest.raises(SerializationError):
        load_record(payload, J)


def test_record_from_jsonable_raises_serialization_error_on_malformed_trees():
    for payload in BAD_RECORDS.values():
        try:
            tree = json.loads(payload)
        except ValueError:
            continue
        with pytest.raises(SerializationError):
            record_from_jsonable(tree)
    with pytest.raises(SerializationError):
        record_from_jsonable(None)  # type: ignore[arg-type]


def test_every_truncation_of_a_record_is_refused():
    for ser in (J, P):
        data = dump_record(sample_records()["rich"], ser)
        for n in range(len(data)):
            with pytest.raises(SerializationError):
                load_record(data[:n], ser)


def test_a_signed_pickle_of_the_wrong_shape_is_refused():
    rec = sample_records()["plain"]
    for bad in [[1], {"cachehaven": 1}, {**_valid_tree(), "key": "base64 is for JSON"}]:
        with pytest.raises(SerializationError):
            load_record(P.dumps(bad), P)
    with pytest.raises(SerializationError):
        load_record(dump_record(rec, J), P)
    with pytest.raises(SerializationError):
        load_record(dump_record(rec, P), J)


def test_a_failing_custom_serializer_surfaces_as_serialization_error():
    class Broken(Reversed):
        def loads(self, data):
            raise KeyError("boom")

    with pytest.raises(SerializationError):
        load_record(b"anything", Broken())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["json", "pickle"]))
def test_load_record_of_random_bytes_raises_only_serialization_error(data, which):
    ser = J if which == "json" else P
    with pytest.raises(SerializationError):
        load_record(data, ser)
    with pytest.raises(SerializationError):
        load_record(PICKLE_MAGIC + data, ser)


mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(min_value=0), st.integers(min_value=1, max_value=255)),
    st.tuples(st.just("insert"), st.integers(min_value=0), st.binary(min_size=1, max_size=4)),
    st.tuples(st.just("delete"), st.integers(min_value=0), st.integers(min_value=1, max_value=8)),
    st.tuples(
        st.just("replace_text"), st.integers(min_value=0), st.sampled_from([b"1", b'"', b"{", b"]", b"null"])
    ),
)


def mutate(data: bytes, ops) -> bytes:
    buf = bytearray(data)
    for op, pos, arg in ops:
        if not buf:
            break
        i = pos % len(buf)
        if op == "flip":
            buf[i] ^= arg
        elif op == "insert":
            buf[i:i] = arg
        elif op == "delete":
            del buf[i : i + arg]
        else:
            buf[i : i + len(arg)] = arg
    return bytes(buf)


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(sorted(sample_records())),
    st.sampled_from(["json", "pickle"]),
    st.lists(mutation, min_size=1, max_size=4),
)
def test_load_record_of_a_mutated_payload_gives_a_record_or_serialization_error(name, which, ops):
    ser = J if which == "json" else P
    data = dump_record(sample_records()[name], ser)
    mutated = mutate(data, ops)
    try:
        rec = load_record(mutated, ser)
    except SerializationError:
        return
    assert type(rec) is Record
    assert isinstance(rec.entry, CacheEntry)
    if which == "pickle":
        assert mutated == data  # a changed signed payload never loads


# ---------------------------------------------------------------- a batch's records


class _Call:
    def __init__(self, func: str, inputs: dict) -> None:
        self.func, self.inputs, self.key = func, inputs, call_key(func, inputs)


@pytest.mark.parametrize("serializer", [J, P], ids=["json", "pickle"])
@pytest.mark.parametrize("expires_at", [None, 1795251703.75])
def test_a_batchs_records_are_each_entrys_record(serializer, expires_at):
    outputs = [1, {"a": [1.5, None]}, (1, 2), b"\x00", {1: "x"}, "s" * 40, 2**60, -0.0, ...]
    pairs = [(_Call("mod.f", {"x": [i]}), out) for i, out in enumerate(outputs)]
    meta = {"annotation": {"by": "test"}}
    records = encode_results(pairs, meta, expires_at, serializer)
    assert records == [
        encode_record(CacheEntry(c.func, c.inputs, out, ..., meta), c.key.bytes, expires_at, serializer)
        for c, out in pairs
    ]
    assert encode_results([], meta, expires_at, serializer) == []


def test_a_batch_with_an_unstorable_result_raises_naming_it():
    pairs = [(_Call("mod.f", {"x": [0]}), 1), (_Call("mod.f", {"x": [1]}), object())]
    with pytest.raises(SerializationError, match="output"):
        encode_results(pairs, {}, None, J)
