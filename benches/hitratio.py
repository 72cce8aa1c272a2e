"""Hit-ratio benchmark: cachehaven's eviction policies replayed on real traces, beside peers.

Every trace in the traces directory (gzip'd text, one integer key per line; see its README) is
replayed at capacities of 5% and 20% of its distinct keys: each request is a `get`, and a miss
is followed by a `set` of the key. In one run, side by side:

* every cachehaven policy (`cachehaven.POLICIES`), through `cachehaven.Store(max_entries=C,
  policy=...)`, the real store as users get it;
* plain LRU (a reference implementation on `collections.OrderedDict`);
* Belady's OPT, the offline optimum (evict the entry used furthest in the future, and do not
  admit a key whose next use is later than every cached one's): the upper bound;
* `theine` (W-TinyLFU with an adaptive window) and `moka-py` (TinyLFU) from PyPI, when
  installed (`make bench-deps`);
* two synthetic Zipf workloads (s = 0.9 and 1.0, fixed seed).

It then checks the target: on every trace and capacity the default policy is within 0.01 of
the best of LRU, theine and moka-py, and its mean over all trace rows is at least 0.01 above
the best of those peers' means (Zipf rows are shown but not part of the target).

    python benches/hitratio.py                  # every trace and capacity (a few minutes)
    python benches/hitratio.py --quick          # first 200k requests of each trace, small Zipf
    python benches/hitratio.py --traces loop,ps # only these traces (and no Zipf rows)
    python benches/hitratio.py --json           # machine-readable rows
"""

from __future__ import annotations

import argparse
import gzip
import heapq
import itertools
import json
import os
import random
import sys
import time
from array import array
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import cachehaven

HERE = os.path.dirname(os.path.abspath(__file__))
TRACES = os.environ.get("CACHEHAVEN_TRACES", os.path.join(HERE, "..", "..", "shared", "traces"))
PEERS = ("lru", "theine", "moka-py")  # the best of these is the target's reference
TOLERANCE = 0.01  # the default may trail the best peer by at most this on any row
MARGIN = 0.01  # and must beat the best peer's mean by at least this
ZIPF_KEYS = 100_000
ZIPF_REQUESTS = 1_000_000
SEED = 20240601
# The randomised caches (cachehaven's adaptive policy salts its sketch per store; theine and
# moka-py have their own randomness) vary from run to run on short traces by up to +-0.01, so
# a short trace is replayed several times, each through a fresh cache, and the row reports the
# mean: up to MAX_REPEATS runs, as many as fit in REPEAT_BUDGET requests.
MAX_REPEATS = 5
REPEAT_BUDGET = 1_000_000
DETERMINISTIC = {"lru", "lfu"}  # plain LRU and cachehaven's LFU: no randomness to average

Replay = Callable[[Sequence[int], int], int]


# --- workloads ---------------------------------------------------------------------------------


def find_traces(directory: str) -> List[str]:
    """Names of the traces in ``directory`` (``<name>.keys.gz``), sorted."""
    if not os.path.isdir(directory):
        raise SystemExit(f"no trace directory at {directory!r}; set CACHEHAVEN_TRACES or pass --dir")
    return sorted(f[: -len(".keys.gz")] for f in os.listdir(directory) if f.endswith(".keys.gz"))


def load_trace(directory: str, name: str, limit: Optional[int]) -> array:
    """The keys of trace ``name`` as a compact array of signed 64-bit ints."""
    with gzip.open(os.path.join(directory, f"{name}.keys.gz"), "rb") as f:
        data = f.read()
    keys = array("q", map(int, data.split()))
    return keys[:limit] if limit else keys


def zipf_trace(s: float, n_keys: int, n_requests: int, seed: int) -> array:
    """``n_requests`` draws from a Zipf(s) law over ``n_keys`` keys with shuffled ids."""
    rng = random.Random(seed)
    cum = list(itertools.accumulate(1.0 / (r**s) for r in range(1, n_keys + 1)))
    ids = list(range(n_keys))
    rng.shuffle(ids)  # popularity is not key order
    ranks = rng.choices(range(n_keys), cum_weights=cum, k=n_requests)
    return array("q", (ids[r] for r in ranks))


# --- replays: each returns the number of hits ---------------------------------------------------


