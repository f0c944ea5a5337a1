"""Benchmarks are code too: each runs here at a small size, so a change that breaks one fails a test."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_alert_delay_runs_small_and_every_change_gets_its_post():
    done = subprocess.run([sys.executable, "bench/alert_delay.py", "--minutes", "5", "--events", "24", "--seed", "3"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "changes with no post: 0" in out, out
    rows = {line.split("  ")[0] for line in out.splitlines()[2:] if line.rstrip().endswith(("yes", "no"))}
    assert {"crash", "bot change: building"} <= rows, out


def bench(*args: str, timeout: float = 600) -> str:
    """Run a bench script; its output when it exits 0 (the test fails with its stderr otherwise)."""
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-3000:])
    return done.stdout


def column(out: str, header: str) -> list[int]:
    """The integers of a right-aligned column of a bench table, read under the end of its header word."""
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if f" {header}" in line)
    end = lines[at].index(f" {header}") + 1 + len(header)
    values = []
    for line in lines[at + 1:]:
        cell = line[:end].split()[-1:] if len(line) >= end else []
        if not cell or not cell[0].replace(",", "").isdigit():
            break
        values.append(int(cell[0].replace(",", "")))
    return values


@pytest.mark.slow
def test_ack_runs_small_and_every_admitted_command_is_answered():
    out = bench("bench/ack.py", "--requests", "60", "--concurrency", "10", "--hub-delay", "0.2")
    figures = re.search(r"ack p50=([\d.]+) ms\s+p99=([\d.]+) ms\s+max=([\d.]+) ms", out)
    assert figures, out
    p50, p99, top = map(float, figures.groups())
    assert 0 < p50 <= p99 <= top, out
    # The bot's own share (its Server-Timing header) is part of what the client waited for.
    inside = re.search(r"in the bot p50=([\d.]+) ms\s+p99=([\d.]+) ms\s+max=([\d.]+) ms", out)
    assert inside, out
    bot_p50, bot_p99, bot_top = map(float, inside.groups())
    assert 0 < bot_p50 <= bot_p99 <= bot_top <= top, out
    assert "load average before:" in out, out
    answered = re.search(r"answered by response_url: (\d+)/(\d+); refused as busy in the ack: (\d+)", out)
    assert answered, out
    got, expected, busy = map(int, answered.groups())
    assert got == expected and expected + busy == 60 and expected > 0, out


@pytest.mark.slow
def test_poll_runs_quick_and_raises_alerts():
    # bench/poll.py's table is being reworked: only what stays is asserted (it runs, and changes alert).
    out = bench("bench/poll.py", "--quick", timeout=900)
    assert sum(column(out, "alerts")) > 0, out


@pytest.mark.slow
def test_fleet_runs_small_and_reports_its_own_size():
    out = bench("bench/fleet.py", "--spaces", "200", "--days", "3")
    assert "filled 200 Spaces × 3 days (600 day hashes)" in out, out
    assert "/space cost acme/* (20 Spaces, 7 days)" in out and "App Home view (200 watched Spaces)" in out, out
    assert "weekly digest with its chart (200 Spaces)" in out, out
    chart = re.search(r"chart: ([\d,]+) bytes", out)
    assert chart and int(chart.group(1).replace(",", "")) > 1000, out
    memory = re.search(r"Redis memory per Space-day of roll-up: ([\d,]+) bytes \(day hash ([\d,]+)", out)
    assert memory and int(memory.group(2).replace(",", "")) > 0, out
