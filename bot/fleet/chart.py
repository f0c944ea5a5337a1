"""The digest's picture: stacked daily spend per Space (top 8 + others) and an uptime strip per Space by hour.

matplotlib with the Agg backend (no display), figures closed after use; PNG bytes out.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 — the backend is chosen before pyplot loads
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from bot.alerts.rollups import STRIP_RANK  # noqa: E402

TOP = 8
STRIP_ROWS = 20
# Strip colours by letter: unknown, asleep, paused, running, starting/building, broken.
STRIP_COLOURS = {".": "#e5e7eb", "s": "#93c5fd", "p": "#a78bfa", "r": "#22c55e", "u": "#facc15", "b": "#ef4444"}
STRIP_LABELS = {"r": "running", "u": "starting", "s": "asleep", "p": "paused", "b": "broken", ".": "not seen"}


def spend_series(days: list[str], daily: dict[str, dict[str, float]]) -> dict[str, list[float]]:
    """Space → spend per day, the top 8 by total and the rest summed as "others" (pure)."""
    totals = sorted(daily, key=lambda s: (-sum(daily[s].values()), s))
    series = {space: [daily[space].get(day, 0.0) for day in days] for space in totals[:TOP]
              if sum(daily[space].values()) > 0}
    rest = totals[TOP:]
    if rest:
        others = [sum(daily[s].get(day, 0.0) for s in rest) for day in days]
        if sum(others) > 0:
            series[f"others ({len(rest)})"] = others
    return series


def render(title: str, days: list[str], daily: dict[str, dict[str, float]], strips: dict[str, str]) -> bytes:
    """PNG: stacked bars of daily spend, then one strip row per Space (hours of the period)."""
    series = spend_series(days, daily)
    rows = list(strips)[:STRIP_ROWS]
    fig, (bars, strip) = plt.subplots(2, 1, figsize=(10, 4 + 0.25 * max(len(rows), 4)), dpi=100,
                                      gridspec_kw={"height_ratios": [3, max(2, len(rows) * 0.35)]})
    try:
        bottom = [0.0] * len(days)
        labels = [d[5:] for d in days]
        for name, values in series.items():
            bars.bar(labels, values, bottom=bottom, label=name)
            bottom = [b + v for b, v in zip(bottom, values)]
        bars.set_title(title)
        bars.set_ylabel("USD per day (estimate)")
        if series:
            bars.legend(fontsize=7, loc="upper left", ncol=3)
        else:
            bars.text(0.5, 0.5, "no spend in this period", ha="center", va="center", transform=bars.transAxes)
        letters = STRIP_RANK
        cmap = ListedColormap([STRIP_COLOURS[c] for c in letters])
        grid = [[letters.find(c) if c in letters else 0 for c in strips[space]] for space in rows] or [[0]]
        strip.imshow(grid, aspect="auto", cmap=cmap, vmin=0, vmax=len(letters) - 1, interpolation="nearest")
        strip.set_yticks(range(len(rows)), [r[-28:] for r in rows], fontsize=7)
        hours = len(grid[0])
        strip.set_xticks([i * 24 for i in range(hours // 24 + 1) if i * 24 < hours],
                         [d[5:] for d in days][:hours // 24 + 1], fontsize=7)
        strip.set_title("by hour", fontsize=8)
        strip.legend(handles=[Patch(color=STRIP_COLOURS[c], label=STRIP_LABELS[c]) for c in "rusbp."],
                     fontsize=7, ncol=6, loc="lower center", bbox_to_anchor=(0.5, 1.02), frameon=False)
        fig.tight_layout()
        out = io.BytesIO()
        fig.savefig(out, format="png")
        return out.getvalue()
    finally:
        plt.close(fig)
