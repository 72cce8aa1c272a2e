"""Serializers for the persistent and shared backends, and the stored record format.

Two serializers implement the :class:`Serializer` protocol (``name``, ``dumps``, ``loads``):

* :class:`JsonSerializer` (``"json"``, the default) is safe and data-only: loading never
  imports or executes anything. It writes compact UTF-8 JSON in which every type JSON cannot
  express is *tagged*, so that a value comes back exactly (same type, same value, same float
  bits). Anything it cannot represent raises :class:`~cachehaven.errors.SerializationError`
  at ``dumps`` time, naming where the value sits (``output['rows'][3]``) and its type.
* :class:`PickleSerializer` (``"pickle"``) is opt-in: it stores any picklable object, signed
  with HMAC-SHA256 under a secret, and refuses (never unpickles) a payload whose signature
  does not verify.

The tagged JSON format, version 1 (:data:`JSON_FORMAT_VERSION`)
---------------------------------------------------------------
Plain JSON stays plain: ``None``, ``bool``, ``str``, finite ``float`` (including ``-0.0``),
``int`` with ``abs(n) <= 2**53 - 1``, ``list``, and ``dict`` whose keys are all ``str``
(and do not include the tag key) are written as the JSON they are, so a JsonCache file of
ordinary data reads like ordinary JSON. Every other supported value is a JSON object with
the tag key ``"__ch__"`` naming its type, plus the fields below (no others):

=====================  =====================================================================
``"int"``              ``"v"``: decimal digits (``"-123..."``), or ``"hex"``: hex digits
                       (``"-1f..."``) for ints of more than 2,000 bits
``"float"``            ``"v"``: ``"inf"``, ``"-inf"`` or ``"nan"`` (the canonical quiet NaN),
                       or ``"bits"``: the 16 hex digits of any other NaN's IEEE-754 bits
``"complex"``          ``"v"``: ``[real, imag]``, each a float as above
``"bytes"``            ``"b64"``: standard base64
``"bytearray"``        ``"b64"``: standard base64
``"tuple"``            ``"items"``: list of values
``"set"``              ``"items"``: list of values (sorted by their JSON text, so the file
                       does not depend on hash order)
``"frozenset"``        ``"items"``: as ``"set"``
``"dict"``             ``"items"``: list of ``[key, value]`` pairs, in order. Used for dicts
                       with a non-``str`` key, and to escape a ``str``-keyed dict that
                       contains the tag key itself, so user data is never mistaken for a tag
``"datetime"``         ``"v"``: naive ISO 8601 (``datetime.isoformat()`` of the wall time);
                       optional ``"tz"``: a ``"timezone"`` or ``"zoneinfo"`` value; optional
                       ``"fold": 1``
``"date"``             ``"v"``: ISO 8601
``"time"``             as ``"datetime"`` (``"v"``: ``time.isoformat()`` without offset)
``"timedelta"``        ``"v"``: ``[days, seconds, microseconds]``
``"timezone"``         ``"offset"``: ``[days, seconds, microseconds]``; optional ``"name"``
                       (a fixed-offset ``datetime.timezone``)
``"zoneinfo"``         ``"key"``: the IANA key, restored with ``zoneinfo.ZoneInfo(key)``
``"decimal"``          ``"v"``: ``str(d)`` (exact, including ``NaN``, ``sNaN``, ``-0``)
``"uuid"``             ``"v"``: the canonical hyphenated form
``"path"``             ``"kind"``: ``"PurePosixPath"``, ``"PureWindowsPath"``, ``"PosixPath"``
                       or ``"WindowsPath"``; ``"v"``: ``str(path)``. A concrete path of the
                       other platform's flavour cannot be restored (SerializationError)
``"ellipsis"``         no fields (``...``)
``"rawkey"``           ``"b64"``: the key bytes; ``"label"``: the label
                       (:class:`cachehaven._core.RawKey`)
=====================  =====================================================================

Types are matched exactly: subclasses of the supported types (enums and ``IntEnum``,
``OrderedDict``, named tuples, ``str`` subclasses, numpy scalars) are refused, because they
could not come back as themselves. Containers may nest :data:`MAX_DEPTH` deep; a recursive
container raises SerializationError. A ``str`` holding a lone surrogate makes the document
``\\u``-escaped ASCII (still valid UTF-8). Plain data costs no walk on load: a payload
without the tag key (and without ``\\u`` escapes, which could spell it) is returned as
``json`` parsed it.

Tags are never redefined within a version; a new type gets a new tag name (an older reader
raises SerializationError on it), and an incompatible change bumps
:data:`JSON_FORMAT_VERSION` together with the record version.

The stored record, version 1 (:data:`RECORD_VERSION`)
-----------------------------------------------------
A :class:`Record` (a :class:`~cachehaven.entry.CacheEntry`, the canonical key bytes and
the expiry time) is stored as one object::

    {"cachehaven": 1, "func": "mod.f", "inputs": {...}, "output": ..., "expected": ...,
     "metadata": {...}, "key": "<base64 of the canonical key bytes>", "expires_at": null}

``output`` and ``expected`` are left out when unset (``...``); ``expires_at`` is unix
seconds or ``null``. With :class:`JsonSerializer` the values are tagged JSON trees and the
whole record is one compact JSON document (:func:`record_to_jsonable` gives the same tree
for JsonCache's indented files). With any other serializer the record is that same dict with
the raw Python values and ``key`` as ``bytes``, passed to ``serializer.dumps``.
"""

from __future__ import annotations

import binascii
import datetime
import decimal
import hashlib
import hmac
import json
import math
import operator
import os
import pathlib
import pickle
import re
import struct
import uuid
import zoneinfo
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Protocol, Sequence, Tuple, Union, runtime_checkable

from . import _core
from ._core import RawKey
from .entry import CacheEntry
from .errors import ConfigError, SerializationError

__all__ = [
    "JSON_FORMAT_VERSION",
    "MAX_DEPTH",
    "PICKLE_MAGIC",
    "PICKLE_SECRET_ENV",
    "RECORD_VERSION",
    "TAG",
    "JsonSerializer",
    "PickleSerializer",
    "Record",
    "Serializer",
    "dump_record",
    "encode_record",
    "encode_results",
    "from_jsonable",
    "load_record",
    "load_value",
    "record_from_jsonable",
    "record_to_jsonable",
    "resolve_serializer",
    "to_jsonable",
]

