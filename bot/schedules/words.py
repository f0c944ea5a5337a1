"""What people read about schedules and timed upgrades: replies, announcements, reminders, approval texts."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from bot.core.flavors import Catalogue
from bot.core.markup import code, escape
from bot.core.words import (Reply, button, context, duration_words, flavor_words, money_words, notice_reply,
                            section, sleep_words, when_words)

EXTEND_ACTION = "schedule:extend"
REVERT_ACTION = "schedule:revert"
DONE_VERBS = {"pause": "paused", "resume": "resumed", "restart": "restarted", "hw": "moved",
              "sleep": "set the sleep time of"}


def local_words(ts: float, tz: ZoneInfo) -> str:
    """`Mon 2026-12-07 19:00 CET`: a time in the schedule's zone."""
    return datetime.fromtimestamp(ts, timezone.utc).astimezone(tz).strftime("%a %Y-%m-%d %H:%M %Z")


def action_words(action: str, flavor: str = "", sleep_seconds: int | None = None) -> str:
    if action == "hw":
        return f"hw {code(flavor)}"
    if action == "sleep":
        return "sleep " + ("never" if sleep_seconds is None or sleep_seconds < 0 else duration_words(sleep_seconds))
    return action


def schedule_words(s) -> str:
    """`pause `acme/demo` weekdays 19:00 (Europe/Paris)`."""
    return (f"{action_words(s.action, s.flavor, s.sleep_seconds)} {code(s.target)} {escape(s.when)} "
            f"({escape(s.tz)})")


def runs_words(runs: list[float], tz: ZoneInfo) -> str:
    return ", ".join(local_words(run, tz) for run in runs) if runs else "none (it has no time left to run)"


def created_reply(s, runs: list[float], tz: ZoneInfo) -> Reply:
    text = (f"<@{escape(s.creator)}> scheduled {schedule_words(s)} · id {code(s.id)}.\n"
            f"Next runs: {runs_words(runs, tz)}.")
    hint = (f"`/space schedule pause {s.id}` holds it until `/space schedule resume {s.id}`; "
            f"`/space unschedule {s.id}` removes it.")
    return Reply(text, [section(text), context(hint)], public=True)


def pending_reply(approval: Reply, s, runs: list[float], tz: ZoneInfo) -> Reply:
    extra = (f"The schedule {schedule_words(s)} can raise spend, so it starts once an approver approves it. "
             f"Its next runs would be: {runs_words(runs, tz)}.")
    return Reply(approval.text + "\n" + extra, [*approval.blocks, section(extra)], approval.public)


def approval_summary(s) -> str:
    return f"schedule {schedule_words(s)}"


def estimate_words(span: str, flavor: str, amount: float | None, bounded: bool) -> str:
    """`weekdays 08:30–19:00 on a100-large: about $575/month`."""
    where = f"on {code(flavor)}" if flavor else "on each Space's hardware"
    if amount is None:
        return f"{span} {where}: price unknown"
    cost = (f"${amount:,.0f}" if amount >= 100 else money_words(amount)) + "/month"
    if bounded:
        return f"{span} {where}: about {cost}"
    return f"{span} {where}: up to {cost} (no scheduled pause stops it)"


def hours_words(hours: float) -> str:
    return f"about {hours:.0f} h/month" if hours >= 10 else f"about {hours:.1f} h/month"


def span_words(start_when: str, stop_when: str) -> str:
    """`weekdays 08:30` + `weekdays 19:00` → `weekdays 08:30–19:00`; otherwise both, spelled out."""
    start_days, _, start_time = start_when.rpartition(" ")
    stop_days, _, stop_time = stop_when.rpartition(" ")
    if start_days and start_days == stop_days and ":" in start_time and ":" in stop_time:
        return f"{escape(start_days)} {start_time}–{stop_time}"
    return f"from {escape(start_when)} to {escape(stop_when)}"


