"""The one exception hierarchy of cachehaven.

Every error cachehaven raises on purpose derives from :class:`CachehavenError` and also from
the built-in exception a caller would naturally catch (``TypeError`` for a value that cannot
be keyed, ``ValueError`` for a bad option), so both ``except CachehavenError`` and
``except TypeError`` work. The native core raises these same classes.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "CachehavenError",
    "ConfigError",
    "KeyDepthError",
    "KeyTypeError",
    "SerializationError",
    "SnapshotCorruptError",
    "SnapshotError",
    "SnapshotForeignError",
    "SnapshotVersionError",
]


class CachehavenError(Exception):
    """Base class of every error cachehaven raises on purpose."""


class KeyTypeError(CachehavenError, TypeError):
    """An argument has a type with no canonical key form.

    The message names the parameter (and the path inside it, e.g. ``cfg['a'][2]``) and the
    type. Fix it by giving the type a ``__cache_key__()`` method, excluding the argument
    (``exclude=["name"]``), or passing a supported value.
    """


class KeyDepthError(CachehavenError, ValueError):
    """An argument is nested too deeply to key (or contains itself)."""


class ConfigError(CachehavenError, ValueError):
    """A cache or decorator option has an invalid value."""


class SerializationError(CachehavenError, TypeError):
    """A value cannot be stored by the cache's serializer (raised at ``set`` time, before
    anything is written), or a stored payload cannot be read back.

    The message names where the value sits (e.g. ``output['rows'][3]``) and its type.
    """


class BackendError(CachehavenError):
    """The cache's storage failed: a dropped connection, a stopped server, an I/O error.

    The message says which backend and operation failed; it never contains credentials.
    ``memoize(fail_open=True)`` turns these into a computed call without the cache.
    """


class SnapshotError(CachehavenError, ValueError):
    """A snapshot file cannot be loaded (``InMemCache.load``). The cache is left as it was.

    The subclasses say why: :class:`SnapshotForeignError` (not a cachehaven snapshot at all),
    :class:`SnapshotVersionError` (written by a newer cachehaven, or with another key format),
    :class:`SnapshotCorruptError` (a snapshot, but truncated or damaged). The message names
    the file and, where it applies, the line.
    """


class SnapshotForeignError(SnapshotError):
    """The file is not a cachehaven snapshot (another format, or empty)."""


class SnapshotVersionError(SnapshotError):
    """The snapshot was written in a format version this cachehaven cannot read."""


class SnapshotCorruptError(SnapshotError):
    """The snapshot is truncated, fails its checksum, or holds an invalid record."""
