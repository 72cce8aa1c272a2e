"""``JsonCache``: one human-readable JSON file per entry, written atomically.

Layout: ``<path>/<digest:032x>.json`` (``key_scheme="blake3"`` or ``"md5"``), or
AgentHeaven 0.9.2's ``<path>/<key:040d>.json`` with ``key_scheme="ahvn"``. A file holds the
stored record (:func:`cachehaven.serialize.record_to_jsonable`: the entry's ``func``,
``inputs``, ``output``, ``expected`` and ``metadata`` in the tagged JSON form, the canonical
key bytes and the expiry time), indented, with the record's fields in sorted order so that
files diff well. The user's own dicts keep their order: values round-trip exactly.

File names come from the key digest only, never from the function name or the inputs, so
no input can make the cache write outside ``path``.

A write goes to a temporary file in the same directory (``.<name>.<random>.tmp``), is
flushed and ``fsync``-ed, then renamed over the entry with ``os.replace`` (atomic), and the
directory is ``fsync``-ed (POSIX). Readers, including other processes, see the old file or
the new one, never a torn one; of concurrent writers the last rename wins. A failed or
interrupted write leaves its temporary file behind only if the process dies; such files
are removed when they are a minute old, by the next cache opened on the directory or by
``clear()``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import time
import warnings
from typing import Any, Iterable, Iterator, List, Optional, Sequence, Tuple

from .._ahvn import decode_record, is_ahvn_record, same_call
from ..base import BaseCache, Call
from ..entry import MISSING, CacheEntry
from ..errors import BackendError, ConfigError, SerializationError
from ..memoize import check_ttl
from ..serialize import Record, record_from_jsonable, record_to_jsonable
from ._near import DEFAULT_NEAR_ENTRIES, NearCache, check_capacity

__all__ = ["JsonCache"]

logger = logging.getLogger("cachehaven")

#: A temporary file of an unfinished write: ``.<entry stem>.<16 hex>.tmp``.
_TEMP_RE = re.compile(r"^\..+\.[0-9a-f]{16}\.tmp$")
#: Temporary files older than this (seconds) belong to a dead writer and are removed.
STALE_TEMP_AGE = 60.0

_O_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)

#: A file is kept in the near cache only once its mtime is this far in the past (ns): a later
#: write then always has a later mtime, even on file systems with coarse timestamps.
_SETTLED_NS = 2_000_000_000

_ABSENT: Any = object()  # no file (a plain miss)
_UNREADABLE: Any = object()  # a file that cannot be decoded (a miss plus a warning)


def warn_unreadable(backend: str, storage_key: str, reason: object) -> None:
    """Report an unreadable stored record: one ``RuntimeWarning`` and one log line naming
    the backend and the storage key. Used by the file backends; never raises."""
    message = f"cachehaven {backend}: unreadable entry {storage_key} ({reason}); treated as a miss"
    logger.warning(message)
    warnings.warn(message, RuntimeWarning, stacklevel=4)


def key_matches(call: Call, entry: CacheEntry, key: Optional[bytes]) -> bool:
    """Whether a stored entry belongs to ``call``: by its canonical key bytes, or, for an
    AgentHeaven row (``key`` None, no key bytes stored), by comparing func and inputs in
    AgentHeaven's own form (:func:`cachehaven._ahvn.same_call`)."""
    if key is not None:
        return key == call.key.bytes
    return same_call(entry, call.func, call.inputs)