#: Version of the tagged JSON format (see the module docstring).
JSON_FORMAT_VERSION = 1
#: Version of the stored record layout (the record's ``"cachehaven"`` field).
RECORD_VERSION = 1
#: The key that marks a tagged JSON object.
TAG = "__ch__"
#: How many containers deep a value may nest (deeper, or recursive, values are refused).
MAX_DEPTH = 100
#: The environment variable :class:`PickleSerializer` reads its secret from.
PICKLE_SECRET_ENV = "CACHEHAVEN_PICKLE_SECRET"
#: The first bytes of every signed pickle payload (format version 1).
PICKLE_MAGIC = b"chpickle1\x00"

_SAFE_INT = 2**53 - 1
# ~600 digits: below the lowest int/str conversion limit Python allows (640 digits), so a
# decimal int written here can be read back whatever sys.set_int_max_str_digits says.
_DECIMAL_INT_BITS = 2_000
_CANONICAL_NAN_BITS = 0x7FF8000000000000
_MAC_SIZE = hashlib.sha256().digest_size

_PICKLE_HINT = (
    'To store arbitrary objects, use serializer="pickle" (HMAC-signed; it needs a secret or '
    f"${PICKLE_SECRET_ENV})."
)
_SUGGESTION = (
    "The JSON serializer stores None, bool, int, float, complex, str, bytes, bytearray, list, "
    "tuple, dict, set, frozenset, datetime, date, time, timedelta, timezone, ZoneInfo, Decimal, "
    f"UUID, pathlib paths, Ellipsis and RawKey: convert the value to these types. {_PICKLE_HINT}"
)


# ====================================================================== the protocol


@runtime_checkable
class Serializer(Protocol):
    """Turns a value into bytes and back. ``name`` identifies the format (``"json"``,
    ``"pickle"``)."""

    name: str

    def dumps(self, obj: Any) -> bytes:
        """The bytes of ``obj``; SerializationError (naming the path) if it cannot be stored."""

    def loads(self, data: bytes) -> Any:
        """The value stored in ``data``; SerializationError if it is corrupt or refused."""


# ====================================================================== encoding


class _Fail(Exception):
    """Raised inside the encoding walk; each container level adds its path segment."""

    def __init__(self, kind: str, obj: Any, detail: str = "") -> None:
        super().__init__(kind)
        self.kind = kind  # "type", "key", "deep"
        self.obj = obj
        self.detail = detail
        self.segs: List[str] = []  # innermost first
        self.chain: List[Any] = []  # enclosing containers, innermost first ("deep" only)


def _short_repr(obj: Any, limit: int = 40) -> str:
    try:
        r = repr(obj)
    except Exception:
        r = f"<{type(obj).__name__}>"
    return r if len(r) <= limit else r[: limit - 3] + "..."


def _type_name(t: type) -> str:
    mod = getattr(t, "__module__", None)
    name = getattr(t, "__qualname__", t.__name__)
    return name if mod in (None, "builtins") else f"{mod}.{name}"


def _enc(obj: Any, depth: int) -> Any:
    """The tagged tree of ``obj``; plain JSON data comes back as the very same object."""
    t = type(obj)
    if t is str or obj is None or t is bool:
        return obj
    if t is int:
        return obj if -_SAFE_INT <= obj <= _SAFE_INT else _enc_int(obj)
    if t is float:
        return obj if obj - obj == 0.0 else _enc_float(obj)
    if t is list:
        if depth >= MAX_DEPTH:
            raise _Fail("deep", obj)
        out = None
        d1 = depth + 1
        for i, v in enumerate(obj):
            tv = type(v)
            if (
                tv is str
                or (tv is int and -_SAFE_INT <= v <= _SAFE_INT)
                or v is None
                or tv is bool
                or (tv is float and v - v == 0.0)
            ):
                e = v
            else:
                try:
                    e = _enc(v, d1)
                except _Fail as f:
                    f.segs.append(f"[{i}]")
                    if f.kind == "deep":
                        f.chain.append(obj)
                    raise
            if out is not None:
                out.append(e)
            elif e is not v:
                out = obj[:i]
                out.append(e)
        return obj if out is None else out
    if t is dict:
        if depth >= MAX_DEPTH:
            raise _Fail("deep", obj)
        if TAG in obj:
            return _enc_pairs(obj, depth)
        outd = None
        d1 = depth + 1
        for k, v in obj.items():
            if type(k) is not str:
                return _enc_pairs(obj, depth)
            tv = type(v)
            if (
                tv is str
                or (tv is int and -_SAFE_INT <= v <= _SAFE_INT)
                or v is None
                or tv is bool
                or (tv is float and v - v == 0.0)
            ):
                e = v
            else:
                try:
                    e = _enc(v, d1)
                except _Fail as f:
                    f.segs.append(f"[{_short_repr(k)}]")
                    if f.kind == "deep":
                        f.chain.append(obj)
                    raise
            if outd is not None:
                outd[k] = e
            elif e is not v:
                outd = {}
                for k2, v2 in obj.items():
                    if k2 is k:
                        break
                    outd[k2] = v2
                outd[k] = e
        return obj if outd is None else outd
    enc = _ENCODERS.get(t)
    if enc is None:
        raise _Fail("type", obj)
    return enc(obj, depth)


def _enc_int(n: int) -> Dict[str, Any]:
    if n.bit_length() <= _DECIMAL_INT_BITS:
        return {TAG: "int", "v": str(n)}
    return {TAG: "int", "hex": format(n, "x")}


def _enc_float(x: float) -> Any:
    if x - x == 0.0:
        return x
    if x == math.inf:
        return {TAG: "float", "v": "inf"}
    if x == -math.inf:
        return {TAG: "float", "v": "-inf"}
    bits = struct.unpack("<Q", struct.pack("<d", x))[0]
    if bits == _CANONICAL_NAN_BITS:
        return {TAG: "float", "v": "nan"}
    return {TAG: "float", "bits": f"{bits:016x}"}


def _enc_items(items: Any, depth: int, container: Any, set_like: bool) -> List[Any]:
    if depth >= MAX_DEPTH:
        raise _Fail("deep", container)
    out = []
    d1 = depth + 1
    for i, v in enumerate(items):
        try:
            out.append(_enc(v, d1))
        except _Fail as f:
            f.segs.append(f"<element {_short_repr(v)}>" if set_like else f"[{i}]")
            if f.kind == "deep":
                f.chain.append(container)
            raise
    return out


def _enc_tuple(obj: tuple, depth: int) -> Dict[str, Any]:
    return {TAG: "tuple", "items": _enc_items(obj, depth, obj, False)}


