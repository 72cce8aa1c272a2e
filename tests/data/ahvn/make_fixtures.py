"""Write the AgentHeaven 0.9.2 cache fixtures in this directory, using AgentHeaven itself.

Run with the separate AgentHeaven environment, never cachehaven's::

    python3 -m venv /tmp/ahvn-venv
    /tmp/ahvn-venv/bin/pip install agent-heaven==0.9.2 diskcache sqlalchemy
    /tmp/ahvn-venv/bin/python tests/data/ahvn/make_fixtures.py

It rebuilds, next to this file:

* ``json/``: a ``JsonCache`` directory (one ``<40-digit key>.json`` file per entry);
* ``json_broken/``: a ``JsonCache`` directory holding one good entry and the truncated file
  AgentHeaven's ``JsonCache`` leaves behind when a value is not JSON-serializable;
* ``disk/``: a ``DiskCache`` directory (the ``diskcache`` library, pickled dicts);
* ``db.sqlite``: a ``DatabaseCache(provider="sqlite")`` database (table ``cache_orm``);
* ``expected.json``: for each backend, every entry as AgentHeaven stored it (read back with
  AgentHeaven's own decoders), with its integer key, plus the writes AgentHeaven rejected.

The process runs with ``TZ=UTC``: AgentHeaven stores a datetime as ``timestamp()`` and reads
it back with ``datetime.fromtimestamp()``, both in the local zone, so naive datetimes only
come back as written when the reader uses the writer's zone.

Values in ``expected.json`` use a small tagging of their own (independent of AgentHeaven's):
``{"$tuple": [...]}``, ``{"$set": [...]}``, ``{"$datetime": "<isoformat>"}``,
``{"$ellipsis": null}`` and ``{"$dict": [[key, value], ...]}`` for a dict with a non-str key.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import sqlite3
import sys
import time
from typing import Any, Callable, Dict, List, Optional

os.environ["TZ"] = "UTC"
time.tzset()

HERE = os.path.dirname(os.path.abspath(__file__))

# The agent-heaven 0.9.2 wheel does not ship resources/configs/default_config.yaml, so its
# DatabaseCache finds no "sqlite" provider. Inject the relevant part of the upstream default
# config in memory (nothing is written under ~/.ahvn).
from ahvn.utils.basic.config_utils import HEAVEN_CM  # noqa: E402

HEAVEN_CM._global_config = {
    "core": {"encoding": "utf-8", "debug": False},
    "ukf": {"text": {"id": 63, "short": 255, "medium": 2047, "long": 65535}},
    "db": {
        "default_provider": "sqlite",
        "providers": {"sqlite": {"dialect": "sqlite", "database": "./.ahvn/sqlite.db"}},
    },
}
HEAVEN_CM._local_config = {}
HEAVEN_CM._config = None

import ahvn  # noqa: E402
from ahvn.cache import DatabaseCache, DiskCache, JsonCache  # noqa: E402
from ahvn.cache.base import BaseCache, CacheEntry  # noqa: E402
from ahvn.utils.basic.serialize_utils import load_json, loads_json  # noqa: E402

NAIVE = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456)
AWARE = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))


# ---------------------------------------------------------------- expected.json tagging


def tag(value: Any) -> Any:
    """``value`` as JSON with this fixture's own type tags (see the module docstring)."""
    if value is Ellipsis:
        return {"$ellipsis": None}
    if isinstance(value, tuple):
        return {"$tuple": [tag(v) for v in value]}
    if isinstance(value, (set, frozenset)):
        return {"$set": [tag(v) for v in sorted(value, key=repr)]}
    if isinstance(value, datetime.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, list):
        return [tag(v) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {k: tag(v) for k, v in value.items()}
        return {"$dict": [[tag(k), tag(v)] for k, v in value.items()]}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"no fixture tag for {type(value).__name__}")


