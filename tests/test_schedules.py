"""Schedules and timed upgrades, driven like Slack does, with the poll leader's tick on an injected clock.

Nothing sleeps through a schedule: each test asks the store when the next run is and ticks right there.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

import pytest

from bot.core.errors import BadInput
from bot.core.flavors import Catalogue
from bot.schedules import cost
from bot.schedules.store import Schedule, Timed
from bot.schedules.when import next_after, next_runs, occurrences, parse_when, zone
from bot.schedules.words import EXTEND_ACTION, REVERT_ACTION
from tests.test_approvals import Pending, click

ROLES = {"SPACEOPS_APPROVERS": "UAPP", "SPACEOPS_ADMINS": "UADM"}
PAUSE = "/api/spaces/acme/demo/pause"
RESTART = "/api/spaces/acme/demo/restart"
HARDWARE = "/api/spaces/acme/chat/hardware"
PARIS = zone("Europe/Paris")


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def paris(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).astimezone(PARIS).strftime("%a %Y-%m-%d %H:%M %Z")


def runs(when: str, start: str, count: int = 4, tz=PARIS) -> list[str]:
    begin = at(start)
    return [datetime.fromtimestamp(r, timezone.utc).astimezone(tz).strftime("%a %Y-%m-%d %H:%M %Z")
            for r in next_runs(parse_when(when), tz, begin, begin, count)]


# ---------------------------------------------------------------- WHEN, pure


def test_every_when_form_parses_to_its_canonical_text():
    cases = {"weekdays 19:00": "weekdays 19:00", "daily 2:30": "daily 02:30",
             "Mon,Wed,Fri 08:00": "mon,wed,fri 08:00",
             "sat 10:00": "sat 10:00", "weekends 09:15": "weekends 09:15", "every 6h": "every 6h",
             "every 30m": "every 30m", 'cron "0 19 * * 1-5"': 'cron "0 19 * * 1-5"',
             "cron “0 19 * * 1-5”": 'cron "0 19 * * 1-5"', "at 2026-12-24 18:00": "at 2026-12-24 18:00",
             "friday,monday 7:05": "mon,fri 07:05"}
    for text, canonical in cases.items():
        assert parse_when(text).text == canonical, text


@pytest.mark.parametrize("text, says", [
    ("", "Say when"), ("weekdays", "is not a WHEN"), ("weekdays 25:00", "not a time of day"),
    ("funday 10:00", "not a day"), ("every 0m", "between 1 minute"), ("every 30s", "minutes, hours"),
    ("every soon", "every 30m"),
    ('cron "0 19 * *"', "5 fields"), ('cron "99 19 * * *"', "not a valid cron"),
    ('cron "0 19 * * 9"', "day of week"), ("at 2026-02-30 10:00", "not a date"), ("at tomorrow", "YYYY-MM-DD"),
])
def test_bad_when_is_a_sentence(text, says):
    with pytest.raises(BadInput, match=says):
        parse_when(text)


def test_time_zones_are_checked():
    assert str(zone("utc")) == "UTC" and str(zone("America/New_York")) == "America/New_York"
    for bad in ("Mars/Olympus", "../etc/passwd", "Europe/Paris; rm"):
        with pytest.raises(BadInput, match="not a time zone"):
            zone(bad)


def test_weekly_forms_in_a_zone():
    # Tuesday 2026-12-01, noon UTC.
    assert runs("weekdays 19:00", "2026-12-04T12:00:00+00:00") == [
        "Fri 2026-12-04 19:00 CET", "Mon 2026-12-07 19:00 CET", "Tue 2026-12-08 19:00 CET", "Wed 2026-12-09 19:00 CET"]
    assert runs("mon,wed,fri 08:00", "2026-12-01T12:00:00+00:00", 3) == [
        "Wed 2026-12-02 08:00 CET", "Fri 2026-12-04 08:00 CET", "Mon 2026-12-07 08:00 CET"]
    assert runs("sat 10:00", "2026-12-01T12:00:00+00:00", 2) == ["Sat 2026-12-05 10:00 CET", "Sat 2026-12-12 10:00 CET"]
    new_york = zone("America/New_York")
    assert runs("daily 09:00", "2026-12-01T12:00:00+00:00", 2, new_york) == [
        "Tue 2026-12-01 09:00 EST", "Wed 2026-12-02 09:00 EST"]  # 14:00 UTC: still ahead of noon UTC


def test_cron_uses_standard_weekday_numbers_and_either_day_field():
    assert runs('cron "0 19 * * 1-5"', "2026-12-04T12:00:00+00:00", 2) == [
        "Fri 2026-12-04 19:00 CET", "Mon 2026-12-07 19:00 CET"]
    assert runs('cron "30 9 * * 0"', "2026-12-01T12:00:00+00:00", 2) == [
        "Sun 2026-12-06 09:30 CET", "Sun 2026-12-13 09:30 CET"]
    assert runs('cron "30 9 * * 7"', "2026-12-01T12:00:00+00:00", 1) == ["Sun 2026-12-06 09:30 CET"]
    # Day 1 of the month OR a Sunday, as cron does.
    assert runs('cron "0 9 1 * 0"', "2026-11-20T12:00:00+00:00", 3) == [
        "Sun 2026-11-22 09:00 CET", "Sun 2026-11-29 09:00 CET", "Tue 2026-12-01 09:00 CET"]


def test_dst_weekends_in_paris():
    # Spring: 02:30 does not exist on Sunday 29 March 2026 (02:00 CET is followed by 03:00 CEST); it runs when
    # the clock passes it, at 03:00 CEST, not an hour later.
    assert runs("daily 02:30", "2026-03-27T12:00:00+00:00") == [
        "Sat 2026-03-28 02:30 CET", "Sun 2026-03-29 03:00 CEST", "Mon 2026-03-30 02:30 CEST",
        "Tue 2026-03-31 02:30 CEST"]
    # Every time the gap skips runs once, at the change; a cron time and a once `at` alike.
    assert runs('cron "*/20 2 * * *"', "2026-03-28T12:00:00+00:00", 4) == [
        "Sun 2026-03-29 03:00 CEST", "Mon 2026-03-30 02:00 CEST", "Mon 2026-03-30 02:20 CEST",
        "Mon 2026-03-30 02:40 CEST"]
    assert next_after(parse_when("at 2026-03-29 02:30"), PARIS, at("2026-03-28T12:00:00+00:00"), 0) == \
        at("2026-03-29T01:00:00+00:00")
    assert runs("daily 03:30", "2026-03-28T12:00:00+00:00", 1) == ["Sun 2026-03-29 03:30 CEST"]
    # Autumn: 02:30 happens twice on Sunday 25 October 2026; it runs once.
    assert runs("daily 02:30", "2026-10-24T12:00:00+00:00", 3) == [
        "Sun 2026-10-25 02:30 CEST", "Mon 2026-10-26 02:30 CET", "Tue 2026-10-27 02:30 CET"]
    # Office hours keep their wall-clock time across the change (17:00 UTC, then 18:00 UTC).
    fires = next_runs(parse_when("weekdays 19:00"), PARIS, at("2026-10-23T12:00:00+00:00"),
                      at("2026-10-23T12:00:00+00:00"), 2)
    assert [datetime.fromtimestamp(f, timezone.utc).hour for f in fires] == [17, 18]
    # `every` counts real hours: across the autumn change the wall clock shows 02:00 twice.
    assert runs("every 30m", "2026-10-24T23:00:00+00:00", 5) == [
        "Sun 2026-10-25 01:30 CEST", "Sun 2026-10-25 02:00 CEST", "Sun 2026-10-25 02:30 CEST",
        "Sun 2026-10-25 02:00 CET", "Sun 2026-10-25 02:30 CET"]


def test_at_runs_once_and_every_counts_from_its_start():
    start = at("2026-12-01T12:00:00+00:00")
    once = parse_when("at 2026-12-24 18:00")
    assert next_runs(once, PARIS, start, start) == [at("2026-12-24T17:00:00+00:00")]
    assert next_after(once, PARIS, at("2026-12-24T17:00:00+00:00"), start) is None
    every = parse_when("every 6h")
    assert next_runs(every, PARIS, start, start, 2) == [start + 6 * 3600, start + 12 * 3600]
    assert occurrences(every, PARIS, start, start + 13 * 3600, start) == [start + 6 * 3600, start + 12 * 3600]


def test_what_raises_spend():
    catalogue = Catalogue()
    assert not cost.raises_spend("pause", "a100-large", catalogue)
    assert cost.raises_spend("resume", "a100-large", catalogue)
    assert cost.raises_spend("restart", "t4-small", catalogue)
    assert not cost.raises_spend("resume", "cpu-basic", catalogue)
    assert cost.raises_spend("resume", None, catalogue)  # a namespace: any Space may be paid
    assert cost.raises_spend("hw", "t4-small", catalogue, flavor="a100-large")
    assert not cost.raises_spend("hw", "a100-large", catalogue, flavor="t4-small")
    assert cost.raises_spend("sleep", "t4-small", catalogue, sleep_seconds=7200, current_sleep=3600)
    assert cost.raises_spend("sleep", "t4-small", catalogue, sleep_seconds=-1, current_sleep=3600)
    assert not cost.raises_spend("sleep", "t4-small", catalogue, sleep_seconds=600, current_sleep=3600)
    assert not cost.raises_spend("sleep", "t4-small", catalogue, sleep_seconds=600, current_sleep=None)
    assert not cost.raises_spend("sleep", "cpu-basic", catalogue, sleep_seconds=-1, current_sleep=3600)
    assert cost.running_hours([0, 100 * 3600], [10 * 3600, 105 * 3600, 106 * 3600]) == 15


# ---------------------------------------------------------------- the bot


class Clock:
    def __init__(self, now: float):
        self.now = now


def only(bot, kind=Schedule):
    [record] = [r for r in bot.ctx.schedules.store.all() if isinstance(r, kind)]
    return record


def next_fire(bot, record_id: str, after: float | None = None) -> float:
    s = bot.ctx.schedules.store.get(record_id)
    return next_after(parse_when(s.when), zone(s.tz), after if after is not None else s.cursor, s.created_at)


def said(slack, channel: str = "C1", text: str = "") -> list[str]:
    return [p["text"] for p in slack.posts(channel) if text in p["text"]]


def schedule(bot, text: str, user: str = "U1") -> dict:
    seen = bot.command(f"/space schedule {text}", user=user)
    assert "scheduled" in seen["text"] or "approver" in seen["text"], seen["text"]
    return seen


def test_reply_states_the_next_three_runs_in_the_users_slack_zone(bot, hub, slack):
    hub.add_space("acme/demo", hardware="t4-small")
    slack.users["U1"] = {"tz": "Europe/Paris"}
    seen = schedule(bot, "acme/demo pause weekdays 19:00")
    assert seen["response_type"] == "in_channel"
    assert "pause `acme/demo` weekdays 19:00 (Europe/Paris)" in seen["text"]
    listed = re.findall(r"(Mon|Tue|Wed|Thu|Fri) \d{4}-\d\d-\d\d 19:00 CES?T", seen["text"])
    assert len(listed) == 3
    assert slack.of("users.info")
    # --tz wins over Slack's zone; a user Slack doesn't know gets UTC.
    assert "19:00 EST" in schedule(bot, "acme/demo pause weekdays 19:00 --tz America/New_York")["text"]
    assert "(UTC)" in schedule(bot, "acme/demo pause daily 19:00", user="U9")["text"]
    listed = bot.command("/space schedules acme/demo")["text"]
    assert listed.count("pause `acme/demo`") == 3 and "not run yet" in listed and "<@U1>" in listed


def test_bad_schedule_commands_are_sentences(bot, hub, slack):
    hub.add_space("acme/demo", hardware="t4-small")
    assert "not a schedule action" in bot.command("/space schedule acme/demo explode daily 10:00")["text"]
    assert "not a time zone" in bot.command("/space schedule acme/demo pause daily 10:00 --tz Nowhere/Land")["text"]
    assert "in the past" in bot.command("/space schedule acme/demo pause at 2020-01-01 10:00")["text"]
    assert "not found" in bot.command("/space schedule acme/nope pause daily 10:00")["text"]
    assert "no schedule" in bot.command("/space unschedule beef")["text"]
    assert bot.ctx.schedules.store.all() == []


def test_one_hub_call_per_occurrence_with_two_replicas(make_bot, hub, slack):
    hub.add_space("acme/demo", hardware="t4-small")
    a, b = make_bot(), make_bot()
    schedule(a, "acme/demo pause daily 19:00 --tz Europe/Paris")
    s = only(a)
    fire = next_fire(a, s.id)
    a.ctx.watcher.tick(fire - 30)
    b.ctx.watcher.tick(fire - 30)
    for bot in (b, a, b, a):
        bot.ctx.watcher.tick(fire + 5)
    # Even two "leaders" (the lease lost in between) claim each occurrence once.
    a.ctx.schedules.tick(fire + 6)
    b.ctx.schedules.tick(fire + 6)
    assert len(hub.calls("POST", PAUSE)) == 1
    assert said(slack, text=f"schedule `{s.id}`: paused `acme/demo`") != []
    assert len(said(slack, text="paused")) == 1
    entries = [(e.action, e.space, e.params.get("schedule")) for e in a.ctx.store.audit_entries("acme/demo")]
    assert ("schedule.pause", "acme/demo", s.id) in entries
    listed = a.command("/space schedules")["text"]
    assert "last: " + paris(fire) + " paused" in listed


def test_leader_handover_runs_the_occurrence_once(make_bot, hub, slack):
    hub.add_space("acme/demo", hardware="t4-small")
    a, b = make_bot(), make_bot()
    schedule(a, "acme/demo pause every 1h --tz UTC")
    s = only(a)
    fire = next_fire(a, s.id)
    assert a.ctx.watcher.tick(fire - 10).polled is not None
    assert a.ctx.watcher.leading
    a.ctx.watcher.stop(release=False)  # a dies holding the lease
    b.ctx.watcher.tick(fire + 1)        # the lease is still a's: b waits
    assert hub.calls("POST", PAUSE) == []
    b.ctx.watcher.tick(fire + 200)      # a's lease ran out: b leads, runs the missed-by-200-s run
    b.ctx.watcher.tick(fire + 260)
    assert len(hub.calls("POST", PAUSE)) == 1 and b.ctx.watcher.leading
    assert len(said(slack, text="paused")) == 1


def test_missed_runs_inside_and_outside_the_grace_window(bot, hub, slack):
    hub.add_space("acme/demo", hardware="t4-small")
    schedule(bot, "acme/demo pause daily 19:00 --tz Europe/Paris")
    s = only(bot)
    first = next_fire(bot, s.id)
    bot.ctx.watcher.tick(first + 10 * 60)  # 10 min late: inside the 15 min grace → runs late, once
    bot.ctx.watcher.tick(first + 11 * 60)
    assert len(hub.calls("POST", PAUSE)) == 1
    hub.set_stage("acme/demo", "RUNNING")
    # Down for three days: the runs are older than the grace → skipped, reported in one line.
    bot.ctx.watcher.tick(first + 3 * 86400 + 20 * 60)
    bot.ctx.watcher.tick(first + 3 * 86400 + 21 * 60)
    assert len(hub.calls("POST", PAUSE)) == 1
    skipped = said(slack, text="skipped")
    assert len(skipped) == 1 and "skipped 3 runs" in skipped[0] and "less than 15 min" in skipped[0]
    # The next run happens as usual.
    bot.ctx.watcher.tick(first + 4 * 86400 + 30)
    assert len(hub.calls("POST", PAUSE)) == 2


def test_grace_is_a_setting(make_bot, hub, slack):
    hub.add_space("acme/demo", hardware="t4-small")
    bot = make_bot(SPACEOPS_SCHEDULE_GRACE="1h")
    schedule(bot, "acme/demo pause daily 19:00 --tz UTC")
    bot.ctx.watcher.tick(next_fire(bot, only(bot).id) + 50 * 60)
    assert len(hub.calls("POST", PAUSE)) == 1


def test_people_win_between_occurrences(bot, hub, slack):
    hub.add_space("acme/demo", hardware="t4-small", stage="RUNNING")
    schedule(bot, "acme/demo pause daily 19:00 --tz Europe/Paris")
    s = only(bot)
    fire = next_fire(bot, s.id)
    bot.ctx.watcher.tick(fire + 5)
    assert len(hub.calls("POST", PAUSE)) == 1
    hub.set_stage("acme/demo", "RUNNING")  # someone resumes it by hand at 20:00 (on the Hub, no approval here)
    for minutes in (60, 120, 300):
        bot.ctx.watcher.tick(fire + minutes * 60)
    assert len(hub.calls("POST", PAUSE)) == 1  # not paused again until the next occurrence
    # Asleep at the next one: a pause does nothing and says nothing.
    hub.set_stage("acme/demo", "SLEEPING")
    before = len(slack.posts("C1"))
    bot.ctx.watcher.tick(fire + 86400 + 5)
    assert len(hub.calls("POST", PAUSE)) == 1 and len(slack.posts("C1")) == before
    assert "nothing to do" in bot.command("/space schedules")["text"]


def test_hub_failure_is_reported_and_retried_once_a_minute_later(bot, hub, slack):
    hub.add_space("acme/demo", hardware="t4-small")
    schedule(bot, "acme/demo pause daily 19:00 --tz UTC")
    s = only(bot)
    fire = next_fire(bot, s.id)
    hub.inject("POST", "/pause", status=503)
    bot.ctx.watcher.tick(fire + 5)
    [failed] = said(slack, text="could not act")
    assert "503" in failed and "Trying once more in 1 min" in failed
    bot.ctx.watcher.tick(fire + 30)   # not yet
    assert len(hub.calls("POST", PAUSE)) == 1
    bot.ctx.watcher.tick(fire + 70)
    bot.ctx.watcher.tick(fire + 130)
    assert len(hub.calls("POST", PAUSE)) == 2
    assert len(said(slack, text=f"schedule `{s.id}`: paused")) == 1


def test_pause_resume_and_remove_a_schedule(bot, hub, slack):
    hub.add_space("acme/demo", hardware="t4-small")
    schedule(bot, "acme/demo pause daily 19:00 --tz UTC")
    s = only(bot)
    fire = next_fire(bot, s.id)
    assert "skips its runs" in bot.command(f"/space schedule pause {s.id}")["text"]
    assert "already paused" in bot.command(f"/space schedule pause {s.id}")["text"]
    bot.ctx.watcher.tick(fire + 5)
    assert hub.calls("POST", PAUSE) == []
    assert "Next runs" in bot.command(f"/space schedule resume {s.id}")["text"]
    assert "removed schedule" in bot.command(f"/space unschedule {s.id}")["text"]
    bot.ctx.watcher.tick(fire + 86400 + 5)
    assert hub.calls("POST", PAUSE) == [] and "No schedules" in bot.command("/space schedules")["text"]


def test_operators_only(make_bot, hub, slack):
    hub.add_space("acme/demo", hardware="t4-small")
    bot = make_bot(SPACEOPS_OPERATORS="U1")
    assert "operator role" in bot.command("/space schedule acme/demo pause daily 19:00", user="U7")["text"]
    schedule(bot, "acme/demo pause daily 19:00 --tz UTC")
    s = only(bot)
    assert "operator role" in bot.command(f"/space unschedule {s.id}", user="U7")["text"]
    assert s.id in bot.command("/space schedules", user="U7")["text"]


def test_namespace_schedule_acts_on_each_space(bot, hub, slack):
    for name in ("acme/a", "acme/b"):
        hub.add_space(name, hardware="t4-small")
    hub.add_space("acme/c", hardware="t4-small", stage="PAUSED")
    schedule(bot, "acme/* pause daily 19:00 --tz UTC")
    s = only(bot)
    bot.ctx.watcher.tick(next_fire(bot, s.id) + 5)
    assert [len(hub.calls("POST", f"/api/spaces/acme/{n}/pause")) for n in "abc"] == [1, 1, 0]
    [line] = said(slack, text="paused")
    assert "`acme/a`" in line and "`acme/b`" in line and "acme/c" not in line


def approval_of(slack, text: str) -> Pending:
    channel, ts = next(k for k, m in slack.messages.items()
                       if m["thread_ts"] is None and text in json.dumps(m["blocks"]))
    blocks = slack.messages[(channel, ts)]["blocks"]
    request_id = next(e["value"] for b in blocks if b["type"] == "actions" for e in b["elements"])
    return Pending(request_id, channel, ts)


def test_a_schedule_that_raises_spend_is_approved_once_at_creation(make_bot, hub, slack):
    hub.add_space("acme/demo", hardware="a100-large", stage="PAUSED")
    bot = make_bot(**ROLES)
    schedule(bot, "acme/demo pause weekdays 19:00 --tz Europe/Paris")  # saves money: no approver
    seen = schedule(bot, "acme/demo resume weekdays 08:30 --tz Europe/Paris")
    assert "approver" in seen["text"] and "next runs would be" in seen["text"]
    assert len(bot.ctx.schedules.store.all()) == 1
    pending = approval_of(slack, "resume `acme/demo` weekdays 08:30")
    shown = json.dumps(slack.messages[(pending.channel, pending.ts)]["blocks"], ensure_ascii=False)
    # 5 days × 10.5 h × $2.50 × (365.25 / 12 / 7) ≈ $571 → about $570.
    assert "weekdays 08:30–19:00 on `a100-large`: about $570/month" in shown
    assert "Approved" in click(bot, slack, pending, "UAPP")
    assert "Approved" not in click(bot, slack, pending, "UADM")  # a second click applies nothing
    resume = next(r for r in bot.ctx.schedules.store.all() if r.action == "resume")
    assert resume.approved_by == "UAPP"
    assert len(said(slack, text="scheduled resume `acme/demo` weekdays 08:30")) == 1
    fire = next_fire(bot, resume.id)
    bot.ctx.watcher.tick(fire + 5)
    assert len(hub.calls("POST", RESTART)) == 1
    assert said(slack, text=f"schedule `{resume.id}`: resumed `acme/demo`")


def test_office_hours_on_a_bigger_gpu_pair_with_the_scheduled_move_back(make_bot, hub, slack):
    hub.add_space("acme/demo", hardware="t4-small")
    bot = make_bot(**ROLES)
    schedule(bot, "acme/demo hw t4-small weekdays 19:00 --tz Europe/Paris")  # cheaper: no approver
    assert "approver" in schedule(bot, "acme/demo hw a100-large weekdays 08:30 --tz Europe/Paris")["text"]
    pending = approval_of(slack, "hw `a100-large`")
    shown = json.dumps(slack.messages[(pending.channel, pending.ts)]["blocks"], ensure_ascii=False)
    assert "weekdays 08:30–19:00 on `a100-large`: about $570/month" in shown


def test_a_resume_without_a_scheduled_pause_says_up_to(make_bot, hub, slack):
    hub.add_space("acme/demo", hardware="t4-small", stage="PAUSED")
    bot = make_bot(**ROLES)
    schedule(bot, "acme/demo resume daily 08:00 --tz UTC")
    pending = approval_of(slack, "resume `acme/demo` daily 08:00")
    shown = json.dumps(slack.messages[(pending.channel, pending.ts)]["blocks"], ensure_ascii=False)
    assert "daily 08:00 on `t4-small`: up to $290/month (no scheduled pause stops it)" in shown


# ---------------------------------------------------------------- timed upgrades


def start_timed(bot, slack, hub, text="hw acme/chat a100-large --for 4h") -> Timed:
    seen = bot.command(f"/space {text}")
    assert "approver" in seen["text"], seen["text"]
    pending = approval_of(slack, "then back to")
    shown = json.dumps(slack.messages[(pending.channel, pending.ts)]["blocks"], ensure_ascii=False)
    assert "4 h on `a100-large`: $10.00" in shown
    assert "then back to `t4-small` ($0.40/h), sleeps after 1 h idle" in shown
    assert "Approved" in click(bot, slack, pending, "UAPP")
    assert len(hub.calls("POST", HARDWARE)) == 1
    assert hub.calls("POST", HARDWARE)[0].body.get("flavor") == "a100-large"
    return only(bot, Timed)


def test_timed_upgrade_apply_remind_extend_revert(make_bot, hub, slack):
    hub.add_space("acme/chat", hardware="t4-small", sleep=3600)
    bot = make_bot(**ROLES)
    t = start_timed(bot, slack, hub)
    assert t.ends_at - t.started_at == 4 * 3600 and t.revert_flavor == "t4-small" and t.revert_sleep == 3600
    assert said(slack, text="moved `acme/chat` to `a100-large`")
    hub.apply_requested_hardware("acme/chat")
    bot.ctx.watcher.tick(t.ends_at - 16 * 60)
    assert said(slack, text="goes back") == []
    bot.ctx.watcher.tick(t.ends_at - 15 * 60)
    bot.ctx.watcher.tick(t.ends_at - 14 * 60)
    [reminder] = [p for p in slack.posts("C1") if "goes back" in p["text"]]
    actions = [e["action_id"] for b in reminder["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert actions == [EXTEND_ACTION, REVERT_ACTION] and "needs an approver" in reminder["text"]
    # Extend costs money: the click asks an approver, who approves once.
    answer = bot.click(EXTEND_ACTION, t.id, user="U1")
    seen = slack.wait(lambda: slack.responses(answer.response_id))
    assert "approver" in seen[0]["text"]
    extension = approval_of(slack, "1 h longer")
    blocks = slack.messages[(extension.channel, extension.ts)]["blocks"]
    assert "1 h on `a100-large`: $2.50" in json.dumps(blocks, ensure_ascii=False)
    assert "Approved" in click(bot, slack, extension, "UAPP")
    assert only(bot, Timed).ends_at == t.ends_at + 3600
    bot.ctx.watcher.tick(t.ends_at + 5)
    assert len(hub.calls("POST", HARDWARE)) == 1  # not reverted at the old end
    bot.ctx.watcher.tick(t.ends_at + 3600 - 14 * 60)  # a reminder for the new end
    assert len([p for p in slack.posts("C1") if "goes back" in p["text"]]) == 2
    bot.ctx.watcher.tick(t.ends_at + 3600 + 5)
    bot.ctx.watcher.tick(t.ends_at + 3600 + 65)
    reverts = hub.calls("POST", HARDWARE)[1:]
    assert len(reverts) == 1 and reverts[0].body["flavor"] == "t4-small"
    assert said(slack, text="is back on `t4-small`")
    assert only(bot, Timed).status == "reverted"
    assert ("hw-for.revert", "ok") in [(e.action, e.result) for e in bot.ctx.store.audit_entries("acme/chat")]


def test_revert_does_nothing_after_a_manual_change(make_bot, hub, slack):
    hub.add_space("acme/chat", hardware="t4-small", sleep=3600)
    bot = make_bot(**ROLES)
    t = start_timed(bot, slack, hub)
    assert "moved" in bot.command("/space hw acme/chat t4-medium")["text"]  # by hand, cheaper: no approval
    bot.ctx.watcher.tick(t.ends_at + 5)
    flavors = [c.body["flavor"] for c in hub.calls("POST", HARDWARE)]
    assert flavors == ["a100-large", "t4-medium"]
    [line] = said(slack, text="changed by hand")
    assert "`t4-medium`" in line and "did nothing" in line
    assert only(bot, Timed).status == "overridden"


def test_revert_missed_while_the_bot_was_down_runs_when_it_is_back(make_bot, hub, slack):
    hub.add_space("acme/chat", hardware="t4-small", sleep=3600)
    bot = make_bot(**ROLES)
    t = start_timed(bot, slack, hub, "hw acme/chat a100-large --for 4h")
    bot.close()
    again = make_bot(**ROLES)
    again.ctx.watcher.tick(t.ends_at + 3 * 3600)
    assert [c.body["flavor"] for c in hub.calls("POST", HARDWARE)] == ["a100-large", "t4-small"]


def test_revert_now_button_and_short_windows(make_bot, hub, slack):
    hub.add_space("acme/chat", hardware="a100-large", sleep=3600)
    bot = make_bot(**ROLES)
    seen = bot.command("/space hw acme/chat t4-small --for 20m")  # cheaper for a while: no approver
    assert "until" in seen["text"] and seen["response_type"] == "in_channel"
    t = only(bot, Timed)
    bot.ctx.watcher.tick(t.started_at + 9 * 60)
    assert said(slack, text="goes back") == []
    bot.ctx.watcher.tick(t.started_at + 10 * 60)  # half of a window shorter than 30 min
    [reminder] = said(slack, text="goes back")
    assert "needs an approver" not in reminder
    answer = bot.click(REVERT_ACTION, t.id, user="U1")
    seen = slack.wait(lambda: slack.responses(answer.response_id))
    assert "Done" in seen[0]["text"], seen
    assert [c.body["flavor"] for c in hub.calls("POST", HARDWARE)] == ["t4-small", "a100-large"]
    bot.ctx.watcher.tick(t.ends_at + 5)
    assert len(hub.calls("POST", HARDWARE)) == 2


def test_asking_twice_for_the_same_window_posts_one_request(make_bot, hub, slack):
    hub.add_space("acme/chat", hardware="t4-small", sleep=3600)
    bot = make_bot(**ROLES)
    assert "approver" in bot.command("/space hw acme/chat a100-large --for 2h")["text"]
    assert "already" in bot.command("/space hw acme/chat a100-large --for 2h")["text"]
    assert len([p for p in slack.posts("C1") if "then back to" in json.dumps(p["blocks"])]) == 1


def test_for_takes_at_least_a_minute(bot, hub):
    hub.add_space("acme/chat", hardware="t4-small")
    assert "at least 1 minute" in bot.command("/space hw acme/chat a100-large --for 30s")["text"]
    assert "not a duration" in bot.command("/space hw acme/chat a100-large --for soon")["text"]


def test_a_revert_left_half_done_by_a_dead_replica_is_settled_from_the_hub(make_bot, hub, slack):
    hub.add_space("acme/chat", hardware="t4-small", sleep=3600)
    bot = make_bot(**ROLES)
    t = start_timed(bot, slack, hub)
    store = bot.ctx.schedules.store
    # A replica claimed the revert, made the Hub call, and died before recording it.
    store.update(t.id, status="reverting", lease_until=t.ends_at + 10)
    bot.command("/space hw acme/chat t4-small")
    calls = len(hub.calls("POST", HARDWARE))
    bot.ctx.watcher.tick(t.ends_at + 5)        # its lease still runs: nothing
    assert store.get(t.id).status == "reverting"
    bot.ctx.watcher.tick(t.ends_at + 60)
    assert store.get(t.id).status == "reverted" and len(hub.calls("POST", HARDWARE)) == calls
    assert said(slack, text="is back on `t4-small`")


def test_records_decode_tolerantly_and_a_bad_one_stops_no_other(bot, hub, slack, redis_client):
    hub.add_space("acme/demo", hardware="t4-small")
    schedule(bot, "acme/demo pause daily 19:00 --tz UTC")
    good = only(bot)
    store = bot.ctx.schedules.store
    redis_client.hset(store._key("0bad"), mapping={"id": "0bad", "kind": "schedule", "target": "acme/demo",
                                                   "action": "pause", "when": "fortnightly", "tz": "UTC",
                                                   "created_at": "oops", "from_the_future": "x"})
    redis_client.sadd(store._ids, "0bad")
    bad = store.get("0bad")
    assert (bad.created_at, bad.status, bad.v, bad.channel) == (0.0, "active", 1, "")
    bot.ctx.watcher.tick(next_fire(bot, good.id) + 5)
    assert len(hub.calls("POST", PAUSE)) == 1
    assert "0bad" in bot.command("/space schedules")["text"]


def test_revert_restores_the_sleep_time_the_window_changed(make_bot, hub, slack):
    hub.add_space("acme/chat", hardware="t4-small", sleep=3600)
    bot = make_bot(**ROLES)
    t = start_timed(bot, slack, hub)
    hub.spaces["acme/chat"]["gcTimeout"] = None  # the upgrade left it never sleeping
    bot.ctx.watcher.tick(t.ends_at + 5)
    revert = hub.calls("POST", HARDWARE)[-1].body
    assert revert["flavor"] == "t4-small" and revert.get("sleepTimeSeconds") == 3600
    assert hub.runtime("acme/chat")["gcTimeout"] == 3600


def test_a_namespace_that_cannot_be_listed_is_retried_once(bot, hub, slack):
    hub.add_space("acme/a", hardware="t4-small")
    schedule(bot, "acme/* pause daily 19:00 --tz UTC")
    fire = next_fire(bot, only(bot).id)
    hub.inject("GET", "/api/spaces", status=500, times=3)  # the client's own retries included
    bot.ctx.watcher.tick(fire + 5)
    assert said(slack, text="could not act") and hub.calls("POST", "/api/spaces/acme/a/pause") == []
    hub.clear_faults()
    bot.ctx.watcher.tick(fire + 65)
    assert len(hub.calls("POST", "/api/spaces/acme/a/pause")) == 1
