"""A worker process for the multi-process and crash tests (run as a script, not collected).

``python tests/proc_worker.py SPEC MODE ...`` where SPEC is a JSON object naming a backend
(see :func:`build`):

* ``mixed PROC N SEED``: N random set/get/remove calls on this process's own keys plus one
  key every process writes; prints a JSON object ``{key: last value or null}`` at the end.
* ``writer``: rewrites ten keys forever with self-checking values (small and large ones),
  printing ``ready`` once every key has a value; the test kills it with SIGKILL.
"""

from __future__ import annotations

import json
import random
import sys
from typing import Any, Dict

from cachehaven import BaseCache, DatabaseCache, DiskCache, JsonCache, RedisCache


def build(spec: Dict[str, Any]) -> BaseCache:
    """The cache a spec names: ``{"kind": "json" | "disk" | "sqlite", "path": ...}``,
    ``{"kind": "sql", "url": ..., "table": ...}`` or ``{"kind": "redis", "url": ..., "namespace": ...}``."""
    kind = spec["kind"]
    if kind == "json":
        return JsonCache(spec["path"])
    if kind == "disk":
        return DiskCache(spec["path"])
    if kind == "sqlite":
        return DatabaseCache(provider="sqlite", database=spec["path"])
    if kind == "sql":
        return DatabaseCache(url=spec["url"], table=spec.get("table", "cachehaven"))
    if kind == "redis":
        return RedisCache(spec["url"], namespace=spec.get("namespace", "proc"))
    raise ValueError(f"unknown backend kind {kind!r}")


def value_for(proc: int, key: int, n: int) -> Dict[str, Any]:
    """A value whose parts agree, so a torn or mixed-up write is detectable."""
    return {"p": proc, "k": key, "n": n, "tag": (proc, key, n), "pad": "x" * (n % 64)}


def mixed(cache: BaseCache, proc: int, n: int, seed: int) -> Dict[str, Any]:
    rng = random.Random(seed)
    last: Dict[str, Any] = {}
    for i in range(n):
        k = rng.randrange(20)
        op = rng.random()
        if op < 0.6:
            v = value_for(proc, k, i)
            cache.set("w", output=v, p=proc, k=k)
            last[str(k)] = v
        elif op < 0.85:
            got = cache.get("w", p=proc, k=k)
            want = last.get(str(k))
            want = ... if want is None else want
            if got != want:
                raise AssertionError(f"process {proc} key {k}: read {got!r}, last wrote {want!r}")
        else:
            cache.remove("w", p=proc, k=k)
            last[str(k)] = None
        if i % 10 == 0:
            cache.set("shared", output=value_for(proc, -1, i), slot=0)
    return {k: (None if v is None else list(v["tag"])) for k, v in last.items()}


def big_value(key: int, n: int) -> Dict[str, Any]:
    size = 20 if key < 5 else 20_000  # large ones exercise file-backed storage
    return {"key": key, "n": n, "data": [n] * size}


def writer(cache: BaseCache) -> None:
    n = 0
    for key in range(10):
        cache.set("crash", output=big_value(key, n), key=key)
    print("ready", flush=True)
    while True:
        n += 1
        for key in range(10):
            cache.set("crash", output=big_value(key, n), key=key)


def main() -> None:
    spec = json.loads(sys.argv[1])
    cache = build(spec)
    mode = sys.argv[2]
    if mode == "mixed":
        result = mixed(cache, int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
        cache.close()
        print(json.dumps(result))
    elif mode == "writer":
        writer(cache)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