def entry_json(key: int, data: Dict[str, Any], via: str, passed: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """One expected.json entry: what AgentHeaven read back, and what was passed where that
    differs (AgentHeaven changed the value on the way)."""
    out: Dict[str, Any] = {"key": key, "via": via, "func": data["func"], "inputs": tag(data["inputs"])}
    for field in ("output", "expected"):
        if field in data:
            out[field] = tag(data[field])
    out["metadata"] = tag(data.get("metadata") or {})
    if passed is not None:
        changed = {}
        for field in ("inputs", "output", "expected", "metadata"):
            if field in passed and (field not in data or tag(passed[field]) != tag(data[field])):
                changed[field] = tag(passed[field])
        if changed:
            out["passed"] = changed
    return out


# ---------------------------------------------------------------- the entries


def populate(cache: BaseCache, rich: bool) -> tuple[Dict[int, Dict[str, Any]], List[Dict[str, Any]]]:
    """Store the fixture entries through memoize, set and annotate. ``rich`` adds the values a
    JsonCache cannot store (sets, datetimes, ``...``). Returns what was passed per key (the
    last write wins) and the writes AgentHeaven rejected."""
    passed: Dict[int, Dict[str, Any]] = {}
    rejected: List[Dict[str, Any]] = []

    def note(func: str, inputs: Dict[str, Any], output: Any = ..., expected: Any = ..., metadata=None) -> int:
        key = CacheEntry(func=func, inputs=inputs).key
        record = {"func": func, "inputs": inputs, "metadata": metadata or {}}
        if output is not ...:
            record["output"] = output
        if expected is not ...:
            record["expected"] = expected
        passed[key] = record
        return key

    def memo_call(fn: Callable[..., Any], inputs: Dict[str, Any], *args: Any) -> None:
        try:
            out = fn(*args)
        except TypeError as e:
            rejected.append(
                {"via": "memoize", "func": fn.__name__, "inputs": tag(inputs), "error": f"TypeError: {e}"}
            )
            return
        note(fn.__name__, inputs, out)

    @cache.memoize
    def f(a, b=2):
        return {"sum": a + b, "pair": (a, b)}

    @cache.memoize
    def add(x, y):
        return x + y

    @cache.memoize
    def g(a):
        return [x * 10 for x in a]

    @cache.memoize
    def u(s, n, l):  # noqa: E741
        return {"s": s.upper(), "n": n, "l": l[::-1]}

    @cache.memoize
    def kl_store(kid):
        return {"kid": kid, "name": f"知识-{kid}"}

    @cache.memoize
    def maybe(x):
        return None

    @cache.memoize
    def shape(kind):
        return {
            "tuple": ((1, "a"), [2, (3,)]),
            "nested": {
                "a": {"b": {"c": [1, {"d": None}]}},
                1: "int key",
                "big": 2**70,
                "neg": -(2**60),
                "edge": 2**53,
                "edge1": 2**53 + 1,
                "pi": 3.14159,
            },
            "set": {"s": {3, 1, 2}, "words": {"b", "a"}},
            "datetime": {"naive": NAIVE, "aware": AWARE},
            "ellipsis": [1, ..., {"e": ...}],
        }[kind]

    memo_call(f, {"a": 1, "b": 2}, 1)
    memo_call(add, {"x": 5, "y": 10}, 5, 10)
    memo_call(g, {"a": (1, 2)}, (1, 2))
    memo_call(u, {"s": "héllo", "n": None, "l": [1, 2.5, True]}, "héllo", None, [1, 2.5, True])
    memo_call(kl_store, {"kid": 123}, 123)
    memo_call(kl_store, {"kid": 2**64 + 1}, 2**64 + 1)
    memo_call(maybe, {"x": 0}, 0)
    memo_call(shape, {"kind": "tuple"}, "tuple")
    memo_call(shape, {"kind": "nested"}, "nested")
    kinds = ["set", "datetime", "ellipsis"] if rich else ["set"]  # one rejection is enough for JSON
    for kind in kinds:
        memo_call(shape, {"kind": kind}, kind)

    cache.set("lookup", output={"rows": [[1, "x"]]}, q="select 1", limit=10)
    note("lookup", {"q": "select 1", "limit": 10}, {"rows": [[1, "x"]]})
    cache.set("judge", output="maybe", expected="yes", metadata={"by": "alice"}, question="q1")
    note("judge", {"question": "q1"}, "maybe", "yes", {"by": "alice"})

    # annotate an existing entry: output kept, expected set, metadata merged
    memo_call(add, {"x": 2, "y": 2}, 2, 2)
    cache.annotate("add", expected=5, metadata={"reviewed": True}, x=2, y=2)
    note("add", {"x": 2, "y": 2}, 4, 5, {"reviewed": True})
    # annotate a missing entry: created with output = expected
    cache.annotate("judge", expected="no", metadata={"source": "manual"}, question="q2")
    note("judge", {"question": "q2"}, "no", "no", {"source": "manual"})

    if rich:
        when = {"at": datetime.datetime(2024, 1, 1, 12, 0), "tags": {"b", "a"}, "span": (1, 2)}
        cache.set("when", output="ok", **when)
        note("when", when, "ok")
    return passed, rejected


# ---------------------------------------------------------------- writing


def fresh(path: str) -> str:
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)
    return path


