"""Function identity, signature analysis and key schemes.

The canonical key of a call is built in Rust (``cachehaven._core``) from the function
identity and the call's arguments bound to parameter names; this module decides what the
identity is, analyses signatures once per decorated function, and implements the
AgentHeaven-compatible ``"ahvn"`` scheme. See ``docs/keys.md`` for the format.
"""

from __future__ import annotations

import datetime
import functools
import inspect
import itertools
import json
import os
import threading
import types
import weakref
from typing import Any, Callable, Iterable, Mapping

from . import _core
from .errors import ConfigError, KeyDepthError, KeyTypeError

__all__ = [
    "KEY_SCHEMES",
    "ahvn_key",
    "call_key",
    "identity",
    "make_binder",
]

#: Digest schemes a cache can use for ``CacheEntry.key`` and persistent storage keys.
KEY_SCHEMES = ("blake3", "md5", "ahvn")


def identity(func: Callable[..., Any] | str, *, scheme: str = "blake3") -> str:
    """The identity string a function is cached under.

    A string is used as given. A memoized wrapper answers with the name it caches under. Any
    other callable is ``module.qualname``; lambdas add ``@line:column`` so two lambdas never
    share entries. With ``scheme="ahvn"`` a callable is its ``__name__``, as AgentHeaven
    keyed it.
    """
    if isinstance(func, str):
        return func
    own = getattr(func, "__cachehaven_name__", None)
    if isinstance(own, str):
        return own
    if not callable(func):
        raise TypeError(f"func must be a callable or a str, not {type(func).__name__}")
    if isinstance(func, functools.partial):
        # a partial is its function plus what it binds
        bound = (func.args, func.keywords)
        return f"{identity(func.func, scheme=scheme)}(partial:{_captured_digest(func, bound)})"
    target = inspect.unwrap(func) if hasattr(func, "__wrapped__") else func
    if isinstance(target, (staticmethod, classmethod)):
        target = target.__func__
    if scheme == "ahvn":
        return str(getattr(target, "__name__", type(target).__name__))
    module = getattr(target, "__module__", None) or "<unknown>"
    qualname = getattr(target, "__qualname__", None) or getattr(target, "__name__", None)
    if qualname is None:
        qualname = type(target).__qualname__
    name = f"{module}.{qualname}"
    if "<lambda>" in qualname:
        code = getattr(target, "__code__", None)
        if code is not None:
            line, col = code.co_firstlineno, 0
            # the body's first position tells apart two lambdas on one line
            for pos in code.co_positions() if hasattr(code, "co_positions") else ():
                if pos[0] is not None and pos[2]:
                    line, col = pos[0], pos[2]
                    break
            name += f"@{line}:{col}"
    closure = getattr(target, "__closure__", None)
    if closure:
        # closures made by one factory share code but not behaviour: key what they captured
        values = []
        for cell in closure:
            try:
                values.append(cell.cell_contents)
            except ValueError:  # not yet bound (e.g. a recursive inner function)
                values.append(_EMPTY_CELL)
        name += f"(closure:{_captured_digest(target, tuple(values))})"
    return name


_EMPTY_CELL = "<empty cell>"


def _plain(value: Any, depth: int = 0) -> Any:
    """Captured values made keyable: functions by identity, modules by name."""
    if depth > 20:
        return value
    if isinstance(value, types.ModuleType):
        return f"<module {value.__name__}>"
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType, functools.partial)) or hasattr(
        value, "__cachehaven_name__"
    ):
        return f"<function {identity(value)}>"
    if isinstance(value, tuple):
        return tuple(_plain(v, depth + 1) for v in value)
    if isinstance(value, list):
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v, depth + 1) for k, v in value.items()}
    return value


def _captured_digest(owner: Any, captured: Any) -> str:
    """A short digest of what a closure or partial captured. Values with no canonical form
    make the identity process-local (a per-object token), so such callables never share."""
    try:
        data = _core.encode(_plain(captured))
    except (KeyTypeError, KeyDepthError):
        return "local-" + instance_token(owner).hex()
    return format(_core.blake3_int(data) >> 64, "016x")


# ---------------------------------------------------------------- identity-keyed instances

_PROCESS_NONCE = os.urandom(16)
_counter = itertools.count(1)
_tokens: dict[int, tuple[weakref.ref[Any], bytes]] = {}
_tokens_lock = threading.Lock()


def _forget(obj_id: int, ref: weakref.ref[Any]) -> None:
    with _tokens_lock:
        entry = _tokens.get(obj_id)
        if entry is not None and entry[0] is ref:
            del _tokens[obj_id]


def instance_token(obj: Any) -> bytes:
    """A process-unique token for ``obj``, stable while it lives, never reused.

    Used for a method's ``self`` when it has no value key (no ``__cache_key__``, not a
    dataclass): results are then shared by calls on the same instance only. The token
    contains a random per-process nonce, so such keys never match across processes.
    The object is only weakly referenced.
    """
    oid = id(obj)
    with _tokens_lock:
        entry = _tokens.get(oid)
        if entry is not None and entry[0]() is obj:
            return entry[1]
    try:
        ref = weakref.ref(obj, lambda r, oid=oid: _forget(oid, r))
    except TypeError:
        raise KeyTypeError(
            f"cannot key calls on this {type(obj).__qualname__} instance: it has no value key "
            "(__cache_key__() or dataclass) and does not support weak references; define "
            "__cache_key__() on the class"
        ) from None
    token = _PROCESS_NONCE + next(_counter).to_bytes(8, "big")
    with _tokens_lock:
        _tokens[oid] = (ref, token)
    return token