def list_reply(schedules: list, timed: list, next_of, scope: str | None, catalogue: Catalogue) -> Reply:
    where = f" for {code(scope)}" if scope else ""
    if not schedules and not timed:
        return notice_reply(f"No schedules{where}. Make one with `/space schedule SPACE ACTION WHEN`, "
                            f"e.g. `/space schedule acme/demo pause weekdays 19:00`.")
    lines = [f"*Schedules{where}*:"]
    for s in schedules:
        tz_next, nxt = next_of(s)
        status = {"paused": " · *skipped for now* (`/space schedule resume " + s.id + "`)",
                  "finished": " · finished"}.get(s.status, "")
        last = (f"last: {local_words(s.last_fire, tz_next)} {escape(s.last_outcome)}" if s.last_fire
                else "last: not run yet")
        upcoming = f"next: {local_words(nxt, tz_next)}" if nxt and s.status == "active" else "next: —"
        lines.append(f"{code(s.id)} {schedule_words(s)} · by <@{escape(s.creator)}> · {upcoming} · {last}{status}")
    for t in timed:
        lines.append(f"{code(t.id)} {code(t.space)} on {flavor_words(t.flavor, catalogue)} until "
                     f"{when_words(t.ends_at)}, then back to {code(t.revert_flavor)} · by <@{escape(t.requester)}>"
                     + (f" · {escape(t.status)}" if t.status != "active" else ""))
    text = "\n".join(lines)
    return Reply(text, [section(text)])


def not_found(record_id: str) -> str:
    return f"There is no schedule {code(record_id)}. See `/space schedules`."


def removed_reply(user: str, s) -> Reply:
    text = f"<@{escape(user)}> removed schedule {code(s.id)} ({schedule_words(s)})."
    return Reply(text, [section(text)], public=True)


def timed_cancelled_reply(user: str, t) -> Reply:
    text = (f"<@{escape(user)}> cancelled the automatic revert of {code(t.space)} (timed upgrade {code(t.id)}): "
            f"it stays on {code(t.flavor)} until someone changes it.")
    return Reply(text, [section(text)], public=True)


def paused_reply(user: str, s, paused: bool, runs: list[float], tz: ZoneInfo) -> Reply:
    if paused:
        text = (f"<@{escape(user)}> paused schedule {code(s.id)} ({schedule_words(s)}): it skips its runs until "
                f"`/space schedule resume {s.id}`.")
    else:
        text = (f"<@{escape(user)}> resumed schedule {code(s.id)} ({schedule_words(s)}). "
                f"Next runs: {runs_words(runs, tz)}.")
    return Reply(text, [section(text)], public=True)


def already(s, paused: bool) -> Reply:
    return notice_reply(f"Schedule {code(s.id)} is already {'paused' if paused else 'running'}.")


# ---------------------------------------------------------------- runs


def ran_words(s, done: list[tuple[str, str]]) -> str:
    """`schedule 7f3a: paused acme/demo` (several Spaces of a namespace: listed)."""
    verb = DONE_VERBS.get(s.action, s.action)
    what = ", ".join(code(space) + (f" ({escape(detail)})" if detail else "") for space, detail in done[:20])
    more = f" and {len(done) - 20} more" if len(done) > 20 else ""
    return f":alarm_clock: schedule {code(s.id)}: {verb} {what}{more}."


def failed_words(s, failures: list[tuple[str, str]], retry: bool) -> str:
    reasons = "; ".join(f"{code(space)}: {reason}" for space, reason in failures[:5])
    reasons += f"; and {len(failures) - 5} more" if len(failures) > 5 else ""
    then = " Trying once more in 1 min." if retry else " Not tried again; the next run is at its usual time."
    return f":warning: schedule {code(s.id)} could not act ({escape(s.action)}): {reasons}{then}"


