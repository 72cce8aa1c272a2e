"""Backend benchmark: memoized hit and miss latency on every backend, batch_memoize of 1,000
items against 1,000 single memoized calls, a raw-driver baseline, and AgentHeaven 0.9.2 on
the same backends, all measured in one run.

    python benches/backends.py [--quick] [--json] [--ahvn-python PATH] [--only NAME ...]

PostgreSQL, MariaDB and Redis run as private throwaway servers started by the test tooling
(``tests/servers.py``); a backend whose server cannot start is reported and skipped.
AgentHeaven runs in its own interpreter (``--ahvn-python``, default ``$AHVN_PYTHON`` or
``.venv-ahvn/bin/python``; ``make bench-deps`` creates it) because it pins its own
dependencies; its rounds of hits alternate with ours, and the ratio is the median of the
round-by-round ratios. Figures are medians of repeats (a shared 2-core box: compare ratios, which are
measured side by side, rather than absolute times).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import cachehaven  # noqa: E402
from cachehaven import BaseCache  # noqa: E402

VALUE = {"name": "widget", "id": 7, "tags": ["a", "b"], "score": 0.5}


def median_us(fn: Callable[[], Any], number: int, repeats: int) -> float:
    """Median over ``repeats`` of the time per call of ``fn`` (called ``number`` times), in us."""
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(number):
            fn()
        runs.append((time.perf_counter() - t) / number * 1e6)
    return statistics.median(runs)


def bench_backend(
    cache: BaseCache, number: int, repeats: int, batch: int, peer: Optional[AhvnPeer] = None
) -> Dict[str, Any]:
    """hit/miss latency (us per call) and batch vs single on one cache; with ``peer``, its
    hit rounds alternate with ours."""

    @cache.memoize(name="bench.f")
    def f(x: int) -> Dict[str, Any]:
        return VALUE

    @cache.batch_memoize(name="bench.g")
    def g(xs: List[int]) -> List[Dict[str, Any]]:
        return [VALUE for _ in xs]

    f(-1)
    # A hit is on an entry written a while ago, as hits usually are: JsonCache keeps a file in
    # its near cache only once the file is two seconds old (see JsonCache's near_cache).
    time.sleep(2.1)
    ours: List[float] = []
    theirs: List[float] = []
    for _ in range(repeats):
        ours.append(median_us(lambda: f(-1), number, 1))
        if peer is not None and peer.error is None:
            theirs.append(peer.round())
    hit = statistics.median(ours)
    counter = iter(range(10**9))
    miss = median_us(lambda: f(next(counter)), number, repeats)

    singles, batches, singles_warm, batches_warm = [], [], [], []
    base = 10**8
    for r in range(repeats):
        items = list(range(base + r * 2 * batch, base + r * 2 * batch + batch))
        t = time.perf_counter()
        for i in items:
            f(i)
        singles.append(time.perf_counter() - t)
        t = time.perf_counter()
        for i in items:
            f(i)
        singles_warm.append(time.perf_counter() - t)
        items = [i + batch for i in items]
        t = time.perf_counter()
        g(items)
        batches.append(time.perf_counter() - t)
        t = time.perf_counter()
        g(items)
        batches_warm.append(time.perf_counter() - t)
    out: Dict[str, Any] = {
        "hit_us": hit,
        "miss_us": miss,
        "single_cold_ms": statistics.median(singles) * 1e3,
        "batch_cold_ms": statistics.median(batches) * 1e3,
        "single_warm_ms": statistics.median(singles_warm) * 1e3,
        "batch_warm_ms": statistics.median(batches_warm) * 1e3,
    }
    out["batch_speedup_cold"] = out["single_cold_ms"] / out["batch_cold_ms"]
    out["batch_speedup_warm"] = out["single_warm_ms"] / out["batch_warm_ms"]
    if peer is not None:
        if theirs:
            out["ahvn_hit_us"] = statistics.median(theirs)
            out["ahvn_hit_ratio"] = statistics.median(a / b for a, b in zip(theirs, ours))
        else:
            out["ahvn_hit_us"] = peer.error
    return out


def raw_baseline(kind: str, target: Dict[str, Any], number: int, repeats: int) -> Optional[float]:
    """us per raw driver read of one stored value of the size a memoized hit reads."""
    payload = json.dumps({"output": VALUE, "pad": "x" * 64}).encode()
    if kind == "DiskCache":
        import diskcache

        raw = diskcache.Cache(target["path"] + "-raw")
        raw.set("k", payload)
        us = median_us(lambda: raw.get("k"), number, repeats)
        raw.close()
        return us
    if kind == "RedisCache":
        import redis

        r = redis.Redis.from_url(target["url"])
        r.set("raw:k", payload)
        us = median_us(lambda: r.get("raw:k"), number, repeats)
        r.delete("raw:k")
        r.close()
        return us
    return None


AHVN_SNIPPET = r"""
import json, os, statistics, sys, time, tempfile
spec = json.loads(sys.argv[1])
from ahvn.utils.basic.config_utils import HEAVEN_CM
providers = {"sqlite": {"dialect": "sqlite", "database": "./.ahvn/sqlite.db"}}
if spec.get("sql"):
    s = spec["sql"]
    providers[s["provider"]] = {"dialect": s["dialect"], "driver": s["driver"], "host": s["host"],
        "port": s["port"], "username": s["user"], "password": s["password"], "database": s["database"]}
