"""``BaseCache``: the public cache API, written once over a small storage protocol.

A backend implements five methods over :class:`Call` objects (a call's canonical key, its
function identity and its bound inputs):

* ``_fetch(call) -> CacheEntry | None`` and, optionally, the faster ``_fetch_value(call)``
  that returns just the value or ``MISSING``;
* ``_put(call, entry, ttl)``; ``_delete(call) -> bool``;
* ``_entries() -> Iterator[CacheEntry]``; ``_wipe()``; and optionally ``_size()``.

For AgentHeaven compatibility a subclass may instead implement AgentHeaven's protocol
(``_get(key: int, default)``, ``_set(key: int, value: dict)``, ``_remove(key: int)``,
``_itervalues()``, ``_clear()``), keyed by the call's 128-bit digest; the defaults below
adapt it.
"""

from __future__ import annotations

import logging
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    NamedTuple,
    Optional,
    ParamSpec,
    Protocol,
    Sequence,
    TypeVar,
    Union,
    overload,
)

from . import _core, keys
from .entry import MISSING, CacheEntry, _strip

__all__ = ["BaseCache", "CacheInfo", "Call", "MemoizedFunction"]

logger = logging.getLogger("cachehaven")


class CacheInfo(NamedTuple):
    """What ``cache_info()`` returns, as ``functools.lru_cache`` does."""

    hits: int
    misses: int
    maxsize: Optional[int]
    currsize: int


