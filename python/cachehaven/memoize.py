"""The decorator engines: sync, async, generator, async generator, and batch.

The engine is chosen once, at decoration time, by the kind of function. Each call binds its
arguments to parameter names (in Rust), looks the canonical key up, and on a miss computes
under single-flight: concurrent callers with the same key (threads, or asyncio tasks) wait
for the one computation and share its result or its exception. Exceptions are never cached.

On ``InMemCache`` a plain sync function gets the native wrapper (``_core.Memoized``), whose
hit path never leaves Rust; its misses run under the cache's single-flight there too, and
are stored there unless ``fail_open`` or ``depends_on`` needs this module: then they come
back here through ``_Memo.native_miss``.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
import inspect
import logging
import types
import weakref
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence

from . import _core, keys
from .base import CacheInfo, Call
from .entry import MISSING
from .errors import ConfigError

if TYPE_CHECKING:
    from .base import BaseCache

__all__ = ["batch_memoize", "memoize"]

logger = logging.getLogger("cachehaven")


def check_ttl(ttl: Any, what: str = "ttl") -> Optional[float]:
    """Validate a TTL (seconds or timedelta, > 0) and return it in seconds."""
    if ttl is None:
        return None
    if isinstance(ttl, datetime.timedelta):
        secs = ttl.total_seconds()
    elif isinstance(ttl, (int, float)) and not isinstance(ttl, bool):
        secs = float(ttl)
    else:
        raise ConfigError(f"{what} must be seconds (int or float) or a timedelta, not {type(ttl).__name__}")
    if not (secs > 0 and secs != float("inf")):
        raise ConfigError(f"{what} must be a positive, finite duration; got {ttl!r}")
    return secs


def _check_features(
    cache: BaseCache, func: Callable[..., Any], depends_on: Any, content_hash: Any, prefetch: Any
) -> None:
    """Validate the InMemCache-only options of ``memoize`` against the cache and function."""
    given = {
        "depends_on": depends_on is not None,
        "content_hash": content_hash is not None,
        "prefetch": bool(prefetch),
    }
    for option, used in given.items():
        if used and option not in cache._FEATURES:
            raise ConfigError(
                f"memoize({option}=...) needs InMemCache; {type(cache).__name__} does not support it"
            )
    if (
        depends_on is not None
        and not callable(depends_on)
        and not isinstance(depends_on, (list, tuple, set, frozenset))
    ):
        raise ConfigError(
            "depends_on must be a list of dependency specs or a callable returning one, "
            f"not {type(depends_on).__name__}"
        )
    if content_hash is not None and not callable(content_hash):
        raise ConfigError(
            "content_hash must be a callable taking the function's arguments and returning a "
            f"str, bytes or int, not {type(content_hash).__name__}"
        )
    if not isinstance(prefetch, bool):
        raise ConfigError(f"prefetch must be True or False, not {prefetch!r}")
    if prefetch and (
        inspect.iscoroutinefunction(func)
        or inspect.isgeneratorfunction(func)
        or inspect.isasyncgenfunction(func)
    ):
        raise ConfigError(
            "memoize(prefetch=True) needs a plain (sync, non-generator) function: prefetches "
            "run it on background threads"
        )


class _Memo:
    """Everything one memoized function needs, shared by its engine and helpers."""

    def __init__(
        self,
        cache: BaseCache,
        func: Callable[..., Any],
        *,
        name: Optional[str],
        exclude: Any,
        annotation: Optional[Dict[str, Any]],
        ttl: Any,
        cache_if: Optional[Callable[[Any], bool]],
        version: Any,
        fail_open: bool,
        depends_on: Any = None,
        content_hash: Optional[Callable[..., Any]] = None,
        prefetch: bool = False,
    ) -> None:
        if name is not None and (not isinstance(name, str) or not name):
            raise ConfigError(f"name must be a non-empty str, not {name!r}")
        if annotation is not None and not isinstance(annotation, dict):
            raise ConfigError(f"annotation must be a dict, not {type(annotation).__name__}")
        if cache_if is not None and not callable(cache_if):
            raise ConfigError("cache_if must be a callable taking the result and returning a bool")
        ident = name or cache._identity(func)
        if version is not None:
            ident = f"{ident}[v={version}]"
        self.cache = cache
        self.func = func
        self.name = ident
        self.annotation = annotation
        self.ttl = check_ttl(ttl)
        self.cache_if = cache_if
        self.fail_open = bool(fail_open)
        _check_features(cache, func, depends_on, content_hash, prefetch)
        #: a list of dependency specs, resolved once here, or a callable resolved per call
        self.depends_on: Any = depends_on
        self.static_deps: Optional[List[_core.Key]] = None
        if depends_on is not None and not callable(depends_on):
            self.static_deps = cache._dep_keys(depends_on, "depends_on")  # type: ignore[attr-defined]
        self.content_hash = content_hash
        self.prefetch = bool(prefetch)
        if self.prefetch:
            cache._enable_prefetch()  # type: ignore[attr-defined]
        self.binder = keys.make_binder(func, ident, exclude, cache._exclude)
        self.self_name: Optional[str] = self.binder.self_name  # a method's self/cls, if any
        self.hits = 0
        self.misses = 0
        # a weak reference: the native wrapper's __dict__ holds the helpers, which hold this
        # object, so a strong one would make an uncollectable cycle
        self._native: Optional[weakref.ref[_core.Memoized]] = None

    # ------------------------------------------------------------------ cache access
    def _guard(self, what: str, op: Callable[[], Any], fallback: Any) -> Any:
        try:
            return op()
        except Exception as e:
            return self._fall_back(what, e, fallback)

    def _fall_back(self, what: str, error: Exception, fallback: Any) -> Any:
        """After the cache operation ``what`` raised ``error``: raise it again, or with
        ``fail_open`` log it and return ``fallback``."""
        if not self.fail_open:
            raise error
        logger.warning(
            "cachehaven: %s failed for %s (%s: %s); computing without the cache",
            what,
            self.name,
            type(error).__name__,
            error,
        )
        return fallback

    def fetch(self, call: Call) -> Any:
        # every memoized hit on a Python-engine backend passes here: no closure, one call
        try:
            return self.cache._fetch_value(call)
        except Exception as e:
            return self._fall_back("lookup", e, MISSING)

    def recheck(self, call: Call) -> Any:
        # on every miss, inside single-flight: no closure, as in fetch
        try:
            return self.cache._recheck(call)
        except Exception as e:
            return self._fall_back("lookup", e, MISSING)

    def call_for(self, args: tuple, kwargs: Optional[Dict[str, Any]]) -> Optional[Call]:
        bound = self.binder.key_and_inputs(args, kwargs)
        if bound is None:
            return None
        return Call(bound[0], self.name, bound[1], self.func, self.cache.key_scheme)

    def metadata(self) -> Dict[str, Any]:
        return {"annotation": dict(self.annotation)} if self.annotation else {}

    def _kept(self, call: Call, result: Any) -> Optional[Call]:
        """The call to store ``result`` under, or None when ``cache_if`` rejects the result. A
        method's ``self`` becomes a ``RawKey`` (its key bytes) in the stored inputs, so the
        entry never keeps the instance alive and its key can still be recomputed."""
        if self.cache_if is not None and not self.cache_if(result):
            return None
        if self.self_name is not None:
            inputs = self.binder.keyed_inputs(call.inputs)
            return Call(call.key, call.func, inputs, call.target, call.scheme)
        return call

    def store(
        self,
        call: Call,
        result: Any,
        args: tuple = (),
        kwargs: Optional[Dict[str, Any]] = None,
        content_hash: Any = None,
        warmup: bool = False,
    ) -> None:
        """Store ``result`` for ``call``. ``args``/``kwargs`` are the call's arguments, which
        a ``depends_on`` callable receives; ``content_hash`` and ``warmup`` go to InMemCache."""
        kept = self._kept(call, result)
        if kept is None:
            return
        cache = self.cache
        if self.depends_on is None and content_hash is None and not warmup:
            if not self.fail_open:  # the common case: no closure, no guard
                cache._put_result(kept, result, self.metadata(), self.ttl)
                return
            put = lambda: cache._put_result(kept, result, self.metadata(), self.ttl)  # noqa: E731
        else:
            deps = self.deps_for(args, kwargs or {})
            put = lambda: cache._put_result(  # noqa: E731
                kept,
                result,
                self.metadata(),
                self.ttl,
                depends_on=deps,
                content_hash=content_hash,
                warmup=warmup,
            )
        if self.fail_open:
            self._guard("store", put, None)
        else:
            put()

    def deps_for(self, args: tuple, kwargs: Dict[str, Any]) -> Optional[List[_core.Key]]:
        """The keys a result of ``f(*args, **kwargs)`` depends on (``depends_on=``)."""
        if self.static_deps is not None or self.depends_on is None:
            return self.static_deps
        specs = self.depends_on(*args, **kwargs)
        return self.cache._dep_keys(specs, f"depends_on({self.name})")  # type: ignore[attr-defined]

    def hash_for(self, args: tuple, kwargs: Dict[str, Any]) -> Any:
        """The current content hash of ``f(*args, **kwargs)`` (``content_hash=``), or None."""
        if self.content_hash is None:
            return None
        h = self.content_hash(*args, **kwargs)
        if type(h) not in (str, bytes, int):
            raise TypeError(
                f"content_hash of {self.name} must return a str, bytes or int, not {type(h).__name__}"
            )
        return h

    def fetch_hashed(self, call: Call, content_hash: Any) -> Any:
        """Look ``call`` up; an entry stored with another content hash is dropped (a miss)."""
        if content_hash is None:
            return self.fetch(call)
        return self._guard(
            "lookup",
            lambda: self.cache._fetch_value_hashed(call, content_hash),  # type: ignore[attr-defined]
            MISSING,
        )

    def calls_for_items(
        self, head: tuple, items: List[Any], rest: tuple, kwargs: Dict[str, Any]
    ) -> Optional[List[Call]]:
        """The call of each batch item (keyed as ``f(*head, [item], *rest, **kwargs)``), or
        None if one does not bind."""
        bound = self.binder.key_and_inputs_many(head, items, rest, kwargs or None)
        if bound is None:
            return None
        name, func, scheme = self.name, self.func, self.cache.key_scheme
        return [Call(key, name, inputs, func, scheme) for key, inputs in bound]

    def store_many(self, calls: Sequence[Call], results: Sequence[Any]) -> None:
        """Store each result for its call (a batch's computed items)."""
        if self.cache_if is None and self.self_name is None:
            pairs: Sequence[tuple[Call, Any]] = list(zip(calls, results))
        else:
            pairs = []
            for call, result in zip(calls, results):
                kept = self._kept(call, result)
                if kept is not None:
                    pairs.append((kept, result))
        if pairs:
            self._guard("store", lambda: self.cache._put_results(pairs, self.metadata, self.ttl), None)

    # ------------------------------------------------------------------ sync computing
    def compute(self, call: Call, args: tuple, kwargs: Dict[str, Any], content_hash: Any = None) -> Any:
        """Run the function for a missed call (inside single-flight) and store the result."""
        if content_hash is None:
            # an earlier flight may have stored it just now (with a content hash, a plain
            # recheck cannot tell a stale entry from a fresh one: compute instead)
            v = self.recheck(call)
            if v is not MISSING:
                return v
        result = self.func(*args, **kwargs)
        self.store(call, result, args, kwargs, content_hash)
        return result

    def warm(self, key: _core.Key, args: tuple, kwargs: Dict[str, Any]) -> None:
        """Prefetch: compute ``f(*args, **kwargs)`` (whose key is ``key``) in the background,
        unless it is stored or a caller is computing it already (single-flight)."""
        if not _core.is_enabled():
            return
        call = self.call_for(args, kwargs)
        if call is None or call.key != key:
            return

        def compute() -> Any:
            v = self.recheck(call)
            if v is not MISSING:
                return v
            h = self.hash_for(args, kwargs)
            result = self.func(*args, **kwargs)
            self.store(call, result, args, kwargs, h, warmup=True)
            return result

        self.cache._flight.try_run(key, compute)

    def native_miss(self, key: _core.Key, args: tuple, kwargs: Optional[Dict[str, Any]]) -> Any:
        """A miss of the native wrapper that it does not store itself (see ``native_plan``);
        it is already the leader of the key's flight."""
        kwargs = kwargs or {}
        inputs = self.binder.inputs(args, kwargs)
        return self.compute(Call(key, self.name, inputs, self.func, self.cache.key_scheme), args, kwargs)

    def native_plan(self, group: int) -> Optional[tuple]:
        """How the native wrapper stores a miss itself (``_core.Memoized``'s ``plan``): the
        record ``InMemCache._put_result`` stores, in entry group ``group``. None when an
        option needs this module: ``fail_open`` (errors become log lines) or ``depends_on``
        (Python specs to resolve)."""
        if self.fail_open or self.depends_on is not None:
            return None
        metadata = self.metadata if self.annotation else None
        return (self.name, group, self.ttl, self.cache_if, metadata)

    # ------------------------------------------------------------------ helpers
    @property
    def native(self) -> Optional[_core.Memoized]:
        return None if self._native is None else self._native()

    @native.setter
    def native(self, value: _core.Memoized) -> None:
        self._native = weakref.ref(value)

    def counts(self) -> tuple[int, int]:
        native = self.native
        if native is not None:
            h, m = native._counts()
            return h + self.hits, m + self.misses
        return self.hits, self.misses

    def cache_info(self) -> CacheInfo:
        hits, misses = self.counts()
        return CacheInfo(hits, misses, self.cache.maxsize, self.cache._func_size(self.name))

    def cache_clear(self) -> None:
        self.cache._func_clear(self.name)
        self.hits = self.misses = 0
        native = self.native
        if native is not None:
            native._reset_counts()

    def must_call(self, args: tuple, kwargs: Dict[str, Any]) -> Call:
        call = self.call_for(args, kwargs)
        if call is None:
            # raise the TypeError Python would raise for this call
            inspect.signature(self.func).bind(*args, **kwargs)
            raise TypeError(f"arguments do not match the signature of {self.name}")
        return call


class _AsyncFlight:
    """Single-flight for asyncio tasks: per event loop, one computation per key."""

    class _LeaderGone(Exception):
        pass

    def __init__(self) -> None:
        Flights = Dict[_core.Key, "asyncio.Future[Any]"]
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Flights] = (
            weakref.WeakKeyDictionary()
        )

    async def run(self, key: _core.Key, compute: Callable[[], Any]) -> Any:
        loop = asyncio.get_running_loop()
        flights = self._by_loop.setdefault(loop, {})
        while True:
            fut = flights.get(key)
            if fut is None:
                break
            try:
                return await asyncio.shield(fut)
            except _AsyncFlight._LeaderGone:
                continue  # the leader was cancelled: try to lead
        fut = loop.create_future()
        flights[key] = fut
        try:
            result = await compute()
        except asyncio.CancelledError:
            fut.set_exception(_AsyncFlight._LeaderGone())
            fut.exception()  # mark retrieved: waiters (if any) handle it
            raise
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()
            raise
        else:
            fut.set_result(result)
            return result
        finally:
            if flights.get(key) is fut:
                del flights[key]


