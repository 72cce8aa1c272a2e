"""``InMemCache``: the in-memory backend, on the Rust store (``cachehaven._core.Store``).

Each entry is stored as one tuple ``(value, func, inputs, output, expected, metadata)``
under its canonical key bytes; item 0 is what a hit returns, so the native memoize wrapper
can answer a hit without running Python. Entries are grouped by function identity so that
``cache_info().currsize`` is O(1) and ``cache_clear()`` removes one function's entries.

On top of the store's own features (dependencies, content hashes, pattern learning, the
event ring and its subscribers), this module adds what needs Python: resolving dependency
specs to keys, turning the store's events into :class:`CacheEvent` objects, snapshots
(:mod:`cachehaven.snapshot`), and predictive warm-up: after an access, the keys the store
predicts next that are missing are recomputed on a :class:`~cachehaven.warmup.WarmupPool`,
from what a bounded map remembers about each key (a memoized call's arguments, or a manual
call's function and inputs).
"""

from __future__ import annotations

import functools
import threading
import types
import weakref
from typing import (
    Any,
    Callable,
    Dict,
    Generic,
    Iterable,
    Iterator,
    List,
    Mapping,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    Union,
    overload,
)

from .. import _core
from ..base import BaseCache, Call, FuncLike
from ..entry import MISSING, CacheEntry
from ..errors import ConfigError
from ..snapshot import SnapshotEntry, read_snapshot, write_snapshot
from ..warmup import BoundedMap, WarmupPool

__all__ = ["EVENT_KINDS", "CacheEvent", "InMemCache", "tag_key"]

#: The kinds of events the store reports (``events()``, ``subscribe()``).
EVENT_KINDS = ("HIT", "MISS", "WRITE", "EVICT", "EXPIRE", "INVALIDATE", "WARMUP", "PREDICT")

#: Tag keys start with this byte string; call keys start with their format version (>= 1),
#: so a tag never shares bytes with a call.
_TAG_PREFIX = b"\x00tag\x00"
#: The default bound of the map from keys to how to recompute them, without ``max_entries``.
_LOADERS_UNBOUNDED = 65_536

_MEMO = 0  # loader kinds: a memoized call's arguments ...
_MANUAL = 1  # ... or a manual call's function identity and inputs


def _entry(record: tuple) -> CacheEntry:
    # the inputs dict stays the record's own: a caller changing the entry's inputs must not
    # change what is stored (and the store relies on it, see _core's memo_record)
    _, func, inputs, output, expected, metadata = record
    return CacheEntry(func, dict(inputs), output, expected, metadata)


def tag_key(tag: Any) -> _core.Key:
    """The key a plain dependency tag (``depends_on=["config"]``) stands for. Tags are
    keyed like any argument (``"config"``, ``("user", 7)``, ...) and never equal a call's key."""
    return _core.Key(_TAG_PREFIX + _core.encode(tag))


def _describe(key: bytes) -> Optional[Tuple[str, Dict[str, Any]]]:
    """``(func, inputs)`` decoded from a call key's canonical bytes, or None (a tag, or
    inputs with types that are keyed but cannot be decoded, such as a method's ``self``)."""
    if key[:1] != b"\x01":
        return None
    try:
        # a call key is version, STR(func), DICT(inputs): decode those two as a 2-tuple
        func, inputs = _core.decode(b"\x08\x02" + key[1:])
    except Exception:
        return None
    return func, inputs


class CacheEvent(NamedTuple):
    """One store event, as ``InMemCache.events()`` and its subscribers see it.

    ``kind`` is one of :data:`EVENT_KINDS`; ``time`` is wall-clock unix seconds; ``func``
    and ``inputs`` name the call (None when they cannot be decoded from the key, e.g. a
    method keyed by instance identity); ``entry`` is the removed :class:`CacheEntry` for
    EVICT, EXPIRE and INVALIDATE events given to subscribers, else None.
    """

    kind: str
    time: float
    func: Optional[str]
    inputs: Optional[Dict[str, Any]]
    entry: Optional[CacheEntry]

    @property
    def value(self) -> Any:
        """The removed entry's value (EVICT, EXPIRE, INVALIDATE to subscribers), else None."""
        return None if self.entry is None else self.entry.value


