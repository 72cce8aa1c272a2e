"""CacheEntry, as section 4 of the user guide describes it."""

from __future__ import annotations

import pytest

from cachehaven import CacheEntry


def my_function(x, y, z=10):
    return x + y + z


# ---------------------------------------------------------------- 4.1 fields


def test_fields_as_constructed():
    entry = CacheEntry(
        func="my_function",
        inputs={"x": 5, "y": 10},
        output=50,
        expected=...,
        metadata={"timestamp": "..."},
    )
    assert entry.func == "my_function"
    assert entry.inputs == {"x": 5, "y": 10}
    assert entry.output == 50
    assert entry.expected is ...
    assert entry.metadata == {"timestamp": "..."}
    assert entry.value == 50
    assert entry.annotated is False


def test_defaults_are_unset_and_empty():
    entry = CacheEntry(func="f")
    assert entry.inputs == {}
    assert entry.output is ...
    assert entry.expected is ...
    assert entry.metadata == {}
    assert entry.annotated is False


def test_default_dicts_are_not_shared_between_entries():
    a = CacheEntry(func="f")
    b = CacheEntry(func="f")
    a.inputs["x"] = 1
    a.metadata["m"] = 1
    assert b.inputs == {}
    assert b.metadata == {}


def test_callable_func_becomes_a_string_identity():
    entry = CacheEntry(func=my_function, inputs={"x": 1})
    assert isinstance(entry.func, str)
    assert entry.func.endswith("my_function")


# ---------------------------------------------------------------- 4.4.1 key


def test_key_is_an_int():
    entry = CacheEntry.from_args(func="add", output=15, x=5, y=10)
    assert isinstance(entry.key, int)
    assert not isinstance(entry.key, bool)
    assert 0 <= entry.key < 2**128


def test_key_is_stable_for_the_same_entry():
    entry = CacheEntry.from_args(func="add", output=15, x=5, y=10)
    assert entry.key == entry.key
    assert CacheEntry.from_args(func="add", output=15, x=5, y=10).key == entry.key


def test_key_independent_of_kwarg_order():
    entry = CacheEntry.from_args(func="add", output=15, x=5, y=10)
    entry2 = CacheEntry.from_args(func="add", output=15, y=10, x=5)
    assert entry.key == entry2.key


def test_key_ignores_output_expected_and_metadata():
    base = CacheEntry.from_args(func="add", output=15, x=5, y=10)
    assert CacheEntry.from_args(func="add", output=99, x=5, y=10).key == base.key
    assert base.annotate(expected=1, metadata={"a": 1}).key == base.key


@pytest.mark.parametrize(
    "other",
    [
        {"func": "add", "x": 5, "y": 11},
        {"func": "add", "x": 5},
        {"func": "add", "x": 5, "y": 10, "z": 0},
        {"func": "sub", "x": 5, "y": 10},
        {"func": "add", "x": 5.0, "y": 10},
        {"func": "add", "x": "5", "y": 10},
        {"func": "add", "y": 5, "x": 10},
    ],
)
def test_key_differs_when_inputs_or_func_differ(other):
    base = CacheEntry.from_args(func="add", output=15, x=5, y=10)
    func = other.pop("func")
    assert CacheEntry.from_args(func=func, output=15, **other).key != base.key


# ---------------------------------------------------------------- 4.4.2 / 4.4.3 value, annotated


def test_value_is_output_when_not_annotated():
    entry = CacheEntry.from_args(func="compute", output=100, n=10)
    assert entry.value == 100


def test_value_is_expected_when_set():
    entry = CacheEntry.from_args(func="compute", output=100, n=10)
    annotated = entry.annotate(expected=99)
    assert annotated.value == 99
    assert annotated.output == 100


def test_expected_none_is_a_real_annotation():
    entry = CacheEntry.from_args(func="compute", output=100, n=10).annotate(expected=None)
    assert entry.annotated is True
    assert entry.value is None


def test_annotated_flag():
    entry = CacheEntry.from_args(func="test", output=42, x=1)
    assert entry.annotated is False
    annotated = entry.annotate(expected=42)
    assert annotated.annotated is True


# ---------------------------------------------------------------- 4.2.1 from_args


def test_from_args_with_callable_and_exclude():
    entry = CacheEntry.from_args(func=my_function, output=25, x=5, y=10, z=10, exclude=["z"])
    assert entry.func.endswith("my_function")
    assert entry.inputs == {"x": 5, "y": 10}
    assert entry.output == 25


def test_from_args_exclude_changes_nothing_but_the_excluded_input():
    with_z = CacheEntry.from_args(func="f", output=1, x=5, z=10, exclude=["z"])
    other_z = CacheEntry.from_args(func="f", output=1, x=5, z=99, exclude=["z"])
    no_z = CacheEntry.from_args(func="f", output=1, x=5)
    assert with_z.key == other_z.key == no_z.key


def test_from_args_exclude_dotted_path_into_dict():
    cfg = {"model": "m", "api_key": "secret"}
    entry = CacheEntry.from_args(func="f", output=1, cfg=cfg, exclude=["cfg.api_key"])
    assert entry.inputs == {"cfg": {"model": "m"}}
    assert cfg == {"model": "m", "api_key": "secret"}, "the caller's dict must not be mutated"