def _attach(wrapper: Any, memo: _Memo) -> None:
    """The per-function helpers every memoized wrapper carries."""

    def cache_info() -> CacheInfo:
        """Hits, misses, maxsize and current size of this function's entries."""
        return memo.cache_info()

    def cache_clear() -> None:
        """Remove this function's entries (only) and reset its counters."""
        memo.cache_clear()

    def cache_key(*args: Any, **kwargs: Any) -> int:
        """The ``CacheEntry.key`` of calling the function with these arguments."""
        return memo.must_call(args, kwargs).digest

    def cache_get(*args: Any, **kwargs: Any) -> Any:
        """The cached result for these arguments, or ``...``."""
        return memo.cache._fetch_value(memo.must_call(args, kwargs))

    def cache_set(value: Any, /, *args: Any, **kwargs: Any) -> None:
        """Store ``value`` as the result for these arguments."""
        memo.store(memo.must_call(args, kwargs), value, args, kwargs, memo.hash_for(args, kwargs))

    def cache_invalidate(*args: Any, **kwargs: Any) -> bool:
        """Remove the cached result for these arguments; returns whether there was one."""
        return memo.cache._delete(memo.must_call(args, kwargs))

    wrapper.cache_info = cache_info
    wrapper.cache_clear = cache_clear
    wrapper.cache_key = cache_key
    wrapper.cache_get = cache_get
    wrapper.cache_set = cache_set
    wrapper.cache_invalidate = cache_invalidate
    wrapper.cache = memo.cache
    wrapper.__cachehaven_name__ = memo.name


