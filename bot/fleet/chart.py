"""The digest's picture: stacked daily spend per Space (top 8 + others) and an uptime strip per Space by hour.

matplotlib's Agg canvas (no display, no pyplot); PNG bytes out.
"""

from __future__ import annotations

import heapq
import io

from bot.alerts.rollups import STRIP_RANK

TOP = 8
STRIP_ROWS = 20
# Strip colours by letter: unknown, asleep, paused, running, starting/building, broken.
STRIP_COLOURS = {".": "#e5e7eb", "s": "#93c5fd", "p": "#a78bfa", "r": "#22c55e", "u": "#facc15", "b": "#ef4444"}
STRIP_LABELS = {"r": "running", "u": "starting", "s": "asleep", "p": "paused", "b": "broken", ".": "not seen"}


def spend_series(days: list[str], daily: dict[str, dict[str, float]]) -> dict[str, list[float]]:
    """Space → spend per day, the top 8 by total and the rest summed as "others" (pure)."""
    sums = {space: sum(values.values()) for space, values in daily.items()}
    top = heapq.nsmallest(TOP, daily, key=lambda s: (-sums[s], s))
    series = {space: [daily[space].get(day, 0.0) for day in days] for space in top if sums[space] > 0}
    if len(daily) > len(top):
        index, chosen = {day: i for i, day in enumerate(days)}, set(top)
        others = [0.0] * len(days)
        for space, values in daily.items():
            if space not in chosen:
                for day, value in values.items():
                    if day in index:
                        others[index[day]] += value
        if sum(others) > 0:
            series[f"others ({len(daily) - len(top)})"] = others
    return series


def render(title: str, days: list[str], daily: dict[str, dict[str, float]], strips: dict[str, str]) -> bytes:
    """PNG: stacked bars of daily spend, then one strip row per Space (hours of the period)."""
    # matplotlib is imported on the first picture, not at start-up: it is 1.5 s of CPU of every process start
    # (serve, worker, console) for a digest that only the leader draws, and maybe once a day.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    series = spend_series(days, daily)
    rows = list(strips)[:STRIP_ROWS]
    # A Figure on an Agg canvas, without pyplot: no display, and no global figure registry shared by the
    # threads that render (commands and the digest job).
    fig = Figure(figsize=(10, 4 + 0.25 * max(len(rows), 4)), dpi=100)
    FigureCanvasAgg(fig)
    bars, strip = fig.subplots(2, 1, gridspec_kw={"height_ratios": [3, max(2, len(rows) * 0.35)]})
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
    strip.set_title("by hour", fontsize=8, pad=18)
    strip.legend(handles=[Patch(color=STRIP_COLOURS[c], label=STRIP_LABELS[c]) for c in "rusbp."],
                 fontsize=7, ncol=6, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False,
                 borderaxespad=0.2)
    # Fixed margins (room for 28-character names on the left): measuring every label for tight_layout
    # cost a third of the render.
    inches = fig.get_size_inches()
    fig.subplots_adjust(left=1.7 / inches[0], right=0.98, top=1 - 0.45 / inches[1], bottom=0.3 / inches[1],
                        hspace=0.9 / inches[1] * 2)
    out = io.BytesIO()
    fig.savefig(out, format="png", pil_kwargs={"compress_level": 3})
    return out.getvalue()