def _set_order(tree: Any) -> str:
    return "".join(_ENC_ASCII(tree, 0))


def _enc_set(obj: Union[set, frozenset], depth: int) -> Dict[str, Any]:
    items = _enc_items(obj, depth, obj, True)
    items.sort(key=_set_order)
    return {TAG: "set" if type(obj) is set else "frozenset", "items": items}


def _enc_pairs(obj: dict, depth: int) -> Dict[str, Any]:
    d1 = depth + 1
    pairs = []
    for k, v in obj.items():
        try:
            ek = _enc(k, d1)
        except _Fail as f:
            f.segs.append(f"<key {_short_repr(k)}>")
            if f.kind == "type" and not f.segs[:-1]:
                f.kind = "key"
            if f.kind == "deep":
                f.chain.append(obj)
            raise
        try:
            ev = _enc(v, d1)
        except _Fail as f:
            f.segs.append(f"[{_short_repr(k)}]")
            if f.kind == "deep":
                f.chain.append(obj)
            raise
        pairs.append([ek, ev])
    return {TAG: "dict", "items": pairs}


def _enc_bytes(obj: Union[bytes, bytearray], depth: int) -> Dict[str, Any]:
    return {
        TAG: "bytes" if type(obj) is bytes else "bytearray",
        "b64": binascii.b2a_base64(obj, newline=False).decode("ascii"),
    }


def _td_list(td: datetime.timedelta) -> List[int]:
    return [td.days, td.seconds, td.microseconds]


def _enc_tz(tz: Any) -> Dict[str, Any]:
    t = type(tz)
    if t is datetime.timezone:
        offset = tz.utcoffset(None)
        out: Dict[str, Any] = {TAG: "timezone", "offset": _td_list(offset)}
        name = tz.tzname(None)
        if name != datetime.timezone(offset).tzname(None):
            out["name"] = name
        return out
    if t is zoneinfo.ZoneInfo:
        if tz.key is None:
            raise _Fail("type", tz, "a ZoneInfo built from a file (it has no key) cannot be stored")
        return {TAG: "zoneinfo", "key": tz.key}
    raise _Fail("type", tz, "only datetime.timezone and zoneinfo.ZoneInfo time zones can be stored")


def _enc_tzinfo_value(obj: Any, depth: int) -> Dict[str, Any]:
    return _enc_tz(obj)


def _with_tz(out: Dict[str, Any], obj: Union[datetime.datetime, datetime.time]) -> Dict[str, Any]:
    if obj.tzinfo is not None:
        try:
            out["tz"] = _enc_tz(obj.tzinfo)
        except _Fail as f:
            f.segs.append(".tzinfo")
            raise
    if obj.fold:
        out["fold"] = 1
    return out


def _enc_datetime(obj: datetime.datetime, depth: int) -> Dict[str, Any]:
    return _with_tz({TAG: "datetime", "v": obj.replace(tzinfo=None).isoformat()}, obj)


def _enc_time(obj: datetime.time, depth: int) -> Dict[str, Any]:
    return _with_tz({TAG: "time", "v": obj.replace(tzinfo=None).isoformat()}, obj)


def _enc_path(obj: pathlib.PurePath, depth: int) -> Dict[str, Any]:
    text = str(obj)
    if str(type(obj)(text)) != text:  # e.g. PureWindowsPath("//a/"): a UNC drive with no share
        raise SerializationError(
            f"{type(obj).__name__}({text!r}) does not survive a round trip through its string "
            "form, so it cannot be stored exactly"
        )
    return {TAG: "path", "kind": type(obj).__name__, "v": text}


_ENCODERS: Dict[type, Callable[[Any, int], Any]] = {
    tuple: _enc_tuple,
    set: _enc_set,
    frozenset: _enc_set,
    bytes: _enc_bytes,
    bytearray: _enc_bytes,
    complex: lambda obj, depth: {TAG: "complex", "v": [_enc_float(obj.real), _enc_float(obj.imag)]},
    datetime.datetime: _enc_datetime,
    datetime.date: lambda obj, depth: {TAG: "date", "v": obj.isoformat()},
    datetime.time: _enc_time,
    datetime.timedelta: lambda obj, depth: {TAG: "timedelta", "v": _td_list(obj)},
    datetime.timezone: _enc_tzinfo_value,
    zoneinfo.ZoneInfo: _enc_tzinfo_value,
    decimal.Decimal: lambda obj, depth: {TAG: "decimal", "v": str(obj)},
    uuid.UUID: lambda obj, depth: {TAG: "uuid", "v": str(obj)},
    pathlib.PurePosixPath: _enc_path,
    pathlib.PureWindowsPath: _enc_path,
    pathlib.PosixPath: _enc_path,
    pathlib.WindowsPath: _enc_path,
    type(...): lambda obj, depth: {TAG: "ellipsis"},
    RawKey: lambda obj, depth: {
        TAG: "rawkey",
        "b64": binascii.b2a_base64(obj.bytes, newline=False).decode("ascii"),
        "label": obj.label,
    },
}


def _fail_message(f: _Fail, root: str) -> str:
    segs = f.segs[::-1]
    path = root + "".join(segs)
    if f.kind == "deep":
        chain = f.chain[::-1]  # chain[i] sits at root + segs[:i]
        seen: Dict[int, int] = {}
        for i, c in enumerate([*chain, f.obj]):
            j = seen.get(id(c))
            if j is not None:
                inner = root + "".join(segs[:i])
                outer = root + "".join(segs[:j])
                return (
                    f"cannot serialize {outer}: it contains itself ({inner} is {outer}), and a "
                    f"recursive container cannot be stored as JSON. {_PICKLE_HINT}"
                )
            seen[id(c)] = i
        if len(path) > 200:
            path = path[:200] + "..."
        return (
            f"cannot serialize {path}: the value is nested more than {MAX_DEPTH} containers deep. "
            f"{_PICKLE_HINT}"
        )
    typ = _type_name(type(f.obj))
    if f.kind == "key":
        return (
            f"cannot serialize {root + ''.join(segs[:-1])}: the dict key {_short_repr(f.obj)} has "
            f"type {typ}, which the JSON serializer does not support. {_SUGGESTION}"
        )
    detail = f" ({f.detail})" if f.detail else ""
    return (
        f"cannot serialize {path}: type {typ} is not supported by the JSON serializer{detail}. {_SUGGESTION}"
    )


