"""Type hints survive decoration: mypy sees the wrapped signature and return type."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import textwrap

import pytest

SNIPPET = textwrap.dedent(
    """
    import asyncio
    from cachehaven import InMemCache

    cache = InMemCache()

    @cache.memoize
    def f(x: int, y: str = "a") -> float:
        return 1.0

    @cache.memoize(name="g", ttl=5)
    async def g(x: int) -> list[int]:
        return [x]

    reveal_type(f(1))
    reveal_type(g)
    reveal_type(f.cache_info().hits)
    f("not an int")
    """
)


def test_mypy_sees_through_memoize(tmp_path) -> None:
    if shutil.which("mypy") is None and not _has_mypy():
        pytest.skip("mypy is not installed (pip install -e '.[dev]')")
    src = tmp_path / "snippet.py"
    src.write_text(SNIPPET)
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--hide-error-context", str(src)],
        capture_output=True,
        text=True,
    ).stdout
    assert re.search(r'snippet.py:15: note: Revealed type is "(builtins\.)?float"', out), out
    assert re.search(
        r"snippet.py:16: note: Revealed type is .*MemoizedFunction\[\[x: (builtins\.)?int\]", out
    ), out
    assert re.search(
        r"snippet.py:16: note: Revealed type is .*Coroutine\[Any, Any, (builtins\.)?list", out
    ), out
    assert re.search(r'snippet.py:17: note: Revealed type is "(builtins\.)?int"', out), out
    assert 'Argument 1 to "__call__" of "MemoizedFunction" has incompatible type "str"' in out, out


def _has_mypy() -> bool:
    try:
        import mypy  # noqa: F401
    except ImportError:
        return False
    return True
