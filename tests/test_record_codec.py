"""The native record codec (``_core.record_encode`` / ``_core.record_decode``) against the
Python implementation in :mod:`cachehaven.serialize`.

The native functions handle records of plain JSON data and hand everything else back
(``None``). Whenever they do answer, the answer must be exactly the Python one: the same
stored bytes (records written before stay byte-identical), and the same record read back.
"""

from __future__ import annotations

import math
import struct
from typing import Any, Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cachehaven import CacheEntry, _core
from cachehaven.errors import SerializationError
from cachehaven.serialize import (
    MAX_DEPTH,
    TAG,
    JsonSerializer,
    PickleSerializer,
    Record,
    _json_bytes,
    _parse_json,
    _record_from_dict,
    dump_record,
    encode_record,
    from_jsonable,
    load_current_value,
    load_record,
    load_value,
    record_to_jsonable,
)

J = JsonSerializer()
SAFE = 2**53 - 1


def python_bytes(entry: CacheEntry, key: bytes, expires_at: Optional[float]) -> bytes:
    """The stored bytes as the pure-Python writer makes them."""
    return _json_bytes(record_to_jsonable(Record(entry, key, expires_at)))


def python_record(data: bytes) -> Record:
    """The record as the pure-Python reader reads it."""
    tree, tagged = _parse_json(data)
    return _record_from_dict(tree, True, from_jsonable if tagged else None)


def same(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down and floats equal bit for bit."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return struct.pack("<d", a) == struct.pack("<d", b)
    if type(a) is list:
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if type(a) is dict:
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def same_record(a: Record, b: Record) -> bool:
    ea, eb = a.entry, b.entry
    return (
        ea.func == eb.func
        and same(ea.inputs, eb.inputs)
        and same(ea.output, eb.output)
        and same(ea.expected, eb.expected)
        and same(ea.metadata, eb.metadata)
        and a.key == b.key
        and same(a.expires_at, b.expires_at)
    )


def check_current_value(data: bytes, reference: Record, serializer: Any = J) -> None:
    """load_current_value gives the reference record's value only for its own key and before
    its expiry time, and ``...`` otherwise."""
    exp = reference.expires_at
    nows = [-1.0, 0.0, 5e9] + ([exp, math.nextafter(exp, -math.inf)] if exp is not None else [])
    for key in (reference.key, reference.key + b"\0", reference.key[:-1]):
        for now in nows:
            got = load_current_value(data, serializer, key, now)
            if key != reference.key or (exp is not None and exp <= now):
                assert got is ..., (key, now)
            else:
                assert same(got, reference.entry.value)


# strings that exercise escaping: quotes, backslashes, every control character, DEL,
# non-ASCII, astral characters, and text that looks like a tag or an escape
texts = st.text(
    alphabet=st.characters(codec="utf-8")
    | st.sampled_from(['"', "\\", "/", "\x7f", "\x00", "\x1f", "é", "😀"]),
    max_size=10,
) | st.sampled_from(["__ch__x", "\\u0041", "\\\\u", '"__ch__"', ""])
plain_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-SAFE, max_value=SAFE),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 1e16, 1e-5, 1e-4, 5e-324, 1.7976931348623157e308, 0.1, 1e22, 123456789.0]),
    texts,
)
# a dict holding the tag as a key is not plain data (see non_plain): never a plain dict's key
plain_keys = texts.filter(lambda s: s != TAG)
plain = st.recursive(
    plain_scalars,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(plain_keys, c, max_size=4),
    max_leaves=20,
)
# values the native writer must hand back to Python (or, nested in plain data, send the
# whole record there): tags, big ints, non-finite floats, lone surrogates, subclasses
non_plain = st.one_of(
    st.integers(min_value=SAFE + 1) | st.integers(max_value=-SAFE - 1),
    st.sampled_from([math.inf, -math.inf, math.nan, True]),
    st.tuples(plain_scalars),
    st.binary(max_size=4),
    st.sampled_from(["\ud800", "a\udfff", {TAG: 1}, {1: "a"}, ..., frozenset({1})]),
)
mixed = st.recursive(
    plain_scalars | non_plain,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(texts, c, max_size=4),
    max_leaves=12,
)
keys = st.binary(max_size=40)
expiries = st.none() | st.floats(min_value=0, max_value=4e9) | st.sampled_from([1795251703.7479131, 0.0])
funcs = texts.filter(lambda s: s != "") | st.sampled_from(["mod.f", "bench.g[v=2]"])


