"""The one exception hierarchy of cachehaven.

Every error cachehaven raises on purpose derives from :class:`CachehavenError` and also from
the built-in exception a caller would naturally catch (``TypeError`` for a value that cannot
be keyed, ``ValueError`` for a bad option), so both ``except CachehavenError`` and
``except TypeError`` work. The native core raises these same classes.
"""

from __future__ import annotations

__all__ = [
    "CachehavenError",
    "ConfigError",
    "KeyDepthError",
    "KeyTypeError",
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
