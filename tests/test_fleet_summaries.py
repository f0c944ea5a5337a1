"""Day summaries: the poller's CAS writes one `d|DD` field per Space-day into the month hash, and the digest
reads those (two reads per Space) instead of every day hash. They must say exactly what the day hashes say,
and a period with days written before summaries existed (or a mangled one) is read from the day hashes.

Stages are driven in the Hub emulator through the real poller with an injected clock; Redis is real.
"""

from __future__ import annotations

import calendar
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import pytest

from bot.alerts.keys import state_key
from bot.alerts.rollups import DayDelta, format_summary, month_key, parse_summary, summary_field, summary_of
from bot.alerts.transitions import SpaceState
from bot.fleet import report
from bot.fleet.store import FleetStore

MIN, HOUR, DAY = 60.0, 3600.0, 86400.0


def watch(bot, text: str, channel: str = "C1") -> None:
    seen = bot.command(f"/space watch {text}", channel=channel)
    assert "Watching" in seen["text"] or "Updated" in seen["text"], seen


def three_days_of(bot, hub) -> tuple[float, float]:
    """acme/chat ($0.60/h) and acme/free (cpu-basic) through builds, runs, a crash and an outage, sleep,
    over three UTC days; returns (start of the first whole day, now)."""
    start = (int(time.time()) // int(DAY) - 4) * DAY
    now = start + 7 * HOUR
    hub.add_space("acme/chat", stage="BUILDING", hardware="t4-medium", sleep=3600)
    hub.add_space("acme/free", stage="RUNNING", hardware="cpu-basic", sleep=3600)
    watch(bot, "acme/*")
    steps = [(0, {}), (20 * MIN, {"acme/chat": "RUNNING"}), (5 * HOUR, {"acme/chat": "RUNTIME_ERROR"}),
             (2 * HOUR, {"acme/chat": "RUNNING", "acme/free": "SLEEPING"}),
             (20 * HOUR, {"acme/chat": "SLEEPING", "acme/free": "RUNNING"}),  # runs over midnight
             (9 * HOUR, {"acme/chat": "RUNNING"}), (30 * HOUR, {"acme/chat": "PAUSED", "acme/free": "SLEEPING"}),
             (HOUR, {})]
    for seconds, stages in steps:
        now += seconds
        for space, stage in stages.items():
            hub.set_stage(space, stage, error="CUDA out of memory" if stage == "RUNTIME_ERROR" else None)
        bot.ctx.watcher.tick(now)
    return start, now


def test_summaries_say_what_the_day_hashes_say(bot, hub, redis_client):
    start, now = three_days_of(bot, hub)
    store = bot.ctx.fleet.store
    previous = report.days_between(start - 2 * DAY, start - 1)
    days = report.days_between(start, start + 3 * DAY - 1)
    spaces = ["acme/chat", "acme/free"]
    fast, slow = store.summaries(spaces, previous, days), store.periods(spaces, previous, days)
    for space in spaces:
        a, b = fast[space], slow[space]
        assert a.strips is None and b.strips is not None            # summaries carry no hour strips
        assert abs(a.previous - b.previous) < 1e-6
        assert [round(x, 6) for x in a.daily] == [round(x, 6) for x in b.daily]
        assert abs(a.total.cost - b.total.cost) < 1e-6
        assert (a.total.billed, a.total.up, a.total.incidents, a.total.longest_outage) == \
            (b.total.billed, b.total.up, b.total.incidents, b.total.longest_outage)
        assert a.state == b.state
    chat = slow["acme/chat"].total
    assert chat.billed > 0 and chat.incidents == 1 and chat.longest_outage == 2 * HOUR
    assert round(fast["acme/chat"].total.cost, 6) == round(chat.billed / 3600 * 0.6, 6)
    assert fast["acme/free"].total.cost == 0 and fast["acme/free"].total.up > 0


@pytest.mark.slow
def test_digest_figures_are_the_same_from_summaries_from_old_days_and_from_mangled_ones(bot, hub, redis_client):
    start, now = three_days_of(bot, hub)
    fleet = bot.ctx.fleet
    spaces = ["acme/chat", "acme/free"]

    def figures():
        snap, previous = fleet.period(spaces, start, start + 3 * DAY, 3, now)
        png = fleet.chart_png("digest", snap, start, start + 3 * DAY, now)
        rows = {r.space: (round(r.cost, 6), r.up, r.incidents, r.longest_outage, round(r.observed),
                          {d: round(c, 6) for d, c in r.daily.items()}, r.stage) for r in snap.rows}
        # The chart's strips are read from the day hashes for the rows it draws.
        strips = {r.space: "".join(r.strips.get(d, "") for d in sorted(r.daily)) for r in snap.rows}
        return rows, round(previous, 6), strips, png[:8]

    from_summaries = figures()
    assert "b" in from_summaries[2]["acme/chat"] and "r" in from_summaries[2]["acme/chat"]
    assert from_summaries[3] == b"\x89PNG\r\n\x1a\n"

    # Days written by a release before summaries existed: no `d|` fields at all.
    months = {time.strftime("%Y-%m", time.gmtime(t)) for t in (start - DAY, start, start + 3 * DAY)}
    saved = {}
    for space in spaces:
        for month in months:
            name = month_key(space, month)
            fields = [f for f in redis_client.hkeys(name) if f.startswith("d|")]
            saved[name] = {f: redis_client.hget(name, f) for f in fields}
            if fields:
                redis_client.hdel(name, *fields)
    assert sum(len(v) for v in saved.values()) >= 6
    assert figures() == from_summaries

    # A hand-edited (mangled) summary is not believed either.
    for name, fields in saved.items():
        if fields:
            redis_client.hset(name, mapping={**fields, next(iter(fields)): "12 not-a-number"})
    assert figures() == from_summaries


def test_a_long_stage_needs_no_summary_for_the_days_inside_it(bot, hub, redis_client):
    """A Space running since before the period has no roll-up for it yet: the report adds the stage it is in,
    and does not go looking in the day hashes for days that cannot have any."""
    start = (int(time.time()) // int(DAY) - 6) * DAY
    hub.add_space("acme/long", stage="RUNNING", hardware="t4-medium", sleep=-1)
    watch(bot, "acme/long")
    bot.ctx.watcher.tick(start + HOUR)
    now = start + 5 * DAY
    bot.ctx.watcher.tick(now)                          # still running: nothing rolled up
    redis_client.config_resetstat()
    snap, _ = bot.ctx.fleet.period(["acme/long"], start + DAY, start + 4 * DAY, 3, now)
    assert "cmdstat_hgetall" not in redis_client.info("commandstats")     # no day hash was read
    [row] = snap.rows
    assert round(row.cost, 2) == round(3 * 24 * 0.6, 2) and row.up == 3 * DAY


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.none(), st.tuples(st.integers(0, 86400), st.sampled_from([0.0, 0.4, 0.6, 23.5]),
                                                 st.integers(0, 86400), st.integers(0, 3), st.integers(0, 86400))),
                min_size=2, max_size=14), st.integers(0, 7))
