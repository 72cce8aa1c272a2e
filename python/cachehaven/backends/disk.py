"""``DiskCache``: entries in a ``diskcache`` directory (SQLite index plus files for big values).

Each entry is stored as the bytes of its serialized record
(:func:`cachehaven.serialize.dump_record`: the entry, its canonical key bytes and its expiry
time) under the 32-hex-character key digest, or under AgentHeaven 0.9.2's integer key with
``key_scheme="ahvn"``. ``diskcache`` stores bytes as they are, so a hit is one SQLite lookup
plus one record decode plus a comparison of key bytes.

``diskcache`` itself unpickles any value or key it finds stored in its pickle mode: anyone
who can write to the directory could then run code in every process that reads it. This
backend's :class:`SafeDisk` refuses pickled values (a miss plus a warning) and reads pickled
keys without allowing any class or function, unless the cache was opened with
``trust_pickle=True``.
"""

from __future__ import annotations

import binascii
import io
import json
import json.scanner
import logging
import os
import pickle
import re
import sqlite3
import threading
import time
from typing import Any, Iterable, Iterator, List, Optional, Sequence, Tuple

import diskcache
from diskcache.core import DBNAME, MODE_PICKLE, MODE_RAW

from .._ahvn import decode_record
from ..base import BaseCache, Call
from ..entry import MISSING, CacheEntry
from ..errors import BackendError, ConfigError, SerializationError
from ..memoize import check_ttl
from ..serialize import JsonSerializer, Record, dump_record, from_jsonable, load_record, resolve_serializer
from ._near import DEFAULT_NEAR_ENTRIES, NearCache, check_capacity
from ._walindex import HEADER, header_ok, wal_index_view
from .json import directory_path, key_matches, warn_unreadable

__all__ = ["DiskCache", "SafeDisk"]

logger = logging.getLogger("cachehaven")

_REFUSED: Any = object()  # a pickled value or key that SafeDisk would not unpickle
_ABSENT: Any = object()

#: Errors from diskcache and SQLite that mean the storage failed.
_STORAGE_ERRORS = (OSError, sqlite3.Error, diskcache.Timeout)

#: ``diskcache.Cache`` options a DiskCache accepts through ``**diskcache_options``.
DISKCACHE_OPTIONS = frozenset(set(diskcache.DEFAULT_SETTINGS) - {"size_limit"} | {"timeout"})


