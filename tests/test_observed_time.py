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


# ---------------------------------------------------------------------- projections


def sleeper(first_seen: float, stage: str = "RUNNING") -> SpaceState:
    return SpaceState("acme/chat", stage=stage, since=first_seen, version=first_seen, hardware="t4-medium",
                      sleep_time=3600, first_seen=first_seen)


def test_a_sleeping_space_is_not_projected_from_minutes():
    now = MIDNIGHT + 10 * 3600
    young = report.month_projection(facts_of(sleeper(now - 180)), now, 0.6)
    assert young.projected is None and young.observed == 180
    assert report.scope_projection({"acme/chat": young}) == (0.0, None, (180.0, "acme/chat"))
    ran = {"2026-11-30": Day(billed=3 * 3600), "2026-12-01": Day(billed=3 * 3600)}  # 6 h of the last day
    old = report.month_projection(facts_of(sleeper(now - report.PROJECT_AFTER), ran), now, 0.6)
    assert old.projected == (31 * DAY - 10 * 3600) / 3600 * 0.6 * 0.25


def test_settings_alone_project_a_never_sleeping_running_space():
    """Paid, never sleeps, running: billed until someone stops it, whatever the history."""
    now = MIDNIGHT + 10 * 3600
    state = SpaceState("acme/big", stage="RUNNING", since=now - 60, version=now, hardware="a10g-large",
                       sleep_time=-1, first_seen=now - 60)
    projection = report.month_projection(facts_of(state), now, 1.5)
    assert projection.projected == (31 * DAY - 10 * 3600) / 3600 * 1.5


def test_free_and_paused_spaces_do_not_wait_for_history():
    now = MIDNIGHT + 10 * 3600
    assert report.month_projection(facts_of(sleeper(now - 60, "PAUSED")), now, 0.6).projected == 0.0
    assert report.month_projection(facts_of(sleeper(now - 60)), now, 0.0).projected == 0.0


def test_the_words_say_how_long_it_was_observed():
    from bot.fleet.words import projection_words

    assert projection_words(None, (180.0, "acme/chat")) == (
        "not enough history yet to project: acme/chat observed for 3 min (it sleeps or stops, so a projection "
        "needs 24 h of its use)")
    assert projection_words(12.0, None) == "about $12.00 projected at today's hardware and sleep settings"


# ---------------------------------------------------------------------- durations observed


def test_a_duration_is_whole_only_when_the_bot_watched_the_stage_from_its_start():
    from bot.alerts.transitions import Observation, Policy, observe, unobserved

    policy, t = Policy(), MIDNIGHT
    state, _ = observe(None, Observation("acme/chat", "RUNNING", t), policy)          # first sighting
    state, [alert] = observe(state, Observation("acme/chat", "PAUSED", t + 45), policy)
    assert alert.seconds == 45 and alert.at_least                                     # running since before
    state, [alert] = observe(state, Observation("acme/chat", "RUNNING", t + 225), policy)
    assert alert.seconds == 180 and not alert.at_least                                # paused: seen from its start
    # Nobody watched it for an hour; read again, still running: it may have stopped and started meanwhile.
    state = unobserved(state, t + 300)
    state, _ = observe(state, Observation("acme/chat", "RUNNING", t + 3900), policy)
    state, [alert] = observe(state, Observation("acme/chat", "RUNTIME_ERROR", t + 3960), policy)
    assert alert.at_least


def test_the_words_of_a_lower_bound():
    from bot.alerts.transitions import Alert
    from bot.alerts.words import alert_line
    from bot.core.words import held_words

    assert held_words(45, whole=False) == "at least 45 s" and held_words(45) == "45 s"
    alert = Alert("transition", "acme/chat", MIDNIGHT, ("paused",), old="RUNNING", new="PAUSED", seconds=45,
                  at_least=True)
    assert "is paused (was running for at least 45 s)" in alert_line(alert, "https://hub")
    whole = Alert("transition", "acme/chat", MIDNIGHT, ("running",), old="PAUSED", new="RUNNING", seconds=180)
    assert "after 3 min paused" in alert_line(whole, "https://hub")
