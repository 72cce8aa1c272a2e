"""Type stubs for the native core, ``cachehaven._core`` (built from the Rust crate)."""

from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, Union

__version__: str
FORMAT_VERSION: int
MAX_DEPTH: int
POLICIES: tuple[str, ...]

class Key:
    """A canonical cache key: the exact bytes of (format version, function identity, inputs).

    Equality compares the full bytes; ``digest()`` gives the 128-bit integer key.
    """

    def __init__(self, data: bytes) -> None: ...
    @property
    def bytes(self) -> bytes:
        """The canonical bytes."""
    def digest(self, scheme: str = "blake3") -> int:
        """The 128-bit digest of the canonical bytes: ``"blake3"`` (default) or ``"md5"``."""
    def hexdigest(self, scheme: str = "blake3") -> str:
        """``digest(scheme)`` as 32 lowercase hex digits."""
    def __hash__(self) -> int: ...
    def __eq__(self, other: object) -> bool: ...
    def __len__(self) -> int: ...

class Binder:
    """The analysed signature of one memoized function (see ``cachehaven.keys.make_binder``)."""

    def __init__(
        self,
        func_name: str,
        params: Sequence[tuple[str, int, Any]],
        empty: Any,
        exclude: Sequence[str] = ...,
        self_index: Optional[int] = None,
        token_fn: Optional[Callable[[Any], bytes]] = None,
    ) -> None: ...
    @property
    def func_name(self) -> str:
        """The function identity calls are keyed under."""
    @property
    def self_name(self) -> Optional[str]:
        """The method's ``self``/``cls`` parameter name, or None."""
    def key(self, *args: Any, **kwargs: Any) -> Optional[Key]:
        """The key of ``f(*args, **kwargs)``, or None if the call does not bind."""
    def inputs(self, args: tuple[Any, ...], kwargs: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
        """The bound inputs (defaults applied, exclusions removed), or None."""
    def key_and_inputs(
        self, args: tuple[Any, ...], kwargs: Optional[dict[str, Any]]
    ) -> Optional[tuple[Key, dict[str, Any]]]:
        """Key and inputs from one binding, or None."""
    def key_and_inputs_many(
        self,
        head: tuple[Any, ...],
        items: list[Any],
        rest: tuple[Any, ...],
        kwargs: Optional[dict[str, Any]],
    ) -> Optional[list[tuple[Key, dict[str, Any]]]]:
        """``key_and_inputs((*head, [item], *rest), kwargs)`` of each item, or None if one
        call does not bind."""
    def self_key(self, obj: Any) -> RawKey:
        """The stand-in stored for a method's ``self``: its key bytes."""
    def keyed_inputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Bound inputs as entries store them: a method's ``self`` as its ``self_key`` (a
        new dict then; ``inputs`` itself when there is nothing to replace)."""

class RawKey:
    """Stands for an argument by its canonical bytes (a stored method's ``self``)."""

    def __init__(self, data: bytes, label: str) -> None: ...
    @property
    def bytes(self) -> bytes: ...
    @property
    def label(self) -> str: ...

class BoundMemoized:
    """A memoized method bound to its instance (helpers receive the instance too)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...
    def __getattr__(self, name: str) -> Any: ...

class KeyedValue:
    """A stored value together with its original (non-decodable) key object."""

_ContentHash = Union[str, bytes, int]

class Event:
    """One store event (from ``Store.events()`` or given to a subscriber)."""

    @property
    def kind(self) -> str:
        """One of HIT, MISS, WRITE, EVICT, EXPIRE, INVALIDATE, WARMUP, PREDICT."""
    @property
    def key(self) -> Any:
        """The entry's key object (a ``Key`` when its bytes cannot be decoded, as for call keys)."""
    @property
    def raw_key(self) -> Key:
        """The entry's canonical key as a ``Key``."""
    @property
    def time(self) -> float:
        """When it happened, in seconds since the epoch (``time.time()``'s clock)."""
    @property
    def value(self) -> Any:
        """The removed value for EVICT / EXPIRE / INVALIDATE events given to subscribers, else None."""

class Store:
    """A thread-safe in-memory key-value store with bounded size, TTL and recency + frequency
    eviction, implemented in Rust. Keys may be any canonicalizable value. Entries may depend
    on other keys and carry a content hash; the store can log events, call subscribers and
    learn which keys follow which."""

    def __init__(
        self,
        max_entries: Optional[int] = None,
        max_bytes: Optional[int] = None,
        ttl: Any = None,
        policy: str = "adaptive",
        weigher: Optional[Callable[[Any, Any], int]] = None,
        clock: Optional[Callable[[], float]] = None,
        events: int = 0,
        track_patterns: bool = False,
    ) -> None: ...
    def get(self, key: Any, default: Any = None, content_hash: Optional[_ContentHash] = None) -> Any:
        """The value for ``key``, or ``default``. With ``content_hash``, an entry stored with a
        different hash (or none) is removed (INVALIDATE) and the lookup is a miss."""
    def set(
        self,
        key: Any,
        value: Any,
        ttl: Any = None,
        *,
        depends_on: Optional[Iterable[Any]] = None,
        content_hash: Optional[_ContentHash] = None,
        warmup: bool = False,
    ) -> None:
        """Store ``value`` under ``key`` with an optional per-entry ``ttl``, dependencies,
        content hash, or as a prefetched (``warmup``) entry."""
    def invalidate(self, key: Any) -> int:
        """Remove ``key`` and every entry depending on it, transitively; returns how many."""
    def predict_next(self, key: Any, n: int = 3) -> list[Any]:
        """Up to ``n`` keys that most often followed ``key`` (needs ``track_patterns``)."""
    @property
    def track_patterns(self) -> bool:
        """Whether successor frequencies are learned (settable)."""
    @track_patterns.setter
    def track_patterns(self, on: bool) -> None: ...
    def events(self, n: Optional[int] = None) -> list[Event]:
        """The newest ``n`` logged events (all with None), oldest first."""
    def subscribe(self, kind: str, callback: Callable[[Event], Any]) -> None:
        """Call ``callback(event)`` for each event of ``kind``, after the operation finishes."""
    def unsubscribe(self, kind: str, callback: Callable[[Event], Any]) -> None:
        """Stop calling ``callback`` for ``kind`` (ValueError if it was not subscribed)."""
    def hot_entries(self, n: int = 10) -> list[tuple[Any, Any]]:
        """Up to ``n`` (key, value) pairs the eviction policy values most, most valuable first."""
    def pop(self, key: Any, *default: Any) -> Any:
        """Remove ``key`` and return its value (``default`` or KeyError if absent)."""
    def keys(self) -> list[Any]:
        """A snapshot of the keys."""
    def values(self) -> list[Any]:
        """A snapshot of the values."""
    def items(self) -> list[tuple[Any, Any]]:
        """A snapshot of the (key, value) pairs."""
    def clear(self) -> None:
        """Remove every entry."""
    def stats(self) -> dict[str, Any]:
        """Counters and sizes (hits, misses, hit_rate, evictions, expirations, invalidations,
        warmups, prediction_hits, prediction_accuracy, entries, bytes, ...)."""
    @property
    def max_entries(self) -> Optional[int]: ...
    @property
    def max_bytes(self) -> Optional[int]: ...
    @property
    def policy(self) -> str: ...
    def __getitem__(self, key: Any) -> Any: ...
    def __setitem__(self, key: Any, value: Any) -> None: ...
    def __delitem__(self, key: Any) -> None: ...
    def __contains__(self, key: Any) -> bool: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[Any]: ...
    def _check(self) -> None: ...
    def _get_raw(self, key: Key, content_hash: Optional[_ContentHash] = None) -> Any: ...
    def _peek_raw(self, key: Key) -> Any: ...
    def _set_raw(
        self,
        key: Key,
        record: Any,
        group: int = 0,
        ttl: Any = None,
        weigh_value: Any = None,
        *,
        depends_on: Optional[Iterable[Key]] = None,
        content_hash: Optional[_ContentHash] = None,
        warmup: bool = False,
    ) -> bool: ...
    def _put_memo(
        self,
        key: Key,
        result: Any,
        func: str,
        inputs: dict[str, Any],
        metadata: Optional[dict[str, Any]],
        group: int = 0,
        ttl: Any = None,
        *,
        depends_on: Optional[Iterable[Key]] = None,
        content_hash: Optional[_ContentHash] = None,
        warmup: bool = False,
    ) -> bool:
        """Store a memoized result as the record ``(result, func, inputs, result, ...,
        metadata)``."""
    def _remove_raw(self, key: Key) -> bool: ...
    def _invalidate_raw(self, key: Key) -> int: ...
    def _predict_raw(self, key: Key, n: int = 3) -> list[Key]: ...
    def _dump(
        self,
    ) -> list[tuple[Key, Any, int, Optional[float], Optional[_ContentHash], list[Key]]]:
        """Live entries, coldest first: (key, record, group, ttl_left, content_hash, parents)."""
    def _meta_raw(self, key: Key) -> Optional[tuple[Optional[_ContentHash], list[Key]]]: ...
    def _records(self) -> list[Any]: ...
    def _remove_group(self, group: int) -> int: ...
    def _group_len(self, group: int) -> int: ...
    def _hottest(self, n: int) -> list[Any]: ...

class Flight:
    """Single-flight for threads: one computation per key at a time."""

    def __init__(self) -> None: ...
    def run(self, key: Key, compute: Callable[..., Any], *args: Any) -> Any:
        """``compute(*args)``, at most once at a time per key; concurrent callers share its
        value or exception."""
    def try_run(self, key: Key, compute: Callable[[], Any]) -> bool:
        """Lead ``key``'s flight and return True, or return False at once if it is in flight."""
    def __len__(self) -> int: ...

class Memoized:
    """A memoized function whose cache hits run entirely in Rust."""

    def __init__(
        self,
        func: Callable[..., Any],
        binder: Binder,
        store: Store,
        miss: Callable[..., Any],
        flight: Flight,
        plan: Optional[tuple[str, int, Optional[float], Optional[Callable[[Any], bool]], Any]] = None,
    ) -> None: ...
    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...
    def __get__(self, obj: Any, owner: Any = None) -> Any: ...
    def _counts(self) -> tuple[int, int]: ...
    def _reset_counts(self) -> None: ...

def encode(value: Any) -> bytes:
    """The canonical bytes of one value."""

def decode(data: bytes) -> Any:
    """The value whose canonical bytes are ``data`` (value-carrying types only)."""

def record_encode(
    func: Any, inputs: Any, output: Any, expected: Any, metadata: Any, key: Any, expires_at: Any
) -> Optional[bytes]:
    """The JSON serializer's bytes of a version-1 record of plain data (``output`` and
    ``expected`` are ``...`` when unset), or None when it needs the Python encoder."""

def record_encode_results(
    funcs: list[Any],
    inputs: list[Any],
    outputs: list[Any],
    metadata: Any,
    keys: list[Key],
    expires_at: Any,
) -> list[Optional[bytes]]:
    """``record_encode`` of each result of a batch (parallel lists; ``expected`` unset), with
    None for each record that needs the Python encoder."""

_Fields = tuple[str, Optional[dict[str, Any]], Any, Any, Optional[dict[str, Any]], bytes, Optional[float]]

def record_decode(data: Any, full: bool = True) -> Optional[_Fields]:
    """``(func, inputs, output, expected, metadata, key, expires_at)`` of a stored version-1
    record of plain data (``inputs`` and ``metadata`` are None unless ``full``), or None when
    the payload needs the Python reader."""

def record_value(data: Any, key: bytes, now: float) -> Any:
    """The value (``expected`` if set, else ``output``) of a stored version-1 record of plain
    data if it was stored under the canonical key bytes ``key`` and does not expire by ``now``,
    else ``...``; ``NotImplemented`` when the payload needs the Python reader."""

def call_key(func: str, inputs: dict[str, Any], exclude: Optional[list[str]] = None) -> Key:
    """The canonical key of calling ``func`` with ``inputs``."""

def fresh_copy(value: Any, max_bytes: Optional[int] = None) -> Any:
    """A copy of plain data whose dicts, lists and sets are all new (the rest is immutable
    and shared). With ``max_bytes`` the value is checked first: TypeError for anything but
    exact builtin scalars, tuple, list, dict, set and frozenset; ValueError for a dict, list
    or set met twice, nesting deeper than ``MAX_DEPTH``, or an estimated size over
    ``max_bytes``. Without it, ``value`` must be one that passed the check."""

def keep_forever(obj: Any) -> None:
    """Hold a reference to ``obj`` until the process exits (not even released when the
    interpreter shuts down)."""

def strip_inputs(inputs: dict[str, Any], exclude: list[str]) -> dict[str, Any]:
    """A copy of ``inputs`` without the excluded names / dotted paths."""

def md5_int(data: bytes) -> int:
    """md5 of ``data`` as a 128-bit int."""

def blake3_int(data: bytes) -> int:
    """The first 128 bits of blake3(``data``) as an int."""

def estimate_size(value: Any) -> int:
    """A rough deep size of ``value`` in bytes (the default weigher)."""

def set_enabled(flag: bool) -> bool:
    """Turn caching on or off process-wide; returns the previous setting."""

def is_enabled() -> bool:
    """Whether caching is on."""
