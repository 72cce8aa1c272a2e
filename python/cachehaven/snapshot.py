"""Snapshots of an ``InMemCache``: the file format, its atomic writer and its checking reader.

The snapshot format, version 1 (:data:`SNAPSHOT_VERSION`)
---------------------------------------------------------
A snapshot is UTF-8 text, one compact JSON document per line (``\\n``-separated; JSON
strings never hold a raw newline):

1. The header::

     {"format": "cachehaven-snapshot", "version": 1, "key_format": 1, "json_format": 1,
      "saved_at": 1718000000.25}

   ``key_format`` is the canonical key format of the stored key bytes (``docs/keys.md``),
   ``json_format`` the tagged JSON format of the values (:mod:`cachehaven.serialize`),
   ``saved_at`` the wall-clock time of the save (unix seconds).
2. One line per entry::

     {"record": {...}, "ttl": 42.5, "hash": "v3", "deps": ["<base64 key>", ...]}

   ``record`` is the stored record of :mod:`cachehaven.serialize` (func, inputs, output,
   expected, metadata in the tagged JSON form, and the canonical key bytes in base64; its
   ``expires_at`` is always null). ``ttl`` is the time the entry had left at ``saved_at``
   (seconds; absent: no expiry). ``hash`` is its content hash (a tagged JSON ``str``,
   ``bytes`` or ``int``; absent: none). ``deps`` lists the canonical key bytes of the keys
   it depends on (absent: none). Entries are written coldest first, as the eviction policy
   ranks them, so that re-inserting them in file order rebuilds the same ranking.
3. The trailer::

     {"end": 123, "sha256": "<hex digest of every byte before this line>"}

   ``end`` is the number of entry lines. A file cut anywhere lacks a valid trailer.

Reading checks everything before anything is returned: the header (a file that is not a
snapshot raises :class:`~cachehaven.errors.SnapshotForeignError`; a newer version or another
key format raises :class:`~cachehaven.errors.SnapshotVersionError`), the checksum and count,
and every record (:class:`~cachehaven.errors.SnapshotCorruptError`, naming the line). So a
load either has every entry or raises before the cache is touched. Values are decoded by the
safe JSON serializer: loading never imports or runs code.

Writing goes to a temporary file in the target's directory (``.<name>.<16 hex>.tmp``),
which is flushed, ``fsync``-ed and renamed over the target (``os.replace``, atomic), and the
directory is ``fsync``-ed (POSIX). A save that fails (a value the JSON serializer cannot
represent, a full disk, an interrupt) removes its temporary file and leaves the previous
snapshot as it was.
"""

from __future__ import annotations

import binascii
import hashlib
import math
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

from . import _core
from .entry import CacheEntry
from .errors import (
    SerializationError,
    SnapshotCorruptError,
    SnapshotForeignError,
    SnapshotVersionError,
)
from .serialize import (
    _PICKLE_HINT,
    JSON_FORMAT_VERSION,
    Record,
    _json_bytes,
    _parse_json,
    from_jsonable,
    record_from_jsonable,
    record_to_jsonable,
    to_jsonable,
)

__all__ = ["SNAPSHOT_FORMAT", "SNAPSHOT_VERSION", "SnapshotEntry", "read_snapshot", "write_snapshot"]

#: The header's ``format`` field.
SNAPSHOT_FORMAT = "cachehaven-snapshot"
#: The snapshot format version this module writes and reads.
SNAPSHOT_VERSION = 1

ContentHash = Union[str, bytes, int]
PathLike = Union[str, "os.PathLike[str]"]

_MAX_HEADER = 4096  # the header line is far shorter
_CHUNK = 1 << 20


@dataclass
class SnapshotEntry:
    """One entry of a snapshot: its canonical key bytes, the entry, the time it has left
    (seconds, None for no expiry), its content hash, and the keys it depends on."""

    key: bytes
    entry: CacheEntry
    ttl: Optional[float] = None
    content_hash: Optional[ContentHash] = None
    depends_on: List[bytes] = field(default_factory=list)


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")


def _unb64(text: Any) -> Optional[bytes]:
    if type(text) is not str:
        return None
    try:
        return binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return None


