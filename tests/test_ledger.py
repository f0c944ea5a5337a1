"""The fleet counts only what it observed while watched (case 19.6), with one definition of the roll-up
arithmetic shared by Python and the Lua scripts, and a three-week ledger to the cent.

Stages are driven in the Hub emulator through the real poller with an injected clock (the fleet's commands
use the same clock); commands arrive as Slack-signed HTTP; Redis is the real redis-server.
"""

from __future__ import annotations

import calendar
import json
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
import pytest

from bot.alerts.keys import history_key, state_key, usage_key
from bot.alerts.rollups import apply_entry, day_key, hash_totals
from bot.alerts.scripts import CAS
from bot.core.words import as_text
from bot.fleet.store import KNOWN, FleetStore

MIN, HOUR, DAY = 60.0, 3600.0, 86400.0
MONDAY = float(calendar.timegm((2026, 11, 2, 0, 0, 0)))  # a Monday, the first whole week of a month


class Clock:
    def __init__(self, start: float):
        self.now = start

    def step(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def on_clock(bot, start: float) -> Clock:
    """The injected clock, for the poller's ticks and the fleet's commands alike."""
    clock = Clock(start)
    bot.ctx.fleet.clock = lambda: clock.now
    return clock


def watch(bot, text: str, channel: str = "C1") -> None:
    seen = bot.command(f"/space watch {text}", channel=channel)
    assert "Watching" in seen["text"] or "Updated" in seen["text"], seen


def unwatch(bot, text: str, channel: str = "C1") -> None:
    seen = bot.command(f"/space unwatch {text}", channel=channel)
    assert "Stopped watching" in seen["text"], seen


def tick(bot, clock: Clock, seconds: float = 0.0):
    return bot.ctx.watcher.tick(clock.step(seconds))


def shown(reply: dict) -> str:
    return as_text(reply.get("text", ""), reply.get("blocks"))


def line_of(text: str, space: str) -> str:
    found = [line for line in text.splitlines() if line.startswith(f"{space} —")]
    assert found, f"no line for {space} in:\n{text}"
    return found[0]


# ---------------------------------------------------------------------- case 19.6


def test_an_unwatched_space_is_billed_for_none_of_the_time_nobody_watched(bot, hub):
    """The A100 case: watched for an hour, unwatched for three days, watched again for an hour: 2 h billed,
    and while it is not watched no report shows it."""
    clock = on_clock(bot, MONDAY + 9 * HOUR)
    hub.add_space("acme/a100", hardware="a100-large")                     # $2.50/h, never sleeps
    hub.spaces["acme/a100"]["gcTimeout"] = None
    hub.add_space("acme/chat", hardware="cpu-basic")
    watch(bot, "acme/a100")
    watch(bot, "acme/chat")
    tick(bot, clock)
    tick(bot, clock, HOUR)
    unwatch(bot, "acme/a100")
    tick(bot, clock, MIN)
    for _ in range(3):
        tick(bot, clock, DAY)
    assert "no record of acme/a100" in shown(bot.command("/space cost acme/a100"))
    here = shown(bot.command("/space cost"))
    assert "acme/a100" not in here and "acme/chat —" in here and "Total: $0.00" in here

    watch(bot, "acme/a100")
    tick(bot, clock)
    tick(bot, clock, HOUR)
    text = shown(bot.command("/space cost acme/a100"))
    assert "acme/a100 — $5.00 · 2.0 h billed · a100-large" in text, text


def test_an_unwatch_no_leader_saw_is_not_billed_either(make_bot, hub):
    """The leader that saw the unwatch restarted before its next cycle: the next one finds, when the Space is
    watched again, that nobody watched it meanwhile (its retention mark is old) and bills none of that."""
    bot = make_bot()
    clock = on_clock(bot, MONDAY + 9 * HOUR)
    hub.add_space("acme/a100", hardware="a100-large")                     # $2.50/h, never sleeps
    hub.spaces["acme/a100"]["gcTimeout"] = None
    watch(bot, "acme/a100")
    tick(bot, clock)
    tick(bot, clock, HOUR)
    unwatch(bot, "acme/a100")
    bot.ctx.watcher.poller.forget()                                      # a restart: what it read is gone
    tick(bot, clock, MIN)
    tick(bot, clock, 3 * DAY)
    watch(bot, "acme/a100")
    tick(bot, clock)
    tick(bot, clock, HOUR)
    text = shown(bot.command("/space cost acme/a100"))
    assert "acme/a100 — $5.00 · 2.0 h billed · a100-large" in text, text


def test_a_deleted_space_still_watched_stops_accruing_at_its_last_read(bot, hub):
    clock = on_clock(bot, MONDAY + 9 * HOUR)
    hub.add_space("acme/gone", hardware="t4-medium")                      # $0.60/h, never sleeps
    hub.spaces["acme/gone"]["gcTimeout"] = None
    watch(bot, "acme/gone")
    tick(bot, clock)
    tick(bot, clock, HOUR)
    del hub.spaces["acme/gone"]
    tick(bot, clock, MIN)
    for _ in range(3):
        tick(bot, clock, DAY)
    text = shown(bot.command("/space cost acme/gone"))
    assert "acme/gone — $0.60 · 1.0 h billed" in text, text
    assert "This month: $0.60 so far · about $0.60 projected" in text           # not accruing either


@pytest.mark.slow
def test_an_unreadable_space_stops_accruing_and_counts_again_once_read(bot, hub):
    clock = on_clock(bot, MONDAY + 9 * HOUR)
    hub.add_space("acme/flaky", hardware="t4-small")                      # $0.40/h, never sleeps
    hub.spaces["acme/flaky"]["gcTimeout"] = None
    hub.add_space("other/fine", hardware="cpu-basic")
    watch(bot, "acme/flaky")
    watch(bot, "other/fine")
    tick(bot, clock)
    tick(bot, clock, HOUR)
    hub.inject("GET", "/api/spaces/acme/flaky", status=403, times=10_000)
    for _ in range(24):
        tick(bot, clock, HOUR)
    text = shown(bot.command("/space cost acme/flaky"))
    assert "acme/flaky — $0.40 · 1.0 h billed" in text, text                 # a day nobody could see
    hub.clear_faults()
    tick(bot, clock, HOUR)
    tick(bot, clock, HOUR)
    text = shown(bot.command("/space cost acme/flaky"))
    assert "acme/flaky — $0.80 · 2.0 h billed" in text, text


@pytest.mark.slow
def test_cost_of_a_past_month_projects_this_month_from_the_recent_days(bot, hub):
    clock = on_clock(bot, MONDAY - 5 * DAY)                              # late October
    hub.add_space("acme/chat", stage="SLEEPING", hardware="t4-medium", sleep=3600)
    watch(bot, "acme/chat")
    tick(bot, clock)
    for _ in range(14):                                                  # 3 h a day, into November
        hub.set_stage("acme/chat", "RUNNING")
        tick(bot, clock, 12 * HOUR)
        hub.set_stage("acme/chat", "SLEEPING")
        tick(bot, clock, 3 * HOUR)
        tick(bot, clock, 9 * HOUR)
    month = shown(bot.command("/space cost acme/chat --month"))
    past = shown(bot.command("/space cost acme/chat --month 2026-10"))
    projection = re.search(r"This month: .*? projected", month).group(0)
    assert projection in past, (projection, past)
    assert "about $0.00 projected" not in projection


@pytest.mark.slow
def test_a_flavor_with_an_unknown_price_is_shown_as_unknown_and_flagged_to_budgets(make_bot, hub, slack):
    bot = make_bot(SPACEOPS_ADMINS="UA", SPACEOPS_OPERATORS="UA,U1")
    clock = on_clock(bot, MONDAY + 9 * HOUR)
    assert "budget" in bot.command("/space budget acme/* 100/month", user="UA", channel="C9")["text"]
    assert "daily digest" in bot.command("/space digest <#C1|ops> daily 09:00", user="UA")["text"]
    hub.add_space("acme/new", hardware="h300-mystery")                   # not in any catalogue
    hub.spaces["acme/new"]["gcTimeout"] = None
    hub.add_space("acme/chat", hardware="t4-medium", sleep=3600)
    watch(bot, "acme/*")
    tick(bot, clock)
    hub.set_stage("acme/new", "SLEEPING")
    hub.set_stage("acme/chat", "SLEEPING")
    tick(bot, clock, 2 * HOUR)
    text = shown(bot.command("/space cost acme/*"))
    assert "acme/new — price unknown for 2.0 h · 2.0 h billed · h300-mystery" in text, text
    assert "acme/chat — $1.20 · 2.0 h billed" in text
    assert "Total: $1.20 (estimate)" in text
    assert "Not in the estimate: 2.0 h billed on flavors whose price is unknown (acme/new)" in text
    tick(bot, clock, 10 * MIN)
    flagged = [as_text(p["text"], p["blocks"]) for p in slack.posts("C9") if "price is unknown" in p["text"]]
    assert len(flagged) == 1 and "which its budget cannot count" in flagged[0], slack.posts("C9")
    assert "2.0 h billed on flavors whose price is unknown" in flagged[0]
    budget = bot.command("/space budget acme/*", channel="C9")["text"]
    assert "$1.20 spent this month" in budget and "price is unknown" in budget
    tick(bot, clock, HOUR)
    assert len([p for p in slack.posts("C9") if "price is unknown" in p["text"]]) == 1    # once a month

    clock.now = MONDAY + DAY + 9 * HOUR                                  # the day's digest
    tick(bot, clock)
    assert bot.ctx.fleet.digest_tick(clock.now) == 1
    tick(bot, clock, MIN)
    [digest] = [as_text(p["text"], p["blocks"]) for p in slack.posts("C1") if "Daily digest" in p["text"]]
    assert "Spend: $1.20" in digest and line_of(digest, "acme/new").endswith("price unknown for 2.0 h"), digest
    assert "Not in the estimate: 2.0 h billed on flavors whose price is unknown (acme/new)" in digest


def test_the_known_spaces_index_is_pruned_with_retention(bot, hub, redis_client):
    clock = on_clock(bot, MONDAY + 9 * HOUR)
    hub.add_space("acme/a", hardware="t4-small", sleep=3600)
    hub.add_space("acme/b", hardware="cpu-basic")
    watch(bot, "acme/*")
    tick(bot, clock)
    assert redis_client.smembers(KNOWN) == {"acme/a", "acme/b"}
    unwatch(bot, "acme/*")
    redis_client.sadd(KNOWN, "old/forgotten-long-ago")                  # indexed by a release that never pruned
    for _ in range(8):
        tick(bot, clock, DAY)
    assert redis_client.smembers(KNOWN) == set()
    assert not redis_client.exists(state_key("acme/a"))
    watch(bot, "acme/*")                                                 # seen again: indexed again
    tick(bot, clock, HOUR)
    assert redis_client.smembers(KNOWN) == {"acme/a", "acme/b"}
    assert "acme/a —" in shown(bot.command("/space cost acme/*"))


# ---------------------------------------------------------------------- one definition of the arithmetic

FLAVOR = st.sampled_from(["t4-medium", "a10g-large", "x", "", "a|b", "h:1", "é"])
PRICE = st.sampled_from(["0.6", "1.5", "0", "2.", "23.5", "?", "abc", "-1", "1e3", " 2", "", "0x10", "1_0"])
VALUE = st.one_of(st.integers(-10, 10**7).map(str), st.sampled_from(["x", "1.5", "", " 3", "0x1", "1e3"]))
STRIP = st.text(alphabet=".spurbx", max_size=30)


@st.composite
def roll_up_hash(draw) -> dict[str, str]:
    fields = {f"b|{draw(FLAVOR)}|{draw(PRICE)}": draw(VALUE) for _ in range(draw(st.integers(0, 6)))}
    for name in ("up", "inc", "out"):
        if draw(st.booleans()):
            fields[name] = draw(VALUE)
    if draw(st.booleans()):
        fields["h"] = draw(STRIP)
    if draw(st.booleans()):
        fields[draw(st.sampled_from(["b|x", "bb|x|1", "d|05", "b|x|1|2"]))] = draw(VALUE)
    return fields


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(roll_up_hash(), min_size=3, max_size=3))
def test_the_report_scripts_sum_a_hash_as_python_does(redis_client, hashes):
    """Random roll-up hashes, mangled fields included: the Lua of `/space cost` and of the digests sums
    each as `hash_totals` does (the one definition)."""
    space, days = "acme/random", ["2026-11-01", "2026-11-02", "2026-11-03"]
    redis_client.delete(*(day_key(space, d) for d in days), state_key(space))
    for day, fields in zip(days, hashes):
        if fields:
            redis_client.hset(day_key(space, day), mapping=fields)
    store = FleetStore(redis_client)
    facts = store.facts([space], days)[space]
    for day, fields in zip(days, hashes):
        want = hash_totals(fields)
        if not fields:
            assert day not in facts.days
            continue
        got = facts.days[day]
        assert abs(got.cost - want.cost) < 1e-6 * max(1.0, abs(want.cost)), (fields, got, want)
        assert (got.billed, got.unpriced, got.up, got.incidents, got.longest_outage, got.flavors) == \
            (want.billed, want.unpriced, want.up, want.incidents, want.longest_outage, want.flavors), fields
        assert got.strip == (want.strip if len(want.strip) == 24 else want.strip.ljust(24, ".")[:24])
    period = store.periods([space], days[:1], days[1:])[space]
    totals = [hash_totals(f) for f in hashes]
    assert abs(period.previous - totals[0].cost) < 1e-5 * max(1.0, totals[0].cost)
    assert abs(period.total.cost - totals[1].cost - totals[2].cost) < 1e-5 * max(1.0, period.total.cost)
    assert (period.total.billed, period.total.unpriced, period.total.up, period.total.incidents) == (
        sum(t.billed for t in totals[1:]), sum(t.unpriced for t in totals[1:]), sum(t.up for t in totals[1:]),
        sum(t.incidents for t in totals[1:]))
    assert period.total.longest_outage == max(t.longest_outage for t in totals[1:])


