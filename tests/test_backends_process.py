"""Several processes on one cache, and writers killed mid-write (issue 3's load and crash
acceptance). Each backend is named by a spec the worker script (``proc_worker.py``) builds
its own cache from, so every process has its own connections and file handles."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict

import pytest

import proc_worker

WORKER = str(Path(__file__).with_name("proc_worker.py"))
PROCS = 4
OPS = 2000


def _env() -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parent), env.get("PYTHONPATH", "")])
    return env


@pytest.fixture(params=["json", "disk", "sqlite", "postgresql", "mysql", "redis"])
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> Dict[str, Any]:
    kind = request.param
    if kind in ("json", "disk"):
        return {"kind": kind, "path": str(tmp_path / kind)}
    if kind == "sqlite":
        return {"kind": "sqlite", "path": str(tmp_path / "cache.db")}
    if kind == "postgresql":
        return {"kind": "sql", "url": request.getfixturevalue("postgres_url")}
    if kind == "mysql":
        return {"kind": "sql", "url": request.getfixturevalue("mysql_url")}
    return {"kind": "redis", "url": request.getfixturevalue("redis_url"), "namespace": "proc"}


def test_four_processes_mixed_ops_lose_no_write(spec: Dict[str, Any]) -> None:
    # create the store once, before the processes race to create it
    proc_worker.build(spec).close()
    procs = [
        subprocess.Popen(
            [sys.executable, WORKER, json.dumps(spec), "mixed", str(p), str(OPS), str(1000 + p)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for p in range(PROCS)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    cache = proc_worker.build(spec)
    try:
        for proc, last in enumerate(results):
            assert last, "a worker did no writes"
            for k, tag in last.items():
                got = cache.get("w", p=proc, k=int(k))
                if tag is None:
                    assert got is ..., f"process {proc} removed key {k}, but it is back: {got!r}"
                else:
                    assert got == proc_worker.value_for(proc, int(k), tag[2]), (proc, k)
        shared = cache.get("shared", slot=0)
        assert shared["tag"] == (shared["p"], -1, shared["n"]) and shared["p"] in range(PROCS)
    finally:
        cache.close()


@pytest.fixture(params=["json", "disk", "sqlite"])
def crash_spec(request: pytest.FixtureRequest, tmp_path: Path) -> Dict[str, Any]:
    kind = request.param
    path = tmp_path / ("cache.db" if kind == "sqlite" else kind)
    return {"kind": kind, "path": str(path)}


def test_writer_killed_mid_write_never_leaves_a_torn_entry(crash_spec: Dict[str, Any]) -> None:
    rng = random.Random(7)
    for round_ in range(20):
        p = subprocess.Popen(
            [sys.executable, WORKER, json.dumps(crash_spec), "writer"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        assert p.stdout is not None
        line = p.stdout.readline()
        if line.strip() != "ready":
            p.kill()
            pytest.fail(f"writer did not start: {line!r} {p.stderr.read()[-2000:] if p.stderr else ''}")
        time.sleep(rng.uniform(0.0, 0.15))
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
        assert p.returncode == -signal.SIGKILL
        cache = proc_worker.build(crash_spec)  # the cache still opens
        try:
            for key in range(10):
                v = cache.get("crash", key=key)
                assert v is not ..., f"round {round_}: key {key} lost its value"
                assert v == proc_worker.big_value(key, v["n"]), f"round {round_}: key {key} is torn"
            entries = [e for e in cache if e.func == "crash"]
            assert sorted(e.inputs["key"] for e in entries) == list(range(10))
        finally:
            cache.close()