def encode_entry(item: SnapshotEntry) -> bytes:
    """The line (without its newline) of one entry; SerializationError naming the entry's
    function and the offending field if a value cannot be represented."""
    try:
        tree: Dict[str, Any] = {"record": record_to_jsonable(Record(item.entry, item.key, None))}
    except SerializationError as e:
        # snapshots have no pickle option: point to what they do offer
        why = str(e).replace(_PICKLE_HINT, "").rstrip()
        raise SerializationError(
            f"cannot snapshot an entry of {item.entry.func!r}: {why} (save(path, strict=False) "
            "skips the entries it cannot represent)"
        ) from None
    if item.ttl is not None:
        tree["ttl"] = float(item.ttl)
    if item.content_hash is not None:
        tree["hash"] = to_jsonable(item.content_hash, path="content_hash")
    if item.depends_on:
        tree["deps"] = [_b64(k) for k in item.depends_on]
    return _json_bytes(tree)


def _fsync_dir(directory: str) -> None:
    if os.name != "posix":
        return
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass  # a file system that cannot sync a directory: the file itself is written
    finally:
        os.close(dfd)


def write_snapshot(
    path: PathLike, entries: Iterable[SnapshotEntry], *, strict: bool = True
) -> Tuple[int, int]:
    """Write ``entries`` to ``path`` atomically; returns ``(written, skipped)``.

    With ``strict`` (the default) an entry the JSON serializer cannot represent raises
    SerializationError and the previous file at ``path`` is left untouched; with
    ``strict=False`` such entries are skipped and counted. I/O errors raise OSError, with
    the same guarantee.
    """
    target = os.path.abspath(os.fspath(path))
    directory, name = os.path.split(target)
    tmp = os.path.join(directory, f".{name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(tmp, flags, 0o666)
    digest = hashlib.sha256()
    written = skipped = 0
    try:
        with os.fdopen(fd, "wb") as f:

            def put(line: bytes) -> None:
                data = line + b"\n"
                digest.update(data)
                f.write(data)

            put(
                _json_bytes(
                    {
                        "format": SNAPSHOT_FORMAT,
                        "version": SNAPSHOT_VERSION,
                        "key_format": _core.FORMAT_VERSION,
                        "json_format": JSON_FORMAT_VERSION,
                        "saved_at": time.time(),
                    }
                )
            )
            for item in entries:
                try:
                    line = encode_entry(item)
                except SerializationError:
                    if strict:
                        raise
                    skipped += 1
                    continue
                put(line)
                written += 1
            f.write(_json_bytes({"end": written, "sha256": digest.hexdigest()}) + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)
    return written, skipped


_MAGIC = b'{"format":"' + SNAPSHOT_FORMAT.encode() + b'"'


def _read_all(path: str) -> bytes:
    """The file's bytes, after checking that it starts like a snapshot (so a large foreign
    file is refused without reading it whole)."""
    with open(path, "rb") as f:
        head = f.read(len(_MAGIC))
        if not head or not _MAGIC.startswith(head) or (len(head) == len(_MAGIC) and head != _MAGIC):
            why = "empty" if not head else "it has no snapshot header"
            raise SnapshotForeignError(f"{path!r} is not a cachehaven snapshot ({why})")
        chunks = [head]
        while True:
            chunk = f.read(_CHUNK)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def _header(path: str, line: bytes) -> Dict[str, Any]:
    # the file starts like a snapshot (see _read_all): a bad header line is damage
    header = None
    if len(line) <= _MAX_HEADER:
        try:
            header, _ = _parse_json(line)
        except SerializationError:
            pass
    if type(header) is not dict or header.get("format") != SNAPSHOT_FORMAT:
        raise SnapshotCorruptError(f"{path!r}: the snapshot header is damaged")
    version = header.get("version")
    if type(version) is not int or version < 1:
        raise SnapshotCorruptError(f"{path!r}: the snapshot header has an invalid version {version!r}")
    if version > SNAPSHOT_VERSION:
        raise SnapshotVersionError(
            f"{path!r} is a version {version} snapshot; this cachehaven reads version {SNAPSHOT_VERSION} "
            "(upgrade cachehaven to load it)"
        )
    key_format = header.get("key_format")
    if key_format != _core.FORMAT_VERSION:
        raise SnapshotVersionError(
            f"{path!r} stores keys in key format {key_format!r}; this cachehaven uses key format "
            f"{_core.FORMAT_VERSION}, so its entries could never be found"
        )
    json_format = header.get("json_format")
    if type(json_format) is not int or json_format > JSON_FORMAT_VERSION:
        raise SnapshotVersionError(
            f"{path!r} stores values in tagged JSON format {json_format!r}; this cachehaven reads "
            f"format {JSON_FORMAT_VERSION}"
        )
    saved_at = header.get("saved_at")
    if not isinstance(saved_at, (int, float)) or isinstance(saved_at, bool) or not math.isfinite(saved_at):
        raise SnapshotCorruptError(f"{path!r}: the snapshot header has an invalid saved_at {saved_at!r}")
    return header


def _decode_entry(path: str, lineno: int, line: bytes) -> SnapshotEntry:
    def bad(why: str) -> SnapshotCorruptError:
        return SnapshotCorruptError(f"{path!r}, line {lineno}: {why}")

    try:
        tree, tagged = _parse_json(line)
    except SerializationError as e:
        raise bad(str(e)) from None
    if type(tree) is not dict or "record" not in tree or not set(tree) <= {"record", "ttl", "hash", "deps"}:
        raise bad("not a snapshot entry")
    try:
        record = record_from_jsonable(tree["record"])
    except SerializationError as e:
        raise bad(str(e)) from None
    if record.expires_at is not None:
        raise bad("a snapshot record's expires_at must be null (the time left is in 'ttl')")
    ttl = tree.get("ttl")
    if ttl is not None and (type(ttl) not in (int, float) or not math.isfinite(ttl) or ttl <= 0):
        raise bad(f"invalid ttl {ttl!r}")
    content_hash = None
    if "hash" in tree:
        try:
            content_hash = from_jsonable(tree["hash"]) if tagged else tree["hash"]
        except SerializationError as e:
            raise bad(f"invalid content hash: {e}") from None
        if type(content_hash) not in (str, bytes, int):
            raise bad(f"a content hash is a str, bytes or int, not {type(content_hash).__name__}")
    deps_tree = tree.get("deps", [])
    if type(deps_tree) is not list:
        raise bad("deps must be a list of base64 keys")
    deps = []
    for d in deps_tree:
        k = _unb64(d)
        if k is None:
            raise bad(f"invalid dependency key {d!r}")
        deps.append(k)
    entry = record.entry
    try:
        expected_key = _core.call_key(entry.func, entry.inputs).bytes
    except Exception as e:
        raise bad(f"the entry's inputs cannot be keyed: {type(e).__name__}: {e}") from None
    if expected_key != record.key:
        raise bad(f"the stored key does not match the entry's function and inputs ({entry.func!r})")
    return SnapshotEntry(record.key, entry, None if ttl is None else float(ttl), content_hash, deps)


def read_snapshot(path: PathLike) -> Tuple[Dict[str, Any], List[SnapshotEntry]]:
    """The header and every entry of the snapshot at ``path``, fully checked.

    Each entry's ``ttl`` is what it has left now: the time since ``saved_at`` (by the wall
    clock) is subtracted, and entries that expired meanwhile are left out. Raises a
    :class:`~cachehaven.errors.SnapshotError` subclass for anything but a complete, valid
    snapshot of a version this cachehaven reads, and OSError if the file cannot be read.
    """
    p = os.path.abspath(os.fspath(path))
    data = _read_all(p)
    first = data.find(b"\n")
    if first < 0:
        raise SnapshotCorruptError(f"{p!r}: the snapshot is truncated (its header is incomplete)")
    header = _header(p, data[:first])
    if not data.endswith(b"\n"):
        raise SnapshotCorruptError(f"{p!r}: the snapshot is truncated (no trailer)")
    last = data.rfind(b"\n", 0, len(data) - 1)
    if last < first:
        raise SnapshotCorruptError(f"{p!r}: the snapshot is truncated (no trailer)")
    body, trailer_line = data[: last + 1], data[last + 1 : -1]
    try:
        trailer, _ = _parse_json(trailer_line)
    except SerializationError:
        trailer = None
    if type(trailer) is not dict or set(trailer) != {"end", "sha256"}:
        raise SnapshotCorruptError(f"{p!r}: the snapshot is truncated or damaged (no valid trailer)")
    if trailer["sha256"] != hashlib.sha256(body).hexdigest():
        raise SnapshotCorruptError(f"{p!r}: the snapshot is damaged (checksum mismatch)")
    lines = body[first + 1 : -1].split(b"\n") if last > first else []
    if trailer["end"] != len(lines):
        raise SnapshotCorruptError(
            f"{p!r}: the snapshot is damaged (its trailer counts {trailer['end']!r} entries, "
            f"it has {len(lines)})"
        )
    elapsed = max(0.0, time.time() - float(header["saved_at"]))
    out = []
    for i, line in enumerate(lines, start=2):
        item = _decode_entry(p, i, line)
        if item.ttl is not None:
            item.ttl -= elapsed
            if item.ttl <= 0:
                continue
        out.append(item)
    return header, out