HEAVEN_CM._global_config = {"core": {"encoding": "utf-8", "debug": False},
    "ukf": {"text": {"id": 63, "short": 255, "medium": 2047, "long": 65535}},
    "db": {"default_provider": "sqlite", "providers": providers}}
HEAVEN_CM._local_config = {}
HEAVEN_CM._config = None
from ahvn.cache import InMemCache, DiskCache, JsonCache, DatabaseCache
kind, number = spec["kind"], spec["number"]
tmp = tempfile.mkdtemp()
if kind == "InMemCache": cache = InMemCache()
elif kind == "JsonCache": cache = JsonCache(os.path.join(tmp, "j"))
elif kind == "DiskCache": cache = DiskCache(os.path.join(tmp, "d"))
elif kind == "DatabaseCache-sqlite":
    cache = DatabaseCache(provider="sqlite", database=os.path.join(tmp, "c.db"))
else: cache = DatabaseCache(provider=spec["sql"]["provider"], database=spec["sql"]["database"])
VALUE = {"name": "widget", "id": 7, "tags": ["a", "b"], "score": 0.5}
@cache.memoize(name="bench.f")
def f(x):
    return VALUE
f(-1)
print("ready", flush=True)
for line in sys.stdin:  # one round of `number` hits per line, answered with us per hit
    t = time.perf_counter()
    for _ in range(number):
        f(-1)
    print((time.perf_counter() - t) / number * 1e6, flush=True)
