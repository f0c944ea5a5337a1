"""The fault suite's tally (fault or input class → cases tried, requests lost, actions duplicated, crashes)
and its measured figures, printed as a table at the end of the session by tests/conftest.py.

Under pytest-xdist each worker counts its own cases; the workers hand them to the controller when they finish
(`worker_output`, `add_worker_output`), so the table is the whole run's either way.
"""

from __future__ import annotations

import json
from collections import defaultdict

COLUMNS = ("tried", "lost", "duplicated", "crashes")
TALLY: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COLUMNS, 0))
FIGURES: list[str] = []


def tally(kind: str, tried: int = 1, lost: int = 0, duplicated: int = 0, crashes: int = 0) -> None:
    """Count cases for the session summary; a test asserts the bad columns are 0 before it records."""
    row = TALLY[kind]
    for name, value in zip(COLUMNS, (tried, lost, duplicated, crashes)):
        row[name] += value


def figure(line: str) -> None:
    """A measured figure (a failover's seconds, say) printed after the table."""
    FIGURES.append(line)


def worker_output() -> dict[str, str]:
    return {"fault_tally": json.dumps(TALLY), "fault_figures": json.dumps(FIGURES)}


def add_worker_output(output: dict) -> None:
    for kind, row in json.loads(output.get("fault_tally", "{}")).items():
        tally(kind, **row)
    FIGURES.extend(json.loads(output.get("fault_figures", "[]")))


def table() -> list[str]:
    """The figures, then the tally as a table (nothing when no fault case ran)."""
    lines = list(FIGURES)
    if not TALLY:
        return lines
    width = max(50, *(len(kind) + 1 for kind in TALLY))
    lines += ["", f"{'fault or input class':<{width}}| cases tried | lost | duplicated | crashes",
              f"{'-' * width}|-------------|------|------------|--------"]
    for kind in sorted(TALLY):
        row = TALLY[kind]
        lines.append(f"{kind:<{width}}| {row['tried']:>11} | {row['lost']:>4} | {row['duplicated']:>10} | "
                     f"{row['crashes']:>7}")
    return lines