SMALL = st.integers(0, 10**9)
SUMMARY = st.one_of(st.lists(SMALL, min_size=5, max_size=6).map(lambda n: " ".join(map(str, n))),
                    st.sampled_from(["", "12 not-a-number", "1 2 3", "-5 7 x 9 1 2 3 4"]))


@st.composite
def stored_and_entry(draw) -> tuple[dict[str, str], dict]:
    stored: dict[str, str] = {}
    for name in draw(st.lists(st.sampled_from(["b|t4-medium|0.6", "b|x|?", "up", "inc"]), max_size=4, unique=True)):
        stored[name] = str(draw(SMALL))
    if draw(st.booleans()):
        stored["out"] = str(draw(SMALL))
    for name in draw(st.lists(st.sampled_from(["d|01", "d|02"]), max_size=2, unique=True)):
        stored[name] = draw(SUMMARY)
    if draw(st.booleans()):
        stored["h"] = draw(STRIP)
    entry: dict = {"k": 1}
    add = draw(st.dictionaries(st.sampled_from(["b|t4-medium|0.6", "b|x|?", "b|a10g-large|1.5", "up", "inc"]),
                               SMALL, max_size=4))
    if add:
        entry["add"] = add
    if draw(st.booleans()):
        entry["peak"] = {"out": draw(SMALL)}
    sums = draw(st.dictionaries(st.sampled_from(["d|01", "d|02", "d|03"]), st.lists(SMALL, min_size=6, max_size=6),
                                max_size=2))
    if sums:
        entry["sum"] = sums
    if draw(st.booleans()):
        entry["h"] = draw(st.text(alphabet=".spurb", min_size=24, max_size=24))
    return stored, entry


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stored_and_entry())
def test_the_poller_cas_applies_a_roll_up_as_python_does(redis_client, case):
    """Random stored hashes and roll-up entries: the CAS script (as the poller runs it) leaves the hash that
    `apply_entry` says."""
    stored, entry = case
    space = "acme/random"
    target = day_key(space, "2026-11-02")
    redis_client.delete(state_key(space), target)
    if stored:
        redis_client.hset(target, mapping=stored)
    cas = redis_client.register_script(CAS)
    keys = [state_key(space), usage_key(space), history_key(space), target]
    ok = cas(keys=keys, args=["", "1.0", "{}", "RUNNING", "", "", 10, "", json.dumps([entry]), 100])
    assert ok and ok[0] == 1
    assert redis_client.hgetall(target) == apply_entry(stored, entry)
    assert 0 < redis_client.ttl(target) <= 100 or not redis_client.exists(target)