def to_jsonable(obj: Any, *, path: str = "value") -> Any:
    """The tagged JSON tree of ``obj`` (see the module docstring), ready for ``json.dumps``.

    Plain JSON data is returned as is (the tree may share objects with ``obj``). Raises
    SerializationError naming ``path`` (e.g. ``value['rows'][3]``) and the type of anything
    that cannot be represented, and for recursive or too deeply nested containers.
    """
    try:
        return _enc(obj, 0)
    except _Fail as f:
        raise SerializationError(_fail_message(f, path)) from None
    except RecursionError:
        raise SerializationError(
            f"cannot serialize {path}: it is nested too deeply for the interpreter's recursion limit"
        ) from None


# ====================================================================== decoding


def _bad(msg: str) -> SerializationError:
    return SerializationError(f"malformed tagged JSON: {msg}")


def _fields(x: Dict[str, Any], required: Tuple[str, ...], optional: Tuple[str, ...] = ()) -> None:
    for name in required:
        if name not in x:
            raise _bad(f"a {x[TAG]!r} value lacks the field {name!r}")
    if len(x) != 1 + len(required) + sum(1 for name in optional if name in x):
        extra = sorted(set(x) - {TAG, *required, *optional})
        raise _bad(f"a {x[TAG]!r} value has unexpected fields {extra}")


def _str_field(x: Dict[str, Any], name: str) -> str:
    v = x[name]
    if type(v) is not str:
        raise _bad(f"the {name!r} field of a {x[TAG]!r} value must be a string")
    return v


def _unb64(s: str) -> Optional[bytes]:
    """The bytes of canonical standard base64 ``s``, or None if ``s`` is anything else."""
    try:
        raw = binascii.a2b_base64(s)
    except (binascii.Error, ValueError):
        return None
    return raw if binascii.b2a_base64(raw, newline=False).decode("ascii") == s else None


def _b64(x: Dict[str, Any], name: str = "b64") -> bytes:
    raw = _unb64(_str_field(x, name))
    if raw is None:
        raise _bad(f"the {name!r} field of a {x[TAG]!r} value is not valid base64")
    return raw


def _int_list(x: Dict[str, Any], name: str, n: int) -> List[int]:
    v = x[name]
    if type(v) is not list or len(v) != n or any(type(i) is not int for i in v):
        raise _bad(f"the {name!r} field of a {x[TAG]!r} value must be a list of {n} ints")
    return v


_DEC_DIGITS = re.compile(r"-?[0-9]+")
_HEX_DIGITS = re.compile(r"-?[0-9a-f]+")
_BITS = re.compile(r"[0-9a-f]{16}")


def _dec_int(x: Dict[str, Any], depth: int) -> int:
    if "hex" in x:
        _fields(x, ("hex",))
        s = _str_field(x, "hex")
        if not _HEX_DIGITS.fullmatch(s):
            raise _bad("an 'int' value's 'hex' field is not hex digits")
        return int(s, 16)
    _fields(x, ("v",))
    s = _str_field(x, "v")
    if not _DEC_DIGITS.fullmatch(s):
        raise _bad("an 'int' value's 'v' field is not decimal digits")
    return int(s)


_FLOATS = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def _dec_float(x: Dict[str, Any], depth: int) -> float:
    if "bits" in x:
        _fields(x, ("bits",))
        s = _str_field(x, "bits")
        if not _BITS.fullmatch(s):
            raise _bad("a 'float' value's 'bits' field is not 16 hex digits")
        return float(struct.unpack("<d", struct.pack("<Q", int(s, 16)))[0])
    _fields(x, ("v",))
    v = _FLOATS.get(_str_field(x, "v"))
    if v is None:
        raise _bad("a 'float' value's 'v' field must be 'inf', '-inf' or 'nan'")
    return v


def _as_float(v: Any, depth: int) -> float:
    f = _dec(v, depth)
    if type(f) is not float:
        raise _bad("a 'complex' value's parts must be floats")
    return f


def _dec_complex(x: Dict[str, Any], depth: int) -> complex:
    _fields(x, ("v",))
    v = x["v"]
    if type(v) is not list or len(v) != 2:
        raise _bad("a 'complex' value's 'v' field must be [real, imag]")
    return complex(_as_float(v[0], depth), _as_float(v[1], depth))


def _dec_seq(x: Dict[str, Any], depth: int) -> Any:
    """A ``tuple``, ``set`` or ``frozenset`` value (one frame per level: no comprehension)."""
    _fields(x, ("items",))
    items = x["items"]
    if type(items) is not list:
        raise _bad(f"the 'items' field of a {x[TAG]!r} value must be a list")
    out = []
    for v in items:
        out.append(_dec(v, depth))
    return _SEQ_TYPES[x[TAG]](out)


_SEQ_TYPES: Dict[str, Callable[[List[Any]], Any]] = {"tuple": tuple, "set": set, "frozenset": frozenset}


def _dec_dict(x: Dict[str, Any], depth: int) -> Dict[Any, Any]:
    _fields(x, ("items",))
    items = x["items"]
    if type(items) is not list:
        raise _bad("the 'items' field of a 'dict' value must be a list")
    out = {}
    for pair in items:
        if type(pair) is not list or len(pair) != 2:
            raise _bad("a 'dict' value's items must be [key, value] pairs")
        out[_dec(pair[0], depth)] = _dec(pair[1], depth)
    return out


def _dec_tz(tree: Any, depth: int) -> Any:
    tz = _dec(tree, depth)
    if not isinstance(tz, datetime.tzinfo):
        raise _bad("a 'tz' field must be a 'timezone' or 'zoneinfo' value")
    return tz


def _dec_timezone(x: Dict[str, Any], depth: int) -> datetime.timezone:
    _fields(x, ("offset",), ("name",))
    offset = datetime.timedelta(*_int_list(x, "offset", 3))
    if "name" in x:
        return datetime.timezone(offset, _str_field(x, "name"))
    return datetime.timezone(offset)


def _dec_zoneinfo(x: Dict[str, Any], depth: int) -> Any:
    _fields(x, ("key",))
    key = _str_field(x, "key")
    try:
        return zoneinfo.ZoneInfo(key)
    except Exception as e:
        raise SerializationError(f"the time zone {key!r} cannot be restored: {e}") from None


def _fold(x: Dict[str, Any]) -> int:
    fold = x.get("fold", 0)
    if fold not in (0, 1) or type(fold) is not int:
        raise _bad(f"the 'fold' field of a {x[TAG]!r} value must be 0 or 1")
    return fold