def _bind_cache_set(cache_set: Callable[..., None], obj: Any) -> Callable[..., None]:
    """``cache_set`` of a bound method: ``m.f.cache_set(value, *args)``."""

    def bound_cache_set(value: Any, /, *args: Any, **kwargs: Any) -> None:
        cache_set(value, obj, *args, **kwargs)

    return bound_cache_set


def _unwrap_descriptor(func: Any) -> tuple[Any, Optional[type]]:
    if isinstance(func, (staticmethod, classmethod)):
        return func.__func__, type(func)
    if not callable(func):
        raise TypeError(f"memoize() needs a function, not {type(func).__name__}")
    return func, None


def memoize(cache: BaseCache, func: Any, **opts: Any) -> Any:
    """Build the memoized wrapper of ``func`` on ``cache`` (see ``BaseCache.memoize``)."""
    func, descriptor = _unwrap_descriptor(func)
    memo = _Memo(cache, func, **opts)
    if inspect.isasyncgenfunction(func):
        wrapper = _async_gen_engine(memo)
    elif inspect.iscoroutinefunction(func):
        wrapper = _async_engine(memo)
    elif inspect.isgeneratorfunction(func):
        wrapper = _gen_engine(memo)
    elif memo.prefetch or memo.content_hash is not None:
        # the native wrapper answers hits in Rust, where no content hash is checked and no
        # prefetch is started: these options take the Python engine (they are opt-in)
        wrapper = _featured_sync_engine(memo)
    else:
        wrapper = cache._native_engine(memo) or _sync_engine(memo)
    functools.update_wrapper(wrapper, func)
    _attach(wrapper, memo)
    wrapper.refresh = _refresher(memo)
    if memo.self_name is not None and not isinstance(wrapper, _core.Memoized):
        # a method on a Python engine: bound access must bind the helpers too, as the native
        # ``Memoized.__get__`` does (``m.predict.cache_get(2)``)
        wrapper = _MethodMemo(wrapper)
    return descriptor(wrapper) if descriptor is not None else wrapper