def _reason(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def directory_path(path: Any) -> str:
    """The absolute form of a cache directory argument (``~`` expanded), or ConfigError if
    it is not a non-empty str/PathLike or names something that is not a directory."""
    try:
        fs_path = os.fspath(path)
    except TypeError:
        raise ConfigError(f"path must be a str or os.PathLike, not {type(path).__name__}") from None
    if not isinstance(fs_path, str) or not fs_path:
        raise ConfigError(f"path must be a non-empty directory path, not {path!r}")
    full = os.path.abspath(os.path.expanduser(fs_path))
    if os.path.exists(full) and not os.path.isdir(full):
        raise ConfigError(f"path {full!r} exists and is not a directory")
    return full


def _ident(st: os.stat_result) -> Tuple[int, int, int, int]:
    """A file's identity: device, inode, mtime and size. Every write of the cache makes a new
    file (temp + rename), so a changed entry has a new identity."""
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


class JsonCache(BaseCache):
    """A cache of human-readable JSON files, one per entry, in the directory ``path``.

    ``JsonCache(path, exclude=None, *, ttl=None, key_scheme="blake3", serializer=None,
    near_cache=1024)``

    * ``path``: the directory (created if missing). Files are named by the key digest only.
    * ``ttl``: default time-to-live (seconds or timedelta) for entries; ``memoize(ttl=...)``
      and ``set(..., ttl=...)`` override it. Expiry uses wall-clock time (``time.time()``),
      so it holds across processes; an expired file is a miss and is deleted when read.
    * ``key_scheme``: ``"ahvn"`` reads and writes AgentHeaven 0.9.2's layout (files named
      ``<key:040d>.json``); files AgentHeaven wrote are read as they are, and verified by
      recomputing their key.
    * ``serializer``: only ``None`` or ``"json"`` (the files are the tagged JSON form):
      anything else raises ``ConfigError``.
    * ``near_cache``: how many decoded values this object keeps in memory (0: none). A hit
      on one costs a ``stat`` instead of a read and a decode, and is served only while the
      file is still the one it was read from (same inode, mtime and size), so a write by any
      process is seen at once. Files are kept only once they are two seconds old, which
      makes the check safe on file systems with coarse timestamps; editing a file in place
      while restoring its mtime and size would defeat it (``near_cache=0`` then).

    Every value the JSON serializer supports round-trips exactly (tuples, sets, bytes,
    datetimes, int dict keys, ``...``); others raise ``SerializationError`` at ``set`` time,
    before any file is touched. A corrupt, truncated or non-UTF-8 file is a miss plus one
    ``RuntimeWarning`` (and a log line), never an exception, and is left in place for
    inspection until a new ``set`` of the same key replaces it. I/O failures raise
    ``BackendError``.

    Writes are atomic (temp file, fsync, rename): safe for several threads and processes
    sharing the directory, and for a writer killed mid-write. ``len()`` counts the ``*.json``
    files, including expired ones not yet read.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        exclude: Optional[Iterable[str]] = None,
        *,
        ttl: Any = None,
        key_scheme: str = "blake3",
        serializer: Any = None,
        near_cache: int = DEFAULT_NEAR_ENTRIES,
    ) -> None:
        super().__init__(exclude, key_scheme=key_scheme)
        if serializer is not None and serializer != "json" and getattr(serializer, "name", None) != "json":
            raise ConfigError(
                "JsonCache writes human-readable JSON files; serializer must be None or 'json', "
                f"not {serializer!r} (use DiskCache or DatabaseCache for pickle)"
            )
        self._path = directory_path(path)
        self._ttl = check_ttl(ttl)
        self._ahvn = self.key_scheme == "ahvn"
        capacity = check_capacity(near_cache)
        self._near = NearCache(capacity) if capacity else None
        try:
            os.makedirs(self._path, exist_ok=True)
        except OSError as e:
            raise BackendError(f"JsonCache: cannot create the directory {self._path!r}: {_reason(e)}") from e
        self._remove_stale_temps()

    @property
    def path(self) -> str:
        """The cache directory (absolute)."""
        return self._path

    # ------------------------------------------------------------------ files
    def _name(self, call: Call) -> str:
        digest = call.digest
        return f"{digest:040d}.json" if self._ahvn else f"{digest:032x}.json"

    def _file(self, name: str) -> str:
        return os.path.join(self._path, name)

    def _json_names(self) -> List[str]:
        try:
            names = os.listdir(self._path)
        except FileNotFoundError:
            return []
        except OSError as e:
            raise BackendError(f"JsonCache: cannot list {self._path!r}: {_reason(e)}") from e
        return sorted(n for n in names if n.endswith(".json") and not n.startswith("."))

    def _remove_stale_temps(self) -> None:
        """Remove temporary files of writers that died more than a minute ago."""
        try:
            names = os.listdir(self._path)
        except OSError:
            return
        cutoff = time.time() - STALE_TEMP_AGE
        for name in names:
            if not _TEMP_RE.match(name):
                continue
            full = self._file(name)
            try:
                if os.stat(full).st_mtime < cutoff:
                    os.unlink(full)
            except OSError:
                pass  # gone already, or another process's business

    def _read(self, name: str) -> Tuple[Any, Optional[Tuple[int, int, int, int]]]:
        """A file's parsed JSON and its identity (:func:`_ident`), ``_ABSENT`` if there
        is no such file, or ``_UNREADABLE`` (after a warning) if it cannot be decoded."""
        full = self._file(name)
        try:
            with open(full, "rb") as f:
                data = f.read()
                st = os.fstat(f.fileno())
        except FileNotFoundError:
            return _ABSENT, None
        except IsADirectoryError:
            warn_unreadable("JsonCache", full, "a directory, not a file")
            return _UNREADABLE, None
        except OSError as e:
            raise BackendError(f"JsonCache: cannot read {full!r}: {_reason(e)}") from e
        ident = _ident(st)
        try:
            return json.loads(data.decode("utf-8")), ident
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            warn_unreadable("JsonCache", full, _reason(e))
            return _UNREADABLE, ident

    def _decode(self, name: str, tree: Any) -> Optional[Tuple[CacheEntry, Optional[bytes], Optional[float]]]:
        """``(entry, key bytes or None, expires_at)`` from a file's JSON, or None (after a
        warning) if it is not a record (nor, in AgentHeaven layout, an AgentHeaven entry)."""
        try:
            if self._ahvn and isinstance(tree, dict) and "cachehaven" not in tree and is_ahvn_record(tree):
                return decode_record(tree), None, None
            record = record_from_jsonable(tree)
        except Exception as e:
            warn_unreadable("JsonCache", self._file(name), _reason(e))
            return None
        return record.entry, record.key, record.expires_at

    def _unlink_if_same(self, name: str, ident: Optional[Tuple[int, int, int, int]]) -> bool:
        """Delete a file if it is still the one that was read (not a newer write)."""
        full = self._file(name)
        try:
            if ident is not None:
                st = os.stat(full)
                if _ident(st) != ident:
                    return False
            os.unlink(full)
            return True
        except FileNotFoundError:
            return False
        except OSError as e:
            raise BackendError(f"JsonCache: cannot delete {full!r}: {_reason(e)}") from e

    def _stored(
        self, call: Call
    ) -> Optional[Tuple[str, Optional[Tuple[int, int, int, int]], CacheEntry, Optional[float]]]:
        """``(file name, file identity, entry, expires_at)`` of the readable record stored for
        ``call`` (expired or not), or None when there is none, it is unreadable, or it belongs
        to another call."""
        name = self._name(call)
        tree, ident = self._read(name)
        if tree is _ABSENT or tree is _UNREADABLE:
            return None
        decoded = self._decode(name, tree)
        if decoded is None:
            return None
        entry, key, expires_at = decoded
        if not key_matches(call, entry, key):
            return None
        return name, ident, entry, expires_at

    def _load(self, call: Call) -> Optional[CacheEntry]:
        """The live entry stored for ``call``, or None."""
        stored = self._stored(call)
        if stored is None:
            return None
        name, ident, entry, expires_at = stored
        if expires_at is not None and expires_at <= time.time():
            self._unlink_if_same(name, ident)
            return None
        return entry

    def _scan(self) -> Iterator[Tuple[str, CacheEntry]]:
        """``(file name, entry)`` of every live, readable entry; unreadable files are skipped
        with a warning, expired ones deleted."""
        now = time.time()
        for name in self._json_names():
            tree, ident = self._read(name)
            if tree is _ABSENT or tree is _UNREADABLE:
                continue
            decoded = self._decode(name, tree)
            if decoded is None:
                continue
            entry, _, expires_at = decoded
            if expires_at is not None and expires_at <= now:
                self._unlink_if_same(name, ident)
                continue
            yield name, entry

    def _encode(self, call: Call, entry: CacheEntry, ttl: Any) -> bytes:
        """The file content for an entry (raises SerializationError; touches nothing)."""
        secs = check_ttl(ttl)
        if secs is None:
            secs = self._ttl
        expires_at = None if secs is None else time.time() + secs
        fields = record_to_jsonable(Record(entry, call.key.bytes, expires_at))
        tree = {name: fields[name] for name in sorted(fields)}  # user dicts keep their order
        try:
            text = json.dumps(tree, indent=2, ensure_ascii=False)
        except (TypeError, ValueError) as e:
            raise SerializationError(f"JsonCache cannot write this entry as JSON: {e}") from e
        try:
            return (text + "\n").encode("utf-8")
        except UnicodeEncodeError:
            # a lone surrogate in a string: keep it, escaped, so it round-trips
            return (json.dumps(tree, indent=2, ensure_ascii=True) + "\n").encode("ascii")

    def _write(self, name: str, data: bytes) -> None:
        """Atomically replace ``name`` with ``data`` (temp file, fsync, rename, dir fsync)."""
        full = self._file(name)
        tmp = self._file(f".{name[:-5]}.{secrets.token_hex(8)}.tmp")
        flags = (
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
        )
        try:
            fd = os.open(tmp, flags, 0o666)
        except OSError as e:
            raise BackendError(f"JsonCache: cannot write {full!r}: {_reason(e)}") from e
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, full)
        except BaseException as e:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            if isinstance(e, OSError):
                raise BackendError(f"JsonCache: cannot write {full!r}: {_reason(e)}") from e
            raise
        self._sync_dir()

    def _sync_dir(self) -> None:
        """Make the rename durable (POSIX); a file system that cannot sync a directory is
        not an error, the entry is written."""
        if os.name != "posix":
            return
        try:
            dfd = os.open(self._path, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dfd)
        except OSError:
            pass
        finally:
            os.close(dfd)

    # ------------------------------------------------------------------ storage protocol
    def _fetch(self, call: Call) -> Optional[CacheEntry]:
        return self._load(call)

    def _fetch_value(self, call: Call) -> Any:
        near = self._near
        if near is None:
            entry = self._load(call)
            return MISSING if entry is None else entry.value
        name = self._name(call)
        try:
            st = os.stat(self._file(name))
        except FileNotFoundError:
            near.discard(name)
            return MISSING
        except OSError:
            pass  # the full read reports it
        else:
            value = near.get(name, _ident(st), call.key.bytes, time.time())
            if value is not MISSING:
                return value
        stored = self._stored(call)
        if stored is None:
            return MISSING
        name, ident, entry, expires_at = stored
        now = time.time()
        if expires_at is not None and expires_at <= now:
            self._unlink_if_same(name, ident)
            return MISSING
        value = entry.value
        if ident is not None and time.time_ns() - ident[2] > _SETTLED_NS:
            near.put(name, ident, call.key.bytes, expires_at, value)
        return value

    def _fetch_many(self, calls: Sequence[Call]) -> List[Any]:
        return [self._fetch_value(c) for c in calls]

    def _put(self, call: Call, entry: CacheEntry, ttl: Any = None) -> None:
        data = self._encode(call, entry, ttl)
        self._write(self._name(call), data)

    def _put_many(self, items: Sequence[Tuple[Call, CacheEntry]], ttl: Any = None) -> None:
        # encode every entry first: an unserializable value fails the batch before any write
        encoded = [(self._name(call), self._encode(call, entry, ttl)) for call, entry in items]
        for name, data in encoded:
            self._write(name, data)

    def _delete(self, call: Call) -> bool:
        stored = self._stored(call)
        if stored is None:
            return False
        name, ident, _, expires_at = stored
        removed = self._unlink_if_same(name, ident)
        return removed and (expires_at is None or expires_at > time.time())

    def _entries(self) -> Iterator[CacheEntry]:
        for _, entry in self._scan():
            yield entry

    def _wipe(self) -> None:
        for name in self._json_names():
            try:
                os.unlink(self._file(name))
            except FileNotFoundError:
                pass
            except OSError as e:
                raise BackendError(f"JsonCache: cannot delete {self._file(name)!r}: {_reason(e)}") from e
        self._remove_stale_temps()

    def _size(self) -> int:
        return len(self._json_names())

    def _func_size(self, func: str) -> int:
        return sum(1 for _, entry in self._scan() if entry.func == func)

    def _func_clear(self, func: str) -> int:
        doomed = [name for name, entry in self._scan() if entry.func == func]
        removed = 0
        for name in doomed:
            try:
                os.unlink(self._file(name))
                removed += 1
            except FileNotFoundError:
                pass
            except OSError as e:
                raise BackendError(f"JsonCache: cannot delete {self._file(name)!r}: {_reason(e)}") from e
        return removed

    def __repr__(self) -> str:
        return f"JsonCache(path={self._path!r}, key_scheme={self.key_scheme!r})"