def _dec_datetime(x: Dict[str, Any], depth: int) -> datetime.datetime:
    _fields(x, ("v",), ("tz", "fold"))
    dt = datetime.datetime.fromisoformat(_str_field(x, "v"))
    if dt.tzinfo is not None:
        raise _bad("a 'datetime' value's 'v' field must not carry an offset")
    tz = _dec_tz(x["tz"], depth) if "tz" in x else None
    return dt.replace(tzinfo=tz, fold=_fold(x))


def _dec_time(x: Dict[str, Any], depth: int) -> datetime.time:
    _fields(x, ("v",), ("tz", "fold"))
    t = datetime.time.fromisoformat(_str_field(x, "v"))
    if t.tzinfo is not None:
        raise _bad("a 'time' value's 'v' field must not carry an offset")
    tz = _dec_tz(x["tz"], depth) if "tz" in x else None
    return t.replace(tzinfo=tz, fold=_fold(x))


def _dec_date(x: Dict[str, Any], depth: int) -> datetime.date:
    _fields(x, ("v",))
    return datetime.date.fromisoformat(_str_field(x, "v"))


def _dec_timedelta(x: Dict[str, Any], depth: int) -> datetime.timedelta:
    _fields(x, ("v",))
    return datetime.timedelta(*_int_list(x, "v", 3))


def _dec_decimal(x: Dict[str, Any], depth: int) -> decimal.Decimal:
    _fields(x, ("v",))
    s = _str_field(x, "v")
    with decimal.localcontext() as ctx:  # exact whatever the context; a bad string raises
        ctx.traps[decimal.InvalidOperation] = True
        return decimal.Decimal(s)


def _dec_uuid(x: Dict[str, Any], depth: int) -> uuid.UUID:
    _fields(x, ("v",))
    return uuid.UUID(_str_field(x, "v"))


_PATH_KINDS: Dict[str, type] = {
    "PurePosixPath": pathlib.PurePosixPath,
    "PureWindowsPath": pathlib.PureWindowsPath,
    "PosixPath": pathlib.PosixPath,
    "WindowsPath": pathlib.WindowsPath,
}


def _dec_path(x: Dict[str, Any], depth: int) -> pathlib.PurePath:
    _fields(x, ("kind", "v"))
    kind = _str_field(x, "kind")
    cls = _PATH_KINDS.get(kind)
    if cls is None:
        raise _bad(f"unknown path kind {kind!r}")
    if kind in ("PosixPath", "WindowsPath") and type(pathlib.Path()) is not cls:
        raise SerializationError(f"a {kind} cannot be restored on this platform ({os.name})")
    return cls(_str_field(x, "v"))


def _dec_ellipsis(x: Dict[str, Any], depth: int) -> Any:
    _fields(x, ())
    return ...


def _dec_rawkey(x: Dict[str, Any], depth: int) -> RawKey:
    _fields(x, ("b64", "label"))
    return RawKey(_b64(x), _str_field(x, "label"))


def _dec_bytes(x: Dict[str, Any], depth: int) -> bytes:
    _fields(x, ("b64",))
    return _b64(x)


def _dec_bytearray(x: Dict[str, Any], depth: int) -> bytearray:
    _fields(x, ("b64",))
    return bytearray(_b64(x))


_DECODERS: Dict[str, Callable[[Dict[str, Any], int], Any]] = {
    "int": _dec_int,
    "float": _dec_float,
    "complex": _dec_complex,
    "bytes": _dec_bytes,
    "bytearray": _dec_bytearray,
    "tuple": _dec_seq,
    "set": _dec_seq,
    "frozenset": _dec_seq,
    "dict": _dec_dict,
    "datetime": _dec_datetime,
    "date": _dec_date,
    "time": _dec_time,
    "timedelta": _dec_timedelta,
    "timezone": _dec_timezone,
    "zoneinfo": _dec_zoneinfo,
    "decimal": _dec_decimal,
    "uuid": _dec_uuid,
    "path": _dec_path,
    "ellipsis": _dec_ellipsis,
    "rawkey": _dec_rawkey,
}


def _dec(x: Any, depth: int) -> Any:
    """The value of tree ``x``; plain parts come back as the very same objects."""
    t = type(x)
    if t is str or t is int or t is float or t is bool or x is None:
        return x
    if depth >= 4 * MAX_DEPTH:
        raise _bad(f"the tree is nested more than {4 * MAX_DEPTH} levels deep")
    d1 = depth + 1
    if t is list:
        out = None
        for i, v in enumerate(x):
            e = _dec(v, d1)
            if out is not None:
                out.append(e)
            elif e is not v:
                out = x[:i]
                out.append(e)
        return x if out is None else out
    if t is dict:
        if TAG in x:
            name = x[TAG]
            dec = _DECODERS.get(name) if type(name) is str else None
            if dec is None:
                raise _bad(f"unknown tag {_short_repr(name)}")
            return dec(x, d1)
        outd = None
        for k, v in x.items():
            if type(k) is not str:
                raise _bad(f"a JSON object key must be a string, not {type(k).__name__}")
            e = _dec(v, d1)
            if outd is not None:
                outd[k] = e
            elif e is not v:
                outd = {}
                for k2, v2 in x.items():
                    if k2 is k:
                        break
                    outd[k2] = v2
                outd[k] = e
        return x if outd is None else outd
    raise _bad(f"a JSON tree cannot contain {_type_name(t)}")


def from_jsonable(tree: Any) -> Any:
    """The value of a tagged JSON tree (the inverse of :func:`to_jsonable`).

    Only constructs data (nothing is imported or executed). Raises SerializationError on
    anything that is not a well-formed tree; never another exception type.
    """
    try:
        return _dec(tree, 0)
    except SerializationError:
        raise
    except Exception as e:
        raise SerializationError(f"malformed tagged JSON: {type(e).__name__}: {e}") from None


# ====================================================================== JSON bytes


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _not_json(obj: Any) -> Any:
    raise TypeError(f"a JSON tree cannot contain {_type_name(type(obj))}")


def _make_encoder(ensure_ascii: bool) -> Callable[[Any, int], Any]:
    """A compact, strict JSON encoder ``enc(tree, 0) -> chunks``: the C encoder, built once
    (``json.dumps`` rebuilds it on every call), or the pure-Python one where it is absent."""
    c_make = getattr(json.encoder, "c_make_encoder", None)
    c_str = getattr(
        json.encoder, "c_encode_basestring_ascii" if ensure_ascii else "c_encode_basestring", None
    )
    if c_make is not None and c_str is not None:
        return c_make(None, _not_json, c_str, None, ":", ",", False, False, False)  # type: ignore[no-any-return]
    py = json.JSONEncoder(
        ensure_ascii=ensure_ascii, allow_nan=False, separators=(",", ":"), check_circular=False
    )
    return lambda tree, level: py.iterencode(tree)  # pragma: no cover - CPython has the C encoder