def test_from_args_expected_and_metadata():
    entry = CacheEntry.from_args(func="add", expected=15, metadata={"m": 1}, x=5, y=10)
    assert entry.output is ...
    assert entry.expected == 15
    assert entry.value == 15
    assert entry.metadata == {"m": 1}
    assert entry.inputs == {"x": 5, "y": 10}


def test_from_args_string_func_is_kept_verbatim():
    assert CacheEntry.from_args(func="my_function", output=1, x=1).func == "my_function"


# ---------------------------------------------------------------- 4.2.2 from_dict


def test_from_dict():
    data = {
        "func": "compute",
        "inputs": {"n": 100},
        "output": 5050,
        "expected": 5050,
        "metadata": {"cached_at": "2025-10-21"},
    }
    entry = CacheEntry.from_dict(data)
    assert entry.func == "compute"
    assert entry.inputs == {"n": 100}
    assert entry.output == 5050
    assert entry.expected == 5050
    assert entry.metadata == {"cached_at": "2025-10-21"}
    assert entry.annotated


def test_from_dict_missing_output_and_expected_are_unset():
    entry = CacheEntry.from_dict({"func": "compute", "inputs": {"n": 1}})
    assert entry.output is ...
    assert entry.expected is ...
    assert entry.metadata == {}


def test_from_dict_rejects_unknown_fields():
    with pytest.raises(ValueError, match="bogus"):
        CacheEntry.from_dict({"func": "f", "bogus": 1})


# ---------------------------------------------------------------- 4.3.1 to_dict


def test_to_dict_as_in_the_guide():
    entry = CacheEntry.from_args(func="add", output=15, x=5, y=10)
    assert entry.to_dict() == {
        "func": "add",
        "inputs": {"x": 5, "y": 10},
        "output": 15,
        "metadata": {},
    }


def test_to_dict_has_no_expected_or_output_when_unset():
    d = CacheEntry(func="f", inputs={"a": 1}).to_dict()
    assert "expected" not in d
    assert "output" not in d
    assert d == {"func": "f", "inputs": {"a": 1}, "metadata": {}}


def test_to_dict_includes_expected_when_set():
    d = CacheEntry(func="f", inputs={}, output=1, expected=2).to_dict()
    assert d["expected"] == 2
    assert d["output"] == 1


def test_to_dict_from_dict_round_trip():
    entry = CacheEntry("f", {"a": [1, 2], "b": None}, output=None, expected=3, metadata={"k": "v"})
    again = CacheEntry.from_dict(entry.to_dict())
    assert again == entry
    assert again.key == entry.key


def test_output_none_is_kept_by_to_dict():
    d = CacheEntry(func="f", inputs={}, output=None).to_dict()
    assert "output" in d
    assert d["output"] is None


# ---------------------------------------------------------------- 4.3.2 clone


def test_clone_updates_copy_only():
    original = CacheEntry.from_args(func="compute", output=100, n=10)
    modified = original.clone(output=200, metadata={"v": 2})
    assert original.output == 100
    assert original.metadata == {}
    assert modified.output == 200
    assert modified.metadata == {"v": 2}
    assert modified.inputs == {"n": 10}
    assert modified.func == "compute"


def test_clone_does_not_share_mutable_fields():
    original = CacheEntry("f", {"n": 1}, output=1, metadata={"a": 1})
    copy = original.clone()
    copy.inputs["n"] = 2
    copy.metadata["a"] = 2
    assert original.inputs == {"n": 1}
    assert original.metadata == {"a": 1}
    assert copy == CacheEntry("f", {"n": 2}, output=1, metadata={"a": 2})


def test_clone_rejects_unknown_fields():
    with pytest.raises(TypeError):
        CacheEntry("f").clone(bogus=1)


# ---------------------------------------------------------------- 4.3.3 annotate


def test_annotate_as_in_the_guide():
    entry = CacheEntry.from_args(func="fibonacci", output=55, n=10)
    annotated = entry.annotate(expected=55, metadata={"source": "ground_truth"})
    assert annotated.expected == 55
    assert annotated.annotated is True
    assert annotated.metadata == {"source": "ground_truth"}
    assert entry.annotated is False
    assert entry.metadata == {}


def test_annotate_defaults_expected_to_output():
    entry = CacheEntry.from_args(func="fibonacci", output=55, n=10)
    auto = entry.annotate()
    assert auto.expected == 55
    assert auto.annotated


def test_annotate_merges_metadata():
    entry = CacheEntry("f", {"n": 1}, output=1, metadata={"a": 1, "b": 1})
    annotated = entry.annotate(expected=2, metadata={"b": 2, "c": 3})
    assert annotated.metadata == {"a": 1, "b": 2, "c": 3}
    assert entry.metadata == {"a": 1, "b": 1}


def test_equality_compares_fields():
    a = CacheEntry("f", {"n": 1}, output=1)
    assert a == CacheEntry("f", {"n": 1}, output=1)
    assert a != CacheEntry("f", {"n": 1}, output=2)
    assert a != CacheEntry("f", {"n": 1}, output=1, expected=1)
