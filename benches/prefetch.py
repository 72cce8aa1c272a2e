"""Prefetch benchmark: how many chain misses predictive warm-up turns into hits.

The workload is a program that walks chains of calls (A -> B -> C -> ..., think of the pages
of a report, or the steps of a pipeline): CHAINS chains of LENGTH distinct calls each,
visited in a random order every round, with NOISE of the accesses replaced by random calls
from a large pool. Each call costs COST seconds to compute (a sleep: an API or database
call), and the program spends THINK seconds on each result (rendering it) before the next
call. The cache holds CAPACITY entries, far fewer than the chains' calls, so between two
visits of a chain its entries are evicted: without prefetch almost every chain access is a
miss.

The same access sequence is replayed on two caches: a plain ``@cache.memoize`` (native hit
path, no prefetch), and ``@cache.memoize(prefetch=True)``, whose cache learns which call
follows which and computes the predicted next call in the background while the program
thinks. Printed per repeat and as medians: the chain misses of both runs (after WARMUP
rounds, during which both learn), the fraction of the baseline's chain misses that became
hits (the target is >= 70 %), the warm-up stats (warm-ups, prediction hits, prediction
accuracy, dropped prefetches) and the wall time of both runs.

    python benches/prefetch.py            # full run (~30 seconds)
    python benches/prefetch.py --policy lru
    python benches/prefetch.py --quick    # a smaller run
    python benches/prefetch.py --json     # machine-readable results
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from typing import Any, Dict, List, Tuple

import cachehaven

Op = Tuple[str, int]  # ("chain", key) or ("noise", key)


def workload(seed: int, chains: int, length: int, rounds: int, noise: float) -> List[List[Op]]:
    """The access sequence, one list of operations per round."""
    rng = random.Random(seed)
    out = []
    for _ in range(rounds):
        ops: List[Op] = []
        order = list(range(chains))
        rng.shuffle(order)
        for c in order:
            for i in range(length):
                if rng.random() < noise:
                    ops.append(("noise", 1_000_000 + rng.randrange(100_000)))
                ops.append(("chain", c * length + i))
        out.append(ops)
    return out


def run(rounds: List[List[Op]], *, prefetch: bool, args: argparse.Namespace) -> Dict[str, Any]:
    """Replay ``rounds`` on a fresh cache; counts chain misses after the warm-up rounds."""
    cache = cachehaven.InMemCache(
        max_entries=args.capacity,
        policy=args.policy,
        prefetch_workers=args.workers,
        prefetch_depth=args.depth,
    )
    cost, think = args.cost, args.think

    def compute(key: int) -> Dict[str, int]:
        time.sleep(cost)
        return {"key": key, "square": key * key}

    chain = cache.memoize(name="chain", prefetch=prefetch)(compute)
    noisy = cache.memoize(name="noise", prefetch=prefetch)(compute)
    counted_from = (0, 0)
    start = time.perf_counter()
    for r, ops in enumerate(rounds):
        if r == args.warmup:
            info = chain.cache_info()
            counted_from = (info.hits, info.misses)
        for kind, key in ops:
            (chain if kind == "chain" else noisy)(key)
            time.sleep(think)
    elapsed = time.perf_counter() - start
    info = chain.cache_info()
    cache.close()
    st = cache.stats()
    return {
        "chain_hits": info.hits - counted_from[0],
        "chain_misses": info.misses - counted_from[1],
        "seconds": elapsed,
        "warmups": st["warmups"],
        "prediction_hits": st["prediction_hits"],
        "prediction_accuracy": st["prediction_accuracy"],
        "prefetch_dropped": st["prefetch_dropped"],
        "entries": st["entries"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer rounds and repeats")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--chains", type=int, default=40)
    p.add_argument("--length", type=int, default=6)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--warmup", type=int, default=2, help="rounds not counted (both runs learn)")
    p.add_argument("--noise", type=float, default=0.10)
    p.add_argument("--capacity", type=int, default=80)
    p.add_argument("--policy", default=cachehaven.POLICIES[0], choices=cachehaven.POLICIES)
    p.add_argument("--cost", type=float, default=0.001, help="seconds per computed call")
    p.add_argument("--think", type=float, default=0.002, help="seconds between calls")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--depth", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    if args.quick:
        args.chains, args.capacity, args.rounds, args.repeats = 20, 40, 4, 1

    results = []
    for rep in range(args.repeats):
        rounds = workload(rep, args.chains, args.length, args.rounds, args.noise)
        base = run(rounds, prefetch=False, args=args)
        pre = run(rounds, prefetch=True, args=args)
        saved = base["chain_misses"] - pre["chain_misses"]
        fraction = saved / base["chain_misses"] if base["chain_misses"] else 0.0
        results.append({"seed": rep, "baseline": base, "prefetch": pre, "fraction": fraction})

    if args.json:
        print(json.dumps({"args": vars(args), "results": results}, indent=2))
        return
    n_ops = sum(len(ops) for ops in workload(0, args.chains, args.length, args.rounds, args.noise))
    print(
        f"{args.chains} chains x {args.length} calls, {args.rounds} rounds ({args.warmup} warm-up), "
        f"{args.noise:.0%} noise, {n_ops} accesses per run; capacity {args.capacity} "
        f"({args.policy}), "
        f"cost {args.cost * 1e3:g} ms, think {args.think * 1e3:g} ms, "
        f"{args.workers} workers, depth {args.depth}"
    )
    print()
    print(
        "| seed | chain misses, no prefetch | chain misses, prefetch | turned into hits "
        "| warm-ups | prediction hits | accuracy | dropped | time no prefetch / prefetch |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        b, q = r["baseline"], r["prefetch"]
        print(
            f"| {r['seed']} | {b['chain_misses']} | {q['chain_misses']} | {r['fraction']:.1%} "
            f"| {q['warmups']} | {q['prediction_hits']} | {q['prediction_accuracy']:.1%} "
            f"| {q['prefetch_dropped']} | {b['seconds']:.2f} s / {q['seconds']:.2f} s |"
        )
    med = statistics.median(r["fraction"] for r in results)
    acc = statistics.median(r["prefetch"]["prediction_accuracy"] for r in results)
    print()
    print(
        f"median: {med:.1%} of the chain misses turned into hits (target >= 70%), "
        f"prediction accuracy {acc:.1%}"
    )


if __name__ == "__main__":
    main()