#: helpers that take the call's arguments, so a bound method passes its instance to them
_SELF_HELPERS = frozenset({"cache_key", "cache_get", "cache_invalidate", "refresh"})


class _MethodMemo:
    """A memoized method on a Python engine (async, generator, or a non-native backend).

    Calls go straight to the wrapper; access through an instance gives a
    :class:`_BoundMethodMemo`, whose per-call helpers receive the instance as ``self``.
    """

    def __init__(self, wrapper: Callable[..., Any]) -> None:
        self._wrapper = wrapper
        functools.update_wrapper(self, wrapper)  # type: ignore[arg-type]
        self.__dict__.update({k: v for k, v in wrapper.__dict__.items() if k != "__wrapped__"})
        if inspect.iscoroutinefunction(wrapper):
            _mark_coroutine(self)

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        return self._wrapper(*args, **kwargs)

    def __get__(self, obj: Any, owner: Optional[type] = None) -> Any:
        return self if obj is None else _BoundMethodMemo(self, obj)

    def __repr__(self) -> str:
        return f"<memoized method {self.__qualname__}>"


class _BoundMethodMemo:
    """A :class:`_MethodMemo` bound to an instance (helpers get the instance too)."""

    __slots__ = ("__func__", "__self__")

    def __init__(self, method: _MethodMemo, obj: Any) -> None:
        self.__func__ = method
        self.__self__ = obj

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        return self.__func__._wrapper(self.__self__, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.__func__, name)
        if name in _SELF_HELPERS:
            return functools.partial(attr, self.__self__)
        if name == "cache_set":
            return _bind_cache_set(attr, self.__self__)
        if name == "__wrapped__":
            return types.MethodType(attr, self.__self__)
        return attr

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, _BoundMethodMemo)
            and other.__func__ is self.__func__
            and other.__self__ is self.__self__
        )

    def __hash__(self) -> int:
        return hash((id(self.__func__), id(self.__self__)))

    def __repr__(self) -> str:
        return f"<bound memoized method {self.__func__.__qualname__} of {self.__self__!r}>"