# ---------------------------------------------------------------------- three weeks, to the cent

H = HOUR
END_H = 21 * 24 + 10                      # Monday 2026-11-23 10:00 UTC, after the third weekly digest
PRICE_CHANGE_H = 7 * 24                   # t4-medium goes from $0.60/h to $0.80/h (the Hub's catalogue)
GPU_DELETED_H = 10 * 24                   # acme/gpu is deleted while `acme/*` is watched
FLAKY_DOWN_H, FLAKY_UP_H = 3 * 24, 4 * 24  # lab/flaky cannot be read for a day
SOLO_OFF_H, SOLO_ON_H = 6 * 24, 12 * 24   # other/solo is unwatched for six days, then watched again

# The ledger, by hand: (Space, first hour, last hour, $/h) of every stretch observed while watched and
# billed. The poller reads every hour on the hour; a stretch ends at the last successful read.
LEDGER = (
    [("acme/chat", d * 24 + 9, d * 24 + 12, 0.60) for d in range(7)]           # 3 h a day, asleep the rest
    + [("acme/chat", d * 24 + 9, d * 24 + 12, 0.80) for d in range(7, 21)]     # at the new price
    + [("acme/gpu", 0, GPU_DELETED_H - 1, 1.50)]                               # last read the hour before
    + [("lab/flaky", 0, FLAKY_DOWN_H - 1, 0.40), ("lab/flaky", FLAKY_UP_H, END_H, 0.40)]
    + [("other/solo", 0, SOLO_OFF_H - 1, 0.40), ("other/solo", SOLO_ON_H, END_H, 0.40)]
)


