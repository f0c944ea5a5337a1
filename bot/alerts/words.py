"""The words of alerts, incident threads, summaries and the watch/mute replies."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bot.alerts.transitions import ERRORS
from bot.core.blocks import clip
from bot.core.markup import code, escape
from bot.core.words import (STAGE_EMOJI, Reply, button, context, duration_words, held_words, notice_reply, section,
                            space_link, stage_words, when_words)

ALERT_ACTIONS = {"restart": "alert:restart", "resume": "alert:resume", "sleep": "alert:sleep1h"}


LOG_CHARS = 2500
SUMMARY_LINES = 40


def _change_words(old: str | None, new: str | None) -> str:
    """What people say: "crashed", "back up", "asleep", "woke up"…"""
    if new == "RUNNING" and old in ("SLEEPING", "STOPPED"):
        return "woke up"
    if new == "RUNNING":
        return "is back up" if old not in ("RUNNING_BUILDING", "RUNNING_APP_STARTING", None) else "is running"
    if new in ("SLEEPING", "STOPPED"):
        return "went to sleep"
    if new == "RUNTIME_ERROR":
        return "crashed"
    if new == "BUILD_ERROR":
        return "failed to build"
    return f"is {stage_words(new)}"


def _alert_buttons(alert) -> list[dict[str, Any]]:
    if alert.kind in ("transition", "crashloop") and alert.new in ("RUNTIME_ERROR", "BUILD_ERROR"):
        return [button("Restart", ALERT_ACTIONS["restart"], alert.space, "danger")]
    if alert.kind == "transition" and alert.new == "PAUSED":
        return [button("Resume", ALERT_ACTIONS["resume"], alert.space, "primary")]
    if alert.kind == "cost":
        return [button("Set 1 h sleep", ALERT_ACTIONS["sleep"], alert.space, "primary")]
    return []


def alert_line(alert, hub_url: str) -> str:
    """One line for an alert: used alone, in summaries and in mute-ended notes."""
    link = f"*{space_link(alert.space, hub_url)}*"
    if alert.kind == "settled":
        loop = duration_words(alert.extra.get("loop") or 0)
        return (f"{STAGE_EMOJI.get(alert.new or '', ':large_blue_circle:')} {link} has settled: "
                f"{stage_words(alert.new)} for {duration_words(alert.seconds or 0)}, after a crash loop of {loop}")
    if alert.kind == "transition":
        emoji = STAGE_EMOJI.get(alert.new or "", ":large_blue_circle:")
        if not alert.seconds or not alert.old:
            was = ""
        elif alert.at_least:  # it was in that stage when the bot first saw it: only a lower bound is known
            was = f" (was {stage_words(alert.old)} for at least {duration_words(alert.seconds)})"
        else:
            was = f" after {duration_words(alert.seconds)} {stage_words(alert.old)}"
        dev = " (dev mode: the app restarts in place; further restarts are not reported)" \
            if alert.extra.get("dev_reload") else ""
        return f"{emoji} {link} {_change_words(alert.old, alert.new)}{was}{_commit_words(alert, hub_url)}{dev}"
    if alert.kind == "hardware":
        return f":gear: {link} now runs on {code(alert.hardware)}: the requested hardware is applied"
    if alert.kind == "stuck":
        return (f":hourglass: {link} has been {stage_words(alert.new)} for "
                f"{held_words(alert.seconds or 0, not alert.at_least)}; "
                f"it may be stuck. {_billing_words(alert)}")
    if alert.kind == "crashloop":
        window = duration_words(alert.extra.get("window", 0))
        return (f":rotating_light: {link} is in a crash loop{_commit_words(alert, hub_url)}: "
                f"{alert.extra.get('errors')} crashes in {window} "
                f"(now {stage_words(alert.new)}). What follows goes in this thread until it has run for "
                f"{duration_words(alert.extra.get('settle', 600))}")
    if alert.kind == "cost":
        return (f":moneybag: {link} runs on paid {code(alert.hardware)} and never sleeps: "
                f"about ${alert.extra.get('per_day', 0):,.2f}/day, running for "
                f"{held_words(alert.at - (alert.since or alert.at), not alert.at_least)}")
    if alert.kind == "unreadable" and alert.reason == "404":
        return (f":grey_question: can't read {link}: it is gone from the Hub (404: deleted, renamed, or hidden "
                f"from the bot's token). This channel still watches it; `/space unwatch {alert.space}` stops that")
    if alert.kind == "unreadable" and alert.reason in ("401", "403"):
        return f":no_entry: can't read {link}: the bot's token may no longer read it ({alert.reason})"
    if alert.kind == "unreadable":
        since = time.strftime("%H:%M", time.gmtime(alert.since or alert.at))
        return f":grey_question: can't read {link} since {since} UTC: {escape(alert.reason or 'unknown error')}"
    if alert.kind == "readable":
        return f":white_check_mark: {link} can be read again; it is {stage_words(alert.new)}"
    return f"{link}: {escape(alert.kind)}"


def _commit_words(alert, hub_url: str) -> str:
    """" after push 3f2a1c9" with a link to the commit, when a push came shortly before."""
    sha = str(alert.extra.get("commit") or "")
    if not sha.isalnum():
        return ""
    return f" after push <{hub_url}/spaces/{alert.space}/commit/{sha}|`{sha[:7]}`>"


def _billing_words(alert) -> str:
    """Stuck alerts say whether the wait costs money: the Hub bills starting and running, not building."""
    price = alert.extra.get("per_hour")
    if not alert.extra.get("billed"):
        return "Building is not billed."
    if price:
        return f"It is billed meanwhile: {code(alert.hardware or '?')} at ${price:,.2f}/h."
    if price == 0:
        return f"It is billed while starting, but {code(alert.hardware or '?')} is free."
    return "It is billed meanwhile at its hardware's hourly price."


def alert_message(alert, hub_url: str) -> Reply:
    """The message a watching channel gets for one alert."""
    line = alert_line(alert, hub_url)
    details = []
    if alert.kind == "transition" and alert.hardware:
        details.append(f"Hardware: {code(alert.hardware)}"
                       + (" (requested hardware applied)" if alert.extra.get("hardware_applied") else ""))
    if alert.error and alert.kind in ("transition", "crashloop"):
        details.append(f"Error: ```{escape(clip(str(alert.error), 1500))}```")
    blocks = [section(line + ("\n" + "\n".join(details) if details else ""))]
    if alert.logs:
        text = "\n".join(alert.logs)[-LOG_CHARS:]
        blocks.append(section(f"Last log lines:\n```{escape(text)}```"))
    elif alert.extra.get("logs") == "unreadable":
        blocks.append(context("No log lines could be read for this Space."))
    buttons = _alert_buttons(alert)
    if buttons:
        blocks.append({"type": "actions", "block_id": f"alert:{alert.id}"[:255], "elements": buttons})
    blocks.append(context(f"{code(alert.new or alert.old or '?')} · {when_words(alert.at)} · "
                          f"<{hub_url}/spaces/{alert.space}|Open on Hugging Face>"))
    return Reply(line, blocks)


def recovered_message(root_text: str, root_blocks: list[dict[str, Any]] | None, started: float,
                      recovered: float) -> Reply:
    """The first message of an incident, edited when the Space is running again."""
    note = f":white_check_mark: recovered after {duration_words(max(0.0, recovered - started))}"
    blocks = [b for b in (root_blocks or []) if b.get("type") != "actions"]
    return Reply(f"{root_text} — {note}", blocks + [context(note)])


def downtime_summary(alerts: list, hub_url: str, gap: float) -> Reply:
    """One message per channel after polling resumed, instead of a storm or nothing."""
    lines = [alert_line(a, hub_url) for a in alerts[:SUMMARY_LINES]]
    if len(alerts) > SUMMARY_LINES:
        lines.append(f"…and {len(alerts) - SUMMARY_LINES} more, every one listed in this thread")
    head = (f":rewind: Space Ops could not poll for {duration_words(gap)}. "
            f"{len(alerts)} change{'s' if len(alerts) != 1 else ''} meanwhile:")
    text = head + "\n" + "\n".join(lines)
    return Reply(head, [section(text)])


def burst_message(alerts: list) -> Reply:
    """One message for many alerts to one channel at once (an org-wide outage): counts, the list in the thread."""
    spaces = sorted({a.space for a in alerts})
    namespaces = sorted({s.split("/")[0] for s in spaces})
    whose = f"of {code(namespaces[0])}" if len(namespaces) == 1 else f"in {len(namespaces)} namespaces"
    counts: dict[str, int] = {}
    for alert in alerts:
        word = (_change_words(alert.old, alert.new) if alert.kind in ("transition", "settled")
                else _KIND_WORDS.get(alert.kind, alert.kind))
        counts[word] = counts.get(word, 0) + 1
    parts = ", ".join(f"{n:,} {escape(word)}" for word, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    head = (f":rotating_light: {len(spaces):,} Space{'s' if len(spaces) != 1 else ''} {whose} changed stage: {parts}. "
            f"Every one is listed in this thread.")
    return Reply(head, [section(head)])


_KIND_WORDS = {"hardware": "hardware applied", "stuck": "may be stuck", "cost": "cost warning",
               "unreadable": "can't be read", "readable": "can be read again"}


def burst_parts(alerts: list, hub_url: str, section_chars: int = 2900, sections: int = 4) -> list[Reply]:
    """The thread of a burst: every alert's line, packed into as few messages as Slack's limits allow."""
    chunks: list[str] = []
    for line in (alert_line(a, hub_url) for a in alerts):
        if chunks and len(chunks[-1]) + 1 + len(line) <= section_chars:
            chunks[-1] += "\n" + line
        else:
            chunks.append(line[:section_chars])
    groups = [chunks[i:i + sections] for i in range(0, len(chunks), sections)]
    replies = []
    for n, group in enumerate(groups, 1):
        note = f"{n} of {len(groups)}" if len(groups) > 1 else ""
        text = f"Spaces that changed ({note})" if note else "Spaces that changed"
        replies.append(Reply(text, [section(c) for c in group] + ([context(note)] if note else [])))
    return replies


def mute_ended_message(target: str, count: int, latest: str, hub_url: str) -> Reply:
    text = (f":bell: The mute on {code(target)} is over. {count} alert{'s' if count != 1 else ''} "
            f"came meanwhile; the latest: {latest}")
    return Reply(text, [section(text)])


def only_words(only) -> str:
    return ", ".join(sorted(only)) if only else "all alerts"


@dataclass(frozen=True)
class FleetNow:
    """A namespace's Spaces as listed now: Space → stage, and those whose names may show where the reply goes."""

    stages: dict[str, str]
    named: set[str]