_ENC_UTF8 = _make_encoder(False)
_ENC_ASCII = _make_encoder(True)
_JSON_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_JSON_SCAN: Callable[[str, int], Tuple[Any, int]] = _JSON_DECODER.scan_once  # type: ignore[attr-defined]


def _json_bytes(tree: Any) -> bytes:
    """Compact UTF-8 JSON of a tree (escaped ASCII if a str holds a lone surrogate)."""
    try:
        text = "".join(_ENC_UTF8(tree, 0))
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            return "".join(_ENC_ASCII(tree, 0)).encode("ascii")
    except RecursionError:
        raise SerializationError("cannot serialize the value: it is nested too deeply for JSON") from None


def _parse_json(data: Any) -> Tuple[Any, bool]:
    """The JSON tree of ``data`` and whether it may hold tags (False: plain data only)."""
    if isinstance(data, str):
        text = data
        tagged = '"__ch__"' in text or "\\u" in text
    else:
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        elif not isinstance(data, bytes):
            raise SerializationError(f"a JSON payload must be bytes, not {_type_name(type(data))}")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise SerializationError(f"the JSON payload is not valid UTF-8: {e.reason}") from None
        # The tag key is always written as these exact bytes; a \u escape could spell it
        # otherwise, so its presence also takes the full walk.
        tagged = b'"__ch__"' in data or b"\\u" in data
    try:
        try:
            tree, end = _JSON_SCAN(text, 0)
        except StopIteration:
            end = -1
        if end != len(text):  # leading or trailing whitespace, trailing data, or no value
            tree = _JSON_DECODER.decode(text)
        return tree, tagged
    except (ValueError, RecursionError) as e:
        raise SerializationError(f"the payload is not valid JSON: {e}") from None


class JsonSerializer:
    """The safe, data-only default serializer: compact, type-tagged UTF-8 JSON.

    ``loads`` never imports or executes anything. See the module docstring for the format
    and the supported types; anything else raises SerializationError at ``dumps`` time.
    """

    name = "json"

    def dumps(self, obj: Any) -> bytes:
        """Compact UTF-8 JSON of ``obj``'s tagged tree."""
        return _json_bytes(to_jsonable(obj))

    def loads(self, data: bytes) -> Any:
        """The value stored in ``data``; SerializationError if it is not a valid payload."""
        tree, tagged = _parse_json(data)
        return from_jsonable(tree) if tagged else tree

    def __repr__(self) -> str:
        return "JsonSerializer()"

    def __eq__(self, other: object) -> bool:
        return type(other) is JsonSerializer

    def __hash__(self) -> int:
        return hash(JsonSerializer)


# ====================================================================== pickle


class PickleSerializer:
    """Pickle, signed with HMAC-SHA256: opt-in, for values the JSON format cannot hold.

    The secret is ``secret`` (bytes or str) or else ``$CACHEHAVEN_PICKLE_SECRET``; without
    one, ConfigError. A payload is :data:`PICKLE_MAGIC` + HMAC-SHA256(secret, pickle) +
    pickle. ``loads`` checks the magic and the signature (``hmac.compare_digest``) before
    unpickling, so an unsigned, truncated or tampered payload raises SerializationError and
    is never unpickled. Anyone who knows the secret can make this process run code; keep it
    as secret as write access to the code itself.
    """

    name = "pickle"
    __slots__ = ("_hmac", "protocol")

    def __init__(
        self, secret: Union[bytes, str, None] = None, *, protocol: int = pickle.HIGHEST_PROTOCOL
    ) -> None:
        if secret is None:
            secret = os.environ.get(PICKLE_SECRET_ENV) or None
            if secret is None:
                raise ConfigError(
                    f'serializer="pickle" needs a secret to sign payloads: pass secret= (bytes or str) '
                    f"or set the environment variable {PICKLE_SECRET_ENV}"
                )
        if isinstance(secret, str):
            secret = secret.encode("utf-8")
        elif isinstance(secret, (bytearray, memoryview)):
            secret = bytes(secret)
        elif not isinstance(secret, bytes):
            raise ConfigError(f"secret must be bytes or str, not {_type_name(type(secret))}")
        if not secret:
            raise ConfigError(
                f"secret must not be empty: pass a non-empty secret= or set {PICKLE_SECRET_ENV}"
            )
        if type(protocol) is not int or not 0 <= protocol <= pickle.HIGHEST_PROTOCOL:
            raise ConfigError(
                f"protocol must be an int from 0 to {pickle.HIGHEST_PROTOCOL}, not {protocol!r}"
            )
        # Keyed once; each signature copies it (cheaper than re-keying for small payloads).
        self._hmac = hmac.new(secret, digestmod=hashlib.sha256)
        self.protocol = protocol

    def _mac(self, body: bytes) -> bytes:
        h = self._hmac.copy()
        h.update(body)
        return h.digest()

    def dumps(self, obj: Any) -> bytes:
        """The signed pickle of ``obj``; SerializationError naming the path and type of the
        part that cannot be pickled."""
        try:
            body = pickle.dumps(obj, protocol=self.protocol)
        except Exception as e:
            raise self._failure(obj, "value", e) from e
        return PICKLE_MAGIC + self._mac(body) + body

    def _fails(self, obj: Any) -> Optional[Exception]:
        try:
            pickle.dumps(obj, protocol=self.protocol)
        except Exception as e:
            return e
        return None

    def _failure(self, obj: Any, path: str, err: Exception) -> SerializationError:
        """The error for ``obj`` (at ``path``) that failed to pickle with ``err``: it names the
        innermost container item that fails on its own."""
        depth = 0
        while depth < MAX_DEPTH:
            t = type(obj)
            if t is dict:
                children: Any = ((f"[{_short_repr(k)}]", v) for k, v in obj.items())
            elif t is list or t is tuple:
                children = ((f"[{i}]", v) for i, v in enumerate(obj))
            elif t is set or t is frozenset:
                children = ((f"<element {_short_repr(v)}>", v) for v in obj)
            else:
                break
            for seg, child in children:
                child_err = self._fails(child)
                if child_err is not None:
                    obj, path, err = child, path + seg, child_err
                    break
            else:
                break
            depth += 1
        return SerializationError(
            f"cannot pickle {path}: type {_type_name(type(obj))} ({type(err).__name__}: {err})"
        )

    def loads(self, data: bytes) -> Any:
        """The value of a signed payload. The signature is verified before anything is
        unpickled; SerializationError if it is missing, wrong or the payload is cut short."""
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        elif not isinstance(data, bytes):
            raise SerializationError(f"a pickle payload must be bytes, not {_type_name(type(data))}")
        if not data.startswith(PICKLE_MAGIC):
            raise SerializationError(
                "refusing to unpickle: the payload is not a signed cachehaven pickle (wrong magic prefix)"
            )
        start = len(PICKLE_MAGIC) + _MAC_SIZE
        if len(data) <= start:
            raise SerializationError("refusing to unpickle: the signed pickle payload is truncated")
        body = data[start:]
        if not hmac.compare_digest(data[len(PICKLE_MAGIC) : start], self._mac(body)):
            raise SerializationError(
                "refusing to unpickle: the signature does not match (the payload was tampered with, "
                "or signed with another secret)"
            )
        try:
            return pickle.loads(body)
        except Exception as e:
            raise SerializationError(f"cannot unpickle the payload: {type(e).__name__}: {e}") from None

    def __repr__(self) -> str:
        return "PickleSerializer(secret=<hidden>)"


