"""AgentHeaven 0.9.2's stored entries: decoding them into CacheEntry objects and encoding
entries the way AgentHeaven stores them, for backends running with ``key_scheme="ahvn"``.

AgentHeaven stores ``CacheEntry.to_dict()``: ``{"func", "inputs", "output"?, "expected"?,
"metadata"}`` (``output``/``expected`` only when set). How the values inside are stored
depends on the backend (the fixtures in ``tests/data/ahvn`` were written by AgentHeaven):

* ``DatabaseCache`` (and the JSON tagging AgentHeaven meant for every JSON it writes) tags
  what JSON lacks: ``{"__obj_type__": "tuple" | "set", "__obj_data__": [...]}`` (a set's
  items sorted), ``{"__obj_type__": "datetime", "__obj_data__": <timestamp()>}``,
  ``{"__obj_type__": "bigint", "__obj_data__": "<decimal>"}`` for ints beyond ±2**53,
  ``{"__obj_type__": "ellipsis"}``, and ``"function"`` (cloudpickle; never loaded here).
  :func:`decode_record` and :func:`encode_record` with ``tagged=True`` handle this form.
* ``JsonCache`` writes the same dicts through ``json.dump``, which bypasses the tagging:
  tuples become lists, big ints stay plain, and sets, datetimes or ``...`` fail halfway and
  leave a truncated file. It reads files through the tag decoder, so a tagged file written
  by :func:`dumps_record` reads back with every type intact.
* ``DiskCache`` pickles the dict itself (diskcache's pickle mode): values are exact Python
  objects, with no tags. Use ``tagged=False``.

The storage key of an entry is its AgentHeaven key (:func:`cachehaven.keys.ahvn_key`,
an md5 int) formatted by :func:`storage_key` (a JSON file's stem, a database row's id); a
DiskCache key is the int itself.
"""

from __future__ import annotations

import datetime
import json
import math
from typing import Any, Dict, Mapping, Optional

from .entry import CacheEntry
from .errors import KeyTypeError, SerializationError
from .keys import ahvn_json

__all__ = [
    "DB_CONTENT_COLUMN",
    "DB_ID_COLUMN",
    "DB_ID_LENGTH",
    "DB_TABLE",
    "JSON_INDENT",
    "JSON_SUFFIX",
    "decode_record",
    "digest_from_storage_key",
    "dumps_record",
    "encode_record",
    "is_ahvn_record",
    "loads_record",
    "same_call",
    "storage_key",
]

#: AgentHeaven's DatabaseCache table: ``id VARCHAR(63) PRIMARY KEY`` holding
#: :func:`storage_key`, and ``content`` holding the tagged JSON (TEXT on SQLite and MySQL,
#: JSONB on PostgreSQL).
DB_TABLE = "cache_orm"
DB_ID_COLUMN = "id"
DB_CONTENT_COLUMN = "content"
DB_ID_LENGTH = 63
#: A JsonCache file is ``storage_key(key) + JSON_SUFFIX``, written with ``indent=4``,
#: ``ensure_ascii=False`` and no trailing newline.
JSON_SUFFIX = ".json"
JSON_INDENT = 4

_FIELDS = ("func", "inputs", "output", "expected", "metadata")
_TAG = "__obj_type__"
_DATA = "__obj_data__"
_BIG = 1 << 53
_KEY_LIMIT = 1 << 128


# ---------------------------------------------------------------- storage keys


def storage_key(digest: int) -> str:
    """AgentHeaven's ``fmt_hash``: the key as 40 zero-padded decimal digits. It is the stem of
    a JsonCache file and the ``id`` of a DatabaseCache row (DiskCache keys are the int)."""
    if not isinstance(digest, int) or isinstance(digest, bool):
        raise TypeError(f"digest must be an int, not {type(digest).__name__}")
    if not 0 <= digest < _KEY_LIMIT:
        raise ValueError(f"digest must be a 128-bit unsigned int, got {digest}")
    return f"{digest:040d}"