def dir_size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def write_json() -> Dict[str, Any]:
    path = fresh(os.path.join(HERE, "json"))
    cache = JsonCache(path)
    passed, rejected = populate(cache, rich=False)
    # AgentHeaven left a truncated file for each rejected write; move them out of json/
    broken_dir = fresh(os.path.join(HERE, "json_broken"))
    os.makedirs(broken_dir)
    entries, broken = [], []
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        key = int(name[: -len(".json")])
        try:
            data = load_json(full)
        except json.JSONDecodeError:
            os.replace(full, os.path.join(broken_dir, name))
            broken.append({"key": key, "file": name})
            continue
        entries.append(entry_json(key, data, "json", passed.get(key)))
    assert len(broken) == len(rejected), (broken, rejected)
    # one good entry next to the truncated file, as AgentHeaven would have left it
    good = next(e for e in entries if e["func"] == "add")
    shutil.copy(os.path.join(path, f"{good['key']:040d}.json"), broken_dir)
    return {
        "path": "json",
        "entries": entries,
        "rejected": rejected,
        "broken": {"path": "json_broken", "truncated": broken, "good_keys": [good["key"]]},
    }


def write_disk() -> Dict[str, Any]:
    path = fresh(os.path.join(HERE, "disk"))
    cache = DiskCache(path)
    passed, rejected = populate(cache, rich=True)
    entries = []
    for key in sorted(cache._cache):
        entries.append(entry_json(key, cache._cache[key], "disk", passed.get(key)))
    cache.close()
    size = dir_size(path)
    assert size < 64 * 1024, f"disk fixture is {size} bytes"
    return {"path": "disk", "entries": entries, "rejected": rejected, "bytes": size}


def write_db() -> Dict[str, Any]:
    path = fresh(os.path.join(HERE, "db.sqlite"))
    cache = DatabaseCache(provider="sqlite", database=path)
    passed, rejected = populate(cache, rich=True)
    cache.close()
    entries = []
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT id, content FROM cache_orm ORDER BY id").fetchall()
        ddl = [
            r[0] for r in conn.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
        ]
    conn.close()
    for ident, content in rows:
        entries.append(entry_json(int(ident), loads_json(content), "db", passed.get(int(ident))))
    return {
        "path": "db.sqlite",
        "table": "cache_orm",
        "schema": ddl,
        "entries": entries,
        "rejected": rejected,
    }


def main() -> None:
    result = {
        "agentheaven": ahvn.__version__ if hasattr(ahvn, "__version__") else "0.9.2",
        "python": sys.version.split()[0],
        "timezone": "UTC",
        "backends": {"json": write_json(), "disk": write_disk(), "db": write_db()},
    }
    with open(os.path.join(HERE, "expected.json"), "w", encoding="utf-8") as fp:
        json.dump(result, fp, indent=1, ensure_ascii=False)
        fp.write("\n")
    for name, backend in result["backends"].items():
        print(f"{name}: {len(backend['entries'])} entries, {len(backend['rejected'])} rejected")
    print(f"disk: {result['backends']['disk']['bytes']} bytes")


if __name__ == "__main__":
    main()