"""


def sql_target(srv: Any, provider: str, dialect: str, driver: str) -> Dict[str, Any]:
    """A DatabaseCache target on a throwaway server (given by its parts, so DatabaseCache picks
    its default driver: mysqlclient for MariaDB when it is installed), with AgentHeaven's
    provider config for it (AgentHeaven's own driver)."""
    parts = {"host": srv.host, "port": srv.port, "username": srv.user, "password": srv.password}
    return {
        "make": lambda: cachehaven.DatabaseCache(dialect, srv.database, **parts),
        "sql": {
            "provider": provider,
            "dialect": dialect,
            "driver": driver,
            "host": srv.host,
            "port": srv.port,
            "user": srv.user,
            "password": srv.password,
            "database": srv.database,
        },
    }


class AhvnPeer:
    """AgentHeaven 0.9.2 memoizing the same function on the same backend, in its own
    interpreter, answering one round of hits whenever asked: its rounds alternate with ours,
    so both see the same load on the box and their ratio is taken round by round."""

    def __init__(self, python: str, kind: str, number: int, sql: Optional[Dict[str, Any]]) -> None:
        self.error: Optional[str] = None
        spec = {"kind": kind, "number": number, "sql": sql}
        self.proc: Optional[subprocess.Popen[str]] = None
        try:
            self.proc = subprocess.Popen(
                [python, "-c", AHVN_SNIPPET, json.dumps(spec)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=tempfile.gettempdir(),
            )
            self._expect("ready")
        except (OSError, RuntimeError) as e:
            self.error = f"n/a ({e})"
            self.close()

    def _expect(self, what: str) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line:
            err = self.proc.stderr.read() if self.proc.stderr is not None else ""
            raise RuntimeError((err.strip().splitlines() or ["no answer"])[-1][:120])
        if what == "ready" and line != "ready":
            raise RuntimeError(line[:120])
        return line

    def round(self) -> float:
        """One round of AgentHeaven hits, in us per hit."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        return float(self._expect("us"))

    def close(self) -> None:
        if self.proc is not None:
            try:
                self.proc.communicate(timeout=60)  # EOF on stdin ends its loop
            except (OSError, ValueError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
            self.proc = None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer calls and repeats")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    default_ahvn = os.environ.get("AHVN_PYTHON") or str(ROOT / ".venv-ahvn" / "bin" / "python")
    ap.add_argument("--ahvn-python", default=default_ahvn, help="interpreter with agent-heaven==0.9.2")
    ap.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help="measure only these backends (e.g. DiskCache JsonCache DatabaseCache-sqlite); default: all",
    )
    args = ap.parse_args()
    wanted = set(args.only or ())
    number, repeats, batch = (200, 3, 1000) if args.quick else (1000, 7, 1000)

    import servers  # the test tooling: private throwaway servers

    tmp = Path(tempfile.mkdtemp(prefix="cachehaven-bench-"))
    started: List[Any] = []

    def server(kind: type) -> Any:
        try:
            s = servers.launch(kind)
        except BaseException as e:  # launch() skips/fails through pytest outcomes
            print(f"  ({kind.__name__} unavailable: {e})", file=sys.stderr)
            return None
        started.append(s)
        return s

    results: Dict[str, Any] = {}
    try:
        targets: Dict[str, Dict[str, Any]] = {
            "InMemCache": {"make": lambda: cachehaven.InMemCache()},
            "JsonCache": {"make": lambda: cachehaven.JsonCache(tmp / "json"), "path": str(tmp / "json")},
            "DiskCache": {"make": lambda: cachehaven.DiskCache(tmp / "disk"), "path": str(tmp / "disk")},
            "DatabaseCache-sqlite": {
                "make": lambda: cachehaven.DatabaseCache(provider="sqlite", database=str(tmp / "c.db"))
            },
        }
        pg = server(servers.PostgresServer) if not wanted or "DatabaseCache-postgresql" in wanted else None
        if pg is not None:
            targets["DatabaseCache-postgresql"] = sql_target(pg, "pg", "postgresql", "psycopg")
        my = server(servers.MysqlServer) if not wanted or "DatabaseCache-mysql" in wanted else None
        if my is not None:
            targets["DatabaseCache-mysql"] = sql_target(my, "mysql", "mysql", "pymysql")
        rd = server(servers.RedisServer) if not wanted or "RedisCache" in wanted else None
        if rd is not None:
            targets["RedisCache"] = {
                "make": lambda: cachehaven.RedisCache(rd.url, namespace="bench"),
                "url": rd.url,
            }

        unknown = wanted - set(targets)
        if unknown:
            ap.error(f"--only: unknown or unavailable backend(s) {sorted(unknown)}; known: {sorted(targets)}")
        if wanted:
            targets = {name: t for name, t in targets.items() if name in wanted}
        have_ahvn = Path(args.ahvn_python).exists()
        for name, target in targets.items():
            cache = target["make"]()
            driver = getattr(getattr(cache, "engine", None), "dialect", None)
            print(f"  measuring {name}{f' ({driver.driver})' if driver else ''} ...", file=sys.stderr)
            peer = None
            if have_ahvn and name != "RedisCache":
                peer = AhvnPeer(args.ahvn_python, name, max(number // 4, 50), target.get("sql"))
            try:
                row = bench_backend(cache, number, repeats, batch, peer)
            finally:
                if peer is not None:
                    peer.close()
            if driver:
                row["driver"] = driver.driver
            cache.clear()
            cache.close()
            raw = raw_baseline(name, target, number, repeats)
            if raw is not None:
                row["raw_get_us"] = raw
                row["hit_vs_raw"] = row["hit_us"] / raw
            results[name] = row
    finally:
        for s in started:
            s.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)

    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"cachehaven {cachehaven.__version__}, Python {sys.version.split()[0]}; median of {repeats} runs\n")
    head = (
        f"{'backend':26} {'hit us':>8} {'miss us':>8} {'1k single':>10} {'1k batch':>9} {'batch x':>8} "
        f"{'warm x':>7} {'raw get':>8} {'hit/raw':>7} {'ahvn hit':>9} {'ahvn/ours':>9}"
    )
    print(head)
    for name, r in results.items():
        ah = r.get("ahvn_hit_us", "-")
        print(
            f"{name:26} {r['hit_us']:8.1f} {r['miss_us']:8.1f} {r['single_cold_ms']:8.1f}ms "
            f"{r['batch_cold_ms']:7.1f}ms {r['batch_speedup_cold']:7.1f}x {r['batch_speedup_warm']:6.1f}x "
            f"{r.get('raw_get_us', float('nan')):8.1f} {r.get('hit_vs_raw', float('nan')):7.2f} "
            f"{ah if isinstance(ah, str) else f'{ah:9.1f}':>9} {r.get('ahvn_hit_ratio', float('nan')):8.1f}x"
        )


if __name__ == "__main__":
    main()