# The order stages are counted in ("3 running, 1 crashed, 1 asleep, 1 paused"): the ones to act on early.
COUNT_ORDER = ("running", "running, rebuilding", "running, restarting", "crashed", "build failed", "config error",
               "no app file", "building", "starting", "asleep", "paused")
MAX_BROKEN_LINES = 10


def fleet_now_words(target: str, fleet: FleetNow) -> str:
    """"acme/*: 6 Spaces · 3 running, 1 crashed, 1 asleep, 1 paused", then one line per broken Space."""
    counts: dict[str, int] = {}
    for stage in fleet.stages.values():
        label = stage_words(stage)
        counts[label] = counts.get(label, 0) + 1
    ranked = sorted(counts.items(), key=lambda c: (COUNT_ORDER.index(c[0]) if c[0] in COUNT_ORDER
                                                   else len(COUNT_ORDER), c[0]))
    total = len(fleet.stages)
    head = f"{code(target)}: {total} Space{'s' if total != 1 else ''}"
    if not total:
        return head + " yet"
    lines = [head + " · " + ", ".join(f"{n} {label}" for label, n in ranked)]
    broken = sorted(space for space, stage in fleet.stages.items() if stage in ERRORS)
    shown = [space for space in broken if space in fleet.named]
    for space in shown[:MAX_BROKEN_LINES]:
        stage = fleet.stages[space]
        lines.append(f"{STAGE_EMOJI.get(stage, ':red_circle:')} {code(space)} is {stage_words(stage)} "
                     f"({code(stage)}): `/space status {escape(space)}` shows its error")
    rest = len(broken) - min(len(shown), MAX_BROKEN_LINES)
    if rest:
        private = len(broken) - len(shown)
        lines.append(f"…and {rest} more broken" + (f" ({private} private, named only where its details may show)"
                                                    if private else ""))
    return "\n".join(lines)


