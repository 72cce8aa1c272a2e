"""``RedisCache``: a cache shared by every process that can reach one Redis server.

Each entry is one Redis string at ``<namespace>:<digest>`` (the call's 128-bit digest under the
cache's ``key_scheme``, as 32 lowercase hex digits). The value is the stored record of
:mod:`cachehaven.serialize` (the entry, the call's canonical key bytes and the expiry time),
so a digest collision is a miss, never a wrong value.

* Expiry is the server's: ``SET ... PX``. The record's ``expires_at`` is checked on read as a
  guard against an entry outliving its TTL (e.g. a key whose TTL was removed by hand).
* Bulk lookups are one ``MGET``. Bulk stores are one ``MSET``, or with a TTL one pipeline of
  ``SET ... PX`` commands: one round trip either way. ``batch_memoize`` uses both.
* ``clear()``, iteration and ``len()`` walk only this cache's namespace with ``SCAN MATCH``
  (never ``KEYS`` or ``FLUSHDB``); the pattern matches exactly ``<namespace>:`` plus 32 hex
  digits, so namespaces ``"a"`` and ``"a:b"`` never see each other's entries. Keys are read
  with ``MGET`` and removed with ``UNLINK``, in batches.
* Per-function counts and clears (``cache_info().currsize``, ``cache_clear()``) scan the
  namespace and decode each record: there is no per-function index, so writes stay one
  command and TTL expiry never leaves an index stale. Their cost grows with the namespace.
* A dropped connection or a restarted server is retried (exponential backoff) and pooled
  connections are health-checked, so the same cache object works again once the server is
  back. Failures raise :class:`~cachehaven.errors.BackendError` naming the operation; the URL's
  password never appears in an error or in ``repr``.
"""

from __future__ import annotations

import logging
import math
import time
import urllib.parse
import warnings
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple, cast

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as _RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.retry import Retry

from ..base import BaseCache, Call
from ..entry import MISSING, CacheEntry
from ..errors import BackendError, ConfigError, SerializationError
from ..memoize import check_ttl
from ..serialize import (
    Record,
    Serializer,
    encode_record,
    encode_results,
    load_record,
    load_value,
    resolve_serializer,
)

try:  # redis-py packs commands with hiredis when it is installed; so does _bulk
    import hiredis
except ImportError:  # pragma: no cover - exercised only without hiredis installed
    hiredis = None

__all__ = ["RedisCache"]

logger = logging.getLogger("cachehaven")

#: Keys per SCAN step, per MGET while iterating, and per UNLINK while clearing.
_SCAN_COUNT = 1000
#: Whether _bulk may run commands on pooled connections itself: hiredis packs them, and the
#: pool hands out connections without a command name (redis-py 5.3 and later).
_RAW_BULK = hiredis is not None and tuple(
    int(p) for p in redis.__version__.split(".")[:2] if p.isdigit()
) >= (5, 3)
_GLOB_SPECIAL = frozenset("*?[]\\")


def _glob_escape(text: str) -> str:
    """``text`` as a literal in a Redis glob pattern (``SCAN MATCH``)."""
    return "".join("\\" + ch if ch in _GLOB_SPECIAL else ch for ch in text)


def _safe_url(url: str) -> str:
    """The URL with its password (in the user-info part or a ``password=`` query option)
    replaced by ``***``. A user-info part with no ``:`` is hidden whole, as some clients read
    ``redis://secret@host`` as a password."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        netloc = f"{user}:***@{hostport}" if colon else f"***@{hostport}"
    pairs = parts.query.split("&") if parts.query else []
    query = "&".join("password=***" if kv.partition("=")[0].lower() == "password" else kv for kv in pairs)
    if netloc == parts.netloc and query == parts.query and not parts.fragment:
        return url  # nothing to hide (and ``unix:///path`` keeps its form)
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _url_secrets(url: str) -> List[str]:
    """Every form in which the URL's password (or a lone user-info part) could show up."""
    found: List[str] = []
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return [url]
    if "@" in parts.netloc:
        userinfo = parts.netloc.rpartition("@")[0]
        user, colon, password = userinfo.partition(":")
        raw = password if colon else user
        found += [raw, urllib.parse.unquote(raw)]
    for kv in parts.query.split("&"):
        name, _, value = kv.partition("=")
        if name.lower() == "password":
            found += [value, urllib.parse.unquote(value)]
    return [s for s in found if s]