def _mark_coroutine(obj: Any) -> None:
    """Make ``inspect.iscoroutinefunction`` (3.12+) and ``asyncio.iscoroutinefunction`` see an
    async memoized method as one."""
    mark = getattr(inspect, "markcoroutinefunction", None)
    if mark is not None:
        mark(obj)
    else:  # Python 3.10/3.11: asyncio's marker
        obj._is_coroutine = asyncio.coroutines._is_coroutine  # type: ignore[attr-defined]


def _refresher(memo: _Memo) -> Callable[..., Any]:
    func = memo.func
    if inspect.iscoroutinefunction(func):

        async def refresh(*args: Any, **kwargs: Any) -> Any:
            """Recompute and store the result for these arguments, ignoring the cache."""
            call = memo.must_call(args, kwargs)
            h = memo.hash_for(args, kwargs)
            result = await func(*args, **kwargs)
            memo.store(call, result, args, kwargs, h)
            return result

        return refresh

    def refresh_sync(*args: Any, **kwargs: Any) -> Any:
        """Recompute and store the result for these arguments, ignoring the cache."""
        call = memo.must_call(args, kwargs)
        h = memo.hash_for(args, kwargs)
        result = func(*args, **kwargs)
        if inspect.isgenerator(result) or inspect.isasyncgen(result):
            raise TypeError("refresh() is for plain and async functions; iterate the generator instead")
        memo.store(call, result, args, kwargs, h)
        return result

    return refresh_sync