def entries(values: Any) -> Any:
    names = plain_keys if values is plain else texts
    return st.builds(
        CacheEntry,
        func=funcs,
        inputs=st.dictionaries(names, values, max_size=3),
        output=values | st.just(...),
        expected=st.just(...) | values,
        metadata=st.dictionaries(names, values, max_size=2),
    )


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries(plain), keys, expiries)
def test_plain_records_are_written_natively_byte_for_byte(entry, key, expires_at):
    expected_bytes = python_bytes(entry, key, expires_at)
    native = _core.record_encode(
        entry.func, entry.inputs, entry.output, entry.expected, entry.metadata, key, expires_at
    )
    assert native == expected_bytes  # plain data is never handed back
    assert encode_record(entry, key, expires_at, J) == expected_bytes
    assert dump_record(Record(entry, key, expires_at), J) == expected_bytes


@pytest.mark.parametrize("special", ['"', "\\", "\n", "\x00", "\x1f", "\x7f", "é", "\u65e5", " ", "~"])
def test_every_character_at_every_place_is_written_as_python_writes_it(special):
    # the native writer skips runs of 8 characters needing no escape: try every offset
    for n in range(20):
        for at in range(n):
            text = "abcdefghijklmnopqrstu"[:n]
            text = text[:at] + special + text[at + 1 :]
            entry = CacheEntry(text or "f", {text: text}, [text, {text: 1}], ..., {"m": text})
            for key in (b"", b"k", b"ke", b"key", bytes(range(at + 1))):
                assert _core.record_encode(
                    entry.func, entry.inputs, entry.output, entry.expected, entry.metadata, key, None
                ) == python_bytes(entry, key, None)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries(mixed), keys, expiries)
def test_any_record_is_written_as_python_writes_it(entry, key, expires_at):
    try:
        expected_bytes = python_bytes(entry, key, expires_at)
    except SerializationError as e:
        with pytest.raises(SerializationError) as info:
            encode_record(entry, key, expires_at, J)
        assert str(info.value) == str(e)
        return
    native = _core.record_encode(
        entry.func, entry.inputs, entry.output, entry.expected, entry.metadata, key, expires_at
    )
    assert native is None or native == expected_bytes
    assert encode_record(entry, key, expires_at, J) == expected_bytes


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries(plain), keys, expiries)
def test_plain_records_are_read_natively_as_python_reads_them(entry, key, expires_at):
    data = python_bytes(entry, key, expires_at)
    reference = python_record(data)
    fields = _core.record_decode(data)
    if b"\\u" not in data:  # \u escapes take the Python reader, as they may spell a tag
        assert fields is not None
    record = load_record(data, J)
    assert same_record(record, reference)
    value, stored_key, stored_expiry = load_value(data, J)
    assert same(value, reference.entry.value)
    assert stored_key == reference.key
    assert same(stored_expiry, reference.expires_at)
    check_current_value(data, reference)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries(mixed), keys, expiries)
def test_any_stored_record_is_read_as_python_reads_it(entry, key, expires_at):
    try:
        data = python_bytes(entry, key, expires_at)
    except SerializationError:
        return
    reference = python_record(data)
    assert same_record(load_record(data, J), reference)
    assert same(load_value(data, J)[0], reference.entry.value)
    check_current_value(data, reference)


mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(min_value=0), st.integers(min_value=1, max_value=255)),
    st.tuples(st.just("insert"), st.integers(min_value=0), st.binary(min_size=1, max_size=4)),
    st.tuples(st.just("delete"), st.integers(min_value=0), st.integers(min_value=1, max_value=8)),
    st.tuples(
        st.just("text"),
        st.integers(min_value=0),
        st.sampled_from(
            [b"1", b'"', b"{", b"}", b"]", b",", b" ", b"null", b"1.0", b"-0", b"1e5", b"\\n", b"\\x", b"01"]
        ),
    ),
)


def mutate(data: bytes, ops: Any) -> bytes:
    buf = bytearray(data)
    for op, pos, arg in ops:
        i = pos % (len(buf) + 1)
        if op == "flip" and i < len(buf):
            buf[i] ^= arg
        elif op == "insert" or op == "text":
            buf[i:i] = arg
        elif op == "delete":
            del buf[i : i + arg]
    return bytes(buf)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries(plain), keys, expiries, st.lists(mutation, min_size=1, max_size=3))
def test_a_damaged_record_is_read_natively_only_if_python_reads_it_the_same(entry, key, expires_at, ops):
    data = mutate(python_bytes(entry, key, expires_at), ops)
    try:
        reference: Optional[Record] = python_record(data)
    except Exception:
        reference = None
    fields = _core.record_decode(data)
    # the value reader accepts exactly what the record reader does
    assert (_core.record_value(data, key, 0.0) is NotImplemented) == (fields is None)
    if fields is None:
        return
    assert reference is not None, f"the native reader accepted what Python refuses: {data!r}"
    check_current_value(data, reference)
    func, inputs, output, expected, metadata, stored_key, exp = fields
    native = Record(CacheEntry(func, inputs, output, expected, metadata), stored_key, exp)
    assert same_record(native, reference)
    light = _core.record_decode(data, False)
    assert light is not None
    assert light[1] is None and light[4] is None
    assert same(light[2], output) and same(light[3], expected) and light[5:] == fields[5:]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_are_never_read_natively_unless_python_reads_them(data):
    assert (_core.record_value(data, b"k", 0.0) is NotImplemented) == (_core.record_decode(data) is None)
    if _core.record_decode(data) is not None:
        python_record(data)  # must not raise
    else:
        try:
            python_record(data)
        except Exception:
            with pytest.raises(SerializationError):
                load_current_value(data, J, b"k", 0.0)