def replay_store(policy: str) -> Replay:
    """Replay through ``cachehaven.Store(max_entries=cap, policy=policy)``."""

    def run(keys: Sequence[int], cap: int) -> int:
        store = cachehaven.Store(max_entries=cap, policy=policy)
        get, put, missing = store.get, store.set, object()
        hits = 0
        for k in keys:
            if get(k, missing) is missing:
                put(k, k)
            else:
                hits += 1
        return hits

    return run


def replay_lru(keys: Sequence[int], cap: int) -> int:
    """Plain LRU on an OrderedDict: the reference implementation."""
    od: OrderedDict[int, None] = OrderedDict()
    move, pop = od.move_to_end, od.popitem
    hits = 0
    for k in keys:
        if k in od:
            move(k)
            hits += 1
        else:
            od[k] = None
            if len(od) > cap:
                pop(last=False)
    return hits


def next_uses(keys: Sequence[int]) -> List[int]:
    """``nxt[t]`` = the next position after ``t`` with the same key, or ``n + t`` if none."""
    n = len(keys)
    nxt = [0] * n
    last: Dict[int, int] = {}
    for t in range(n - 1, -1, -1):
        k = keys[t]
        nxt[t] = last.get(k, n + t)
        last[k] = t
    return nxt


def replay_opt(keys: Sequence[int], cap: int, nxt: Optional[List[int]] = None) -> int:
    """Belady's optimum with bypass, on a max-heap of next-use times (lazy deletion).

    Every next-use time is unique (a position of the trace, or ``n + t`` for "never again",
    decoded back to its key through ``keys``), so the heap holds plain ints.
    """
    n = len(keys)
    if nxt is None:
        nxt = next_uses(keys)
    when: Dict[int, int] = {}  # cached key -> its next use
    heap: List[int] = []  # -next use
    push, pop, heapreplace = heapq.heappush, heapq.heappop, heapq.heapreplace
    hits = 0
    for t in range(n):
        k = keys[t]
        nx = nxt[t]
        if k in when:
            hits += 1
            when[k] = nx
            push(heap, -nx)
            continue
        if len(when) < cap:
            when[k] = nx
            push(heap, -nx)
            continue
        # full: find the cached entry used furthest in the future (skipping stale heap items:
        # keys used again since, or evicted)
        while True:
            far = -heap[0]
            if when.get(keys[far - n] if far >= n else keys[far]) == far:
                break
            pop(heap)
        if nx > far:  # the newcomer is needed after every cached entry: bypass it
            continue
        del when[keys[far - n] if far >= n else keys[far]]
        when[k] = nx
        heapreplace(heap, -nx)
        if len(heap) > 4 * cap + 1024:  # drop stale items (hits leave them)
            heap = [-v for v in when.values()]
            heapq.heapify(heap)
    return hits


def replay_theine(keys: Sequence[int], cap: int) -> int:
    """theine.Cache (W-TinyLFU, adaptive window), single-threaded mode."""
    import theine

    cache = theine.Cache(cap, nolock=True)
    get, put = cache.get, cache.set
    hits = 0
    try:
        for k in keys:
            if get(k)[1]:
                hits += 1
            else:
                put(k, k)
    finally:
        cache.close()
    return hits


def replay_moka(keys: Sequence[int], cap: int) -> int:
    """moka_py.Moka (TinyLFU admission over an LRU)."""
    import moka_py

    cache = moka_py.Moka(cap)
    get, put, missing = cache.get, cache.set, object()
    hits = 0
    for k in keys:
        if get(k, missing) is missing:
            put(k, k)
        else:
            hits += 1
    return hits