def ledger(space: str | None, start_h: float, end_h: float, upto_h: float = END_H) -> tuple[float, float]:
    """(dollars, billed hours) the ledger has for `space` (None: every Space) in [start_h, end_h), as known at
    `upto_h` (a stretch still open then ends there)."""
    dollars = hours = 0.0
    for name, first, last, price in LEDGER:
        if space not in (None, name) or first >= upto_h:
            continue
        lo, hi = max(first, start_h), min(last, end_h, upto_h)
        if hi > lo:
            dollars += (hi - lo) * price
            hours += hi - lo
    return dollars, hours


def money(amount: float) -> str:
    return f"{'-' if amount < -0.004 else ''}${abs(amount):,.2f}"


@pytest.mark.slow
def test_three_weeks_of_cost_digests_and_budgets_equal_the_ledger_to_the_cent(make_bot, hub, slack):
    bot = make_bot(SPACEOPS_ADMINS="UA", SPACEOPS_OPERATORS="UA,U1", SPACEOPS_POLL_SECONDS="1h")
    bot.ctx.watcher.poller.catalogues.seconds = 0          # prices as the catalogue says at each tick
    clock = on_clock(bot, MONDAY)
    hub.add_space("acme/chat", stage="SLEEPING", hardware="t4-medium", sleep=3600)
    for space, flavor in (("acme/gpu", "a10g-large"), ("lab/flaky", "t4-small"), ("other/solo", "t4-small")):
        hub.add_space(space, hardware=flavor)
        hub.spaces[space]["gcTimeout"] = None              # never sleeps
    watch(bot, "acme/*")
    watch(bot, "lab/flaky")                                # read on its own: one Space that can fail alone
    watch(bot, "other/solo")
    assert "budget" in bot.command("/space budget acme/* 350/month", user="UA", channel="C9")["text"]
    budget_checks: list[tuple[float, float, dict[str, float]]] = []  # (hour, acme spent, per Space) by the ledger
    seen_during: dict[str, str] = {}

    for hour in range(END_H + 1):
        clock.now = MONDAY + hour * H
        day, at = divmod(hour, 24)
        if hour == 10:
            assert "weekly digest" in bot.command("/space digest <#C1|ops> weekly 09:00", user="U1")["text"]
        if day < 21 and at == 9:
            hub.set_stage("acme/chat", "RUNNING")
        if day < 21 and at == 12:
            hub.set_stage("acme/chat", "SLEEPING")
        if hour == PRICE_CHANGE_H:
            hub.add_flavor("t4-medium", 0.80)
        if hour == GPU_DELETED_H:
            del hub.spaces["acme/gpu"]
        if hour == FLAKY_DOWN_H:
            hub.inject("GET", "/api/spaces/lab/flaky", status=403, times=10_000)
        if hour == FLAKY_UP_H:
            hub.clear_faults()
        if hour == SOLO_OFF_H:
            unwatch(bot, "other/solo")
        if hour == SOLO_ON_H:
            watch(bot, "other/solo")
        bot.ctx.watcher.tick(clock.now)
        bot.ctx.fleet.digest_tick(clock.now)
        month = {s: ledger(s, -24, hour, hour)[0] for s in ("acme/chat", "acme/gpu")}   # since 2026-11-01
        budget_checks.append((hour, sum(month.values()), month))
        if hour == SOLO_OFF_H + 24:
            seen_during["solo unwatched"] = shown(bot.command("/space cost other/solo"))
        if hour == FLAKY_DOWN_H + 12:
            seen_during["flaky unreadable"] = shown(bot.command("/space cost lab/flaky --month"))
        if hour == GPU_DELETED_H + 48:
            seen_during["gpu deleted"] = shown(bot.command("/space cost acme/gpu --month"))
    at_the_end = shown(bot.command("/space cost --month", channel="C1"))
    bot.ctx.watcher.tick(clock.step(MIN))                 # what the last tick queued is delivered

    # `/space cost` while things happened.
    assert "no record of other/solo" in seen_during["solo unwatched"]
    dollars, hours = ledger("lab/flaky", -24, FLAKY_DOWN_H + 12, FLAKY_DOWN_H + 12)
    assert f"lab/flaky — {money(dollars)} · {hours:.1f} h billed" in seen_during["flaky unreadable"]
    assert "acme/gpu — $358.50 · 239 h billed" in seen_during["gpu deleted"]
    assert "This month: $358.50 so far · about $358.50 projected" in seen_during["gpu deleted"]

    # `/space cost --month` at the end: every Space of the channel, and the total, to the cent.
    text = at_the_end
    expected = {"acme/chat": (46.20, 63), "acme/gpu": (358.50, 239), "lab/flaky": (195.60, 489),
                "other/solo": (147.60, 369)}
    for space, (dollars, hours) in expected.items():
        assert ledger(space, -24, END_H) == (dollars, hours) or abs(ledger(space, -24, END_H)[0] - dollars) < 1e-9
        hours_text = f"{hours:.1f} h" if hours < 100 else f"{hours:,.0f} h"
        assert line_of(text, space).startswith(f"{space} — {money(dollars)} · {hours_text} billed"), text
    assert "Total: $747.90 (estimate)" in text
    # Projected: the never-sleeping ones for the 182 h left, acme/chat at its last week's share (3 h a day).
    assert "This month: $747.90 so far · about $911.70 projected" in text, text

    # The weekly digests: each week's spend of the Spaces the channel watched when it was posted, and the
    # change against the week before (of the same Spaces).
    digests = [as_text(p["text"], p["blocks"]) for p in slack.posts("C1") if "Weekly digest" in p["text"]]
    assert len(digests) == 3, [p["text"] for p in slack.posts("C1")]
    weeks = [(0, 7 * 24, ("acme/chat", "acme/gpu", "lab/flaky")),
             (7 * 24, 14 * 24, ("acme/chat", "acme/gpu", "lab/flaky", "other/solo")),
             (14 * 24, 21 * 24, ("acme/chat", "acme/gpu", "lab/flaky", "other/solo"))]
    for digest, (start_h, end_h, spaces) in zip(digests, weeks):
        posted_h = end_h + 9
        spend = sum(ledger(s, start_h, end_h, posted_h)[0] for s in spaces)
        before = sum(ledger(s, start_h - 7 * 24, start_h, posted_h)[0] for s in spaces)
        change = spend - before
        sign = "+" if change > 0.004 else ""
        assert f"Spend: {money(spend)} ({sign}{money(change)} vs the period before)" in digest, digest
        for space in spaces:
            assert f"{space} — " in digest and money(ledger(space, start_h, end_h, posted_h)[0]) in \
                line_of(digest, space), (space, digest)
        if "other/solo" not in spaces:
            assert "other/solo" not in digest
    idle = [d.split("Possible idle spend")[1] for d in digests]
    assert "acme/gpu" in idle[0] and "acme/gpu" not in idle[1] + idle[2]      # deleted: not spending any more
    assert "Spend: $321.80 (+$321.80 vs the period before)" in digests[0]
    assert "Spend: $209.70 (-$169.30 vs the period before)" in digests[1]
    assert "Spend: $151.20 (-$58.50 vs the period before)" in digests[2]

    # Budget alerts: each threshold once, at the first check where the ledger crosses it, saying what was spent.
    alerts = [as_text(p["text"], p["blocks"]) for p in slack.posts("C9") if "budget" in p["text"]]
    assert alerts[0].startswith("acme/* is projected to exceed its budget this month.")
    # Not from the first minutes (acme/chat sleeps when idle: its month is projected after a day of its use).
    assert "$0.00 spent this month" not in alerts[0] and "not enough history" not in alerts[0]
    for words, share in (("has spent 80% of its budget", 0.8), ("has spent its whole budget", 1.0)):
        [alert] = [a for a in alerts if words in a]
        hour, spent, per_space = next(c for c in budget_checks if c[1] >= share * 350 - 1e-9)
        assert f"{money(spent)} spent this month of a $350.00/month budget" in alert, (hour, spent, alert)
        for space, dollars in per_space.items():
            if dollars > 0:
                assert f"{space} — {money(dollars)}" in alert, (space, dollars, alert)
    assert len(alerts) == 3


def test_a_negative_longest_outage_reads_as_none(redis_client):
    """A mangled `out` (a negative duration) is no outage, in the day's facts and in a period's longest alike
    (Hypothesis found a day whose -1 the period scripts read as 0 and `hash_totals` as -1)."""
    space, days = "acme/random", ["2026-11-01", "2026-11-02", "2026-11-03"]
    for day in days:
        redis_client.hset(day_key(space, day), mapping={"b|t4-medium|0.6": "0", "out": "-1"})
    store = FleetStore(redis_client)
    assert hash_totals({"out": "-1"}).longest_outage == 0
    assert {d.longest_outage for d in store.facts([space], days)[space].days.values()} == {0}
    assert store.periods([space], days[:1], days[1:])[space].total.longest_outage == 0