FuncLike = Union[Callable[..., Any], str]

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class MemoizedFunction(Protocol[P, R_co]):
    """What ``@cache.memoize`` returns: the function, same signature and return type, plus
    the cache helpers."""

    __wrapped__: Callable[P, R_co]

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...
    def cache_info(self) -> CacheInfo: ...
    def cache_clear(self) -> None: ...
    def cache_key(self, *args: P.args, **kwargs: P.kwargs) -> int: ...
    def cache_get(self, *args: P.args, **kwargs: P.kwargs) -> Any: ...
    def cache_set(self, value: Any, /, *args: P.args, **kwargs: P.kwargs) -> None: ...
    def cache_invalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool: ...
    def refresh(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...


class Call:
    """One call as the storage protocol sees it."""

    __slots__ = ("_digest", "_hex", "func", "inputs", "key", "scheme", "target")

    def __init__(self, key: _core.Key, func: str, inputs: Dict[str, Any], target: FuncLike, scheme: str):
        self.key = key  #: canonical key (exact bytes; used by in-memory stores)
        self.func = func  #: function identity
        self.inputs = inputs  #: bound inputs (exclusions applied)
        self.target = target  #: the function object when memoizing, else the name
        self.scheme = scheme
        self._digest: Optional[int] = None
        self._hex: Optional[str] = None

    @property
    def digest(self) -> int:
        """The 128-bit key under the cache's scheme (``CacheEntry.key`` for blake3)."""
        if self._digest is None:
            self._digest = keys.digest(self.key, self.func, self.inputs, self.scheme)
        return self._digest

    @property
    def hexdigest(self) -> str:
        """:attr:`digest` as 32 lowercase hex digits (the persistent backends' storage key)."""
        if self._hex is None:
            if self.scheme == "ahvn":
                self._hex = f"{self.digest:032x}"
            else:
                self._hex = self.key.hexdigest(self.scheme)
        return self._hex

    def entry(
        self, output: Any = ..., expected: Any = ..., metadata: Optional[Dict[str, Any]] = None
    ) -> CacheEntry:
        """A CacheEntry for this call."""
        return CacheEntry(self.func, self.inputs, output, expected, metadata or {})


class BaseCache:
    """The cache API shared by every backend. See the module docstring for the protocol.

    ``exclude``: parameter names or dotted paths dropped from every key made through this
    cache (where they apply). ``key_scheme``: how ``CacheEntry.key`` and persistent keys are
    digested: ``"blake3"`` (default), ``"md5"``, or ``"ahvn"`` to read and write caches
    made by AgentHeaven 0.9.2.
    """

    #: ``cache_info().maxsize`` for functions memoized on this cache.
    maxsize: Optional[int] = None

    def __init__(self, exclude: Optional[Iterable[str]] = None, *, key_scheme: str = "blake3"):
        self.key_scheme = keys.check_scheme(key_scheme)
        self.set_exclude(exclude)
        #: single-flight for threads: one computation per key at a time (``_core.Flight``)
        self._flight = _core.Flight()

    # ------------------------------------------------------------------ configuration
    def set_exclude(self, exclude: Optional[Iterable[str]] = None) -> None:
        """Replace the cache-wide excluded names / dotted paths."""
        self._exclude: List[str] = keys._normalize_exclude(exclude)

    def add_exclude(self, exclude: Optional[Iterable[str]] = None) -> None:
        """Add cache-wide excluded names / dotted paths."""
        for p in keys._normalize_exclude(exclude):
            if p not in self._exclude:
                self._exclude.append(p)

    # ------------------------------------------------------------------ building calls
    def _identity(self, func: FuncLike) -> str:
        return keys.identity(func, scheme=self.key_scheme)

    def _call(
        self, func: Union[FuncLike, CacheEntry], inputs: Optional[Mapping[str, Any]], kwargs: Dict[str, Any]
    ) -> Call:
        """A Call from the manual API's forms: ``(func, {inputs})``, ``(func, **inputs)`` or
        ``(entry)``."""
        if isinstance(func, CacheEntry):
            if inputs is not None or kwargs:
                raise TypeError("pass either a CacheEntry or a function with inputs, not both")
            return self._entry_call(func)
        if inputs is not None:
            if kwargs:
                raise TypeError("pass the inputs either as a dict or as keyword arguments, not both")
            if not isinstance(inputs, Mapping):
                raise TypeError(
                    f"inputs must be a dict of parameter name -> value, not {type(inputs).__name__}"
                )
            inputs = dict(inputs)
        else:
            inputs = kwargs
        name = self._identity(func)
        stripped = _strip(inputs, self._exclude)
        key = _core.call_key(name, stripped)
        return Call(key, name, stripped, func, self.key_scheme)

    def _entry_call(self, entry: CacheEntry) -> Call:
        return Call(
            _core.call_key(entry.func, entry.inputs), entry.func, entry.inputs, entry.func, self.key_scheme
        )

    # ------------------------------------------------------------------ storage protocol
    def _fetch(self, call: Call) -> Optional[CacheEntry]:
        data = self._get(call.digest, default=...)
        if data is ... or data is None:
            return None
        entry = data if isinstance(data, CacheEntry) else CacheEntry.from_dict(data)
        if entry.func != call.func or _core.call_key(entry.func, entry.inputs) != call.key:
            return None  # a digest collision or a foreign row: never a wrong value
        return entry

    def _fetch_value(self, call: Call) -> Any:
        entry = self._fetch(call)
        return MISSING if entry is None else entry.value

    def _fetch_many(self, calls: Sequence[Call]) -> List[Any]:
        return [self._fetch_value(c) for c in calls]

    def _put(self, call: Call, entry: CacheEntry, ttl: Any = None) -> None:
        self._set(call.digest, entry.to_dict())

    def _put_result(
        self,
        call: Call,
        result: Any,
        metadata: Dict[str, Any],
        ttl: Any = None,
        *,
        depends_on: Optional[List[_core.Key]] = None,
        content_hash: Any = None,
        warmup: bool = False,
    ) -> None:
        """Store a memoized call's result (backends may skip building a CacheEntry).

        ``depends_on``, ``content_hash`` and ``warmup`` come only from the ``memoize``
        options in :attr:`_FEATURES`, which a backend without them refuses at decoration.
        """
        self._put(call, call.entry(result, ..., metadata), ttl)

    def _put_many(self, items: Sequence[tuple[Call, CacheEntry]], ttl: Any = None) -> None:
        for call, entry in items:
            self._put(call, entry, ttl)

    def _put_results(
        self,
        pairs: Sequence[tuple[Call, Any]],
        metadata: Callable[[], Dict[str, Any]],
        ttl: Any = None,
    ) -> None:
        """Store the results of a batch's memoized calls, ``(call, result)`` pairs, whose
        lookup just missed (backends may skip building CacheEntry objects, and may expect
        the rows to be new). ``metadata()`` gives a fresh metadata dict for each entry."""
        self._put_many([(call, call.entry(result, ..., metadata())) for call, result in pairs], ttl)

    def _delete(self, call: Call) -> bool:
        present = self._fetch(call) is not None
        self._remove(call.digest)
        return present

    def _entries(self) -> Iterator[CacheEntry]:
        for data in self._itervalues():
            yield data if isinstance(data, CacheEntry) else CacheEntry.from_dict(data)

    def _wipe(self) -> None:
        self._clear()

    def _size(self) -> int:
        return sum(1 for _ in self._entries())

    def _func_size(self, func: str) -> int:
        return sum(1 for e in self._entries() if e.func == func)

    def _func_clear(self, func: str) -> int:
        doomed = [e for e in self._entries() if e.func == func]
        for e in doomed:
            self._delete(self._entry_call(e))
        return len(doomed)

    # AgentHeaven's protocol, for subclasses written against it
    def _get(self, key: int, default: Any = ...) -> Any:
        raise NotImplementedError(f"{type(self).__name__} implements neither _fetch nor _get")

    def _set(self, key: int, value: Dict[str, Any]) -> None:
        raise NotImplementedError(f"{type(self).__name__} implements neither _put nor _set")

    def _remove(self, key: int) -> None:
        raise NotImplementedError(f"{type(self).__name__} implements neither _delete nor _remove")

    def _itervalues(self) -> Iterator[Dict[str, Any]]:
        raise NotImplementedError(f"{type(self).__name__} implements neither _entries nor _itervalues")

    def _clear(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} implements neither _wipe nor _clear")

    # ------------------------------------------------------------------ manual API
    def get(self, func: FuncLike, inputs: Optional[Mapping[str, Any]] = None, /, **kwargs: Any) -> Any:
        """The cached value of ``func`` on these inputs, or ``...`` on a miss.

        ``cache.get("f", {"x": 5})`` and ``cache.get("f", x=5)`` are the same lookup;
        ``func`` may also be the function itself.
        """
        return self._fetch_value(self._call(func, inputs, kwargs))

    def retrieve(self, func: FuncLike, inputs: Optional[Mapping[str, Any]] = None, /, **kwargs: Any) -> Any:
        """The cached :class:`CacheEntry` of ``func`` on these inputs, or ``...``."""
        entry = self._fetch(self._call(func, inputs, kwargs))
        return MISSING if entry is None else entry

    def exists(self, func: FuncLike, inputs: Optional[Mapping[str, Any]] = None, /, **kwargs: Any) -> bool:
        """Whether an entry for ``func`` on these inputs is cached."""
        return self._fetch(self._call(func, inputs, kwargs)) is not None

    def set(
        self,
        func: Union[FuncLike, CacheEntry],
        output: Any = ...,
        expected: Any = ...,
        metadata: Optional[Dict[str, Any]] = None,
        *,
        ttl: Any = None,
        **kwargs: Any,
    ) -> None:
        """Store a value: ``cache.set(entry)`` or ``cache.set("f", output=25, x=5)``.

        ``ttl`` (seconds or a timedelta) applies where the backend supports expiry.
        """
        call, entry = self._set_args(func, output, expected, metadata, kwargs)
        self._put(call, entry, ttl)

    def _set_args(
        self,
        func: Union[FuncLike, CacheEntry],
        output: Any,
        expected: Any,
        metadata: Optional[Dict[str, Any]],
        kwargs: Dict[str, Any],
    ) -> tuple[Call, CacheEntry]:
        """The call and entry of ``set``'s two forms (``set(entry)``, ``set(func, ..., **inputs)``)."""
        if isinstance(func, CacheEntry):
            if output is not ... or expected is not ... or metadata is not None or kwargs:
                raise TypeError("cache.set(entry) takes no other arguments")
            return self._entry_call(func), func
        if output is ... and expected is ...:
            raise ValueError("cache.set(func, ...) needs output= or expected=")
        call = self._call(func, None, kwargs)
        return call, call.entry(output, expected, metadata)

    def get_many(self, func: FuncLike, inputs: Iterable[Mapping[str, Any]], /) -> List[Any]:
        """The cached values of ``func`` on each inputs dict, in order (``...`` for a miss).

        One round trip on backends that support it (SQL ``IN``, Redis ``MGET``).
        """
        calls = [self._call(func, one, {}) for one in inputs]
        return self._fetch_many(calls) if calls else []

    def set_many(
        self,
        func: Union[FuncLike, Iterable[CacheEntry]],
        items: Optional[Iterable[tuple[Mapping[str, Any], Any]]] = None,
        /,
        *,
        ttl: Any = None,
    ) -> None:
        """Store many values at once: ``cache.set_many("f", [({"x": 1}, 1), ({"x": 2}, 4)])``
        (pairs of inputs and output), or ``cache.set_many(entries)`` with CacheEntry objects.

        One round trip on backends that support it (one SQL statement, one Redis pipeline).
        """
        pairs: List[tuple[Call, CacheEntry]] = []
        if items is None:
            if isinstance(func, (str, CacheEntry)) or callable(func):
                raise TypeError("set_many(func, items) needs items: (inputs, output) pairs")
            for entry in func:
                if not isinstance(entry, CacheEntry):
                    raise TypeError(f"set_many(entries) takes CacheEntry objects, not {type(entry).__name__}")
                pairs.append((self._entry_call(entry), entry))
        else:
            for pair in items:
                if not (isinstance(pair, tuple) and len(pair) == 2):
                    raise TypeError("set_many items must be (inputs, output) pairs")
                call = self._call(func, pair[0], {})  # type: ignore[arg-type]
                pairs.append((call, call.entry(pair[1])))
        if pairs:
            self._put_many(pairs, ttl)

    def add(self, entry: CacheEntry) -> None:
        """Store a :class:`CacheEntry` as it is."""
        if not isinstance(entry, CacheEntry):
            raise TypeError(f"add() takes a CacheEntry, not {type(entry).__name__}")
        self._put(self._entry_call(entry), entry)

    def annotate(
        self,
        func: FuncLike,
        expected: Any = ...,
        metadata: Optional[Dict[str, Any]] = None,
        **kwargs: Any,
    ) -> None:
        """Annotate the entry of ``func`` on ``**kwargs`` with ``expected`` (default: its
        output) and ``metadata``; creates the entry (output = expected) if it is missing."""
        call = self._call(func, None, kwargs)
        entry = self._fetch(call)
        if entry is None:
            if expected is ...:
                raise ValueError(
                    f"no cached entry for {call.func} with inputs {call.inputs!r}; "
                    "pass expected= to create one"
                )
            self._put(call, call.entry(expected, expected, metadata))
        else:
            self._put(call, entry.annotate(expected=expected, metadata=metadata))

    def remove(
        self, func: Union[FuncLike, CacheEntry], inputs: Optional[Mapping[str, Any]] = None, /, **kwargs: Any
    ) -> bool:
        """Remove one entry: ``cache.remove(entry)``, ``cache.remove("f", {"x": 5})`` or
        ``cache.remove("f", x=5)``. Returns whether it was there."""
        return self._delete(self._call(func, inputs, kwargs))

    def invalidate(
        self, func: Union[FuncLike, CacheEntry], inputs: Optional[Mapping[str, Any]] = None, /, **kwargs: Any
    ) -> int:
        """Remove an entry and everything that depends on it; returns how many entries were
        removed. Only ``InMemCache`` records dependencies (``depends_on=``); on the other
        backends no entry has dependents, and this removes the one entry (0 or 1)."""
        return int(self._delete(self._call(func, inputs, kwargs)))

    def unset(self, func: FuncLike, **kwargs: Any) -> bool:
        """Remove the entry of ``func`` on ``**kwargs`` (AgentHeaven's name for remove)."""
        return self._delete(self._call(func, None, kwargs))

    def clear(self) -> None:
        """Remove every entry."""
        self._wipe()

    def pop(self) -> Optional[CacheEntry]:
        """Remove and return some entry, or None if the cache is empty."""
        for entry in self._entries():
            self._delete(self._entry_call(entry))
            return entry
        return None

    def popall(self) -> List[CacheEntry]:
        """Remove and return every entry."""
        entries = list(self._entries())
        for e in entries:
            self._delete(self._entry_call(e))
        return entries

    def close(self) -> None:
        """Release resources (connections, files). The base cache holds none."""

    def flush(self, **kwargs: Any) -> None:
        """Make pending writes durable, where the backend buffers any."""

    def __enter__(self) -> BaseCache:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ mapping-style access
    def _resolve_key(self, key: Union[int, str, CacheEntry]) -> Optional[Call]:
        if isinstance(key, CacheEntry):
            return self._entry_call(key)
        if isinstance(key, str):
            key = int(key)
        if not isinstance(key, int) or isinstance(key, bool):
            raise TypeError(
                f"cache keys are ints (CacheEntry.key) or CacheEntry objects, not {type(key).__name__}"
            )
        for entry in self._entries():
            call = self._entry_call(entry)
            if call.digest == key:
                return call
        return None

    def __getitem__(self, key: Union[int, str, CacheEntry]) -> Any:
        """The entry for a key (``CacheEntry.key`` or a CacheEntry), or ``...``."""
        call = self._resolve_key(key)
        entry = None if call is None else self._fetch(call)
        return MISSING if entry is None else entry

    def __setitem__(self, key: Union[int, str, CacheEntry], value: Union[CacheEntry, Dict[str, Any]]) -> None:
        entry = value if isinstance(value, CacheEntry) else CacheEntry.from_dict(value)
        self._put(self._entry_call(entry), entry)

    def __delitem__(self, key: Union[int, str, CacheEntry]) -> None:
        call = self._resolve_key(key)
        if call is None or not self._delete(call):
            raise KeyError(key)

    def __contains__(self, key: Union[int, str, CacheEntry]) -> bool:
        call = self._resolve_key(key)
        return call is not None and self._fetch(call) is not None

    def __len__(self) -> int:
        return self._size()

    def __iter__(self) -> Iterator[CacheEntry]:
        """Every cached entry, as :class:`CacheEntry` objects."""
        return self._entries()

    def __bool__(self) -> bool:
        return True

    # ------------------------------------------------------------------ decorators
    @overload
    def memoize(self, func: Callable[P, R], /) -> MemoizedFunction[P, R]: ...

    @overload
    def memoize(
        self,
        func: None = None,
        /,
        *,
        name: Optional[str] = None,
        exclude: Optional[Iterable[str]] = None,
        annotation: Optional[Dict[str, Any]] = None,
        ttl: Any = None,
        cache_if: Optional[Callable[[Any], bool]] = None,
        version: Any = None,
        fail_open: bool = False,
        depends_on: Any = None,
        content_hash: Optional[Callable[..., Any]] = None,
        prefetch: bool = False,
    ) -> Callable[[Callable[P, R]], MemoizedFunction[P, R]]: ...

    def memoize(
        self,
        func: Optional[Callable[..., Any]] = None,
        /,
        *,
        name: Optional[str] = None,
        exclude: Optional[Iterable[str]] = None,
        annotation: Optional[Dict[str, Any]] = None,
        ttl: Any = None,
        cache_if: Optional[Callable[[Any], bool]] = None,
        version: Any = None,
        fail_open: bool = False,
        depends_on: Any = None,
        content_hash: Optional[Callable[..., Any]] = None,
        prefetch: bool = False,
    ) -> Any:
        """Cache a function's results; works bare (``@cache.memoize``) or called.

        Works for sync, async, generator and async-generator functions and methods.

        * ``name``: the function identity in keys (default ``module.qualname``).
        * ``exclude``: parameter names or dotted paths into dict arguments / ``**kwargs``
          (``"kwargs.api_key"``) left out of the key.
        * ``annotation``: stored as ``metadata["annotation"]`` on every entry.
        * ``ttl``: seconds or timedelta, where the backend supports expiry.
        * ``cache_if``: a predicate on the result; results it rejects are returned but not
          stored (e.g. ``lambda r: r is not None``).
        * ``version``: part of the identity; bump it when the function's meaning changes.
        * ``fail_open``: if the cache itself fails (a dropped connection, a full disk), log
          and compute without it instead of raising.

        ``InMemCache`` only (other backends raise ``ConfigError`` for them):

        * ``depends_on``: what each result depends on, so that ``cache.invalidate(...)`` of
          any of it removes the result too: a list of dependency specs (``(func, inputs)``
          pairs, ``CacheEntry`` objects, or tags such as ``"config"``), or a callable taking
          the function's arguments and returning such a list.
        * ``content_hash``: a callable taking the function's arguments and returning the
          current hash (``str``, ``bytes`` or ``int``) of what the result was computed from;
          a stored result with another hash is dropped and recomputed.
        * ``prefetch``: after each call, compute the calls predicted to come next in the
          background, so that they are hits (plain sync functions; turns on pattern
          learning). Calls of such a function run in the Python engine.

        Exceptions are never cached. A generator's items are cached only once it has been
        consumed to the end. Concurrent calls with the same key run the function once.
        """
        from .memoize import memoize as _memoize

        return self._decorate(_memoize, func, locals())

    @overload
    def batch_memoize(self, func: Callable[P, R], /) -> MemoizedFunction[P, R]: ...

    @overload
    def batch_memoize(
        self,
        func: None = None,
        /,
        *,
        name: Optional[str] = None,
        exclude: Optional[Iterable[str]] = None,
        annotation: Optional[Dict[str, Any]] = None,
        ttl: Any = None,
        cache_if: Optional[Callable[[Any], bool]] = None,
        version: Any = None,
        fail_open: bool = False,
    ) -> Callable[[Callable[P, R]], MemoizedFunction[P, R]]: ...

    def batch_memoize(
        self,
        func: Optional[Callable[..., Any]] = None,
        /,
        *,
        name: Optional[str] = None,
        exclude: Optional[Iterable[str]] = None,
        annotation: Optional[Dict[str, Any]] = None,
        ttl: Any = None,
        cache_if: Optional[Callable[[Any], bool]] = None,
        version: Any = None,
        fail_open: bool = False,
    ) -> Any:
        """Cache a batch function ``f(items, *args, **kwargs) -> list`` item by item.

        Each item is cached as the call ``f([item], *args, **kwargs)``; a call looks every
        item up, calls ``f`` once on the misses (in order, duplicates once) and returns the
        results in the order of ``items``. ``f`` must return one result per item.
        """
        from .memoize import batch_memoize as _batch

        return self._decorate(_batch, func, locals())

    _OPTIONS = (
        "name",
        "exclude",
        "annotation",
        "ttl",
        "cache_if",
        "version",
        "fail_open",
        "depends_on",
        "content_hash",
        "prefetch",
    )
    #: ``memoize`` options only some backends support (``InMemCache`` supports all of them).
    _FEATURES: frozenset[str] = frozenset()

    def _decorate(
        self, engine: Callable[..., Any], func: Optional[Callable[..., Any]], args: Dict[str, Any]
    ) -> Any:
        """Apply ``engine`` now (bare decorator) or return the decorator (called with options)."""
        opts = {k: args[k] for k in self._OPTIONS if k in args}
        if func is not None:
            return engine(self, func, **opts)
        return lambda f: engine(self, f, **opts)

    # hooks the memoize engines use; backends may specialise them
    def _recheck(self, call: Call) -> Any:
        """Look a call up again inside single-flight (a backend may skip counting it)."""
        return self._fetch_value(call)

    def _native_engine(self, memo: Any) -> Any:
        """A native wrapper for a plain sync function, or None to use the Python engine."""
        return None

    @property
    def _aflight(self) -> Any:
        flight = self.__dict__.get("_aflight_obj")
        if flight is None:
            from .memoize import _AsyncFlight

            flight = self.__dict__.setdefault("_aflight_obj", _AsyncFlight())
        return flight

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
