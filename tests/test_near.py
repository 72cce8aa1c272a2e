"""The near cache of the file backends (``backends/_near.py``) and the copy it gives each hit
(``_core.fresh_copy``): every hit gets a value equal to what was kept, of the same types, and
sharing nothing a caller could mutate; values that are not plain data go through a private
pickle instead, so sharing inside a value is kept as a full read would give it."""

from __future__ import annotations

import collections
import copy
import datetime
from typing import Any, Iterator, List

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cachehaven._core import MAX_DEPTH, fresh_copy
from cachehaven.backends._near import MAX_FROZEN_BYTES, NearCache
from cachehaven.entry import MISSING

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**64, max_value=2**200),
    st.floats(allow_nan=False),
    st.complex_numbers(allow_nan=False),
    st.text(max_size=20),
    st.binary(max_size=20),
    st.just(...),
)
HASHABLE = st.recursive(
    SCALARS, lambda inner: st.one_of(st.tuples(inner, inner), st.frozensets(inner, max_size=3)), max_leaves=6
)
PLAIN = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(HASHABLE, inner, max_size=4),
        st.lists(inner, max_size=3).map(tuple),
        st.sets(HASHABLE, max_size=3),
        st.frozensets(HASHABLE, max_size=3),
    ),
    max_leaves=20,
)

MUTABLE = (dict, list, set)


def pairs(a: Any, b: Any) -> Iterator[Any]:
    """Every pair of corresponding objects of two equal plain values (sets: the sets only)."""
    yield a, b
    if type(a) is dict:
        for k in a:
            yield from pairs(a[k], b[k])
    elif type(a) in (list, tuple):
        for x, y in zip(a, b):
            yield from pairs(x, y)


def same_shape(a: Any, b: Any) -> bool:
    return all(type(x) is type(y) for x, y in pairs(a, b))


@settings(max_examples=300, deadline=None)
@given(PLAIN)
def test_fresh_copy_is_equal_and_shares_nothing_mutable(value: Any) -> None:
    kept = fresh_copy(value, 10**9)
    for original, copied in ((value, kept), (kept, fresh_copy(kept))):
        assert copied == original
        assert same_shape(original, copied)
        for x, y in pairs(original, copied):
            if type(x) in MUTABLE:
                assert x is not y


def test_fresh_copy_shares_what_cannot_change() -> None:
    inner = (1, "a", frozenset({2}))
    value = {"t": inner, "l": [inner], "mixed": (1, [2])}
    copied = fresh_copy(value, MAX_FROZEN_BYTES)
    assert copied["t"] is inner and copied["l"][0] is inner
    assert copied["mixed"] is not value["mixed"] and copied["mixed"][1] is not value["mixed"][1]
    assert fresh_copy(inner) is inner


@pytest.mark.parametrize(
    "value",
    [
        collections.OrderedDict(a=1),
        [datetime.date(2024, 1, 1)],
        {"b": bytearray(b"x")},
        [type("Str", (str,), {})("subclass")],
        (1, object()),
    ],
    ids=["dict subclass", "date", "bytearray", "str subclass", "object"],
)
def test_fresh_copy_refuses_what_is_not_plain_data(value: Any) -> None:
    with pytest.raises(TypeError, match="not plain data"):
        fresh_copy(value, MAX_FROZEN_BYTES)


def test_fresh_copy_refuses_shared_cyclic_deep_and_big_values() -> None:
    shared: List[int] = [1]
    cyclic: List[Any] = []
    cyclic.append(cyclic)
    deep: List[Any] = []
    node = deep
    for _ in range(MAX_DEPTH + 1):
        node.append([])
        node = node[0]
    with pytest.raises(ValueError, match="same container twice"):
        fresh_copy([shared, {"x": shared}], MAX_FROZEN_BYTES)
    with pytest.raises(ValueError, match="same container twice"):
        fresh_copy(cyclic, MAX_FROZEN_BYTES)
    with pytest.raises(ValueError, match="levels deep"):
        fresh_copy(deep, 10**9)
    with pytest.raises(ValueError, match="max_bytes"):
        fresh_copy(["x" * MAX_FROZEN_BYTES], MAX_FROZEN_BYTES)
    with pytest.raises(ValueError, match="max_bytes"):
        fresh_copy([10**200000], MAX_FROZEN_BYTES)
    assert fresh_copy(((), ()), MAX_FROZEN_BYTES) == ((), ())  # shared immutables are fine


def mutate(value: Any) -> None:
    """Change every dict, list and set inside ``value``."""
    for x in [x for x, _ in pairs(value, value) if type(x) in MUTABLE]:
        if type(x) is list:
            x.append("mutated")
        elif type(x) is dict:
            x["mutated"] = True
        else:
            x.add("mutated")


@pytest.mark.parametrize(
    "value",
    [
        {"name": "widget", "tags": ["a", "b"], "nested": {"t": (1, [2])}, "s": {1, 2}},
        [datetime.datetime(2024, 1, 2, 3, 4, 5), {"k": [1]}],  # not plain data: a pickle
    ],
    ids=["plain", "pickled"],
)
def test_near_cache_hits_are_fresh_copies(value: Any) -> None:
    expected = copy.deepcopy(value)
    near = NearCache(4)
    near.put("n", 1, b"k", None, value)
    mutate(value)  # the value it was given is the caller's, not the near cache's
    got = near.get("n", 1, b"k", 0.0)
    assert got == expected
    mutate(got)  # nor is what a hit returned
    assert near.get("n", 1, b"k", 0.0) == expected
    assert near.get("n", 2, b"k", 0.0) is MISSING  # another stamp
    assert near.get("n", 1, b"other", 0.0) is MISSING  # another key


def test_near_cache_keeps_sharing_inside_a_value_as_a_full_read_would() -> None:
    inner = [1]
    near = NearCache(4)
    near.put("n", 1, None, None, [inner, inner])  # shared: the pickle keeps it shared
    got = near.get("n", 1, None, 0.0)
    assert got == [[1], [1]] and got[0] is got[1] and got[0] is not inner


def test_near_cache_skips_values_it_cannot_keep() -> None:
    near = NearCache(4)
    near.put("big", 1, None, None, ["x" * (MAX_FROZEN_BYTES + 1)])
    near.put("lambda", 1, None, None, [lambda: 1])  # neither plain data nor picklable
    assert near.get("big", 1, None, 0.0) is MISSING
    assert near.get("lambda", 1, None, 0.0) is MISSING
    assert len(near) == 0