def _sync_engine(memo: _Memo) -> Callable[..., Any]:
    func, cache = memo.func, memo.cache

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not _core.is_enabled():
            return func(*args, **kwargs)
        call = memo.call_for(args, kwargs)
        if call is None:
            return func(*args, **kwargs)
        v = memo.fetch(call)
        if v is not MISSING:
            memo.hits += 1
            return v
        memo.misses += 1
        return cache._flight.run(call.key, memo.compute, call, args, kwargs)

    return wrapper


def _featured_sync_engine(memo: _Memo) -> Callable[..., Any]:
    """The sync engine with a content hash and/or prefetching (InMemCache)."""
    func, cache = memo.func, memo.cache
    prefetch = memo.prefetch

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not _core.is_enabled():
            return func(*args, **kwargs)
        call = memo.call_for(args, kwargs)
        if call is None:
            return func(*args, **kwargs)
        h = memo.hash_for(args, kwargs)
        v = memo.fetch_hashed(call, h)
        if v is not MISSING:
            memo.hits += 1
            if prefetch:
                cache._accessed_memo(memo, call, args, kwargs)  # type: ignore[attr-defined]
            return v
        memo.misses += 1
        if not prefetch:
            return cache._flight.run(call.key, memo.compute, call, args, kwargs, h)
        try:
            return cache._flight.run(call.key, memo.compute, call, args, kwargs, h)
        finally:
            # after this miss is stored: prefetched results then enter the cache after it,
            # and a prefetch finishing alongside it cannot push it out (or be pushed out)
            cache._accessed_memo(memo, call, args, kwargs)  # type: ignore[attr-defined]

    return wrapper


def _async_engine(memo: _Memo) -> Callable[..., Any]:
    func, cache = memo.func, memo.cache
    flight = cache._aflight

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not _core.is_enabled():
            return await func(*args, **kwargs)
        call = memo.call_for(args, kwargs)
        if call is None:
            return await func(*args, **kwargs)
        h = memo.hash_for(args, kwargs)
        v = memo.fetch_hashed(call, h)
        if v is not MISSING:
            memo.hits += 1
            return v
        memo.misses += 1

        async def compute() -> Any:
            if h is None:
                v = memo.recheck(call)
                if v is not MISSING:
                    return v
            result = await func(*args, **kwargs)
            memo.store(call, result, args, kwargs, h)
            return result

        return await flight.run(call.key, compute)

    return wrapper