def _key_bytes(key: Any) -> Optional[bytes]:
    if isinstance(key, _core.Key):
        return key.bytes
    if isinstance(key, (bytes, bytearray)):
        return bytes(key)
    return None


def _to_event(ev: Any) -> CacheEvent:
    value = getattr(ev, "value", None)
    entry = _entry(value) if isinstance(value, tuple) and len(value) == 6 else None
    if entry is not None:
        func: Optional[str] = entry.func
        inputs: Optional[Dict[str, Any]] = entry.inputs
    else:
        raw = _key_bytes(getattr(ev, "raw_key", ev.key))
        described = None if raw is None else _describe(raw)
        func, inputs = described if described is not None else (None, None)
    return CacheEvent(ev.kind, ev.time, func, inputs, entry)


C = TypeVar("C", bound="InMemCache")


class _LoadMethod(Generic[C]):
    """``InMemCache.load``: on the class, a new cache loaded from a snapshot; on an instance,
    load a snapshot into that cache."""

    @overload
    def __get__(self, obj: None, owner: type[C]) -> Callable[..., C]: ...

    @overload
    def __get__(self, obj: C, owner: Optional[type] = None) -> Callable[..., int]: ...

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        # bound methods (of the class, or of the instance) keep each form's docstring
        return types.MethodType(_load_new if obj is None else _load_into, owner if obj is None else obj)


def _load_new(cls: type[C], path: Any, /, **options: Any) -> C:
    """``InMemCache.load(path, **options)``: a new cache (built with ``options``) holding the
    snapshot's entries. Raises a SnapshotError subclass if the file is not a complete, valid
    snapshot."""
    cache = cls(**options)
    try:
        cache.load(path)
    except BaseException:
        cache.close()
        raise
    return cache


def _load_into(self: InMemCache, path: Any, /) -> int:
    """``cache.load(path)``: add the snapshot's entries to this cache (replacing entries with
    the same keys); returns how many were stored. All or nothing: a file that is not a
    complete, valid snapshot raises a SnapshotError subclass and leaves the cache as it was."""
    return self._load_snapshot(path)