# ---------------------------------------------------------------- signatures

_KIND = {
    inspect.Parameter.POSITIONAL_ONLY: 0,
    inspect.Parameter.POSITIONAL_OR_KEYWORD: 1,
    inspect.Parameter.VAR_POSITIONAL: 2,
    inspect.Parameter.KEYWORD_ONLY: 3,
    inspect.Parameter.VAR_KEYWORD: 4,
}


def _normalize_exclude(exclude: Iterable[str] | str | None, what: str = "exclude") -> list[str]:
    if exclude is None:
        return []
    if isinstance(exclude, str):
        exclude = [exclude]
    out = []
    for item in exclude:
        if not isinstance(item, str) or not item or any(not part for part in item.split(".")):
            raise ConfigError(
                f"{what} must be parameter names or dotted paths like 'kwargs.api_key'; got {item!r}"
            )
        out.append(item)
    return out


def self_param(func: Callable[..., Any], sig: inspect.Signature) -> int | None:
    """Index of a method's ``self``/``cls`` parameter, if ``func`` looks like a method."""
    params = list(sig.parameters.values())
    if not params or params[0].name not in ("self", "cls"):
        return None
    if params[0].kind not in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD):
        return None
    return 0


def make_binder(
    func: Callable[..., Any],
    name: str,
    exclude: Iterable[str] | None = None,
    cache_exclude: Iterable[str] | None = None,
) -> _core.Binder:
    """Analyse ``func``'s signature once and return the native binder for its calls.

    ``exclude`` are the decorator's paths (an unknown top-level name is an error unless the
    function takes ``**kwargs``, where it means a keyword in them); ``cache_exclude`` are the
    cache-wide paths, applied only where they name a parameter (or a ``**kwargs`` key).
    """
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"cannot memoize {name}: its signature cannot be inspected ({e})") from None
    params = [(p.name, _KIND[p.kind], p.default) for p in sig.parameters.values()]
    names = {p.name for p in sig.parameters.values()}
    has_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    paths = _normalize_exclude(exclude)
    for path in _normalize_exclude(cache_exclude, "cache exclude"):
        if path.split(".")[0] in names or has_kwargs:
            paths.append(path)
    idx = self_param(func, sig)
    try:
        return _core.Binder(
            name,
            params,
            inspect.Parameter.empty,
            paths,
            idx,
            instance_token if idx is not None else None,
        )
    except ValueError as e:
        raise ConfigError(str(e)) from None


def call_key(func: str, inputs: Mapping[str, Any], exclude: Iterable[str] | None = None) -> _core.Key:
    """The canonical key of calling ``func`` (an identity string) with ``inputs``."""
    if not isinstance(inputs, dict):
        if not isinstance(inputs, Mapping):
            raise TypeError(f"inputs must be a dict of parameter name -> value, not {type(inputs).__name__}")
        inputs = dict(inputs)
    ex = _normalize_exclude(exclude)
    return _core.call_key(func, inputs, ex or None)


# ---------------------------------------------------------------- AgentHeaven 0.9.2 keys


def _ahvn_transform(obj: Any) -> Any:
    if isinstance(obj, tuple):
        return {"__obj_type__": "tuple", "__obj_data__": [_ahvn_transform(i) for i in obj]}
    if isinstance(obj, set):
        return {"__obj_type__": "set", "__obj_data__": [_ahvn_transform(i) for i in sorted(obj)]}
    if isinstance(obj, datetime.datetime):
        return {"__obj_type__": "datetime", "__obj_data__": obj.timestamp()}
    if isinstance(obj, int) and (obj > 1 << 53 or obj < -(1 << 53)):
        return {"__obj_type__": "bigint", "__obj_data__": str(obj)}
    if isinstance(obj, list):
        return [_ahvn_transform(i) for i in obj]
    if isinstance(obj, dict):
        return {k: _ahvn_transform(v) for k, v in obj.items()}
    if obj is Ellipsis:
        return {"__obj_type__": "ellipsis"}
    if callable(obj):
        raise KeyTypeError(
            "key_scheme='ahvn' cannot key a callable argument (AgentHeaven serialized function "
            "source into its keys); use the default key scheme"
        )
    return obj


def ahvn_json(obj: Any) -> str:
    """AgentHeaven 0.9.2's JSON form of a value, as its key hashing wrote it."""
    try:
        return json.dumps(_ahvn_transform(obj), sort_keys=True, indent=None, ensure_ascii=False)
    except TypeError as e:
        raise KeyTypeError(f"key_scheme='ahvn' cannot key this value: {e}") from None


def ahvn_key(func: str, inputs: Mapping[str, Any]) -> int:
    """The key AgentHeaven 0.9.2 gave ``CacheEntry(func, inputs)``: md5 of
    ``json(inputs) + "||" + json(func)`` as an int."""
    text = ahvn_json(dict(inputs)) + "||" + ahvn_json(func)
    return _core.md5_int(text.encode("utf-8"))


def digest(key: _core.Key, func: str, inputs: Mapping[str, Any], scheme: str) -> int:
    """The 128-bit key of a call under ``scheme`` (what ``CacheEntry.key`` shows)."""
    if scheme == "ahvn":
        return ahvn_key(func, inputs)
    return key.digest(scheme)


def check_scheme(scheme: str) -> str:
    """Validate a ``key_scheme`` argument."""
    if scheme not in KEY_SCHEMES:
        raise ConfigError(f"key_scheme must be one of {', '.join(map(repr, KEY_SCHEMES))}; got {scheme!r}")
    return scheme
