"""``CacheEntry``: one cached call (function identity, inputs, output, expected, metadata)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Union

from . import _core, keys

__all__ = ["MISSING", "CacheEntry"]

#: What a lookup returns on a miss (AgentHeaven's convention: ``...``, so that ``None`` can
#: be a cached value).
MISSING: Any = ...

_FIELDS = ("func", "inputs", "output", "expected", "metadata")


@dataclass(eq=True)
class CacheEntry:
    """A cached function call.

    ``func`` is the function identity (a callable given here is turned into its identity,
    ``module.qualname``); ``inputs`` maps parameter names to argument values; ``output`` is
    what the function returned and ``expected`` an optional annotation of what it should
    return (``...`` means unset); ``metadata`` is free-form.

    ``key`` is the 128-bit digest of the canonical bytes of ``(func, inputs)`` (blake3);
    ``value`` is ``expected`` when set, else ``output``.
    """

    func: str
    inputs: Dict[str, Any] = field(default_factory=dict)
    output: Any = ...
    expected: Any = ...
    metadata: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.func, str):
            self.func = keys.identity(self.func)
        if self.inputs is None:
            self.inputs = {}
        elif not isinstance(self.inputs, dict):
            if not isinstance(self.inputs, Mapping):
                raise TypeError(
                    f"inputs must be a dict of parameter name -> value, not {type(self.inputs).__name__}"
                )
            self.inputs = dict(self.inputs)
        if self.metadata is None:
            self.metadata = {}
        elif not isinstance(self.metadata, dict):
            raise TypeError(f"metadata must be a dict or None, not {type(self.metadata).__name__}")

    # ------------------------------------------------------------------ keys
    @property
    def key(self) -> int:
        """The entry's key: the 128-bit blake3 digest of its canonical ``(func, inputs)``."""
        return self.key_for("blake3")

    def key_for(self, scheme: str = "blake3") -> int:
        """The key under ``scheme`` (``"blake3"``, ``"md5"`` or AgentHeaven's ``"ahvn"``)."""
        keys.check_scheme(scheme)
        if scheme == "ahvn":
            return keys.ahvn_key(self.func, self.inputs)
        return keys.call_key(self.func, self.inputs).digest(scheme)

    @property
    def value(self) -> Any:
        """``expected`` if it is set, else ``output``."""
        return self.output if self.expected is ... else self.expected

    @property
    def annotated(self) -> bool:
        """Whether ``expected`` is set."""
        return self.expected is not ...

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_args(
        cls,
        func: Union[Callable[..., Any], str] = "",
        output: Any = ...,
        expected: Any = ...,
        metadata: Optional[Dict[str, Any]] = None,
        exclude: Optional[Iterable[str]] = None,
        **inputs: Any,
    ) -> CacheEntry:
        """An entry from keyword arguments: ``from_args(func, output=25, x=5, y=10)``.

        ``exclude`` drops inputs by name or by dotted path into nested dicts
        (``"config.api_key"``). To pass an input literally named ``func``, ``output``,
        ``expected``, ``metadata`` or ``exclude``, build the entry with ``CacheEntry(func,
        inputs={...})`` instead.
        """
        return cls(
            func=func,
            inputs=_strip(inputs, exclude),
            output=output,
            expected=expected,
            metadata=dict(metadata) if metadata else {},
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], exclude: Optional[Iterable[str]] = None) -> CacheEntry:
        """An entry from its dict form (as :meth:`to_dict` gives)."""
        if not isinstance(data, Mapping):
            raise TypeError(f"data must be a dict, not {type(data).__name__}")
        unknown = set(data) - set(_FIELDS)
        if unknown:
            raise ValueError(f"unknown CacheEntry fields: {', '.join(sorted(unknown))}")
        return cls(
            func=data.get("func", ""),
            inputs=_strip(data.get("inputs") or {}, exclude),
            output=data.get("output", ...),
            expected=data.get("expected", ...),
            metadata=dict(data.get("metadata") or {}),
        )

    def to_dict(self) -> Dict[str, Any]:
        """The dict form: ``func``, ``inputs``, ``output`` and ``expected`` (each only when
        set), ``metadata``."""
        d: Dict[str, Any] = {"func": self.func, "inputs": self.inputs}
        if self.output is not ...:
            d["output"] = self.output
        if self.expected is not ...:
            d["expected"] = self.expected
        d["metadata"] = self.metadata
        return d

    def clone(self, **updates: Any) -> CacheEntry:
        """A copy with some fields replaced (``func``, ``inputs``, ``output``, ``expected``,
        ``metadata``; ``exclude=`` drops inputs)."""
        exclude = updates.pop("exclude", None)
        unknown = set(updates) - set(_FIELDS)
        if unknown:
            raise TypeError(f"clone() got unknown fields: {', '.join(sorted(unknown))}")
        data = self.to_dict()
        data["inputs"] = dict(self.inputs)
        data["metadata"] = dict(self.metadata)
        data.update(updates)
        return type(self).from_dict(data, exclude=exclude)

    def annotate(self, expected: Any = ..., metadata: Optional[Dict[str, Any]] = None) -> CacheEntry:
        """A copy annotated with ``expected`` (default: the output) and extra ``metadata``."""
        if expected is ...:
            expected = self.output
        return self.clone(expected=expected, metadata={**self.metadata, **(metadata or {})})


def _strip(inputs: Mapping[str, Any], exclude: Optional[Iterable[str]]) -> Dict[str, Any]:
    """A copy of ``inputs`` without the excluded names / dotted paths (nested dicts are
    copied), stripped exactly as memoized calls strip them."""
    if isinstance(exclude, str):
        exclude = [exclude]
    return _core.strip_inputs(dict(inputs), list(exclude or ()))