def skipped_words(s, count: int, latest: float, tz: ZoneInfo, grace: float) -> str:
    runs = "1 run" if count == 1 else f"{count} runs"
    return (f":fast_forward: schedule {code(s.id)} ({schedule_words(s)}) skipped {runs} missed while the bot "
            f"was away (latest {local_words(latest, tz)}); only the latest run missed by less than "
            f"{duration_words(grace)} runs late.")


# ---------------------------------------------------------------- timed upgrades


def timed_summary(space: str, flavor: str, seconds: int, revert_flavor: str) -> str:
    return (f"move {code(space)} to {code(flavor)} for {duration_words(seconds)}, then back to "
            f"{code(revert_flavor)}")


def return_words(revert_flavor: str, revert_sleep: int | None, catalogue: Catalogue) -> str:
    if revert_sleep is None:
        return f"then back to {flavor_words(revert_flavor, catalogue)}"
    sleep = sleep_words(None if revert_sleep < 0 else revert_sleep, revert_flavor)
    return f"then back to {flavor_words(revert_flavor, catalogue)}, {sleep}"


def window_words(seconds: float, flavor: str, total: float | None) -> str:
    """`4 h on a100-large: $10.00`."""
    price = money_words(total) if total is not None else "price unknown"
    return f"{duration_words(seconds)} on {code(flavor)}: {price}"


def timed_started(t, catalogue: Catalogue, user: str) -> str:
    return (f"<@{escape(user)}> moved {code(t.space)} to {flavor_words(t.flavor, catalogue)} until "
            f"{when_words(t.ends_at)} ({duration_words(t.window)}); "
            f"{return_words(t.revert_flavor, t.revert_sleep, catalogue)} (timed upgrade {code(t.id)}).")


def reminder(t, catalogue: Catalogue, extend_cost: float | None) -> Reply:
    cost = "" if not extend_cost else f" (+{money_words(extend_cost)}, needs an approver)"
    text = (f":hourglass_flowing_sand: {code(t.space)} goes back from {code(t.flavor)} to {code(t.revert_flavor)} "
            f"{when_words(t.ends_at)} (timed upgrade {code(t.id)}). Extend 1 h{cost}, or revert now?")
    blocks = [section(text), {"type": "actions", "elements": [
        button("Extend 1 h", EXTEND_ACTION, t.id, "primary"), button("Revert now", REVERT_ACTION, t.id)]}]
    return Reply(text, blocks, public=True)


def reverted(t, catalogue: Catalogue, by: str = "") -> str:
    who = f" (<@{escape(by)}> chose to revert now)" if by else ""
    return (f":leftwards_arrow_with_hook: {code(t.space)} is back on {flavor_words(t.revert_flavor, catalogue)} "
            f"after its timed upgrade to {code(t.flavor)}{who} (timed upgrade {code(t.id)}).")


def overridden(t, now_on: str) -> str:
    return (f":information_source: timed upgrade {code(t.id)} ended, but {code(t.space)} was changed by hand to "
            f"{code(now_on or 'none')} meanwhile, so the revert to {code(t.revert_flavor)} did nothing.")


def revert_failed(t, reason: str) -> str:
    return (f":warning: {code(t.space)} could not go back to {code(t.revert_flavor)} at the end of timed upgrade "
            f"{code(t.id)}: {reason} Trying again every minute; `/space hw {escape(t.space)} {t.revert_flavor}` "
            f"does it by hand.")


def extended(t, user: str) -> str:
    return (f"<@{escape(user)}> extended timed upgrade {code(t.id)}: {code(t.space)} stays on {code(t.flavor)} "
            f"until {when_words(t.ends_at)}.")


def not_active(t) -> Reply:
    return notice_reply(f"Timed upgrade {code(t.id)} of {code(t.space)} is over ({escape(t.status)}); "
                        f"nothing was changed.")


# ---------------------------------------------------------------- pacing (a namespace's Spaces, one by one)

NOT_REACHED_BUDGET = "not reached: the Hub's rate budget of the bot's token is nearly used up"
NOT_REACHED_DEADLINE = "not reached: this run took longer than its deadline"