def test_summed_in_redis_are_the_sums_of_the_days(redis_client, days, before):
    """Random day summaries across a month boundary, some days absent: Redis sums them as Python would."""
    before = min(before, len(days) - 1)
    first = calendar.timegm((2026, 10, 25, 0, 0, 0))
    names = [time.strftime("%Y-%m-%d", time.gmtime(first + i * DAY)) for i in range(len(days))]
    space = "acme/random"
    redis_client.delete(*(month_key(space, m) for m in ("2026-10", "2026-11")), state_key(space))
    # Its state says the bot first saw it after these days, so an absent day holds nothing to look for.
    redis_client.hset(state_key(space), mapping=SpaceState(space, "SLEEPING", since=first + 60 * DAY,
                                                           first_seen=first + 60 * DAY).to_fields())
    summaries = []
    for day, item in zip(names, days):
        numbers = [0, 0, 0, 0, 0]
        if item is not None:
            seconds, price, up, incidents, outage = item
            numbers = summary_of(DayDelta(add={f"b|t4-medium|{price:g}": seconds, "up": up, "inc": incidents},
                                          peak={"out": outage}))
            assert parse_summary(format_summary(numbers)) == numbers
            redis_client.hset(month_key(space, day[:7]), summary_field(day), format_summary(numbers))
        summaries.append(numbers)
    period = FleetStore(redis_client).summaries([space], names[:before], names[before:])[space]
    current = summaries[before:]
    assert period.strips is None and period.state.stage == "SLEEPING"
    assert period.previous == sum(n[0] for n in summaries[:before]) / 1e6
    assert period.daily == [n[0] / 1e6 for n in current]
    assert (period.total.billed, period.total.up, period.total.incidents, period.total.longest_outage) == (
        sum(n[1] for n in current), sum(n[2] for n in current), sum(n[3] for n in current),
        max(n[4] for n in current))
    expected = sum(s * p / 3600 for s, p, *_ in (d for d in days[before:] if d is not None))
    assert abs(period.total.cost - expected) < 1e-6 * len(days)