class _NoGlobalsUnpickler(pickle.Unpickler):
    """Unpickles plain data only: any class or function reference is refused, so loading
    cannot run code. Used for the keys of an AgentHeaven directory (pickled big ints)."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refused to load {module}.{name} from a cache key")


class SafeDisk(diskcache.Disk):
    """A ``diskcache.Disk`` that never unpickles a stored value unless ``trust_pickle`` is
    set on it: a pickled value reads as a refusal marker (DiskCache turns it into a miss
    plus a warning); a pickled key is loaded with no classes or functions allowed."""

    #: Set by DiskCache after construction (kept out of diskcache's persisted settings).
    trust_pickle: bool = False

    def fetch(self, mode: int, filename: Optional[str], value: Any, read: bool) -> Any:
        """The stored value, or the refusal marker for a pickled one (not trusted)."""
        if mode == MODE_PICKLE and not self.trust_pickle:
            return _REFUSED
        return super().fetch(mode, filename, value, read)

    def get(self, key: Any, raw: bool) -> Any:
        """The stored key; a pickled key is loaded as plain data only (not trusted)."""
        if raw or self.trust_pickle:
            return super().get(key, raw)
        try:
            loaded = _NoGlobalsUnpickler(io.BytesIO(bytes(key))).load()
        except Exception:
            return _REFUSED
        return loaded if type(loaded) in (int, str, bytes) else _REFUSED


# ---------------------------------------------------------------- the hit path

#: What diskcache.Cache.get's own fast path selects (for a str key, stored raw), minus the
#: columns a hit does not need.
#: SQLite's count of commits made by *other* connections (any process) to the database.
_DATA_VERSION = "PRAGMA data_version"
_SELECT_RAW = (
    "SELECT mode, value FROM Cache WHERE key = ? AND raw = 1 AND (expire_time IS NULL OR expire_time > ?)"
)


_fork_generation = 0  # bumped in a forked child: connections cached before the fork are stale


def _forked() -> None:
    global _fork_generation
    _fork_generation += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forked)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_SCAN = json.scanner.make_scanner(json.JSONDecoder(parse_constant=_reject_constant))  # type: ignore[arg-type]
_SLOW: Any = object()  # not in the layout _fast_record reads: load_record decides
#: The start of a version-1 record as ``dump_record(..., JsonSerializer())`` writes it.
_HEAD = '{"cachehaven":1,"func":'
_NO_EXPIRY = b'","expires_at":null}'
_EXPIRY = b',"expires_at":'
_NUMBER = re.compile(rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")


def _fast_record(data: bytes, key: bytes) -> Any:
    """``(value, expires_at)`` of a stored JSON record for the call whose canonical key bytes
    are ``key``, decoding the value only (no CacheEntry, no inputs or metadata).

    Reads the exact layout ``dump_record(record, JsonSerializer())`` writes for record
    version 1: ``{"cachehaven":1,"func":..,"inputs":..,"output":..?,"expected":..?,
    "metadata":..,"key":"<base64>","expires_at":..}``, compact. The value is ``expected``
    if set, else ``output``. Returns ``_SLOW`` for anything else (another layout or version,
    another key, malformed JSON), which :func:`cachehaven.serialize.load_record` then
    decides. The fields before the value are parsed in order from the start, never searched
    for. Raises SerializationError if the value's type tags are malformed.
    """
    b64 = binascii.b2a_base64(key, newline=False)
    if data.endswith(b',"key":"' + b64 + _NO_EXPIRY):
        expires_at = None
    else:  # an expiry time, or another key (a digest collision), or another layout
        j = data.rfind(_EXPIRY)
        if j < 0 or data[-1:] != b"}" or not _NUMBER.fullmatch(data, j + 14, len(data) - 1):
            return _SLOW
        expires_at = float(data[j + 14 : -1])
        if not data.startswith(b',"key":"' + b64 + b'"', j - len(b64) - 9):
            return _SLOW
    try:
        text = data.decode("utf-8")
        if not text.startswith(_HEAD):
            return _SLOW
        func, i = _SCAN(text, 23)
        if type(func) is not str or not text.startswith(',"inputs":', i):
            return _SLOW
        _, i = _SCAN(text, i + 10)
        if text.startswith(',"output":', i):
            a = i + 10
            value, i = _SCAN(text, a)
            if not text.startswith(',"metadata":', i):
                if not text.startswith(',"expected":', i):
                    return _SLOW
                a = i + 12
                value, i = _SCAN(text, a)
                if not text.startswith(',"metadata":', i):
                    return _SLOW
        elif text.startswith(',"expected":', i):
            a = i + 12
            value, i = _SCAN(text, a)
            if not text.startswith(',"metadata":', i):
                return _SLOW
        else:
            return _SLOW
    except (UnicodeDecodeError, StopIteration, ValueError, RecursionError):
        return _SLOW
    if '"__ch__"' in text or "\\u" in text:
        part = text[a:i]  # the value's own JSON text
        if '"__ch__"' in part or "\\u" in part:
            value = from_jsonable(value)  # tagged types (tuple, set, bytes, ...), or \u escapes
    return value, expires_at


def _reason(e: BaseException) -> str:
    if isinstance(e, diskcache.Timeout):
        return "the database is locked or cannot be written (diskcache.Timeout)"
    return f"{type(e).__name__}: {e}"


class DiskCache(BaseCache):
    """A persistent cache in a local directory, on the ``diskcache`` library (SQLite).

    ``DiskCache(path, size_limit=None, exclude=None, *, ttl=None, key_scheme="blake3",
    serializer=None, secret=None, trust_pickle=False, near_cache=1024, **diskcache_options)``

    * ``path``: the directory (created if missing). Several processes may open it at once.
    * ``size_limit``: bytes; beyond it diskcache evicts the oldest-stored entries.
      ``None`` (default) keeps the limit stored in an existing directory (an AgentHeaven
      directory keeps its 32e9), and gives a new directory diskcache's default of 2**30
      (1 GiB). AgentHeaven's own default was 32e9: pass ``size_limit=int(32e9)`` for it.
    * ``ttl``: default time-to-live (seconds or timedelta); ``memoize(ttl=...)`` and
      ``set(..., ttl=...)`` override it. Expiry uses wall-clock time, so it holds across
      processes.
    * ``serializer``: ``None``/``"json"`` (safe, data only; the default), ``"pickle"`` or a
      :class:`cachehaven.serialize.Serializer`; pickle payloads are HMAC-signed with
      ``secret`` (or ``$CACHEHAVEN_PICKLE_SECRET``) and unsigned ones are refused.
    * ``trust_pickle``: allow diskcache to unpickle values stored in its own pickle mode.
      Off by default: such a value (never written by cachehaven) is a miss plus a
      ``RuntimeWarning``, never unpickled, since unpickling runs code chosen by whoever
      wrote the directory.
    * ``near_cache``: how many decoded values each thread keeps in memory (0: none). A hit on
      one is served only if nothing was committed to the directory, by any connection of any
      process, since it was read: it costs a read of SQLite's WAL-index header in shared
      memory (see :mod:`cachehaven.backends._walindex`), or one ``PRAGMA data_version``
      when that header cannot be trusted, instead of a row read and a decode; this
      object's own writes clear it. It is used when diskcache does not track reads (no
      ``statistics``, an eviction policy that does not update on ``get``: the default one).
    * ``key_scheme="ahvn"``: AgentHeaven 0.9.2's layout (its integer keys). AgentHeaven stored
      its entries as pickled dicts, so reading a directory AgentHeaven wrote needs
      ``DiskCache(path, key_scheme="ahvn", trust_pickle=True)``; only do that for a
      directory no one else can write to.
    * ``**diskcache_options``: passed to ``diskcache.Cache`` (``eviction_policy``,
      ``cull_limit``, ``statistics``, ``sqlite_*``, ``disk_min_file_size``, ``timeout``...);
      an unknown option raises ``ConfigError``.

    Values the serializer cannot represent raise ``SerializationError`` at ``set`` time,
    before anything is written. A corrupt, tampered or refused record is a miss plus one
    ``RuntimeWarning``. Storage failures (I/O, SQLite) raise ``BackendError``. Thread- and
    process-safe (SQLite transactions).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        size_limit: Optional[int] = None,
        exclude: Optional[Iterable[str]] = None,
        *,
        ttl: Any = None,
        key_scheme: str = "blake3",
        serializer: Any = None,
        secret: Optional[bytes | str] = None,
        trust_pickle: bool = False,
        near_cache: int = DEFAULT_NEAR_ENTRIES,
        **diskcache_options: Any,
    ) -> None:
        super().__init__(exclude, key_scheme=key_scheme)
        unknown = sorted(set(diskcache_options) - DISKCACHE_OPTIONS)
        if unknown:
            hint = " (DiskCache always uses its own SafeDisk)" if "disk" in unknown else ""
            raise ConfigError(
                f"unknown diskcache option {unknown[0]!r}{hint}; "
                f"known: {', '.join(sorted(DISKCACHE_OPTIONS))}"
            )
        policy = diskcache_options.get("eviction_policy")
        if policy is not None and policy not in diskcache.EVICTION_POLICY:
            raise ConfigError(
                f"eviction_policy must be one of {', '.join(map(repr, diskcache.EVICTION_POLICY))}; "
                f"got {policy!r}"
            )
        if size_limit is not None and (
            not isinstance(size_limit, int) or isinstance(size_limit, bool) or size_limit <= 0
        ):
            raise ConfigError(f"size_limit must be a positive number of bytes or None, not {size_limit!r}")
        if not isinstance(trust_pickle, bool):
            raise ConfigError(f"trust_pickle must be True or False, not {trust_pickle!r}")
        self._path = directory_path(path)
        self._serializer = resolve_serializer(serializer, secret=secret)
        self._ttl = check_ttl(ttl)
        self._ahvn = self.key_scheme == "ahvn"
        options = dict(diskcache_options)
        if size_limit is not None:
            options["size_limit"] = size_limit
        try:
            self._cache = diskcache.Cache(self._path, disk=SafeDisk, **options)
        except _STORAGE_ERRORS as e:
            raise BackendError(f"DiskCache: cannot open {self._path!r}: {_reason(e)}") from e
        # an attribute, not a Disk setting: diskcache would persist a setting in the directory
        self._cache.disk.trust_pickle = trust_pickle
        # Hits read the row with the same SELECT as diskcache.Cache.get's own fast path (used
        # when diskcache updates nothing on a read: no statistics, an eviction policy that
        # does not track reads), skipping its per-call overhead; otherwise through Cache.get.
        self._direct = (
            not self._cache.statistics
            and diskcache.EVICTION_POLICY[self._cache.eviction_policy]["get"] is None
            and hasattr(type(self._cache), "_con")
        )
        self._fast_json = type(self._serializer) is JsonSerializer
        self._near_capacity = check_capacity(near_cache) if self._direct else 0
        # this thread's diskcache connection and near cache, see _thread_state
        self._local = threading.local()

    @property
    def path(self) -> str:
        """The cache directory (absolute)."""
        return self._path

    @property
    def size_limit(self) -> int:
        """The size limit in bytes in effect for the directory."""
        return int(self._cache.size_limit)

    @property
    def trust_pickle(self) -> bool:
        """Whether diskcache may unpickle values stored in its pickle mode (see the class doc)."""
        return bool(self._cache.disk.trust_pickle)

    @property
    def serializer(self) -> Any:
        """The serializer records are stored with."""
        return self._serializer

    # ------------------------------------------------------------------ records
    def _storage_key(self, call: Call) -> Any:
        if self._ahvn:
            return call.digest
        return f"{call.key.digest(self.key_scheme):032x}"

    def _failed(self, op: str, e: BaseException) -> BackendError:
        return BackendError(f"DiskCache at {self._path!r}: {op} failed: {_reason(e)}")

    def _decode(self, skey: Any, data: Any) -> Optional[Tuple[CacheEntry, Optional[bytes], Optional[float]]]:
        """``(entry, key bytes or None, expires_at)`` of a stored value, or None (after a
        warning) if it cannot be read."""
        if type(data) is bytes:
            try:
                record = load_record(data, self._serializer)
            except Exception as e:
                warn_unreadable("DiskCache", str(skey), _reason(e))
                return None
            return record.entry, record.key, record.expires_at
        if data is _REFUSED:
            warn_unreadable(
                "DiskCache",
                str(skey),
                "a pickled value, not unpickled: open the cache with trust_pickle=True only if "
                "you trust everyone who can write to the directory",
            )
            return None
        if self._ahvn and isinstance(data, dict):
            try:
                return decode_record(data, tagged=False), None, None
            except Exception as e:
                warn_unreadable("DiskCache", str(skey), _reason(e))
                return None
        warn_unreadable("DiskCache", str(skey), f"an unexpected stored {type(data).__name__}")
        return None

    def _lookup(self, call: Call) -> Optional[CacheEntry]:
        skey = self._storage_key(call)
        try:
            data = self._cache.get(skey, _ABSENT)
        except _STORAGE_ERRORS as e:
            raise self._failed("get", e) from e
        if data is _ABSENT:
            return None
        decoded = self._decode(skey, data)
        if decoded is None:
            return None
        entry, key, expires_at = decoded
        if not key_matches(call, entry, key):
            return None
        if expires_at is not None and expires_at <= time.time():
            return None  # diskcache deletes it with its own expiry
        return entry

    def _encode(self, call: Call, entry: CacheEntry, ttl: Any) -> Tuple[bytes, Optional[float]]:
        """The stored bytes and the TTL in seconds (raises SerializationError; writes nothing)."""
        secs = check_ttl(ttl)
        if secs is None:
            secs = self._ttl
        expires_at = None if secs is None else time.time() + secs
        data = dump_record(Record(entry, call.key.bytes, expires_at), self._serializer)
        if type(data) is not bytes:
            raise SerializationError(f"the {self._serializer.name} serializer returned {type(data).__name__}")
        return data, secs

    def _thread_state(self) -> Tuple[sqlite3.Connection, int, Optional[NearCache], List[Any], Any]:
        """This thread's hit-path state: diskcache's SQLite connection, the fork generation
        it belongs to (diskcache checks the process id on every access instead; a forked
        child bumps the generation, so it opens its own connection), this thread's near
        cache, the stamp that near cache was read under (a one-item list), and a view of the
        database's WAL-index header that gives that stamp while the connection stays open
        (None: the stamp is ``PRAGMA data_version``; see :mod:`._walindex`)."""
        state = self._local.__dict__.get("con")
        if state is None or state[1] != _fork_generation:
            con = self._cache._con
            near = shm = None
            if self._near_capacity:
                near = NearCache(self._near_capacity)
                shm = wal_index_view(con, os.path.join(self._cache.directory, DBNAME))
            state = self._local.con = (con, _fork_generation, near, [None], shm)
        return state

    def _forget_near(self) -> None:
        """After a write on this thread's connection (which does not change the data version
        that connection reads), drop this thread's near cache."""
        state = self._local.__dict__.get("con")
        if state is not None and state[2] is not None:
            state[2].clear()

    # ------------------------------------------------------------------ storage protocol
    def _fetch(self, call: Call) -> Optional[CacheEntry]:
        return self._lookup(call)

    def _fetch_value(self, call: Call) -> Any:
        # The hit path: a near-cache hit (validated, keyed by the exact canonical key), or
        # one SQLite SELECT and the value decoded from the record (key bytes and expiry
        # checked on the way), nothing else.
        if self._ahvn:
            entry = self._lookup(call)
            return MISSING if entry is None else entry.value
        key = call.key
        now = time.time()
        near = None
        try:
            if self._direct:
                con, _, near, version, shm = self._thread_state()
                if near is not None:
                    # The stamp of the committed state: the WAL-index header while its two
                    # copies agree and it is one _walindex understands (checked when it
                    # changes), else SQLite's data_version. Stamps of the two kinds never
                    # compare equal, so switching between them empties the near cache.
                    if shm is not None:
                        seen = shm[0:HEADER]
                        if seen != shm[HEADER : 2 * HEADER] or (seen != version[0] and not header_ok(seen)):
                            (seen,) = con.execute(_DATA_VERSION).fetchone()
                    else:
                        (seen,) = con.execute(_DATA_VERSION).fetchone()
                    if seen != version[0]:
                        near.clear()
                        version[0] = seen
                    value = near.get(key, seen, None, now)
                    if value is not MISSING:
                        return value
                skey = "%032x" % key.digest(self.key_scheme)  # noqa: UP031 (twice as fast as an f-string)
                row = con.execute(_SELECT_RAW, (skey, now)).fetchone()
                if row is None:
                    return MISSING
                mode, data = row
                if mode != MODE_RAW:  # a value in a file, or a pickle: diskcache's own way
                    data = self._cache.get(skey, _ABSENT)
            else:
                skey = "%032x" % key.digest(self.key_scheme)  # noqa: UP031
                data = self._cache.get(skey, _ABSENT)
        except _STORAGE_ERRORS as e:
            self._local.__dict__.pop("con", None)  # take the connection from diskcache again
            raise self._failed("get", e) from e
        if type(data) is bytes:
            try:
                found = _fast_record(data, key.bytes) if self._fast_json else _SLOW
                if found is _SLOW:
                    record = load_record(data, self._serializer)
                    if record.key != key.bytes:
                        return MISSING
                    found = record.entry.value, record.expires_at
            except Exception as e:
                warn_unreadable("DiskCache", skey, _reason(e))
                return MISSING
            value, expires_at = found
            if expires_at is not None and now >= expires_at:
                return MISSING
            if near is not None:
                near.put(key, version[0], None, expires_at, value)
            return value
        if data is _ABSENT:
            return MISSING
        decoded = self._decode(skey, data)
        if decoded is None or not key_matches(call, decoded[0], decoded[1]):
            return MISSING
        return decoded[0].value

    def _fetch_many(self, calls: Sequence[Call]) -> List[Any]:
        return [self._fetch_value(c) for c in calls]

    def _put(self, call: Call, entry: CacheEntry, ttl: Any = None) -> None:
        data, secs = self._encode(call, entry, ttl)
        try:
            self._cache.set(self._storage_key(call), data, expire=secs)
        except _STORAGE_ERRORS as e:
            raise self._failed("set", e) from e
        finally:
            self._forget_near()

    def _put_many(self, items: Sequence[Tuple[Call, CacheEntry]], ttl: Any = None) -> None:
        # encode every entry first: an unserializable value fails the batch before any write
        encoded = [(self._storage_key(call), *self._encode(call, entry, ttl)) for call, entry in items]
        if not encoded:
            return
        try:
            with self._cache.transact():
                for skey, data, secs in encoded:
                    self._cache.set(skey, data, expire=secs)
        except _STORAGE_ERRORS as e:
            raise self._failed("set_many", e) from e
        finally:
            self._forget_near()

    def _delete(self, call: Call) -> bool:
        skey = self._storage_key(call)
        try:
            with self._cache.transact():
                data = self._cache.get(skey, _ABSENT)
                if data is _ABSENT:
                    return False
                decoded = self._decode(skey, data)
                if decoded is None or not key_matches(call, decoded[0], decoded[1]):
                    return False
                expires_at = decoded[2]
                self._cache.delete(skey)
                return expires_at is None or expires_at > time.time()
        except _STORAGE_ERRORS as e:
            raise self._failed("delete", e) from e
        finally:
            self._forget_near()

    def _scan(self) -> Iterator[Tuple[Any, CacheEntry]]:
        """``(storage key, entry)`` of every live, readable entry; unreadable ones are
        skipped with a warning."""
        try:
            keys = list(self._cache.iterkeys())
        except _STORAGE_ERRORS as e:
            raise self._failed("iteration", e) from e
        for skey in keys:
            if skey is _REFUSED:
                warn_unreadable("DiskCache", "<pickled key>", "a key that is not plain data")
                continue
            try:
                data = self._cache.get(skey, _ABSENT)
            except _STORAGE_ERRORS as e:
                raise self._failed("get", e) from e
            if data is _ABSENT:
                continue  # expired or deleted meanwhile
            decoded = self._decode(skey, data)
            if decoded is None:
                continue
            entry, _, expires_at = decoded
            if expires_at is not None and expires_at <= time.time():
                continue
            yield skey, entry

    def _entries(self) -> Iterator[CacheEntry]:
        for _, entry in self._scan():
            yield entry

    def _wipe(self) -> None:
        try:
            self._cache.clear()
        except _STORAGE_ERRORS as e:
            raise self._failed("clear", e) from e
        finally:
            self._forget_near()

    def _size(self) -> int:
        try:
            self._cache.expire()
            return len(self._cache)
        except _STORAGE_ERRORS as e:
            raise self._failed("len", e) from e

    def _func_size(self, func: str) -> int:
        return sum(1 for _, entry in self._scan() if entry.func == func)

    def _func_clear(self, func: str) -> int:
        doomed = [skey for skey, entry in self._scan() if entry.func == func]
        removed = 0
        try:
            with self._cache.transact():
                for skey in doomed:
                    removed += bool(self._cache.delete(skey))
        except _STORAGE_ERRORS as e:
            raise self._failed("cache_clear", e) from e
        finally:
            self._forget_near()
        return removed

    def close(self) -> None:
        """Close this thread's SQLite connection (the cache reopens it if used again)."""
        self._local.__dict__.pop("con", None)
        try:
            self._cache.close()
        except _STORAGE_ERRORS as e:
            raise self._failed("close", e) from e

    def __repr__(self) -> str:
        trust = ", trust_pickle=True" if self.trust_pickle else ""
        return f"DiskCache(path={self._path!r}, key_scheme={self.key_scheme!r}{trust})"
