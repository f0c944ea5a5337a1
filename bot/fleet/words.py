"""The words of the fleet: cost reports, digests, budget replies and alerts, and the App Home dashboard."""

from __future__ import annotations

import time
from typing import Any

from bot.core.blocks import clip
from bot.alerts.words import ALERT_ACTIONS
from bot.approvals.words import APPROVE_ACTION, DENY_ACTION, upgrade_words
from bot.core.flavors import Catalogue
from bot.core.markup import code, escape
from bot.fleet.report import PROJECT_AFTER
from bot.core.words import (STAGE_EMOJI, Reply, button, context, duration_words, held_words, money_words,
                            notice_reply, price_words, section, space_link, stage_words)

HOME_ACTIONS = {"restart": "home:restart", "pause": "home:pause", "resume": "home:resume", "sleep": "home:sleep1h",
                "page": "home:page", "next": "home:page:next"}  # (action ids are unique within a block)
BUDGET_ACTIONS = {"pause": "budget:pause"}
MAX_ROWS = 40
MAX_IDLE_BUTTONS = 10
HOME_ROWS = 20
HOME_MAX_BLOCKS = 100


def day_words(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def since_words(first_seen: float | None, space: str | None) -> str:
    """"since 2026-11-27, when the bot first saw acme/chat"."""
    if not first_seen or not space:
        return "the bot has not observed these Spaces yet"
    return f"since {day_words(first_seen)}, when the bot first saw {escape(space)}"


def estimate_note(first_seen: float | None, space: str | None) -> str:
    return (f"Estimates from what Space Ops observed, {since_words(first_seen, space)}. Billed while starting or "
            f"running on paid hardware, at the price per hour of the time; not while building, asleep, paused "
            f"or in error.")


def hours_words(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:,.1f} h" if hours < 100 else f"{hours:,.0f} h"


def spend_words(cost: float, unpriced: int) -> str:
    """"$1.20", or with time on flavors whose price is unknown "$1.20 + price unknown for 2.0 h"."""
    if not unpriced:
        return money_words(cost)
    unknown = f"price unknown for {hours_words(unpriced)}"
    return f"{money_words(cost)} + {unknown}" if cost else unknown


def unpriced_note(unpriced: dict[str, int]) -> str:
    """What the estimates leave out: time on flavors whose price is unknown (not counted as $0)."""
    if not unpriced:
        return ""
    names = ", ".join(code(s) for s in sorted(unpriced, key=lambda s: (-unpriced[s], s))[:5])
    more = f" and {len(unpriced) - 5} more" if len(unpriced) > 5 else ""
    return (f"Not in the estimate: {hours_words(sum(unpriced.values()))} billed on flavors whose price is "
            f"unknown ({names}{more}).")


def projection_words(projected: float | None, young: tuple[float, str] | None) -> str:
    """"about $12.00 projected at today's hardware and sleep settings", or why there is no projection yet:
    "not enough history yet to project: acme/chat observed for 3 min (a projection needs 24 h)"."""
    if projected is not None:
        return f"about {money_words(projected)} projected at today's hardware and sleep settings"
    observed, space = young or (0.0, "")
    return (f"not enough history yet to project: {escape(space)} observed for {duration_words(observed)} "
            f"(it sleeps or stops, so a projection needs {PROJECT_AFTER // 3600} h of its use)")


def uptime_words(share: float | None) -> str:
    return "uptime unknown" if share is None else f"uptime {share * 100:.1f}%".replace(".0%", "%")


def _idle_block(row, price: float | None, now: float, hub_url: str) -> dict[str, Any]:
    per_day = money_words((price or 0) * 24)
    text = (f":moneybag: {space_link(row.space, hub_url)} runs on paid {code(row.hardware or '?')} and never sleeps: "
            f"running without a break for {held_words(now - row.since, row.stint_seen_from_start)}, "
            f"about {per_day}/day")
    return {**section(text), "accessory": button("Set 1 h sleep", ALERT_ACTIONS["sleep"], row.space, "primary")}


def cost_reply(scope: str, period: str, rows: list, total: float,
               month: tuple[float, float | None, tuple[float, str] | None] | None,
               idle: list, prices: dict[str, float | None], first: tuple[float, str] | None, now: float,
               hub_url: str, month_label: str = "This month") -> Reply:
    """`/space cost`: Spaces by spend, highest first, the total, the month's projection, idle spend."""
    head = f"*Estimated spend of {escape(scope)}* — {period}"
    lines = []
    for row in rows[:MAX_ROWS]:
        flavors = ", ".join(code(f) for f in row.flavors) or code(row.hardware or "none")
        lines.append(f"{space_link(row.space, hub_url)} — *{spend_words(row.cost, row.unpriced)}* · "
                     f"{hours_words(row.billed_seconds)} billed · {flavors} · {uptime_words(row.uptime)}")
    if len(rows) > MAX_ROWS:
        rest = sum(r.cost for r in rows[MAX_ROWS:])
        lines.append(f"…and {len(rows) - MAX_ROWS} more Spaces ({money_words(rest)})")
    summary = [f"*Total: {money_words(total)}* (estimate)"]
    note = unpriced_note({r.space: r.unpriced for r in rows if r.unpriced})
    if note:
        summary.append(note)
    if month:
        summary.append(f"{month_label}: {money_words(month[0])} so far · {projection_words(month[1], month[2])}")
    blocks = [section(head), section("\n".join(lines) or "No spend recorded in this period."),
              section("\n".join(summary))]
    if idle:
        blocks.append(section(f"*Possible idle spend* ({len(idle)}): paid, set to never sleep, running for more "
                              f"than a day without a break."))
        blocks += [_idle_block(row, prices.get(row.space), now, hub_url) for row in idle[:MAX_IDLE_BUTTONS]]
    blocks.append(context(estimate_note(*(first or (None, None)))))
    text = f"Estimated spend of {scope} — {period}: {money_words(total)}"
    return Reply(text, blocks)


def nothing_to_report(scope: str) -> Reply:
    return notice_reply(f"Space Ops has no record of {escape(scope)}: it counts only Spaces it watches "
                        f"(`/space watch acme/*`), from the first poll on.")


def nothing_watched_here(channel: str) -> Reply:
    return notice_reply(f"Nothing is watched in <#{escape(channel)}>, so there is nothing to count. "
                        f"Name Spaces: `/space cost acme/*`, or watch them first: `/space watch acme/*`.")


# ---------------------------------------------------------------------- budgets

def budget_set_reply(user: str, namespace: str, amount: float, channel: str) -> Reply:
    text = (f"<@{escape(user)}> set a budget of {money_words(amount)}/month on {code(namespace)}. Alerts go to "
            f"<#{escape(channel)}> once each per month: when the projection exceeds it, at 80% and at 100%.")
    return Reply(text, [section(text)], public=True)


def budget_off_reply(user: str, namespace: str, existed: bool) -> Reply:
    if not existed:
        return notice_reply(f"{code(namespace)} has no budget; nothing to remove.")
    text = f"<@{escape(user)}> removed the budget of {code(namespace)}."
    return Reply(text, [section(text)], public=True)


Projected = tuple  # (projected total or None, (seconds observed, Space) when too short to project)


def budget_words(namespace: str, amount: float, spent: float, projected: Projected,
                 unpriced: dict[str, int] | None = None) -> str:
    share = spent / amount * 100 if amount else 0
    text = (f"{code(namespace)}: {money_words(spent)} spent this month of a {money_words(amount)}/month budget "
            f"({share:.0f}%); {projection_words(*projected)}")
    note = unpriced_note(unpriced or {})
    return text + (f". {note.rstrip('.')}" if note else "")


def budget_show_reply(namespace: str, budget: dict | None, spent: float, projected: Projected,
                      first: tuple[float, str] | None, unpriced: dict[str, int] | None = None) -> Reply:
    if not budget:
        note = unpriced_note(unpriced or {})
        text = (f"{code(namespace)} has no budget. {money_words(spent)} spent this month so far, "
                f"{projection_words(*projected)}. " + (f"{note} " if note else "") +
                f"Set one: `/space budget {escape(namespace)} 500/month` (admins).")
        return Reply(text, [section(text), context(estimate_note(*(first or (None, None))))])
    text = budget_words(namespace, float(budget["amount"]), spent, projected, unpriced) + \
        f". Alerts go to <#{escape(budget['channel'])}>."
    return Reply(text, [section(text), context(estimate_note(*(first or (None, None))))])


THRESHOLD_WORDS = {"projected": ":chart_with_upwards_trend: is projected to exceed its budget",
                   "80": ":warning: has spent 80% of its budget", "100": ":rotating_light: has spent its whole budget",
                   "unpriced": ":grey_question: runs on flavors whose price is unknown, which its budget cannot count"}


def budget_alert(namespace: str, threshold: str, amount: float, spent: float, projected: Projected,
                 top: list[tuple[str, float]], hub_url: str, first: tuple[float, str] | None = None,
                 unpriced: dict[str, int] | None = None, private_left_out: int = 0) -> Reply:
    """Once per threshold per month, with the top spenders and Pause / Sleep 1 h buttons. Private Spaces
    whose spend this channel may not see are left out of the list (`private_left_out` says how many)."""
    head = f"{code(namespace)} {THRESHOLD_WORDS[threshold]} this month."
    blocks = [section(f"{head}\n{budget_words(namespace, amount, spent, projected, unpriced)}."),
              section("*Top spenders this month:*")]
    for space, cost in top[:5]:
        blocks.append(section(f"{space_link(space, hub_url)} — {money_words(cost)}"))
        blocks.append({"type": "actions", "block_id": f"budget:{space}"[:255], "elements": [
            button("Pause", BUDGET_ACTIONS["pause"], space, "danger"),
            button("Sleep 1 h", ALERT_ACTIONS["sleep"], space)]})
    if private_left_out:
        blocks.append(context(f"…and {private_left_out} private Space{'s' if private_left_out != 1 else ''}, named "
                              f"only in a channel scoped to {code(namespace)} or in a DM."))
    blocks.append(context(estimate_note(*(first or (None, None))) + " Buttons follow the usual roles."))
    return Reply(head, blocks)


# ---------------------------------------------------------------------- digests

def digest_set_reply(user: str, channel: str, period: str, at: str, tz: str, existed: bool) -> Reply:
    when = f"every day at {at}" if period == "daily" else f"every Monday at {at}"
    verb = "changed the" if existed else "scheduled a"
    text = (f"<@{escape(user)}> {verb} {period} digest for <#{escape(channel)}>: {when} ({escape(tz)}), with "
            f"uptime, incidents, spend and a chart.")
    return Reply(text, [section(text)], public=True)


def digest_off_reply(channel: str, existed: bool) -> Reply:
    if not existed:
        return notice_reply(f"<#{escape(channel)}> has no digest; nothing to stop.")
    text = f"Stopped the digest of <#{escape(channel)}>."
    return Reply(text, [section(text)], public=True)


def digests_reply(configs: dict[str, dict]) -> Reply:
    if not configs:
        return notice_reply("No digests are scheduled. Try `/space digest #ops weekly 09:00 --tz Europe/Paris`.")
    rows = [f"<#{escape(channel)}> — {escape(c['period'])} at {escape(c.get('time', '09:00'))} "
            f"({escape(c.get('tz', 'UTC'))}), set by <@{escape(c.get('by', '?'))}>"
            for channel, c in sorted(configs.items())]
    text = "*Scheduled digests:*\n" + "\n".join(rows)
    return Reply(text, [section(text)])


def digest_message(title: str, rows: list, total: float, previous: float, idle: list, broken: list,
                   prices: dict[str, float | None], first: tuple[float, str] | None, now: float, hub_url: str,
                   late: bool) -> Reply:
    """Uptime and incidents per Space, spend and its change, top 5, idle spend, broken or stuck now."""
    change = total - previous
    lines = [f"*Spend: {money_words(total)}* ({money_words(change, True)} vs the period before) · estimate"]
    note = unpriced_note({r.space: r.unpriced for r in rows if r.unpriced and not r.hidden})
    if note:
        lines.append(note)
    top = [r for r in rows if r.cost > 0 and not r.hidden][:5]
    if top:
        lines.append("*Top spenders:* " + " · ".join(f"{i}. {space_link(r.space, hub_url)} {money_words(r.cost)}"
                                                      for i, r in enumerate(top, 1)))
    blocks = [section(f":bar_chart: *{escape(title)}*" + (" (posted late: the bot was down when it was due)"
                                                           if late else "")),
              section("\n".join(lines))]
    uptime = []
    ordered = sorted(rows, key=lambda r: (r.uptime if r.uptime is not None else 2, -r.incidents, r.space))
    for row in ordered[:MAX_ROWS]:
        incidents = (f"{row.incidents} incident{'s' if row.incidents != 1 else ''}, longest "
                     f"{duration_words(row.longest_outage)}" if row.incidents else "no incidents")
        uptime.append(f"{space_link(row.space, hub_url)} — {uptime_words(row.uptime)} · {incidents} · "
                      + ("spend private" if row.hidden else spend_words(row.cost, row.unpriced)))
    if len(rows) > MAX_ROWS:
        uptime.append(f"…and {len(rows) - MAX_ROWS} more Spaces")
    blocks.append(section("*Uptime and incidents:*\n" + ("\n".join(uptime) or "no Spaces")))
    if broken:
        blocks.append(section("*Broken or stuck now:*\n" + "\n".join(
            f"{STAGE_EMOJI.get(r.stage, ':hourglass:')} {space_link(r.space, hub_url)} {stage_words(r.stage)} for "
            f"{held_words(now - r.since, r.stint_seen_from_start)}"
            + (f": {escape(clip(r.error or '', 120))}" if r.error else "")
            + (" (private: its error text and spend are shown in a channel scoped to its namespace, or in a DM)"
               if r.hidden else "")
            for r in broken[:MAX_ROWS])))
    if idle:
        blocks.append(section(f"*Possible idle spend* ({len(idle)}):"))
        blocks += [_idle_block(row, prices.get(row.space), now, hub_url) for row in idle[:MAX_IDLE_BUTTONS]]
    blocks.append(context(estimate_note(*(first or (None, None))) + " The chart is in the thread."))
    return Reply(f"{title}: {money_words(total)} spent", blocks)


def digest_chart_missing() -> Reply:
    """In the digest's thread when its chart could not be drawn or uploaded."""
    text = ":warning: The chart is missing: it could not be drawn or uploaded. The figures above are complete."
    return Reply(text, [section(text)])


# ---------------------------------------------------------------------- App Home

def _row_blocks(row, price: float | None, today: float, month: float, operator: bool, now: float,
                hub_url: str) -> list[dict[str, Any]]:
    emoji = STAGE_EMOJI.get(row.stage, ":large_blue_circle:" if row.stage else ":grey_question:")
    text = (f"{emoji} *{space_link(row.space, hub_url)}* {stage_words(row.stage)} for "
            f"{held_words(now - row.since, row.stint_seen_from_start)} · {code(row.hardware or 'none')} "
            f"{price_words(price)}{' · dev mode on' if row.dev_mode else ''}\n"
            f"Today {money_words(today)} · this month {money_words(month)}")
    if row.error:
        text += f"\n```{escape(clip(row.error, 300))}```"
    link = {"type": "button", "text": {"type": "plain_text", "text": "Open"}, "url": f"{hub_url}/spaces/{row.space}",
            "action_id": f"home:open:{row.space}"[:255]}
    if not operator:
        return [{**section(text), "accessory": link}]
    elements = [button("Restart", HOME_ACTIONS["restart"], row.space)]
    if row.stage == "PAUSED":
        elements.append(button("Resume", HOME_ACTIONS["resume"], row.space, "primary"))
    else:
        elements.append(button("Pause", HOME_ACTIONS["pause"], row.space, "danger"))
    if price:
        elements.append(button("Sleep 1 h", HOME_ACTIONS["sleep"], row.space))
    elements.append(link)
    return [section(text), {"type": "actions", "block_id": f"home:{row.space}"[:255], "elements": elements}]


def _request_blocks(requests: list, catalogue: Catalogue) -> list[dict[str, Any]]:
    if not requests:
        return []
    blocks = [section(f"*Pending hardware requests* ({len(requests)})")]
    for request in requests[:5]:
        blocks.append(section(f"<@{escape(request.requester)}>: {upgrade_words(request)} "
                              f"({price_words(catalogue.price(request.flavor))})"))
        blocks.append({"type": "actions", "block_id": f"home:req:{request.id}"[:255], "elements": [
            button("Approve", APPROVE_ACTION, request.id, "primary"), button("Deny", DENY_ACTION, request.id,
                                                                             "danger")]})
    if len(requests) > 5:
        blocks.append(context(f"…and {len(requests) - 5} more: `/space approvals`"))
    return blocks


def home_refused(reason: str) -> dict[str, Any]:
    """The Home of a viewer the gate shows nothing: the sentence says why (our own words only)."""
    title = {"type": "plain_text", "text": "Space Ops — your fleet"}
    return {"type": "home", "blocks": [{"type": "header", "text": title}, section(reason)]}


def home_view(rows: list, spend: dict[str, tuple[float, float]], prices: dict[str, float | None],
              namespaces: list[tuple[str, dict]], operator: bool, requests: list, catalogue: Catalogue,
              page: int, first: tuple[float, str] | None, now: float, hub_url: str) -> dict[str, Any]:
    """The App Home for one user. `rows` are ordered (broken and costly first); page 0 shows the top
    `HOME_ROWS`, "Show all N" pages through every one; the view always stays under 100 blocks."""
    title = {"type": "plain_text", "text": "Space Ops — your fleet"}
    blocks: list[dict[str, Any]] = [{"type": "header", "text": title}]
    total_month = sum(m for _, m in spend.values())
    blocks.append(section(f"{len(rows)} watched Space{'s' if len(rows) != 1 else ''} · "
                          f"{money_words(total_month)} this month (estimate)"))
    blocks += _request_blocks(requests, catalogue)
    ns_lines = [f"*{escape(ns)}* — {c['running']} running · {c['asleep']} asleep · {c['broken']} broken · "
                f"{money_words(c['month'])} this month" for ns, c in namespaces[:30]]
    if len(namespaces) > 30:
        ns_lines.append(f"…and {len(namespaces) - 30} more namespaces")
    if ns_lines:
        blocks.append(section("\n".join(ns_lines)))
    blocks.append({"type": "divider"})
    start = 0 if page == 0 else (page - 1) * HOME_ROWS
    shown = rows[start:start + HOME_ROWS]
    current_ns = None
    for row in shown:
        ns = row.space.split("/", 1)[0]
        if ns != current_ns:
            blocks.append(context(f"*{escape(ns)}*"))
            current_ns = ns
        today, month = spend.get(row.space, (0.0, 0.0))
        blocks += _row_blocks(row, prices.get(row.space), today, month, operator, now, hub_url)
    if not rows:
        blocks.append(section("Nothing is watched yet. In a channel: `/space watch acme/*`."))
    paging = []
    if page == 0 and len(rows) > HOME_ROWS:
        paging.append(button(f"Show all {len(rows)}", HOME_ACTIONS["page"], "1"))
    if page > 0:
        paging.append(button("← Top" if page == 1 else "← Previous", HOME_ACTIONS["page"], str(page - 1)))
        if start + HOME_ROWS < len(rows):
            paging.append(button("Next →", HOME_ACTIONS["next"], str(page + 1)))
    if paging:
        order = "broken and costly first" if page == 0 else "by name"
        blocks.append(context(f"Spaces {start + 1}–{start + len(shown)} of {len(rows)}, {order}."))
        blocks.append({"type": "actions", "block_id": "home:paging", "elements": paging})
    updated = time.strftime("%H:%M UTC", time.gmtime(now))
    blocks.append(context(estimate_note(*(first or (None, None))) + f" Updated {updated}."))
    return {"type": "home", "blocks": blocks[:HOME_MAX_BLOCKS]}