def _gen_engine(memo: _Memo) -> Callable[..., Any]:
    func = memo.func

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        call = memo.call_for(args, kwargs) if _core.is_enabled() else None
        if call is None:
            yield from func(*args, **kwargs)
            return
        h = memo.hash_for(args, kwargs)
        v = memo.fetch_hashed(call, h)
        if v is not MISSING:
            memo.hits += 1
            yield from v
            return
        memo.misses += 1
        items: List[Any] = []
        for item in func(*args, **kwargs):
            items.append(item)
            yield item
        memo.store(call, items, args, kwargs, h)  # reached only when the generator ran to its end

    return wrapper


def _async_gen_engine(memo: _Memo) -> Callable[..., Any]:
    func = memo.func

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        call = memo.call_for(args, kwargs) if _core.is_enabled() else None
        if call is None:
            async for item in func(*args, **kwargs):
                yield item
            return
        h = memo.hash_for(args, kwargs)
        v = memo.fetch_hashed(call, h)
        if v is not MISSING:
            memo.hits += 1
            for item in v:
                yield item
            return
        memo.misses += 1
        items: List[Any] = []
        async for item in func(*args, **kwargs):
            items.append(item)
            yield item
        memo.store(call, items, args, kwargs, h)

    return wrapper


# ---------------------------------------------------------------------- batch


def batch_memoize(cache: BaseCache, func: Any, **opts: Any) -> Any:
    """Build the batch-memoized wrapper of ``func`` (see ``BaseCache.batch_memoize``)."""
    func, descriptor = _unwrap_descriptor(func)
    if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
        raise ConfigError("batch_memoize does not support generator functions")
    memo = _Memo(cache, func, **opts)
    lead = 1 if memo.self_name is not None else 0  # a method's self comes before the batch

    def plan(args: tuple, kwargs: Dict[str, Any]) -> Optional[tuple[list, list, list, tuple]]:
        if len(args) <= lead:
            return None
        head, batch, rest = args[:lead], args[lead], args[lead + 1 :]
        items = list(batch)
        calls = memo.calls_for_items(head, items, rest, kwargs)
        if calls is None:
            return None
        values = memo._guard("lookup", lambda: cache._fetch_many(calls), [MISSING] * len(calls))
        missed = [i for i, v in enumerate(values) if v is MISSING]
        memo.hits += len(values) - len(missed)
        memo.misses += len(missed)
        if len({calls[i].key for i in missed}) == len(missed):
            return items, calls, values, (head, rest, missed, False)
        todo: List[int] = []  # a repeated item is computed once, at its first place
        seen = set()
        for i in missed:
            if calls[i].key not in seen:
                seen.add(calls[i].key)
                todo.append(i)
        return items, calls, values, (head, rest, todo, True)

    def finish(calls: list, values: list, todo: list, repeats: bool, outs: Any) -> list:
        outs = list(outs)
        if len(outs) != len(todo):
            raise ValueError(
                f"{memo.name} returned {len(outs)} results for {len(todo)} items; it must return one per item"
            )
        memo.store_many([calls[i] for i in todo], outs)
        if repeats:
            by_key = {calls[i].key: out for i, out in zip(todo, outs)}
            return [by_key[c.key] if v is MISSING else v for c, v in zip(calls, values)]
        results = list(values)
        for i, out in zip(todo, outs):
            results[i] = out
        return results

    if inspect.iscoroutinefunction(func):

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            p = plan(args, kwargs) if _core.is_enabled() else None
            if p is None:
                return await func(*args, **kwargs)
            items, calls, values, (head, rest, todo, repeats) = p
            if not todo:
                return values
            outs = await func(*head, [items[i] for i in todo], *rest, **kwargs)
            return finish(calls, values, todo, repeats, outs)

    else:

        def wrapper(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
            p = plan(args, kwargs) if _core.is_enabled() else None
            if p is None:
                return func(*args, **kwargs)
            items, calls, values, (head, rest, todo, repeats) = p
            if not todo:
                return values
            outs = func(*head, [items[i] for i in todo], *rest, **kwargs)
            return finish(calls, values, todo, repeats, outs)

    functools.update_wrapper(wrapper, func)
    _attach(wrapper, memo)
    return descriptor(wrapper) if descriptor is not None else wrapper
