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

from bot.alerts.keys import history_key, state_key, usage_key
from bot.alerts.rollups import apply_entry, day_key, hash_totals, month_key
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


def test_a_flavor_with_an_unknown_price_is_shown_as_unknown_and_flagged_to_budgets(make_bot, hub, slack):
    bot = make_bot(SPACEOPS_ADMINS="UA")
    clock = on_clock(bot, MONDAY + 9 * HOUR)
    assert "budget" in bot.command("/space budget acme/* 100/month", user="UA", channel="C9")["text"]
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
