"""Hot-path benchmark: cachehaven beside functools.lru_cache, cachetools, cachebox and moka-py.

Every figure is measured in this one run: ns per call is the median of REPEATS timeit runs,
and each ratio divides by the lru_cache (or cachebox) figure of the same run, so the ratios
hold on a noisy shared machine even when absolute times drift.

    python benches/hotpath.py            # full run (~1-2 minutes)
    python benches/hotpath.py --quick    # fewer iterations (what the test suite runs)
    python benches/hotpath.py --json     # machine-readable rows
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import timeit
from typing import Any, Callable, Dict, List, Optional

import cachehaven

REPEATS = 7


def peers() -> Dict[str, Any]:
    """The peer libraries that are installed (the `bench` extra installs them all)."""
    found: Dict[str, Any] = {}
    for name in ("cachetools", "cachebox", "moka_py"):
        try:
            found[name] = __import__(name)
        except ImportError:
            pass
    return found


def ns_per_call(stmt: Callable[[], Any], number: int) -> float:
    """Median ns per call of ``stmt`` over REPEATS runs of ``number`` calls."""
    runs = timeit.repeat(stmt, number=number, repeat=REPEATS)
    return statistics.median(runs) / number * 1e9


def time_loop(body: str, setup_ns: Dict[str, Any], number: int) -> float:
    """ns per iteration of ``body`` (a statement string, no lambda overhead)."""
    t = timeit.Timer(body, globals=setup_ns)
    runs = t.repeat(number=number, repeat=REPEATS)
    return statistics.median(runs) / number * 1e9


def memoizers(maxsize: Optional[int]) -> Dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]]:
    """Decorators to compare, each bounded at ``maxsize`` (None = unbounded where allowed)."""
    p = peers()
    out: Dict[str, Callable[[Callable[..., Any]], Callable[..., Any]]] = {}
    out["lru_cache"] = functools.lru_cache(maxsize=maxsize)
    out["cachehaven"] = cachehaven.InMemCache(max_entries=maxsize).memoize
    if "cachetools" in p:
        ct = p["cachetools"]
        out["cachetools"] = lambda f: ct.cached(ct.LRUCache(maxsize or 2**31))(f)
    if "cachebox" in p:
        cb = p["cachebox"]
        out["cachebox"] = lambda f: cb.cached(cb.LRUCache(maxsize or 0))(f)
    if "moka_py" in p:
        out["moka-py"] = lambda f: p["moka_py"].cached(maxsize=maxsize or 2**31)(f)
    return out


def bench_memoize(number: int) -> List[Dict[str, Any]]:
    rows: List[Dict[str, Any]] = []

    def add(case: str, impl: str, ns: float, base: float) -> None:
        rows.append(
            {"case": case, "impl": impl, "ns": round(ns, 1), "ratio_vs_lru_cache": round(ns / base, 2)}
        )

    # hits: each decorator wraps its own copy of the function; every call is a hit
    base_int = None

    def make(kind: str) -> Callable[..., int]:
        """A fresh function per decorator, so no cache sees another's calls."""
        if kind == "int":

            def f_int(x: int) -> int:
                return 1

            return f_int

        def f_mixed(s: str, t: tuple, kw: Any = None) -> int:
            return 1

        return f_mixed

    for case, kind, call in (
        ("memoize hit f(int)", "int", "f(5)"),
        ("memoize hit f(str, tuple, kw=...)", "mixed", "f('abc', (1, 2), kw=3)"),
    ):
        results = {}
        for impl, deco in memoizers(None).items():
            ns = {"f": deco(make(kind))}
            exec(call, ns)  # warm: every timed call is a hit
            results[impl] = time_loop(call, ns, number)
        base = results["lru_cache"]
        if kind == "int":
            base_int = base
        for impl, t in results.items():
            add(case, impl, t, base)

    # dict argument: no in-memory peer accepts it (unhashable); ratio vs lru_cache on f(int)
    c = cachehaven.InMemCache()

    @c.memoize
    def fd(d: dict) -> int:
        return 1

    d = {"model": "gpt", "temperature": 0.2, "top_p": 1}
    fd(d)
    assert base_int is not None
    add(
        "memoize hit f(small dict) [vs lru f(int)]",
        "cachehaven",
        time_loop("fd(d)", {"fd": fd, "d": d}, number),
        base_int,
    )

    # misses with eviction: bounded at 10,000 entries, every call a new key
    results = {}
    miss_n = max(number // 5, 20_000)
    for impl, deco in memoizers(10_000).items():

        def g(x: int) -> int:
            return x

        f = deco(g)
        for i in range(10_000):
            f(-i - 1)  # fill so every measured call evicts
        counter = iter(range(10**9))
        results[impl] = time_loop("f(next(c))", {"f": f, "c": counter}, miss_n)
    for impl, t in results.items():
        add("memoize miss + eviction (max 10,000)", impl, t, results["lru_cache"])
    return rows


def bench_store(number: int) -> List[Dict[str, Any]]:
    """Store get/set against cachebox.LRUCache, cachetools.LRUCache, moka-py and dict."""
    p = peers()
    cap = 10_000
    impls: Dict[str, Any] = {"dict (unbounded)": {}, "cachehaven.Store": cachehaven.Store(max_entries=cap)}
    if "cachebox" in p:
        impls["cachebox.LRUCache"] = p["cachebox"].LRUCache(cap)
    if "cachetools" in p:
        impls["cachetools.LRUCache"] = p["cachetools"].LRUCache(cap)
    if "moka_py" in p:
        impls["moka-py.Moka"] = p["moka_py"].Moka(cap)
    rows: List[Dict[str, Any]] = []
    results: Dict[str, Dict[str, float]] = {}
    for name, s in impls.items():
        setter = s.set if hasattr(s, "set") and name == "moka-py.Moka" else s.__setitem__
        for i in range(cap):
            setter(i, i)  # full: hits are measured where eviction bookkeeping is live
        ns = {"s": s, "setter": setter, "it": iter(range(10**9))}
        r = {}
        r["get hit"] = time_loop("s.get(7)", ns, number)
        r["get miss"] = time_loop("s.get(-7)", ns, number)
        r["set (overwrite)"] = time_loop("setter(7, 7)", ns, number)
        if name != "dict (unbounded)":
            for i in range(cap):
                setter(-i - 10, i)  # fill to capacity: every new key evicts
            r["set new key + eviction"] = time_loop("setter(next(it), 1)", ns, max(number // 5, 20_000))
        results[name] = r
    ref = "cachebox.LRUCache" if "cachebox.LRUCache" in results else "dict (unbounded)"
    for op in ("get hit", "get miss", "set (overwrite)", "set new key + eviction"):
        base = results[ref].get(op)
        for name, r in results.items():
            if op in r:
                rows.append(
                    {
                        "case": f"store {op}",
                        "impl": name,
                        "ns": round(r[op], 1),
                        f"ratio_vs_{ref.split()[0]}": round(r[op] / base, 2) if base else None,
                    }
                )
    return rows


_MEM_SCRIPT = r"""
import gc, sys, os
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
impl, n = sys.argv[1], int(sys.argv[2])
if impl == "cachehaven.Store":
    import cachehaven; s = cachehaven.Store(max_entries=n)
elif impl == "cachebox.LRUCache":
    import cachebox; s = cachebox.LRUCache(n)
elif impl == "cachetools.LRUCache":
    import cachetools; s = cachetools.LRUCache(n)
elif impl == "dict":
    s = {}
elif impl == "functools.lru_cache":
    import functools
    @functools.lru_cache(maxsize=n)
    def s(x): return x
vals = list(range(n))          # the values exist before and after: not counted
gc.collect(); before = rss()
if impl == "functools.lru_cache":
    for v in vals: s(v)
else:
    for v in vals: s[v] = v    # key and value: the same int object
gc.collect(); after = rss()
print((after - before) / n)
"""


def bench_memory(n: int) -> List[Dict[str, Any]]:
    """Bytes per int->int entry, as RSS growth in a fresh process, the ints pre-made."""
    rows = []
    names = ["dict", "functools.lru_cache", "cachehaven.Store"]
    p = peers()
    if "cachebox" in p:
        names.append("cachebox.LRUCache")
    if "cachetools" in p:
        names.append("cachetools.LRUCache")
    for name in names:
        out = subprocess.run(
            [sys.executable, "-c", _MEM_SCRIPT, name, str(n)], capture_output=True, text=True
        )
        if out.returncode != 0:
            continue
        rows.append(
            {"case": f"bytes per int->int entry at {n:,}", "impl": name, "bytes": round(float(out.stdout), 1)}
        )
    return rows


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    ap.add_argument("--json", action="store_true", help="print JSON rows")
    args = ap.parse_args(argv)
    number = 20_000 if args.quick else 500_000
    mem_n = 50_000 if args.quick else 1_000_000
    rows = bench_memoize(number) + bench_store(number) + bench_memory(mem_n)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(
        f"cachehaven {cachehaven.__version__}, Python {sys.version.split()[0]}, {os.cpu_count()} cores; "
        f"median of {REPEATS} runs"
    )
    last = None
    for r in rows:
        if r["case"] != last:
            print(f"\n{r['case']}")
            last = r["case"]
        extra = "  ".join(f"{k}={v}" for k, v in r.items() if k not in ("case", "impl"))
        print(f"  {r['impl']:<24} {extra}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
