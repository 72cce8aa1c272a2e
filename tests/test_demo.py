"""`python -m cachehaven` (what `make demo` runs after installing) works."""

from __future__ import annotations

import subprocess
import sys


def test_demo_runs_and_reports_single_flight() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cachehaven", "--no-bench"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "the function ran 1 time" in out.stdout
    assert "fibonacci(200) = 280571172992510140037611932413038677189525" in out.stdout