def resolve_serializer(
    spec: Union[str, Serializer, None], *, secret: Union[bytes, str, None] = None
) -> Serializer:
    """The serializer a backend's ``serializer=`` option names: None or ``"json"`` gives a
    :class:`JsonSerializer`, ``"pickle"`` a :class:`PickleSerializer` signed with ``secret``
    (or ``$CACHEHAVEN_PICKLE_SECRET``), and a Serializer instance is used as is."""
    if spec is None or (isinstance(spec, str) and spec == "json"):
        return JsonSerializer()
    if isinstance(spec, str) and spec == "pickle":
        return PickleSerializer(secret)
    if isinstance(spec, Serializer) and not isinstance(spec, type) and isinstance(spec.name, str):
        return spec
    hint = " (pass an instance, not the class)" if isinstance(spec, type) else ""
    raise ConfigError(
        f"serializer must be 'json', 'pickle' or a Serializer instance (with name, dumps and loads), "
        f"not {_short_repr(spec)}{hint}"
    )


# ====================================================================== records


@dataclass(frozen=True)
class Record:
    """What a persistent backend stores for one call: the entry, the call's canonical key
    bytes (compared with ``call.key.bytes`` on every read, so a digest collision is a miss)
    and the expiry time in unix seconds (``time.time()``), or None for never."""

    entry: CacheEntry
    key: bytes
    expires_at: Optional[float] = None

    def __post_init__(self) -> None:
        if not isinstance(self.entry, CacheEntry):
            raise TypeError(f"entry must be a CacheEntry, not {_type_name(type(self.entry))}")
        if type(self.key) is not bytes:
            if not isinstance(self.key, (bytes, bytearray, memoryview)):
                raise TypeError(f"key must be bytes, not {_type_name(type(self.key))}")
            object.__setattr__(self, "key", bytes(self.key))
        exp = self.expires_at
        if exp is not None:
            if type(exp) is bool or not isinstance(exp, (int, float)):
                raise TypeError(
                    f"expires_at must be unix seconds (a float) or None, not {_type_name(type(exp))}"
                )
            if not math.isfinite(exp):
                raise ValueError(f"expires_at must be finite, not {exp!r}")
            if type(exp) is not float:
                object.__setattr__(self, "expires_at", float(exp))

    def expired(self, now: float) -> bool:
        """Whether the record is past its expiry time at ``now`` (unix seconds)."""
        return self.expires_at is not None and now >= self.expires_at


_RECORD_REQUIRED = ("cachehaven", "func", "inputs", "metadata", "key", "expires_at")
_RECORD_FIELDS = frozenset((*_RECORD_REQUIRED, "output", "expected"))


def _record_dict(record: Record, key: Any, encode: bool) -> Dict[str, Any]:
    """The record's dict: with ``encode``, its values as tagged JSON trees."""
    entry = record.entry
    inputs, output, expected, metadata = entry.inputs, entry.output, entry.expected, entry.metadata
    if encode:
        field = "inputs"
        try:
            inputs = _enc(inputs, 0)
            field = "output"
            if output is not ...:
                output = _enc(output, 0)
            field = "expected"
            if expected is not ...:
                expected = _enc(expected, 0)
            field = "metadata"
            metadata = _enc(metadata, 0)
        except _Fail as f:
            raise SerializationError(_fail_message(f, field)) from None
        except RecursionError:
            raise SerializationError(
                f"cannot serialize {field}: it is nested too deeply for the interpreter's recursion limit"
            ) from None
    d: Dict[str, Any] = {"cachehaven": RECORD_VERSION, "func": entry.func, "inputs": inputs}
    if output is not ...:
        d["output"] = output
    if expected is not ...:
        d["expected"] = expected
    d["metadata"] = metadata
    d["key"] = key
    d["expires_at"] = record.expires_at
    return d


def record_to_jsonable(record: Record) -> Dict[str, Any]:
    """The record as a JSON tree (JsonCache writes ``json.dumps(tree, indent=2)``).

    Raises SerializationError naming the field and path (``output['rows'][3]``) of any value
    the JSON format cannot represent.
    """
    return _record_dict(record, binascii.b2a_base64(record.key, newline=False).decode("ascii"), True)