class RedisCache(BaseCache):
    """A shared cache on a Redis server (redis-py, with its connection pool).

    ``RedisCache(url="redis://127.0.0.1:6379/0", exclude=None, *, namespace="cachehaven",
    ttl=None, key_scheme="blake3", serializer=None, secret=None, client=None,
    socket_timeout=5.0, **redis_options)``

    * ``url``: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` (TLS) or
      ``unix://``; ignored when ``client`` is given.
    * ``namespace``: the key prefix (``<namespace>:<digest>``); caches with different
      namespaces share a server without seeing each other. A non-empty str without whitespace.
    * ``ttl``: default time-to-live (seconds or timedelta) for entries stored without one;
      expiry is done by the server.
    * ``serializer``: ``"json"`` (default: safe, data only), ``"pickle"`` (HMAC-signed with
      ``secret`` or ``$CACHEHAVEN_PICKLE_SECRET``) or a :class:`~cachehaven.serialize.Serializer`.
    * ``client``: an existing ``redis.Redis`` to use instead of opening one (it must not set
      ``decode_responses``); ``close()`` leaves it open.
    * ``socket_timeout``: seconds for connecting and for each reply (default 5).
    * ``redis_options``: passed to ``redis.Redis.from_url`` (e.g. ``max_connections``,
      ``health_check_interval``, ``retry``, ``ssl_ca_certs``).

    Thread-safe: every operation borrows a connection from the pool.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        exclude: Optional[Iterable[str]] = None,
        *,
        namespace: str = "cachehaven",
        ttl: Any = None,
        key_scheme: str = "blake3",
        serializer: Any = None,
        secret: Any = None,
        client: Optional[Any] = None,
        socket_timeout: Optional[float] = 5.0,
        **redis_options: Any,
    ) -> None:
        super().__init__(exclude, key_scheme=key_scheme)
        if not isinstance(namespace, str) or not namespace or any(ch.isspace() for ch in namespace):
            raise ConfigError(f"namespace must be a non-empty str without whitespace, not {namespace!r}")
        if socket_timeout is not None and (
            isinstance(socket_timeout, bool)
            or not isinstance(socket_timeout, (int, float))
            or not socket_timeout > 0
        ):
            raise ConfigError(
                f"socket_timeout must be a positive number of seconds or None, not {socket_timeout!r}"
            )
        self.namespace = namespace
        self.ttl: Optional[float] = check_ttl(ttl)
        self._serializer: Serializer = resolve_serializer(serializer, secret=secret)
        self._prefix = namespace.encode() + b":"
        self._pattern = _glob_escape(namespace) + ":" + "[0-9a-f]" * 32
        self._secrets: List[str] = []
        if client is not None:
            if redis_options or url != "redis://127.0.0.1:6379/0":
                raise ConfigError("pass either client= or url=/redis options, not both")
            if not isinstance(client, redis.Redis):
                raise ConfigError(f"client must be a redis.Redis, not {type(client).__name__}")
            kwargs = client.connection_pool.connection_kwargs
            if kwargs.get("decode_responses"):
                raise ConfigError("client must not set decode_responses=True: records are bytes")
            self._client = client
            self._owns_client = False
            self._url = self._describe_client(kwargs)
            self._add_secret(kwargs.get("password"))
        else:
            if not isinstance(url, str) or not url:
                raise ConfigError(f"url must be a redis:// URL string, not {type(url).__name__}")
            if redis_options.get("decode_responses"):
                raise ConfigError("decode_responses must not be set: records are bytes")
            self._url = _safe_url(url)
            self._secrets += _url_secrets(url)
            self._add_secret(redis_options.get("password"))
            options: Dict[str, Any] = {
                "socket_timeout": socket_timeout,
                "socket_connect_timeout": socket_timeout,
                "health_check_interval": 30,
                # a restarted server or a dropped connection: reconnect and try again
                "retry": Retry(ExponentialBackoff(cap=0.5, base=0.02), 2, (_RedisConnectionError,)),
            }
            options.update(redis_options)
            try:
                self._client = redis.Redis.from_url(url, **options)
            except (ValueError, TypeError) as e:
                raise ConfigError(
                    f"invalid Redis url or option for RedisCache: {self._scrub(str(e))}"
                ) from None
            self._owns_client = True

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _describe_client(kwargs: Dict[str, Any]) -> str:
        if kwargs.get("path"):
            return f"unix://{kwargs['path']}?db={kwargs.get('db', 0)}"
        return f"redis://{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"

    def _add_secret(self, secret: Any) -> None:
        if isinstance(secret, str) and secret:
            self._secrets.append(secret)

    def _scrub(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def _error(self, op: str, e: BaseException) -> BackendError:
        return BackendError(
            f"RedisCache {op} failed on {self._url} (namespace {self.namespace!r}): "
            f"{type(e).__name__}: {self._scrub(str(e))}"
        )

    def _storage_key(self, call: Call) -> bytes:
        return self._prefix + call.hexdigest.encode("ascii")

    def _ttl_of(self, ttl: Any) -> Optional[float]:
        return self.ttl if ttl is None else check_ttl(ttl)

    def _encode(self, call: Call, entry: CacheEntry, ttl: Optional[float]) -> bytes:
        expires_at = None if ttl is None else time.time() + ttl
        return encode_record(entry, call.key.bytes, expires_at, self._serializer)

    def _decode(self, skey: bytes, data: Any, *, quiet: bool = False) -> Optional[Record]:
        """The record stored at ``skey``, or None (with a warning unless ``quiet``) when it
        cannot be read."""
        try:
            if not isinstance(data, bytes):
                raise SerializationError(f"expected bytes, got {type(data).__name__}")
            record = load_record(data, self._serializer)
        except Exception as e:  # a corrupt, truncated, tampered or foreign value
            if not quiet:
                self._warn_unreadable(skey, e)
            return None
        if record.expires_at is not None and record.expires_at <= time.time():
            return None
        return record

    def _value(self, skey: bytes, data: Any, key: bytes) -> Any:
        """The value of the record stored at ``skey`` if it is the call's (canonical key bytes
        ``key``) and unexpired, else MISSING (with a warning if it cannot be read)."""
        try:
            if not isinstance(data, bytes):
                raise SerializationError(f"expected bytes, got {type(data).__name__}")
            value, stored_key, expires_at = load_value(data, self._serializer)
        except Exception as e:  # a corrupt, truncated, tampered or foreign value
            self._warn_unreadable(skey, e)
            return MISSING
        if stored_key != key or (expires_at is not None and expires_at <= time.time()):
            return MISSING
        return value

    def _warn_unreadable(self, skey: bytes, e: BaseException) -> None:
        where = skey.decode("utf-8", "replace")
        message = (
            f"RedisCache: unreadable record at key {where!r} on {self._url} "
            f"({type(e).__name__}: {self._scrub(str(e))}); treated as a miss"
        )
        logger.warning("%s", message)
        warnings.warn(message, RuntimeWarning, stacklevel=4)

    def _scan(self, op: str, *, unique: bool = True) -> Iterator[List[bytes]]:
        """This namespace's keys, in batches, by ``SCAN MATCH`` (each key once if ``unique``)."""
        seen: Set[bytes] = set()
        cursor = 0
        while True:
            try:
                cursor, found = self._client.scan(cursor, match=self._pattern, count=_SCAN_COUNT)
            except RedisError as e:
                raise self._error(op, e) from e
            keys = cast(List[bytes], found)
            if unique:
                keys = [k for k in keys if k not in seen]
                seen.update(keys)
            if keys:
                yield keys
            if cursor == 0:
                return

    def _records(self, op: str) -> Iterator[Tuple[bytes, Record]]:
        """Every readable, unexpired record of this namespace with its storage key; keys
        that vanished between SCAN and MGET are skipped."""
        for keys in self._scan(op):
            try:
                values = self._client.mget(keys)
            except RedisError as e:
                raise self._error(op, e) from e
            for skey, data in zip(keys, values):
                if data is None:
                    continue
                record = self._decode(skey, data)
                if record is not None:
                    yield skey, record

    def _unlink(self, op: str, keys: Sequence[bytes]) -> int:
        try:
            return int(self._client.unlink(*keys)) if keys else 0
        except RedisError as e:
            raise self._error(op, e) from e

    def _read(self, skey: bytes) -> Optional[bytes]:
        """The bytes at ``skey``, or None (also, with a warning, for a non-string there)."""
        try:
            return self._client.get(skey)  # type: ignore[no-any-return]
        except ResponseError as e:
            if str(e).startswith("WRONGTYPE"):  # something other than a string sits at our key
                self._warn_unreadable(skey, e)
                return None
            raise self._error("get", e) from e
        except RedisError as e:
            raise self._error("get", e) from e

    def _lookup(self, call: Call) -> Optional[Record]:
        skey = self._storage_key(call)
        data = self._read(skey)
        if data is None:
            return None
        record = self._decode(skey, data)
        if record is None or record.key != call.key.bytes:
            return None
        return record

    # ------------------------------------------------------------------ storage protocol
    def _fetch(self, call: Call) -> Optional[CacheEntry]:
        record = self._lookup(call)
        return None if record is None else record.entry

    def _fetch_value(self, call: Call) -> Any:
        skey = self._storage_key(call)
        data = self._read(skey)
        return MISSING if data is None else self._value(skey, data, call.key.bytes)

    def _bulk(self, *args: Any) -> Any:
        """``execute_command(*args)`` for a batch's MGET or MSET: the command packed by
        hiredis in one call and run on a pooled connection, without redis-py's Python work
        per argument (0.45 ms less client time for an MGET and an MSET of 1,000 keys), and
        retried on a dropped connection as the client's own commands are. A client holding a
        single connection, or no hiredis, gets ``execute_command``."""
        client = self._client
        if not _RAW_BULK or client.connection is not None:
            return client.execute_command(*args)
        packed = [hiredis.pack_command(args)]
        pool = client.connection_pool
        conn = pool.get_connection()
        try:

            def run() -> Any:
                conn.send_packed_command(packed)
                return conn.read_response()

            return conn.retry.call_with_retry(run, lambda error, *_: conn.disconnect())
        finally:
            pool.release(conn)

    def _fetch_many(self, calls: Sequence[Call]) -> List[Any]:
        if not calls:
            return []
        skeys = [self._storage_key(c) for c in calls]
        try:
            values = self._bulk("MGET", *skeys)
        except RedisError as e:
            raise self._error("get_many", e) from e
        if values.count(None) == len(values):
            return [MISSING] * len(values)
        return [
            MISSING if data is None else self._value(skey, data, call.key.bytes)
            for call, skey, data in zip(calls, skeys, values)
        ]

    def _put(self, call: Call, entry: CacheEntry, ttl: Any = None) -> None:
        seconds = self._ttl_of(ttl)
        data = self._encode(call, entry, seconds)
        px = None if seconds is None else max(1, math.ceil(seconds * 1000))
        try:
            self._client.set(self._storage_key(call), data, px=px)
        except RedisError as e:
            raise self._error("set", e) from e

    def _put_many(self, items: Sequence[Tuple[Call, CacheEntry]], ttl: Any = None) -> None:
        if not items:
            return
        seconds = self._ttl_of(ttl)
        # serialize everything first: an unstorable value raises before anything is written
        records = [self._encode(call, entry, seconds) for call, entry in items]
        self._write_many([self._storage_key(call) for call, _ in items], records, seconds)

    def _put_results(
        self,
        pairs: Sequence[Tuple[Call, Any]],
        metadata: Callable[[], Dict[str, Any]],
        ttl: Any = None,
    ) -> None:
        if not pairs:
            return
        seconds = self._ttl_of(ttl)
        expires_at = None if seconds is None else time.time() + seconds
        # serialized before anything is written, as in _put_many
        records = encode_results(pairs, metadata(), expires_at, self._serializer)
        self._write_many([self._storage_key(call) for call, _ in pairs], records, seconds)

    def _write_many(self, skeys: List[bytes], records: List[bytes], seconds: Optional[float]) -> None:
        """Write each record at its storage key in one round trip, expiring after ``seconds``."""
        try:
            if seconds is None:
                # one MSET: one command and one reply (a pipeline of SETs costs ~5x more
                # client time in redis-py, parsing a reply per key)
                args: List[Any] = [None] * (2 * len(skeys))
                args[0::2] = skeys
                args[1::2] = records
                self._bulk("MSET", *args)
            else:
                # SET ... PX per key (each key gets its expiry atomically), through the
                # pipeline's plain execute_command: half the client time of pipe.set()
                px = max(1, math.ceil(seconds * 1000))
                pipe = self._client.pipeline(transaction=False)
                try:
                    command = pipe.execute_command
                    for skey, data in zip(skeys, records):
                        command("SET", skey, data, "PX", px)
                    pipe.execute()
                finally:
                    pipe.reset()
        except RedisError as e:
            raise self._error("set_many", e) from e

    def _delete(self, call: Call) -> bool:
        skey = self._storage_key(call)
        pipe = self._client.pipeline(transaction=True)  # GET and UNLINK atomically, one round trip
        pipe.get(skey)
        pipe.unlink(skey)
        try:
            data, _removed = pipe.execute()
        except RedisError as e:
            raise self._error("remove", e) from e
        finally:
            pipe.reset()
        if data is None:
            return False
        record = self._decode(skey, data, quiet=True)
        return record is not None and record.key == call.key.bytes

    def _entries(self) -> Iterator[CacheEntry]:
        for _skey, record in self._records("iterate"):
            yield record.entry

    def _wipe(self) -> None:
        for keys in self._scan("clear", unique=False):
            self._unlink("clear", keys)

    def _size(self) -> int:
        return sum(len(keys) for keys in self._scan("len"))

    def _func_size(self, func: str) -> int:
        return sum(1 for _skey, record in self._records("func_size") if record.entry.func == func)

    def _func_clear(self, func: str) -> int:
        removed = 0
        doomed: List[bytes] = []
        for skey, record in self._records("func_clear"):
            if record.entry.func == func:
                doomed.append(skey)
                if len(doomed) >= _SCAN_COUNT:
                    removed += self._unlink("func_clear", doomed)
                    doomed = []
        return removed + self._unlink("func_clear", doomed)

    # ------------------------------------------------------------------ extras
    @property
    def client(self) -> Any:
        """The underlying ``redis.Redis`` client."""
        return self._client

    @property
    def serializer(self) -> Serializer:
        """The serializer records are written with."""
        return self._serializer

    def ping(self) -> bool:
        """Whether the server answers (raises BackendError if it cannot be reached)."""
        try:
            return bool(self._client.ping())
        except RedisError as e:
            raise self._error("ping", e) from e

    def close(self) -> None:
        """Close the connection pool (a client passed in as ``client=`` is left open)."""
        if self._owns_client:
            self._client.close()

    def __repr__(self) -> str:
        return (
            f"RedisCache(url={self._url!r}, namespace={self.namespace!r}, "
            f"serializer={self._serializer.name!r}, ttl={self.ttl!r})"
        )