def watch_reply(target: str, channel: str, only, stage: str | None, existed: bool,
                fleet: FleetNow | None = None) -> Reply:
    """The watch is set; what it watches is doing this now (a Space's stage, or a namespace's summary)."""
    now = f" It is {stage_words(stage)} now." if stage else ""
    verb = "Updated the watch on" if existed else "Watching"
    text = f"{verb} {code(target)} in <#{escape(channel)}>: {only_words(only)}.{now}"
    blocks = [section(text)]
    if fleet is not None:
        summary = fleet_now_words(target, fleet)
        blocks.append(section(summary))
        text += "\n" + summary.splitlines()[0]
    elif target.endswith("/*"):
        blocks.append(context("Its Spaces could not be listed just now; the alerts will say what changes."))
    return Reply(text, blocks, public=True)


def unwatch_reply(target: str, channel: str, existed: bool) -> Reply:
    if not existed:
        return notice_reply(f"<#{escape(channel)}> does not watch {code(target)}; nothing to stop.")
    text = f"Stopped watching {code(target)} in <#{escape(channel)}>."
    return Reply(text, [section(text)], public=True)


def watches_reply(watches: list, channel: str | None, mutes: dict | None = None) -> Reply:
    """`watches` is a list of (channel, target, only); `mutes` maps (channel, target) → until."""
    mutes = mutes or {}
    scope = f"<#{escape(channel)}>" if channel else "this workspace"
    if not watches:
        return notice_reply(f"Nothing is watched in {scope}. Try `/space watch acme/chat`.")
    rows = []
    for chan, target, only in sorted(watches):
        muted = mutes.get((chan, target))
        rows.append(f"{code(target)}" + ("" if channel else f" in <#{escape(chan)}>") + f" — {only_words(only)}"
                    + (f" (muted until {when_words(muted)})" if muted else ""))
    text = f"*Watched in {scope}:*\n" + "\n".join(rows)
    return Reply(text, [section(text)])