class InMemCache(BaseCache):
    """The fastest backend: entries live in this process's memory, in a Rust store.

    ``InMemCache(exclude=None, *, max_entries=None, max_bytes=None, ttl=None,
    policy="adaptive", weigher=None, clock=None, key_scheme="blake3", events=0,
    track_patterns=None, warmer=None, prefetch_workers=2, prefetch_queue=256,
    prefetch_depth=1, on_evict=None, on_expire=None, on_invalidate=None)``

    * ``max_entries``: at most this many entries (``None``: unbounded; ``0``: store nothing);
      beyond it the eviction policy removes the entry least likely to be used again.
    * ``max_bytes``: bound on the total weight of entries; a value is weighed by
      ``weigher(value)`` or by a deep size estimate. A single value heavier than the whole
      budget is not stored (its call still returns normally).
    * ``ttl``: default time-to-live (seconds or timedelta); ``memoize(ttl=...)`` and
      ``set(..., ttl=...)`` override it per entry. Expiry uses a monotonic clock (or
      ``clock()``, a zero-argument callable returning seconds, for tests).
    * ``policy``: one of ``cachehaven.POLICIES`` (``"adaptive"``, the default, combines
      recency and frequency).
    * ``events``: keep the last ``events`` store events for :meth:`events` (0: none).
    * ``track_patterns``: learn which keys follow which, for :meth:`predict_next` and
      prefetching. ``None`` (default): on once a ``warmer`` or a ``prefetch=True`` function
      needs it.
    * ``warmer``: ``warmer(func: str, inputs: dict) -> value``, the loader of predicted keys
      of the manual API (``cache.get("f", x=1)``); return ``...`` to store nothing.
      Memoized functions with ``prefetch=True`` are their own loader.
    * ``prefetch_workers``, ``prefetch_queue``: the background pool's threads and queue
      bound (a prefetch that finds the queue full is dropped, never waited for);
      ``prefetch_depth``: how many predicted steps ahead to prefetch from each access.
    * ``on_evict``, ``on_expire``, ``on_invalidate``: ``callback(event: CacheEvent)`` for
      each entry removed that way (see :meth:`subscribe`).

    Thread-safe. Memoized hits of plain functions run entirely in Rust. ``close()`` (or the
    ``with`` block, or interpreter exit) stops the prefetch workers; the cache itself keeps
    working, without prefetching.
    """

    _FEATURES = frozenset({"depends_on", "content_hash", "prefetch"})

    load = _LoadMethod["InMemCache"]()

    def __init__(
        self,
        exclude: Optional[Iterable[str]] = None,
        *,
        max_entries: Optional[int] = None,
        max_bytes: Optional[int] = None,
        ttl: Any = None,
        policy: str = "adaptive",
        weigher: Optional[Callable[[Any], int]] = None,
        clock: Optional[Callable[[], float]] = None,
        key_scheme: str = "blake3",
        events: int = 0,
        track_patterns: Optional[bool] = None,
        warmer: Optional[Callable[[str, Dict[str, Any]], Any]] = None,
        prefetch_workers: int = 2,
        prefetch_queue: int = 256,
        prefetch_depth: int = 1,
        on_evict: Optional[Callable[[CacheEvent], Any]] = None,
        on_expire: Optional[Callable[[CacheEvent], Any]] = None,
        on_invalidate: Optional[Callable[[CacheEvent], Any]] = None,
    ) -> None:
        super().__init__(exclude, key_scheme=key_scheme)
        if weigher is not None and not callable(weigher):
            raise TypeError("weigher must be callable: weigher(value) -> int bytes")
        if warmer is not None and not callable(warmer):
            raise ConfigError("warmer must be callable: warmer(func: str, inputs: dict) -> value")
        if track_patterns is not None and not isinstance(track_patterns, bool):
            raise ConfigError(f"track_patterns must be True, False or None, not {track_patterns!r}")
        if warmer is not None and track_patterns is False:
            raise ConfigError("a warmer needs track_patterns (it loads the keys the patterns predict)")
        for name, n in (("prefetch_workers", prefetch_workers), ("prefetch_queue", prefetch_queue)):
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise ConfigError(f"{name} must be an int >= 1, not {n!r}")
        if not isinstance(prefetch_depth, int) or isinstance(prefetch_depth, bool) or prefetch_depth < 1:
            raise ConfigError(f"prefetch_depth must be an int >= 1, not {prefetch_depth!r}")
        self._weigher = weigher
        store_weigher = None if weigher is None else (lambda _key, value: weigher(value))
        self._store = _core.Store(
            max_entries=max_entries,
            max_bytes=max_bytes,
            ttl=ttl,
            policy=policy,
            weigher=store_weigher,
            clock=clock,
            events=events,
            track_patterns=bool(track_patterns) or warmer is not None,
        )
        self._groups: Dict[str, int] = {}
        self._groups_lock = threading.Lock()
        self._patterns_auto = track_patterns is None
        self._warmer = warmer
        self._prefetch_workers = prefetch_workers
        self._prefetch_queue = prefetch_queue
        self._prefetch_depth = prefetch_depth
        self._pool: Optional[WarmupPool] = None
        self._pool_lock = threading.Lock()
        self._closed = False
        bound = self._store.max_entries
        self._loaders = BoundedMap(_LOADERS_UNBOUNDED if bound is None else max(4 * bound, 1024))
        self._subscriptions: Dict[Tuple[str, Any], Callable[[Any], None]] = {}
        self._sub_lock = threading.Lock()
        for kind, hook in (("EVICT", on_evict), ("EXPIRE", on_expire), ("INVALIDATE", on_invalidate)):
            if hook is not None:
                self.subscribe(kind, hook)

    @property
    def maxsize(self) -> Optional[int]:  # type: ignore[override]
        """``max_entries`` (what ``cache_info().maxsize`` reports)."""
        return self._store.max_entries

    @property
    def store(self) -> _core.Store:
        """The underlying Rust store."""
        return self._store

    def _group(self, func: str) -> int:
        group = self._groups.get(func)
        if group is None:
            with self._groups_lock:
                group = self._groups.setdefault(func, len(self._groups) + 1)
        return group

    # ------------------------------------------------------------------ storage protocol
    def _fetch(self, call: Call) -> Optional[CacheEntry]:
        record = self._store._get_raw(call.key)
        return None if record is None else _entry(record)

    def _fetch_value(self, call: Call) -> Any:
        record = self._store._get_raw(call.key)
        return MISSING if record is None else record[0]

    def _fetch_value_hashed(self, call: Call, content_hash: Any) -> Any:
        record = self._store._get_raw(call.key, content_hash)
        return MISSING if record is None else record[0]

    def _recheck(self, call: Call) -> Any:
        record = self._store._peek_raw(call.key)
        return MISSING if record is None else record[0]

    def _put(
        self,
        call: Call,
        entry: CacheEntry,
        ttl: Any = None,
        *,
        depends_on: Optional[List[_core.Key]] = None,
        content_hash: Any = None,
        warmup: bool = False,
    ) -> None:
        record = (entry.value, entry.func, entry.inputs, entry.output, entry.expected, entry.metadata)
        self._write(call, record, ttl, depends_on, content_hash, warmup)

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
        group = self._group(call.func)
        store = self._store
        # no metadata is stored as None (read back as {}), as the native miss path stores it
        if depends_on is None and content_hash is None and not warmup:
            store._put_memo(call.key, result, call.func, call.inputs, metadata or None, group, ttl)
        else:
            store._put_memo(
                call.key,
                result,
                call.func,
                call.inputs,
                metadata or None,
                group,
                ttl,
                depends_on=depends_on,
                content_hash=content_hash,
                warmup=warmup,
            )

    def _put_results(
        self,
        pairs: Sequence[Tuple[Call, Any]],
        metadata: Callable[[], Dict[str, Any]],
        ttl: Any = None,
    ) -> None:
        """A batch's results, each stored as a memoized miss is (:meth:`_put_result`: no
        CacheEntry per item)."""
        put = self._put_result
        for call, result in pairs:
            put(call, result, metadata(), ttl)

    def _write(
        self,
        call: Call,
        record: tuple,
        ttl: Any,
        depends_on: Optional[List[_core.Key]],
        content_hash: Any,
        warmup: bool,
    ) -> None:
        """Store one record (item 0 is the value); without extras the store is called
        without keywords, which is what nearly every write is and cheaper to parse."""
        group = self._group(record[1])
        if depends_on is None and content_hash is None and not warmup:
            self._store._set_raw(call.key, record, group, ttl, record[0])
        else:
            self._store._set_raw(
                call.key,
                record,
                group,
                ttl,
                record[0],
                depends_on=depends_on,
                content_hash=content_hash,
                warmup=warmup,
            )

    def _delete(self, call: Call) -> bool:
        return self._store._remove_raw(call.key)

    def _entries(self) -> Iterator[CacheEntry]:
        for record in self._store._records():
            yield _entry(record)

    def _wipe(self) -> None:
        self._store.clear()

    def _size(self) -> int:
        return len(self._store)

    def _func_size(self, func: str) -> int:
        group = self._groups.get(func)
        return 0 if group is None else self._store._group_len(group)

    def _func_clear(self, func: str) -> int:
        group = self._groups.get(func)
        return 0 if group is None else self._store._remove_group(group)

    def _native_engine(self, memo: Any) -> Any:
        plan = None
        cls = type(self)
        if cls._put_result is InMemCache._put_result and cls._recheck is InMemCache._recheck:
            # the wrapper stores misses itself (a subclass that changes how may not want it)
            plan = memo.native_plan(self._group(memo.name))
        native = _core.Memoized(memo.func, memo.binder, self._store, memo.native_miss, self._flight, plan)
        memo.native = native
        return native

    # ------------------------------------------------------------------ dependencies
    def _dep_key(self, spec: Any, where: str) -> _core.Key:
        if isinstance(spec, CacheEntry):
            return self._entry_call(spec).key
        if (
            type(spec) is tuple
            and len(spec) == 2
            and (isinstance(spec[0], str) or callable(spec[0]))
            and isinstance(spec[1], Mapping)
        ):
            return self._call(spec[0], spec[1], {}).key
        try:
            return tag_key(spec)
        except TypeError as e:
            raise type(e)(f"{where}: {e}") from None

    def _dep_keys(self, specs: Any, where: str = "depends_on") -> List[_core.Key]:
        """The keys of dependency specs: ``(func, inputs)`` pairs name calls (as
        ``cache.get(func, inputs)`` does), ``CacheEntry`` objects name their call, and any
        other keyable value is a tag."""
        if specs is None:
            return []
        if isinstance(specs, (str, bytes)) or not isinstance(specs, Iterable):
            raise TypeError(
                f"{where} must be a list of dependency specs ((func, inputs) pairs, CacheEntry "
                f"objects or tags), not {type(specs).__name__}"
            )
        return [self._dep_key(spec, where) for spec in specs]

    def set(
        self,
        func: Union[FuncLike, CacheEntry],
        output: Any = ...,
        expected: Any = ...,
        metadata: Optional[Dict[str, Any]] = None,
        *,
        ttl: Any = None,
        depends_on: Optional[Iterable[Any]] = None,
        content_hash: Union[str, bytes, int, None] = None,
        **kwargs: Any,
    ) -> None:
        """Store a value: ``cache.set(entry)`` or ``cache.set("f", output=25, x=5)``.

        * ``ttl``: seconds or a timedelta (default: the cache's ``ttl``).
        * ``depends_on``: what this entry depends on: ``(func, inputs)`` pairs and
          ``CacheEntry`` objects (other calls), or tags (any keyable value, e.g.
          ``"config"``). Invalidating any of them removes this entry too.
        * ``content_hash``: a ``str``, ``bytes`` or ``int`` stored with the entry; a
          ``get(..., content_hash=h)`` with another hash drops the entry.

        ``ttl``, ``depends_on`` and ``content_hash`` are options here: to store inputs with
        those names, pass a ``CacheEntry``.
        """
        call, entry = self._set_args(func, output, expected, metadata, kwargs)
        _check_hash(content_hash)
        deps = None if depends_on is None else self._dep_keys(depends_on)
        self._put(call, entry, ttl, depends_on=deps, content_hash=content_hash)
        if self._warmer is not None:
            self._loaders.put(call.key, (_MANUAL, call.func, call.inputs))

    def get(
        self,
        func: FuncLike,
        inputs: Optional[Mapping[str, Any]] = None,
        /,
        *,
        content_hash: Union[str, bytes, int, None] = None,
        **kwargs: Any,
    ) -> Any:
        """The cached value of ``func`` on these inputs, or ``...`` on a miss.

        ``cache.get("f", {"x": 5})`` and ``cache.get("f", x=5)`` are the same lookup. With
        ``content_hash``, an entry stored with a different hash (or none) is removed and
        the lookup is a miss. (To look up an input named ``content_hash``, pass the inputs
        as a dict.)
        """
        call = self._call(func, inputs, kwargs)
        if content_hash is None:
            value = self._fetch_value(call)
        else:
            _check_hash(content_hash)
            value = self._fetch_value_hashed(call, content_hash)
        if self._warmer is not None:
            self._accessed(call.key, (_MANUAL, call.func, call.inputs))
        return value

    def invalidate(
        self, func: Union[FuncLike, CacheEntry], inputs: Optional[Mapping[str, Any]] = None, /, **kwargs: Any
    ) -> int:
        """Remove an entry and, transitively, every entry that depends on it (cycles are
        fine); returns how many entries were removed. ``cache.invalidate("f", x=1)``,
        ``cache.invalidate("f", {"x": 1})`` or ``cache.invalidate(entry)``; the entry itself
        need not be stored for its dependents to go."""
        return self._store._invalidate_raw(self._call(func, inputs, kwargs).key)

    def invalidate_tag(self, tag: Any) -> int:
        """Remove every entry that depends on ``tag`` (``depends_on=[tag]``), transitively;
        returns how many entries were removed."""
        return self._store._invalidate_raw(tag_key(tag))

    # ------------------------------------------------------------------ events
    def events(self, n: Optional[int] = None) -> List[CacheEvent]:
        """The last ``n`` (default: all kept) events, oldest first. Needs ``events=`` > 0 at
        construction; otherwise there are none."""
        return [_to_event(ev) for ev in self._store.events(n)]

    def subscribe(self, kind: str, callback: Callable[[CacheEvent], Any]) -> None:
        """Call ``callback(event)`` for every event of ``kind`` (see :data:`EVENT_KINDS`).

        Callbacks run after the store has released its lock, in the thread that caused the
        event. An exception in a callback is reported through ``sys.unraisablehook`` and
        never breaks the cache operation. Works with ``events=0``.
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        kind_name = _check_kind(kind)

        def relay(ev: Any) -> None:
            callback(_to_event(ev))

        with self._sub_lock:
            if (kind_name, callback) in self._subscriptions:
                return
            self._store.subscribe(kind_name, relay)
            self._subscriptions[(kind_name, callback)] = relay

    def unsubscribe(self, kind: str, callback: Callable[[CacheEvent], Any]) -> None:
        """Stop calling ``callback`` for ``kind``; ValueError if it was not subscribed."""
        kind_name = _check_kind(kind)
        with self._sub_lock:
            relay = self._subscriptions.pop((kind_name, callback), None)
            if relay is None:
                raise ValueError(f"{callback!r} is not subscribed to {kind_name}")
            self._store.unsubscribe(kind_name, relay)

    # ------------------------------------------------------------------ patterns and warm-up
    @property
    def track_patterns(self) -> bool:
        """Whether the store learns access patterns (settable)."""
        return bool(self._store.track_patterns)

    @track_patterns.setter
    def track_patterns(self, on: bool) -> None:
        if not isinstance(on, bool):
            raise ConfigError(f"track_patterns must be True or False, not {on!r}")
        self._store.track_patterns = on
        self._patterns_auto = False

    def _enable_prefetch(self) -> None:
        """Called when a ``prefetch=True`` function is decorated on this cache."""
        if not self._store.track_patterns:
            if not self._patterns_auto:
                raise ConfigError(
                    "memoize(prefetch=True) needs pattern learning, but this cache has track_patterns=False"
                )
            self._store.track_patterns = True

    def predict_next(
        self,
        func: Union[FuncLike, CacheEntry],
        inputs: Optional[Mapping[str, Any]] = None,
        n: int = 3,
        /,
        **kwargs: Any,
    ) -> List[Tuple[str, Dict[str, Any]]]:
        """The calls that most often followed this one, most frequent first, as
        ``(func, inputs)`` pairs: up to ``n`` (positional, so that an input named ``n`` can
        be given as a keyword: ``predict_next("page", n=1)``; ``predict_next("page",
        {"n": 1}, 5)`` asks for five). Needs ``track_patterns``. Calls whose inputs cannot
        be recovered (a method keyed by instance identity) are left out."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError(f"n must be an int >= 0, not {n!r}")
        key = self._call(func, inputs, kwargs).key
        out = []
        for k in self._store._predict_raw(key, n):
            described = self._what_is(k)
            if described is not None:
                out.append(described)
        return out

    def _what_is(self, key: _core.Key) -> Optional[Tuple[str, Dict[str, Any]]]:
        record = self._store._peek_raw(key)
        if record is not None:
            return record[1], dict(record[2])
        loader = self._loaders.get(key)
        if loader is not None and loader[0] == _MANUAL:
            return loader[1], loader[2]
        if loader is not None:
            _, memo_ref, self_ref, args, kwargs = loader
            memo = memo_ref()
            obj = None if self_ref is None else self_ref()
            if memo is not None and (self_ref is None or obj is not None):
                call = memo.call_for(args if self_ref is None else (obj, *args), kwargs)
                if call is not None:
                    return call.func, call.inputs
        return _describe(key.bytes)

    def _accessed_memo(self, memo: Any, call: Call, args: tuple, kwargs: Dict[str, Any]) -> None:
        """A ``prefetch=True`` function was called: remember how to recompute this call,
        then prefetch what is predicted to follow."""
        loader: Optional[tuple] = (_MEMO, weakref.ref(memo), None, args, kwargs)
        if memo.self_name is not None and args:
            try:
                # a weak reference: never keep a method's instance alive
                loader = (_MEMO, weakref.ref(memo), weakref.ref(args[0]), args[1:], kwargs)
            except TypeError:
                loader = None  # an instance without weak references cannot be prefetched
        self._accessed(call.key, loader)

    def _accessed(self, key: _core.Key, loader: Optional[tuple]) -> None:
        if loader is not None:
            self._loaders.put(key, loader)
        if self._closed or not _core.is_enabled():
            return
        store = self._store
        frontier = [key]
        seen = {key}
        for _ in range(self._prefetch_depth):
            ahead = []
            for k in frontier:
                for p in store._predict_raw(k, 1):
                    if p in seen:
                        continue
                    seen.add(p)
                    ahead.append(p)
                    if store._peek_raw(p) is None:
                        self._submit(p)
            frontier = ahead
            if not frontier:
                break

    def _submit(self, key: _core.Key) -> None:
        loader = self._loaders.get(key)
        if loader is None:
            return
        if loader[0] == _MANUAL and self._warmer is None:
            return
        pool = self._pool
        if pool is None:
            pool = self._start_pool()
            if pool is None:
                return
        pool.submit(key, functools.partial(self._warm, key, loader))

    def _start_pool(self) -> Optional[WarmupPool]:
        with self._pool_lock:
            if self._closed:
                return None
            if self._pool is None:
                pool = WarmupPool(self._prefetch_workers, self._prefetch_queue, name="cachehaven-prefetch")
                # a cache dropped without close() still stops its threads
                weakref.finalize(self, pool.close, 0)
                self._pool = pool
            return self._pool

    def _warm(self, key: _core.Key, loader: tuple) -> None:
        """A prefetch task (on a worker thread): recompute ``key`` unless it is stored."""
        if self._store._peek_raw(key) is not None:
            return
        if loader[0] == _MEMO:
            _, memo_ref, self_ref, args, kwargs = loader
            memo = memo_ref()
            if memo is None:
                return
            if self_ref is not None:
                obj = self_ref()
                if obj is None:
                    return
                args = (obj, *args)
            memo.warm(key, args, kwargs)
            return
        _, func, inputs = loader
        warmer = self._warmer
        if warmer is None or not _core.is_enabled():
            return
        call = Call(key, func, inputs, func, self.key_scheme)

        def compute() -> Any:
            v = self._recheck(call)
            if v is not MISSING:
                return v
            value = warmer(func, dict(inputs))
            if value is not MISSING:
                self._put(call, call.entry(value), warmup=True)
            return value

        self._flight.try_run(key, compute)

    def wait_idle(self, timeout: Optional[float] = None) -> bool:
        """Wait until no prefetch is queued or running; True if so, False on timeout."""
        pool = self._pool
        return True if pool is None else pool.wait_idle(timeout)

    def close(self, timeout: Optional[float] = None) -> None:
        """Stop the prefetch workers: queued prefetches are dropped, running ones finish
        (waiting up to ``timeout`` seconds per thread). Idempotent. The cache keeps working
        afterwards, without prefetching."""
        with self._pool_lock:
            self._closed = True
            pool = self._pool
        if pool is not None:
            pool.close(timeout)

    # ------------------------------------------------------------------ extras
    def stats(self) -> Dict[str, Any]:
        """The store's counters and sizes (hits, misses, hit_rate, evictions, expirations,
        invalidations, warmups, prediction_hits, prediction_accuracy, entries, bytes, ...),
        plus the prefetch pool's (``prefetch_submitted``, ``prefetch_dropped``, ...)."""
        st = dict(self._store.stats())
        pool = self._pool
        counts = (
            pool.stats()
            if pool is not None
            else dict.fromkeys(
                ("submitted", "dropped", "duplicates", "completed", "failed", "queued", "running"), 0
            )
        )
        st.update({f"prefetch_{k}": v for k, v in counts.items()})
        return st

    def hot_entries(self, n: int = 10) -> list[CacheEntry]:
        """Up to ``n`` entries the eviction policy values most (most valuable first)."""
        return [_entry(r) for r in self._store._hottest(n)]

    # ------------------------------------------------------------------ snapshots
    def save(self, path: Any, *, strict: bool = True) -> int:
        """Write every live entry (value, TTL left, content hash, dependencies) to a
        snapshot file at ``path``, atomically; returns how many entries were written.

        Values go through the safe JSON serializer. With ``strict`` (default), a value it
        cannot represent raises ``SerializationError`` and the file is not touched; with
        ``strict=False`` such entries are skipped. See :mod:`cachehaven.snapshot`.
        """
        entries = (  # the store lists its entries coldest first, as the file wants them
            SnapshotEntry(key.bytes, _entry(record), ttl, content_hash, [p.bytes for p in parents])
            for key, record, _group, ttl, content_hash, parents in self._store._dump()
        )
        written, _ = write_snapshot(path, entries, strict=strict)
        return written

    def _load_snapshot(self, path: Any) -> int:
        _, items = read_snapshot(path)
        bound = self._store.max_entries
        if bound is not None and len(items) > bound:
            items = items[len(items) - bound :]  # the file lists the coldest first
        if self._weigher is not None:
            for item in items:  # a weigher that fails, fails before anything is stored
                self._weigher(item.entry.value)
        learning = self._store.track_patterns
        if learning:
            self._store.track_patterns = False  # loading order is not an access pattern
        try:
            for item in items:
                e = item.entry
                record = (e.value, e.func, e.inputs, e.output, e.expected, e.metadata)
                self._store._set_raw(
                    _core.Key(item.key),
                    record,
                    self._group(e.func),
                    item.ttl,
                    e.value,
                    depends_on=[_core.Key(d) for d in item.depends_on] or None,
                    content_hash=item.content_hash,
                )
        finally:
            if learning:
                self._store.track_patterns = True
        return len(items)

    def __repr__(self) -> str:
        return f"InMemCache({self._store!r})"


def _check_kind(kind: Any) -> str:
    if not isinstance(kind, str) or kind.upper() not in EVENT_KINDS:
        raise ValueError(f"kind must be one of {', '.join(EVENT_KINDS)}; got {kind!r}")
    return kind.upper()


def _check_hash(content_hash: Any) -> None:
    if content_hash is not None and type(content_hash) not in (str, bytes, int):
        raise TypeError(f"content_hash must be a str, bytes or int, not {type(content_hash).__name__}")
