"""What the bot says about time it observed: uptime within 0–100 %, projections only from enough history,
and no duration longer than what was observed stated as the whole (pure functions over plain values)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.alerts.rollups import DAY
from bot.alerts.transitions import SpaceState
from bot.fleet import report
from bot.fleet.store import Day, Facts

MIDNIGHT = 1_796_083_200.0  # 2026-12-01 00:00 UTC


def facts_of(state: SpaceState, days: dict[str, Day] | None = None) -> Facts:
    return Facts(state.space, state, days or {}, {"2026-12": 0.0}, {})


def uptime(state: SpaceState, start: float, end: float, now: float, until: float | None,
           days: dict[str, Day] | None = None) -> float | None:
    item = report.with_open_stint(facts_of(state, days), until, None)
    return report.summarise(item, start, end, now, until).uptime


def test_a_minute_old_running_space_is_at_most_100_percent():
    """The demo's first minute: a stint rounded to whole seconds covered a little more than the time observed."""
    first = MIDNIGHT + 10 * 3600 + 0.4
    state = SpaceState("acme/chat", stage="RUNNING", since=first, version=first + 70.9, first_seen=first)
    # The last poll was just now; the roll-up counts round(70.9) = 71 s of it.
    share = uptime(state, MIDNIGHT - 6 * DAY, first + 71.0, first + 71.0, first + 70.9)
    assert share == 1.0


def test_polling_late_is_not_downtime():
    """The stage it is in counts to the last read; time observed ends there too (it was 93.5 % before)."""
    first = MIDNIGHT + 3600.0
    state = SpaceState("acme/chat", stage="RUNNING", since=first, version=first + 55, first_seen=first)
    assert uptime(state, MIDNIGHT, first + 60, first + 60, first + 55) == 1.0


def test_a_stint_across_midnight_and_the_open_stint():
    """Asleep 22:00–02:00 across midnight (rolled up on both days), then running since 02:00, still open."""
    first = MIDNIGHT - 2 * 3600
    rolled = {"2026-11-30": Day(up=0), "2026-12-01": Day(up=0)}
    state = SpaceState("acme/chat", stage="RUNNING", since=MIDNIGHT + 2 * 3600, version=MIDNIGHT + 4 * 3600,
                       first_seen=first)
    now = MIDNIGHT + 4 * 3600
    # Observed 6 h, up 2 h of them.
    assert abs(uptime(state, MIDNIGHT - DAY, now, now, now, rolled) - 2 / 6) < 1e-9
    # Today only: observed 4 h (from midnight), up 2 h.
    assert abs(uptime(state, MIDNIGHT, now, now, now, rolled) - 0.5) < 1e-9


def test_not_observed_any_more_ends_at_its_last_read():
    first = MIDNIGHT + 3600.0
    state = SpaceState("acme/chat", stage="RUNNING", since=first, version=first + 7200, first_seen=first,
                       last_read=first + 3600, counted=first + 3600)
    rolled = {"2026-12-01": Day(up=3600)}
    assert uptime(state, MIDNIGHT, first + 7200, first + 7200, None, rolled) == 1.0


def test_nothing_observed_is_unknown_not_a_share():
    state = SpaceState("acme/chat", stage="RUNNING", since=MIDNIGHT, version=MIDNIGHT, first_seen=MIDNIGHT)
    assert uptime(state, MIDNIGHT, MIDNIGHT, MIDNIGHT, MIDNIGHT) is None


@given(first=st.floats(0, 3 * DAY), run=st.floats(0, 3 * DAY), lag=st.floats(0, 600), extra_up=st.integers(0, 3),
       start_back=st.floats(0, 7 * DAY))
def test_uptime_is_always_within_0_and_100(first, run, lag, extra_up, start_back):
    """Whatever the roll-ups say (a second or two of rounding on top), the share stays within 0–1."""
    first_seen = MIDNIGHT + first
    now = first_seen + run + lag
    state = SpaceState("acme/chat", stage="RUNNING", since=first_seen, version=first_seen + run,
                       first_seen=first_seen)
    rolled = {report.day_of(first_seen): Day(up=extra_up)}
    share = uptime(state, now - start_back, now, now, first_seen + run, rolled)
    assert share is None or 0.0 <= share <= 1.0