def mute_reply(target: str, channel: str, until: float) -> Reply:
    return notice_reply(f"Muted {code(target)} in <#{escape(channel)}> until {when_words(until)}. "
                        f"You'll get one line when it ends if anything happened.")


def unmute_reply(target: str, channel: str, existed: bool) -> Reply:
    if not existed:
        return notice_reply(f"{code(target)} is not muted in <#{escape(channel)}>.")
    return notice_reply(f"Unmuted {code(target)} in <#{escape(channel)}>.")


# ---------------------------------------------------------------------- command follow-through


def precise_duration(seconds: float) -> str:
    """"40 s", "2 min 13 s", "1 h 5 min": how long a change took, to the second while it is short."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        minutes, rest = divmod(seconds, 60)
        return f"{minutes} min" + (f" {rest} s" if rest else "")
    return duration_words(seconds)


def follow_status(stage: str, elapsed: float, moved: bool, error: str | None = None,
                  stopped: bool = False) -> str:
    """One line under a change announcement saying where the Space is now."""
    took = precise_duration(elapsed)
    if stopped:
        return f":hourglass: still {stage_words(stage)} after {duration_words(elapsed)}: stuck?"
    if stage == "RUNTIME_ERROR":
        return f":red_circle: crashed after {took}" + (f": {escape(clip(error, 300))}" if error else "")
    if stage in ("BUILD_ERROR", "CONFIG_ERROR", "NO_APP_FILE"):
        return f":red_circle: {stage_words(stage)} after {took}" + (f": {escape(clip(error, 300))}" if error else "")
    if stage == "RUNNING":
        return f":large_green_circle: running again after {took}" if moved else ":large_green_circle: running"
    if stage in ("BUILDING", "APP_STARTING", "RUNNING_BUILDING", "RUNNING_APP_STARTING"):
        return f":hammer_and_wrench: {stage_words(stage)}… ({duration_words(elapsed)})"
    return f"{STAGE_EMOJI.get(stage, ':large_blue_circle:')} now {stage_words(stage)}"


def follow_hardware_status(flavor: str, stage: str, hardware: str | None, requested: str | None, elapsed: float,
                           stopped: bool = False) -> tuple[str, bool]:
    """(the line under an approved hardware move, whether it is the last): "now running on `a10g-small` after
    2 min", or moving, or what the Hub reports instead of the approved flavor."""
    took = precise_duration(elapsed)
    if stage == "RUNNING" and hardware == flavor:
        return f":large_green_circle: now running on {code(flavor)} after {took}", True
    if requested and requested != flavor:
        return (f":warning: the Hub now requests {code(requested)}, not the approved {code(flavor)} "
                f"({stage_words(stage)} on {code(hardware or 'none')})"), True
    if stopped:
        return (f":hourglass: not on {code(flavor)} after {duration_words(elapsed)}: still {stage_words(stage)} "
                f"on {code(hardware or 'none')}"), True
    return f":hammer_and_wrench: moving to {code(flavor)}: {stage_words(stage)}… ({duration_words(elapsed)})", False


