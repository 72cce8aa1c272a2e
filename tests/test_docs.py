"""Every ```python block of README.md and of the guides in docs/ runs on its own, as a user
would paste it."""

from __future__ import annotations

import pathlib
import re
from typing import List, Tuple

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ["README.md", "docs/policies.md", "docs/store.md", "docs/inmem.md"]


def _blocks() -> List[Tuple[str, int, str]]:
    found = []
    for name in DOCS:
        text = (ROOT / name).read_text(encoding="utf-8")
        for i, block in enumerate(re.findall(r"```python\n(.*?)```", text, flags=re.S)):
            found.append((name, i, block))
    return found


BLOCKS = _blocks()


@pytest.mark.parametrize("name", DOCS)
def test_each_document_has_examples(name: str) -> None:
    assert sum(1 for doc, _, _ in BLOCKS if doc == name) >= 2


@pytest.mark.parametrize(("name", "index", "code"), BLOCKS, ids=[f"{n}#{i}" for n, i, _ in BLOCKS])
def test_block_runs(
    name: str, index: int, code: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"doc_block_{index}"}
    exec(compile(code, f"{name} block {index}", "exec"), namespace)