def test_the_native_writer_hands_back_what_it_cannot_write_exactly():
    key = b"k"
    for value in [
        (1,),
        2**53,
        -(2**53),
        math.nan,
        math.inf,
        b"x",
        "\ud800",
        {TAG: 1},
        {1: 2},
        {"deep": _nest(MAX_DEPTH)},
    ]:
        entry = CacheEntry("f", {}, value)
        assert _core.record_encode("f", {}, value, ..., {}, key, None) is None, value
        try:
            reference = python_bytes(entry, key, None)
        except SerializationError:
            with pytest.raises(SerializationError):
                encode_record(entry, key, None, J)
            continue
        assert encode_record(entry, key, None, J) == reference

    class Str(str):
        pass

    assert _core.record_encode(Str("f"), {}, 1, ..., {}, key, None) is None
    assert _core.record_encode("f", {}, 1, ..., {}, bytearray(key), None) is None
    assert _core.record_encode("f", {}, 1, ..., {}, key, 5) is None  # expires_at as an int
    assert encode_record(CacheEntry("f", {}, 1), key, 5, J) == python_bytes(CacheEntry("f", {}, 1), key, 5.0)


def _nest(depth: int) -> Any:
    v: Any = 0
    for _ in range(depth):
        v = [v]
    return v


def test_nesting_up_to_the_limit_is_written_natively():
    ok = _nest(MAX_DEPTH - 1)  # the output is at depth 0, so MAX_DEPTH - 1 lists fit
    native = _core.record_encode("f", {}, ok, ..., {}, b"k", None)
    assert native is not None and native == python_bytes(CacheEntry("f", {}, ok), b"k", None)
    assert _core.record_encode("f", {}, _nest(MAX_DEPTH + 1), ..., {}, b"k", None) is None


def test_the_native_reader_hands_back_what_python_must_decide():
    entry = CacheEntry("f", {"x": 1}, {"a": [1, 2.5, "s"]})
    good = python_bytes(entry, b"key", 12.5)
    assert _core.record_decode(good) is not None
    for data in [
        b" " + good,  # surrounding whitespace: json accepts it, on the slower path
        good + b"\n",
        good.replace(b'"cachehaven":1', b'"cachehaven":2'),
        good.replace(b'"x":1', b'"x":1,"x":2'),  # a repeated key inside the inputs is fine...
        good.replace(b'"func":"f"', b'"func":"f","func":"g"'),  # ...but not a repeated field
        good.replace(b'"expires_at":12.5', b'"expires_at":12'),
        good.replace(b'"key":"a2V5"', b'"key":"a2V5="'),
        good.replace(b'"a"', b'"\\u0061"'),
        good.replace(b'"s"', b'"__ch__"'),  # the tag's text as a value is plain data...
        good.replace(b'{"a"', b'{"__ch__"'),  # ...but as an object key it is a tag
        good.replace(b'"s"', b'"\xc3"'),  # not UTF-8, inside a string...
        good.replace(b"[1", b"[\xff1"),  # ...and outside one
        good.replace(b"2.5", b"1e400"),
        good.replace(b"[1", b"[123456789012345678901234567890"),
        bytearray(good),
        good.decode(),
    ]:
        fields = _core.record_decode(data)
        if isinstance(data, bytes) and (b'"x":1,"x":2' in data or b'"__ch__"]' in data):
            assert fields is not None and fields[1] == {"x": 2 if b'"x":2' in data else 1}
            assert same_record(load_record(data, J), python_record(data))
            continue
        assert fields is None, data
        try:
            reference = python_record(data)  # type: ignore[arg-type]
        except Exception:
            with pytest.raises(SerializationError):
                load_record(data, J)  # type: ignore[arg-type]
        else:
            assert same_record(load_record(data, J), reference)  # type: ignore[arg-type]


def test_other_serializers_are_untouched():
    p = PickleSerializer(b"secret")
    entry = CacheEntry("f", {"x": 1}, [1, 2])
    data = encode_record(entry, b"k", None, p)
    assert load_record(data, p).entry == entry
    assert load_value(data, p) == ([1, 2], b"k", None)
    check_current_value(encode_record(entry, b"k", 10.5, p), Record(entry, b"k", 10.5), p)