def follow_hidden(space: str) -> str:
    ns = space.split("/", 1)[0]
    return (f" ({code(space)} is private: its error text and logs are shown only in a channel scoped to "
            f"{code(ns + '/*')} or in a DM with Space Ops.)")
def follow_unread(stage: str, elapsed: float, unread_for: float | None) -> str:
    """The last line of an announcement whose Space could not be read lately: no claim about where it is."""
    if unread_for is None:
        return (f":grey_question: Space Ops could not read the Space in {duration_words(elapsed)} "
                f"(Hub unreachable or its rate budget spent): no longer followed here")
    return (f":grey_question: last seen {stage_words(stage)}; Space Ops could not read it for the last "
            f"{duration_words(unread_for)}: no longer followed here after {duration_words(elapsed)}")


def follow_superseded(channel: str, same_channel: bool) -> str:
    """The last line of an announcement a later change to the same Space took over."""
    where = "in its own message below" if same_channel else f"in <#{escape(channel)}>"
    return f":arrow_down: a later change to this Space is followed {where}"


def follow_message(text: str, space: str, status: str, hub_url: str, logs: tuple[str, ...] | None = None,
                   restart: bool = False) -> Reply:
    """The announcement of a change, edited as the Space moves on (`text` is the original announcement)."""
    blocks = [section(f"{text}\n{status}")]
    if logs:
        blocks.append(section(f"Last log lines:\n```{escape(chr(10).join(logs)[-LOG_CHARS:])}```"))
    if restart:
        blocks.append({"type": "actions", "block_id": f"follow:{space}"[:255],
                       "elements": [button("Restart", ALERT_ACTIONS["restart"], space, "danger")]})
    blocks.append(context(f"<{hub_url}/spaces/{space}|Open on Hugging Face>"))
    return Reply(f"{text} {status}", blocks, public=True)


# ---------------------------------------------------------------------- the Hub webhook


def webhook_state_reply(state: dict, has_url: bool, has_secret: bool) -> Reply:
    if state.get("id"):
        namespaces = ", ".join(code(ns) for ns in (state.get("namespaces") or "").split(",") if ns)
        text = (f"The Hub webhook is on: pushes to Spaces of {namespaces} reach {escape(state.get('url', ''))} "
                f"and are read at once (set up by <@{escape(state.get('by', '?'))}>).")
    elif has_url and has_secret:
        text = ("The Hub webhook is off: pushes are noticed from each Space's commit in the next poll. "
                "An admin can turn it on with `/space webhook enable`.")
    else:
        text = ("The Hub webhook is off: pushes are noticed from each Space's commit in the next poll. It needs "
                "SPACEOPS_PUBLIC_URL and SPACEOPS_HUB_WEBHOOK_SECRET (HTTP mode).")
    return notice_reply(text)


def webhook_enabled_reply(user: str, url: str, namespaces: list[str]) -> Reply:
    text = (f"<@{escape(user)}> turned on the Hub webhook: pushes to Spaces of "
            f"{', '.join(code(ns) for ns in namespaces)} reach {escape(url)} and are read at once.")
    return Reply(text, [section(text)], public=True)


def webhook_disabled_reply(user: str) -> Reply:
    text = f"<@{escape(user)}> turned off the Hub webhook: pushes are noticed in the next poll again."
    return Reply(text, [section(text)], public=True)