def _record_from_dict(d: Any, key_is_b64: bool, decode: Optional[Callable[[Any], Any]]) -> Record:
    if type(d) is not dict:
        raise SerializationError(f"a stored record must be a dict, not {_type_name(type(d))}")
    version = d.get("cachehaven")
    if type(version) is not int or version != RECORD_VERSION:
        raise SerializationError(
            f"unsupported record format version {_short_repr(version)} (this cachehaven reads "
            f"version {RECORD_VERSION})"
        )
    try:
        func = d["func"]
        key = d["key"]
        exp = d["expires_at"]
        inputs = d["inputs"]
        metadata = d["metadata"]
    except KeyError:
        missing = [name for name in _RECORD_REQUIRED if name not in d]
        raise SerializationError(f"the stored record lacks the fields {missing}") from None
    if len(d) != 6 and len(d) != 6 + ("output" in d) + ("expected" in d):
        extra = sorted(map(str, set(d) - _RECORD_FIELDS))
        raise SerializationError(f"the stored record has unknown fields {extra}")
    if type(func) is not str:
        raise SerializationError(f"the record's func must be a str, not {_type_name(type(func))}")
    if key_is_b64:
        if type(key) is not str:
            raise SerializationError(f"the record's key must be a base64 str, not {_type_name(type(key))}")
        key = _unb64(key)
        if key is None:
            raise SerializationError("the record's key is not valid base64")
    elif type(key) is not bytes:
        raise SerializationError(f"the record's key must be bytes, not {_type_name(type(key))}")
    if exp is not None and (type(exp) not in (int, float) or not math.isfinite(exp)):
        raise SerializationError(
            f"the record's expires_at must be a finite number or null, not {_short_repr(exp)}"
        )
    output = d.get("output", ...)
    expected = d.get("expected", ...)
    if decode is not None:
        inputs = decode(inputs)
        metadata = decode(metadata)
        if output is not ...:
            output = decode(output)
        if expected is not ...:
            expected = decode(expected)
    if type(inputs) is not dict:
        raise SerializationError(f"the record's inputs must be a dict, not {_type_name(type(inputs))}")
    if type(metadata) is not dict:
        raise SerializationError(f"the record's metadata must be a dict, not {_type_name(type(metadata))}")
    try:
        entry = CacheEntry(func=func, inputs=inputs, output=output, expected=expected, metadata=metadata)
        return Record(entry, key, None if exp is None else float(exp))
    except Exception as e:
        raise SerializationError(f"the stored record is invalid: {type(e).__name__}: {e}") from None


def record_from_jsonable(tree: Dict[str, Any]) -> Record:
    """The record of a JSON tree from :func:`record_to_jsonable` (or ``json.load`` of a
    JsonCache file). SerializationError if it is malformed; never another exception type."""
    try:
        return _record_from_dict(tree, True, from_jsonable)
    except SerializationError:
        raise
    except Exception as e:
        raise SerializationError(f"the stored record is invalid: {type(e).__name__}: {e}") from None


def dump_record(record: Record, serializer: Serializer) -> bytes:
    """The bytes a backend stores for ``record``. Raises SerializationError (naming the
    field and path of the offending value) before anything is written."""
    if type(serializer) is JsonSerializer:
        return encode_record(record.entry, record.key, record.expires_at, serializer)
    d = _record_dict(record, record.key, False)
    try:
        return serializer.dumps(d)
    except SerializationError as e:
        if type(serializer) is PickleSerializer:  # name the field and the path inside it
            for field in ("inputs", "output", "expected", "metadata"):
                err = serializer._fails(d[field]) if field in d else None
                if err is not None:
                    raise serializer._failure(d[field], field, err) from e
        raise


def encode_record(
    entry: CacheEntry, key: bytes, expires_at: Optional[float], serializer: Serializer
) -> bytes:
    """``dump_record(Record(entry, key, expires_at), serializer)``, the same bytes.

    With the JSON serializer, a record of plain data (no value needing a type tag) is written
    by the native core in one pass; anything else takes the Python walk.
    """
    if type(serializer) is not JsonSerializer:
        return dump_record(Record(entry, key, expires_at), serializer)
    data = _core.record_encode(
        entry.func, entry.inputs, entry.output, entry.expected, entry.metadata, key, expires_at
    )
    if data is not None:
        return data  # type: ignore[no-any-return]
    return _json_bytes(record_to_jsonable(Record(entry, key, expires_at)))


def encode_results(
    pairs: Sequence[Tuple[Any, Any]],
    metadata: Dict[str, Any],
    expires_at: Optional[float],
    serializer: Serializer,
) -> List[bytes]:
    """The record :func:`encode_record` gives for each ``(call, result)`` pair of a batch of
    memoized calls (a call has ``func``, ``inputs`` and ``key``, a ``_core.Key``; the entry's
    ``output`` is the result, its ``expected`` unset), in order. Records of plain data are
    written by the native core in one call for the whole batch; an unstorable value raises
    SerializationError before any record is returned."""
    calls = [call for call, _ in pairs]
    funcs = list(map(_FUNC, calls))
    inputs = list(map(_INPUTS, calls))
    outputs = [result for _, result in pairs]
    keys = list(map(_KEY, calls))
    if type(serializer) is JsonSerializer:
        records = _core.record_encode_results(funcs, inputs, outputs, metadata, keys, expires_at)
        if None not in records:
            return records  # type: ignore[return-value]
    else:
        records = [None] * len(calls)
    return [
        record
        if record is not None
        else encode_record(
            CacheEntry(funcs[i], inputs[i], outputs[i], ..., metadata), keys[i].bytes, expires_at, serializer
        )
        for i, record in enumerate(records)
    ]


_FUNC, _INPUTS, _KEY = operator.attrgetter("func"), operator.attrgetter("inputs"), operator.attrgetter("key")


def load_record(data: bytes, serializer: Serializer) -> Record:
    """The record stored in ``data``. Raises SerializationError if the payload is corrupt,
    truncated, of another version, tampered with or unsigned; never another exception type."""
    try:
        if type(serializer) is JsonSerializer:
            fields = _core.record_decode(data)
            if fields is not None:  # plain data, read by the native core
                func, inputs, output, expected, metadata, key, exp = fields
                return Record(CacheEntry(func, inputs, output, expected, metadata), key, exp)
            tree, tagged = _parse_json(data)
            return _record_from_dict(tree, True, from_jsonable if tagged else None)
        return _record_from_dict(serializer.loads(data), False, None)
    except SerializationError:
        raise
    except Exception as e:
        raise SerializationError(f"the stored record cannot be read: {type(e).__name__}: {e}") from None


def load_value(data: bytes, serializer: Serializer) -> Tuple[Any, bytes, Optional[float]]:
    """``(value, key, expires_at)`` of the record stored in ``data``: what :func:`load_record`
    reads (the value is ``expected`` if set, else ``output``), without building the entry
    when the native core reads the payload. Raises as :func:`load_record` does."""
    if type(serializer) is JsonSerializer:
        try:
            fields = _core.record_decode(data, False)
        except Exception as e:
            raise SerializationError(f"the stored record cannot be read: {type(e).__name__}: {e}") from None
        if fields is not None:
            expected = fields[3]
            return (fields[2] if expected is ... else expected), fields[5], fields[6]
    record = load_record(data, serializer)
    return record.entry.value, record.key, record.expires_at
