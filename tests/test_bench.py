"""Benchmarks are code too: each runs here at a small size, so a change that breaks one fails a test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_alert_delay_runs_small_and_every_change_gets_its_post():
    done = subprocess.run([sys.executable, "bench/alert_delay.py", "--minutes", "5", "--events", "24", "--seed", "3"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "changes with no post: 0" in out, out
    rows = {line.split("  ")[0] for line in out.splitlines()[2:] if line.rstrip().endswith(("yes", "no"))}
    assert {"crash", "bot change: building"} <= rows, out