def installed(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def replays(only: Optional[List[str]]) -> Dict[str, Replay]:
    """Column name -> replay function; cachehaven policies first, then the references."""
    cols: Dict[str, Replay] = {p: replay_store(p) for p in cachehaven.POLICIES}
    cols["lru"] = replay_lru
    cols["opt"] = replay_opt
    if installed("theine"):
        cols["theine"] = replay_theine
    if installed("moka_py"):
        cols["moka-py"] = replay_moka
    if only:
        unknown = [c for c in only if c not in cols]
        if unknown:
            raise SystemExit(f"--only: unknown or missing column(s) {unknown}; have {list(cols)}")
        cols = {c: f for c, f in cols.items() if c in only}
    return cols


# --- the run ------------------------------------------------------------------------------------


def column_label(col: str) -> str:
    return f"ch:{col}" if col in cachehaven.POLICIES else col


def runs_for(requests: int, repeat: Optional[int]) -> int:
    """How many times to replay a trace through the randomised caches (see REPEAT_BUDGET)."""
    if repeat:
        return repeat
    return max(1, min(MAX_REPEATS, REPEAT_BUDGET // max(requests, 1)))


def run_rows(
    workloads: List[Tuple[str, str, Callable[[], array]]],
    cols: Dict[str, Replay],
    verbose: bool,
    repeat: Optional[int] = None,
) -> List[Dict[str, Any]]:
    rows: List[Dict[str, Any]] = []
    for kind, name, load in workloads:
        t0 = time.perf_counter()
        keys = load()
        distinct = len(set(keys))
        nxt = next_uses(keys) if "opt" in cols else None
        runs = runs_for(len(keys), repeat)
        for pct in (5, 20):
            cap = max(1, distinct * pct // 100)
            row: Dict[str, Any] = {
                "kind": kind,
                "trace": name,
                "pct": pct,
                "capacity": cap,
                "requests": len(keys),
                "distinct": distinct,
                "runs": runs,
            }
            for col, fn in cols.items():
                if col == "opt":
                    row[col] = replay_opt(keys, cap, nxt) / len(keys)
                elif col in DETERMINISTIC:
                    row[col] = fn(keys, cap) / len(keys)
                else:  # a fresh cache per run: fresh random seeds
                    row[col] = sum(fn(keys, cap) for _ in range(runs)) / (runs * len(keys))
            rows.append(row)
        if verbose:
            print(
                f"  {name}: {len(keys):,} requests x {runs} run(s) in {time.perf_counter() - t0:.1f}s",
                file=sys.stderr,
            )
    return rows


def verdict(rows: List[Dict[str, Any]], default: str) -> Dict[str, Any]:
    """The target check over the trace rows: per-row tolerance and the margin on the mean."""
    trace_rows = [r for r in rows if r["kind"] == "trace"]
    peers = [p for p in PEERS if trace_rows and p in trace_rows[0]]
    if not trace_rows or not peers or default not in trace_rows[0]:
        return {"checked": False}
    worst = None
    for r in trace_rows:
        best = max(r[p] for p in peers)
        gap = r[default] - best
        if worst is None or gap < worst[0]:
            worst = (gap, f"{r['trace']} {r['pct']}%")
    means = {c: sum(r[c] for r in trace_rows) / len(trace_rows) for c in [default, *peers]}
    best_peer = max(peers, key=lambda p: means[p])
    row_ok = worst is not None and worst[0] >= -TOLERANCE - 1e-12
    mean_ok = means[default] - means[best_peer] >= MARGIN - 1e-12
    return {
        "checked": True,
        "peers": peers,
        "complete": len(peers) == len(PEERS),
        "worst_gap": worst[0] if worst else None,
        "worst_row": worst[1] if worst else None,
        "means": means,
        "best_peer": best_peer,
        "row_ok": row_ok,
        "mean_ok": mean_ok,
        "passed": row_ok and mean_ok and len(peers) == len(PEERS),
    }


def print_table(rows: List[Dict[str, Any]], cols: List[str], default: str) -> None:
    peers = [p for p in PEERS if p in cols]
    head = ["trace", "cap", "runs"] + [column_label(c) for c in cols] + (["best peer", "Δ"] if peers else [])
    table = []
    for r in rows:
        line = [f"{r['trace']} {r['pct']}%", f"{r['capacity']:,}", str(r["runs"])]
        line += [f"{r[c]:.3f}" for c in cols]
        if peers:
            best = max(peers, key=lambda p: r[p])
            line += [best, f"{r[default] - r[best]:+.3f}" if default in r else "-"]
        table.append(line)
    trace_rows = [r for r in rows if r["kind"] == "trace"]
    if trace_rows:
        n = len(trace_rows)
        means = ["mean (traces)", "", ""] + [f"{sum(r[c] for r in trace_rows) / n:.3f}" for c in cols]
        if peers:
            mp = {p: sum(r[p] for r in trace_rows) / len(trace_rows) for p in peers}
            best = max(peers, key=lambda p: mp[p])
            md = sum(r[default] for r in trace_rows) / len(trace_rows) if default in cols else None
            means += [best, f"{md - mp[best]:+.3f}" if md is not None else "-"]
        table.append(means)
    widths = [max(len(x[i]) for x in [head, *table]) for i in range(len(head))]

    def fmt(xs: List[str]) -> str:
        return "  ".join(x.ljust(w) if i == 0 else x.rjust(w) for i, (x, w) in enumerate(zip(xs, widths)))

    print(fmt(head))
    print(fmt(["-" * w for w in widths]))
    for i, line in enumerate(table):
        if i == len(rows) and trace_rows:
            print(fmt(["-" * w for w in widths]))
        print(fmt(line))


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default=TRACES, help="the trace directory (default: ../shared/traces)")
    ap.add_argument("--traces", help="comma-separated trace names (default: all); implies --no-zipf")
    ap.add_argument("--only", help="comma-separated columns to run (e.g. adaptive,lru,theine)")
    ap.add_argument("--quick", action="store_true", help="first 200k requests per trace, small Zipf")
    ap.add_argument("--max-requests", type=int, help="replay at most this many requests per trace")
    ap.add_argument("--no-zipf", action="store_true", help="skip the Zipf workloads")
    ap.add_argument(
        "--repeat",
        type=int,
        help=f"runs per row of the randomised caches (default: up to {MAX_REPEATS} on short traces)",
    )
    ap.add_argument("--json", action="store_true", help="print JSON (rows and verdict) instead of a table")
    args = ap.parse_args(argv)

    limit = args.max_requests or (200_000 if args.quick else None)
    names = find_traces(args.dir)
    if args.traces:
        wanted = [t.strip() for t in args.traces.split(",") if t.strip()]
        unknown = [t for t in wanted if t not in names]
        if unknown:
            raise SystemExit(f"unknown trace(s) {unknown}; have {names}")
        names = wanted
    cols = replays(args.only.split(",") if args.only else None)
    default = cachehaven.POLICIES[0]

    workloads: List[Tuple[str, str, Callable[[], array]]] = [
        ("trace", n, (lambda n=n: load_trace(args.dir, n, limit))) for n in names
    ]
    if not (args.no_zipf or args.traces):
        zk, zr = (20_000, 200_000) if args.quick else (ZIPF_KEYS, ZIPF_REQUESTS)
        for s in (0.9, 1.0):
            workloads.append(("zipf", f"zipf-{s}", (lambda s=s: zipf_trace(s, zk, zr, SEED))))

    t0 = time.perf_counter()
    rows = run_rows(workloads, cols, verbose=not args.json, repeat=args.repeat)
    elapsed = time.perf_counter() - t0
    v = verdict(rows, default)
    if args.json:
        print(json.dumps({"rows": rows, "verdict": v, "seconds": round(elapsed, 1)}, indent=1))
        return 0 if v.get("passed", True) else 1

    missing = [p for p in ("theine", "moka-py") if p not in cols]
    print(
        f"hit ratio (higher is better); cachehaven {cachehaven.__version__}, policies "
        f"{', '.join(cachehaven.POLICIES)} (ch:*); default {default!r}; "
        f"{'first ' + format(limit, ',') + ' requests per trace; ' if limit else ''}{elapsed:.0f}s"
    )
    print(
        "deterministic columns (lru, ch:lru, ch:lfu, opt) are replayed once; the randomised caches are the "
        f"mean of 'runs' fresh caches (up to {MAX_REPEATS} on short traces)"
    )
    if missing:
        print(f"not installed: {', '.join(missing)} (make bench-deps)")
    print()
    print_table(rows, list(cols), default)
    print()
    if not v["checked"]:
        print("target: not checked (needs trace rows, the default policy and the peers)")
        return 0
    m = v["means"]
    print(
        f"target: every row within {TOLERANCE} of the best of {', '.join(v['peers'])} "
        f"(worst {v['worst_gap']:+.3f} on {v['worst_row']}): {'ok' if v['row_ok'] else 'FAIL'}; "
        f"mean {m[default]:.3f} vs best peer {v['best_peer']} {m[v['best_peer']]:.3f} "
        f"({m[default] - m[v['best_peer']]:+.3f}, need >= +{MARGIN}): {'ok' if v['mean_ok'] else 'FAIL'}"
    )
    partial = ""
    if args.traces or limit or not v["complete"]:
        partial = " (partial run: not every trace, request or peer)"
    print(f"TARGET {'PASS' if v['passed'] else 'FAIL'}{partial}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