def digest_from_storage_key(name: str) -> int:
    """The key of a storage key (``"0006452910756379405413525593858603593943"``, with or
    without the ``.json`` suffix). Raises ``ValueError`` for anything :func:`storage_key`
    would not produce."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, not {type(name).__name__}")
    stem = name[: -len(JSON_SUFFIX)] if name.endswith(JSON_SUFFIX) else name
    if len(stem) != 40 or not stem.isascii() or not stem.isdigit():
        raise ValueError(f"not an AgentHeaven storage key: {name!r}")
    digest = int(stem)
    if digest >= _KEY_LIMIT:
        raise ValueError(f"not an AgentHeaven storage key: {name!r}")
    return digest


# ---------------------------------------------------------------- decoding


def is_ahvn_record(obj: Any) -> bool:
    """Whether ``obj`` has the shape of an AgentHeaven entry dict: only the fields ``func``,
    ``inputs``, ``output``, ``expected``, ``metadata``, with a str ``func`` and a dict
    ``inputs``. (Its values may still be malformed: :func:`decode_record` checks them.)"""
    return (
        isinstance(obj, dict)
        and isinstance(obj.get("func"), str)
        and isinstance(obj.get("inputs"), dict)
        and all(k in _FIELDS for k in obj)
    )


def decode_record(obj: Any, *, tagged: bool = True) -> CacheEntry:
    """The :class:`CacheEntry` of an entry AgentHeaven 0.9.2 stored.

    ``obj`` is the stored dict: parsed from a JsonCache file or a DatabaseCache ``content``
    (``tagged=True``, the default: AgentHeaven's type tags are undone, so tuples, sets,
    datetimes, big ints and ``...`` come back), or unpickled from a DiskCache
    (``tagged=False``: the values are used as they are).

    A datetime comes back as AgentHeaven reads it: ``datetime.fromtimestamp(ts)``, naive and
    in the local time zone (a naive datetime written in the same zone is unchanged; an
    aware one loses its zone). A serialized function is refused, never loaded: AgentHeaven
    would unpickle it with cloudpickle, which runs code.

    Raises :class:`~cachehaven.errors.SerializationError`, naming the field, if ``obj`` is
    not such a dict (wrong type, unknown or missing fields) or a tag is malformed.
    """
    if not isinstance(obj, Mapping):
        raise SerializationError(f"an AgentHeaven entry is a dict, not {type(obj).__name__}")
    unknown = [k for k in obj if k not in _FIELDS]
    if unknown:
        raise SerializationError(
            f"not an AgentHeaven entry: unknown fields {', '.join(map(repr, sorted(map(str, unknown))))}"
        )
    func = obj.get("func")
    if not isinstance(func, str):
        raise SerializationError(f"an AgentHeaven entry's func must be a str, not {type(func).__name__}")
    if "inputs" not in obj:
        raise SerializationError("not an AgentHeaven entry: no inputs")
    inputs = obj["inputs"]
    if not isinstance(inputs, dict):
        raise SerializationError(f"an AgentHeaven entry's inputs must be a dict, not {type(inputs).__name__}")
    metadata = obj.get("metadata")
    if metadata is None:
        metadata = {}
    elif not isinstance(metadata, dict):
        raise SerializationError(
            f"an AgentHeaven entry's metadata must be a dict or null, not {type(metadata).__name__}"
        )
    decode = _untag if tagged else _as_is
    try:
        return CacheEntry(
            func,
            {k: decode(v, f"inputs[{k!r}]") for k, v in inputs.items()},
            decode(obj["output"], "output") if "output" in obj else ...,
            decode(obj["expected"], "expected") if "expected" in obj else ...,
            {k: decode(v, f"metadata[{k!r}]") for k, v in metadata.items()},
        )
    except RecursionError:
        raise SerializationError("an AgentHeaven entry is nested too deeply to decode") from None


def _as_is(value: Any, path: str) -> Any:
    return value


def _untag(value: Any, path: str) -> Any:
    """Undo AgentHeaven's JSON tags in ``value`` (as ``AhvnJsonDecoder`` does, minus code)."""
    if isinstance(value, list):
        return [_untag(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, dict):
        return value
    if _TAG not in value:
        return {k: _untag(v, f"{path}[{k!r}]") for k, v in value.items()}
    kind = value[_TAG]
    if kind == "ellipsis":
        return ...
    if kind == "function":
        raise SerializationError(
            f"{path} holds a function AgentHeaven serialized with cloudpickle; cachehaven never "
            "loads stored code"
        )
    if kind not in ("tuple", "set", "datetime", "bigint"):
        # AgentHeaven leaves a dict with an unknown tag as it is
        return {k: _untag(v, f"{path}[{k!r}]") for k, v in value.items()}
    if _DATA not in value:
        raise SerializationError(f"{path}: an AgentHeaven {kind!r} tag without {_DATA}")
    data = value[_DATA]
    if kind in ("tuple", "set"):
        if not isinstance(data, list):
            raise SerializationError(
                f"{path}: an AgentHeaven {kind} holds a {type(data).__name__}, not a list"
            )
        items = [_untag(v, f"{path}[{i}]") for i, v in enumerate(data)]
        if kind == "tuple":
            return tuple(items)
        try:
            return set(items)
        except TypeError as e:
            raise SerializationError(f"{path}: an AgentHeaven set with an unhashable item ({e})") from None
    if kind == "datetime":
        if not isinstance(data, (int, float)) or isinstance(data, bool):
            raise SerializationError(
                f"{path}: an AgentHeaven datetime holds a {type(data).__name__}, not a number"
            )
        try:
            return datetime.datetime.fromtimestamp(data)
        except (OverflowError, OSError, ValueError) as e:
            raise SerializationError(
                f"{path}: an AgentHeaven datetime out of range ({data!r}: {e})"
            ) from None
    # bigint: AgentHeaven calls int() on it
    if isinstance(data, int) and not isinstance(data, bool):
        return data
    if isinstance(data, str):
        try:
            return int(data)
        except ValueError:
            pass
    raise SerializationError(f"{path}: an AgentHeaven bigint holds {data!r}, not a decimal integer")


def loads_record(text: str | bytes) -> CacheEntry:
    """:func:`decode_record` of a JsonCache file's or a DatabaseCache ``content``'s text."""
    try:
        tree = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise SerializationError(f"an AgentHeaven entry that is not valid JSON ({e})") from None
    return decode_record(tree)


# ---------------------------------------------------------------- encoding


def encode_record(entry: CacheEntry, *, tagged: bool = True) -> Dict[str, Any]:
    """The dict AgentHeaven 0.9.2 stores for ``entry``.

    With ``tagged=True`` (the default) it is the tagged JSON tree: a DatabaseCache row's
    ``content`` is ``json.dumps`` of it (:func:`dumps_record`), and a JsonCache file written
    from it is read back by AgentHeaven with every type intact (AgentHeaven's own JsonCache
    loses tuples and cannot store sets, datetimes or ``...``; its reader understands the
    tags). With ``tagged=False`` it is the plain ``to_dict()`` that AgentHeaven's DiskCache
    pickles.

    Only values AgentHeaven's format stores without loss are accepted: ``None``, bool, int,
    float, str, and lists, tuples, sets (of sortable items), dicts with str keys, naive
    datetimes and ``...`` made of them. Anything else raises
    :class:`~cachehaven.errors.SerializationError` naming where it sits (e.g.
    ``output['rows'][3]``): bytes, callables, subclasses such as namedtuples, dicts with
    non-str keys (AgentHeaven would turn them into strings), aware datetimes (it would drop
    the zone), dicts with an ``__obj_type__`` key (it would read them as a tag).
    """
    if not isinstance(entry, CacheEntry):
        raise TypeError(f"encode_record() takes a CacheEntry, not {type(entry).__name__}")
    if not isinstance(entry.func, str):
        raise SerializationError(f"func must be a str, not {type(entry.func).__name__}")
    for name, value in (("inputs", entry.inputs), ("metadata", entry.metadata)):
        if not isinstance(value, dict):
            raise SerializationError(f"{name} must be a dict, not {type(value).__name__}")
    if not tagged:
        plain: Dict[str, Any] = {"func": entry.func, "inputs": dict(entry.inputs)}
        if entry.output is not ...:
            plain["output"] = entry.output
        if entry.expected is not ...:
            plain["expected"] = entry.expected
        plain["metadata"] = dict(entry.metadata)
        return plain
    out: Dict[str, Any] = {"func": _string(entry.func, "func")}
    try:
        out["inputs"] = _dict(entry.inputs, "inputs")
        if entry.output is not ...:
            out["output"] = _tag(entry.output, "output")
        if entry.expected is not ...:
            out["expected"] = _tag(entry.expected, "expected")
        out["metadata"] = _dict(entry.metadata, "metadata")
    except RecursionError:
        raise SerializationError("the entry is nested too deeply for AgentHeaven's format") from None
    return out


def _string(value: str, path: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise SerializationError(f"{path}: a str that is not valid UTF-8 (a lone surrogate)") from None
    return value


def _dict(value: Dict[Any, Any], path: str) -> Dict[str, Any]:
    if _TAG in value:
        raise SerializationError(
            f"{path}: a dict with an {_TAG!r} key would be read back by AgentHeaven as a type tag"
        )
    out = {}
    for k, v in value.items():
        if type(k) is not str:
            raise SerializationError(
                f"{path}: the dict key {k!r} is a {type(k).__name__}; "
                "AgentHeaven's JSON would turn it into a str"
            )
        out[_string(k, f"{path} key {k!r}")] = _tag(v, f"{path}[{k!r}]")
    return out


def _tag(value: Any, path: str) -> Any:
    """``value`` in AgentHeaven's tagged JSON form (``AhvnJsonEncoder.transform``), refusing
    what it would not read back as it was."""
    t = type(value)
    if value is None or t is bool or t is float:
        return value
    if t is int:
        if value > _BIG or value < -_BIG:
            return {_TAG: "bigint", _DATA: str(value)}
        return value
    if t is str:
        return _string(value, path)
    if t is list:
        return [_tag(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if t is dict:
        return _dict(value, path)
    if t is tuple:
        return {_TAG: "tuple", _DATA: [_tag(v, f"{path}[{i}]") for i, v in enumerate(value)]}
    if t is set:
        try:
            items = sorted(value)
        except TypeError as e:
            raise SerializationError(
                f"{path}: AgentHeaven sorts a set's items, and these do not sort ({e})"
            ) from None
        return {_TAG: "set", _DATA: [_tag(v, f"{path}[{i}]") for i, v in enumerate(items)]}
    if t is datetime.datetime:
        if value.tzinfo is not None:
            raise SerializationError(
                f"{path}: an aware datetime; AgentHeaven stores a timestamp and reads back a naive "
                "local datetime, so the zone would be lost (store a naive datetime or an ISO string)"
            )
        return {_TAG: "datetime", _DATA: value.timestamp()}
    if value is Ellipsis:
        return {_TAG: "ellipsis"}
    raise _unsupported(value, path)


def _unsupported(value: Any, path: str) -> SerializationError:
    t = type(value)
    if callable(value):
        why = "AgentHeaven would store it as cloudpickled code"
    elif isinstance(value, (int, float, str, list, tuple, set, dict, datetime.datetime)):
        why = f"a subclass of {t.__mro__[1].__name__}, which AgentHeaven would read back as the base type"
    else:
        why = "AgentHeaven's JSON cannot store it"
    return SerializationError(
        f"{path}: cannot store a {t.__module__}.{t.__qualname__} in AgentHeaven's format: {why}"
    )


def dumps_record(entry: CacheEntry, *, indent: Optional[int] = None) -> str:
    """The JSON text AgentHeaven writes for ``entry``: a DatabaseCache ``content`` with
    ``indent=None``, a JsonCache file with ``indent=JSON_INDENT`` (tagged, see
    :func:`encode_record`)."""
    return json.dumps(encode_record(entry), indent=indent, ensure_ascii=False)


# ---------------------------------------------------------------- matching


def same_call(entry: CacheEntry, func: str, inputs: Mapping[str, Any]) -> bool:
    """Whether an AgentHeaven entry found under a call's key is that call's entry.

    AgentHeaven rows carry no canonical key bytes, and their inputs are not always stored as
    they were passed: a JsonCache file has lists for tuples, a DatabaseCache row gives back
    a naive local datetime for an aware one. So the inputs are compared in AgentHeaven's JSON
    form (as its key hashed them), with tuples and lists alike; everything else, such as
    1 vs 1.0 vs True or "1" vs 1, must agree. Inputs that form cannot express are compared
    with ``==``.
    """
    if entry.func != func:
        return False
    try:
        return _comparable(entry.inputs) == _comparable(dict(inputs))
    except (KeyTypeError, ValueError, RecursionError):
        return bool(entry.inputs == inputs)


def _comparable(inputs: Dict[str, Any]) -> Any:
    return _untuple(json.loads(ahvn_json(inputs)))


def _untuple(tree: Any) -> Any:
    """AgentHeaven's JSON form with tuple tags turned into lists, datetimes in whole
    microseconds, and each scalar paired with its JSON type (so that ``1``, ``1.0`` and
    ``true`` stay apart)."""
    if isinstance(tree, list):
        return ["list", [_untuple(v) for v in tree]]
    if isinstance(tree, dict):
        kind, data = tree.get(_TAG), tree.get(_DATA)
        if kind == "tuple" and isinstance(data, list):
            return ["list", [_untuple(v) for v in data]]
        if kind == "datetime" and isinstance(data, (int, float)) and math.isfinite(data):
            return ["datetime", round(data * 1_000_000)]
        return ["dict", {k: _untuple(v) for k, v in tree.items()}]
    if isinstance(tree, float) and math.isnan(tree):
        return ["nan", None]
    return [type(tree).__name__, tree]
