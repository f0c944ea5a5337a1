"""Every word a user reads: replies, errors and Block Kit. Text from users or the Hub is escaped here."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Iterable

from bot.flavors import Catalogue, Flavor
from bot.grammar import COMMANDS
from bot.markup import code, escape

STAGE_WORDS = {
    "RUNNING": "running",
    "BUILDING": "building",
    "APP_STARTING": "starting",
    "RUNNING_BUILDING": "running, rebuilding",
    "RUNNING_APP_STARTING": "running, restarting",
    "RUNTIME_ERROR": "crashed",
    "BUILD_ERROR": "build failed",
    "CONFIG_ERROR": "config error",
    "NO_APP_FILE": "no app file",
    "STOPPED": "asleep",
    "SLEEPING": "asleep",
    "PAUSED": "paused",
    "DELETING": "being deleted",
}
STAGE_EMOJI = {"RUNNING": ":large_green_circle:", "RUNTIME_ERROR": ":red_circle:", "BUILD_ERROR": ":red_circle:",
               "CONFIG_ERROR": ":red_circle:", "NO_APP_FILE": ":red_circle:", "PAUSED": ":double_vertical_bar:",
               "STOPPED": ":zzz:", "SLEEPING": ":zzz:"}
CPU_BASIC_SLEEP = 48 * 3600


@dataclass
class Reply:
    """What the user sees. `public` replies are announced in the channel; others are ephemeral."""

    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    public: bool = False


def stage_words(stage: str | None) -> str:
    if not stage:
        return "unknown"
    return STAGE_WORDS.get(stage, stage.lower().replace("_", " "))


def duration_words(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        hours, minutes = divmod(seconds // 60, 60)
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    days, hours = divmod(seconds // 3600, 24)
    return f"{days} d" + (f" {hours} h" if hours else "")


def sleep_words(sleep_time: int | None, hardware: str | None) -> str:
    if (hardware or "cpu-basic") == "cpu-basic":
        return f"cpu-basic: sleeps after {duration_words(sleep_time or CPU_BASIC_SLEEP)} idle"
    if sleep_time is None or sleep_time < 0:
        return "never sleeps"
    return f"sleeps after {duration_words(sleep_time)} idle"


def price_words(price: float | None) -> str:
    if price is None:
        return "price unknown"
    if price == 0:
        return "free"
    return f"${price:,.2f}/h"


def flavor_words(name: str | None, catalogue: Catalogue) -> str:
    if not name:
        return "none"
    return f"{code(name)} ({price_words(catalogue.price(name))})"


def space_link(space: str, hub_url: str) -> str:
    return f"<{hub_url}/spaces/{space}|{escape(space)}>"


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}


def context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:3000]}]}


def when_words(ts: float) -> str:
    return f"<!date^{int(ts)}^{{date_short_pretty}} {{time}}|{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(ts))}>"


# ---------------------------------------------------------------- replies to commands

def help_reply(topic: str | None = None) -> Reply:
    if topic:
        usage, example, summary = COMMANDS[topic]
        text = f"*/space {escape(usage)}*\n{escape(summary)}\nExample: `/space {escape(example)}`"
        if topic == "hw":
            text += "\nA flavor that costs more per hour than the current one is an upgrade and needs an approver."
        if topic == "sleep":
            text += "\nDurations: 90, 90s, 15m, 2h, 1d, or never. cpu-basic always sleeps after 48 h."
        if topic == "secret":
            text += "\n`secret set` opens a private form: the value never passes through a channel."
        return Reply(text, [section(text)])
    lines = [f"`/space {escape(usage)}` — {escape(summary)}  _e.g._ `/space {escape(example)}`"
             for usage, example, summary in COMMANDS.values()]
    text = ("*Space Ops* runs your Hugging Face Spaces from Slack. SPACE is `namespace/name` or a Space link.\n"
            + "\n".join(lines))
    return Reply(text, [section(text)])


def status_reply(space: str, runtime, catalogue: Catalogue, hub_url: str) -> Reply:
    raw = getattr(runtime, "raw", {}) or {}
    stage = runtime.stage
    current, requested = runtime.hardware, runtime.requested_hardware
    emoji = STAGE_EMOJI.get(stage, ":large_blue_circle:")
    hardware = flavor_words(current or requested, catalogue)
    if requested and current and requested != current:
        hardware = f"{flavor_words(current, catalogue)} → {flavor_words(requested, catalogue)} requested"
    elif requested and not current:
        hardware = f"{flavor_words(requested, catalogue)} (requested, not yet applied)"
    if current is None and requested is None:
        hardware = "none (static Space)"
    replicas = raw.get("replicas") or {}
    replica_words = f"{replicas.get('current', 0 if stage != 'RUNNING' else 1)} of {replicas.get('requested', 1)}"
    lines = [
        f"{emoji} *{space_link(space, hub_url)}* is *{stage_words(stage)}* ({code(stage)})",
        f"*Hardware:* {hardware}",
        f"*Sleep:* {sleep_words(runtime.sleep_time, requested or current)}",
        f"*Replicas:* {replica_words}",
    ]
    if raw.get("errorMessage"):
        lines.append(f"*Error:* ```{escape(str(raw['errorMessage'])[:1500])}```")
    text = "\n".join(lines)
    return Reply(text, [section(text), context(f"<{hub_url}/spaces/{space}|Open on Hugging Face>")])


def flavors_reply(catalogue: Catalogue) -> Reply:
    rows = [f"{code(f.name)} {escape(f.pretty)} — *{price_words(f.price_per_hour)}*"
            + (f" ({escape(f.spec)})" if f.spec else "") for f in catalogue]
    source = "from the Hub" if catalogue.source == "hub" else "shipped price list; the Hub's catalogue was unreachable"
    text = "*Hardware flavors* (USD per hour):\n" + "\n".join(rows)
    return Reply(text, [section(text[:3000]), context(escape(source))])


def variables_reply(space: str, variables: dict) -> Reply:
    if not variables:
        return Reply(f"{code(space)} has no variables.")
    rows = [f"{code(key)} = {code(var.value)}" + (f" — {escape(var.description)}" if var.description else "")
            for key, var in sorted(variables.items())]
    text = f"*Variables of {escape(space)}:*\n" + "\n".join(rows)
    return Reply(text, [section(text)])


def secrets_reply(space: str, secrets: dict) -> Reply:
    if not secrets:
        return Reply(f"{code(space)} has no secrets.")
    rows = []
    for key, secret in sorted(secrets.items()):
        updated = f" (updated {secret.updated_at:%Y-%m-%d})" if getattr(secret, "updated_at", None) else ""
        rows.append(f"{code(key)}{updated}" + (f" — {escape(secret.description)}" if secret.description else ""))
    text = f"*Secrets of {escape(space)}* (values are never shown):\n" + "\n".join(rows)
    return Reply(text, [section(text)])


def change_reply(user: str, action: str, space: str, outcome: str = "") -> Reply:
    """A change announced in the channel, naming who did it."""
    text = f"<@{escape(user)}> {action} {code(space)}" + (f": {outcome}" if outcome else ".")
    return Reply(text, [section(text)], public=True)


def error_reply(sentence: str) -> Reply:
    """`sentence` is one of our errors: outside text in it was escaped where it was inserted."""
    text = f":warning: {sentence}"
    return Reply(text, [section(text)])


def notice_reply(sentence: str) -> Reply:
    return Reply(sentence, [section(sentence)])


def internal_error_reply() -> Reply:
    return error_reply("Something went wrong on our side; nothing was changed that was not confirmed. "
                       "The error was logged. Try again, or check `/space status`.")


def secret_modal(space: str, key: str, callback_id: str, private_metadata: str) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": callback_id,
        "private_metadata": private_metadata,
        "title": {"type": "plain_text", "text": "Set a Space secret"},
        "submit": {"type": "plain_text", "text": "Save secret"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            section(f"Secret {code(key)} for {code(space)}. The value goes straight to the Hub; "
                    f"Space Ops does not keep or show it. The Space restarts to pick it up."),
            {"type": "input", "block_id": "value", "label": {"type": "plain_text", "text": "Value"},
             "element": {"type": "plain_text_input", "action_id": "value", "multiline": True}},
            {"type": "input", "block_id": "description", "optional": True,
             "label": {"type": "plain_text", "text": "Description"},
             "element": {"type": "plain_text_input", "action_id": "description", "max_length": 200}},
        ],
    }


def audit_reply(entries: Iterable, space: str | None) -> Reply:
    entries = list(entries)
    scope = f" for {code(space)}" if space else ""
    if not entries:
        return Reply(f"No audit entries{scope} yet.")
    rows = []
    for entry in entries:
        params = ", ".join(f"{escape(k)}={escape(v)}" for k, v in sorted(entry.params.items()))
        result = "ok" if entry.result == "ok" else f"*{escape(entry.result)}*"
        rows.append(f"{when_words(entry.ts)} <@{escape(entry.user)}> {escape(entry.action)}"
                    + (f" {code(entry.space)}" if entry.space else "") + (f" ({params})" if params else "")
                    + f" → {result}")
    text = f"*Audit trail{scope}*, newest first:\n" + "\n".join(rows)
    return Reply(text, [section(text[:3000])])


def as_text(reply_text: str, blocks: list[dict[str, Any]] | None = None) -> str:
    """Plain-text rendering for the console: mrkdwn links and dates made readable."""
    import html
    import re

    parts = []
    for block in blocks or []:
        if block.get("type") == "section" and block.get("text"):
            parts.append(block["text"]["text"])
        elif block.get("type") == "context":
            parts.append(" ".join(e.get("text", "") for e in block.get("elements", [])))
        elif block.get("type") == "actions":
            parts.append("  ".join(f"[{e['text']['text']}]" for e in block.get("elements", []) if e.get("text")))
        elif block.get("type") == "header":
            parts.append(block["text"]["text"].upper())
    text = "\n".join(parts) if parts else reply_text
    text = re.sub(r"<!date\^\d+\^[^|]*\|([^>]*)>", r"\1", text)
    # A link labelled with a Space id reads as the id; a sentence label keeps its URL.
    text = re.sub(r"<(https?://[^|>]+)\|([^>\s]+)>", r"\2", text)
    text = re.sub(r"<(https?://[^|>]+)\|([^>]+)>", r"\2: \1", text)
    text = re.sub(r"<@([A-Z0-9]+)>", r"@\1", text)
    text = re.sub(r":[a-z_]+: ?", "", text)  # emoji codes
    text = re.sub(r"<#([A-Z0-9]+)(?:\|([^>]*))?>", lambda m: f"#{m.group(2) or m.group(1)}", text)
    text = text.replace("```", "\n    ").replace("`", "")
    text = re.sub(r"(?<![\w/])\*([^*\n]+)\*(?!\w)", r"\1", text)  # *bold*, not acme/*
    return html.unescape(text)


def flavor_line(flavor: Flavor) -> str:
    return f"{flavor.name} ({price_words(flavor.price_per_hour)})"


# ---------------------------------------------------------------- approvals
# Requests are `bot.approvals.ApprovalRequest` values; these functions only read their fields.

APPROVE_ACTION = "approval:approve"
DENY_ACTION = "approval:deny"
OUTCOME_WORDS = {"approved": ":white_check_mark: *Approved*", "denied": ":no_entry: *Denied*",
                 "cancelled": ":heavy_multiplication_x: *Cancelled*", "expired": ":hourglass: *Expired*",
                 "applying": ":gear: *Being applied*", "failed": ":warning: *Approved, but not applied*"}


def money_words(amount: float | None, signed: bool = False) -> str:
    if amount is None:
        return "unknown"
    return f"{'+' if signed and amount > 0 else ''}{'-' if amount < 0 else ''}${abs(amount):,.2f}"


def upgrade_cost_words(current: str, flavor: str, catalogue: Catalogue) -> tuple[str, str]:
    """(new price per hour and per day, difference per hour and per day) as words."""
    new, old = catalogue.price(flavor), catalogue.price(current)
    price = "unknown (not in the Hub's price list)" if new is None else \
        f"{money_words(new)}/h · {money_words(new * 24)}/day"
    if new is None or old is None:
        return price, "unknown"
    diff = new - old
    return price, f"{money_words(diff, True)}/h · {money_words(diff * 24, True)}/day"


def upgrade_sleep_words(request) -> str:
    if request.sleep_seconds is not None:
        return sleep_words(request.sleep_seconds, request.flavor)
    if request.duplicate_to or request.current == "cpu-basic":
        return "never sleeps (the Hub's default on paid hardware; change it with `/space sleep`)"
    return "unchanged (the Space keeps its current sleep time)"


def upgrade_words(request) -> str:
    """`acme/chat` from `cpu-basic` to `a100-large`, or the duplicate's wording."""
    if request.duplicate_to:
        return (f"duplicate {code(request.space)} as {code(request.duplicate_to)}"
                + (" (private)" if request.private else "") + f" on {code(request.flavor)}")
    return f"move {code(request.space)} from {code(request.current)} to {code(request.flavor)}"


def _by(request) -> str:
    return f" by <@{escape(request.decided_by)}>" if request.decided_by else ""


def _at(request) -> str:
    return f" {when_words(request.decided_at)}" if request.decided_at else ""


def approval_status_line(request) -> str:
    """The outcome line shown on the approval message once something happened."""
    status = request.status
    if status == "cancelled" and request.decided_by == request.requester:
        return f":leftwards_arrow_with_hook: *Withdrawn* by the requester{_at(request)}. Nothing was changed."
    if status == "approved":
        target = request.duplicate_to or request.space
        return (f"{OUTCOME_WORDS[status]}{_by(request)}{_at(request)}. {code(target)} is moving to "
                f"{code(request.flavor)}; billing starts when it runs.")
    if status == "failed":
        return (f"{OUTCOME_WORDS[status]}: <@{escape(request.decided_by)}> approved{_at(request)}, but the Hub "
                f"refused: {request.error} The request is still open: *Approve* again to retry.")
    if status == "applying":
        return f"{OUTCOME_WORDS[status]}{_by(request)}{_at(request)}…"
    if status == "expired":
        return (f"{OUTCOME_WORDS[status]}{_at(request)}: no one decided in time. Nothing was changed; "
                f"ask again if it is still needed.")
    if status in OUTCOME_WORDS:
        return f"{OUTCOME_WORDS[status]}{_by(request)}{_at(request)}. Nothing was changed."
    return ""


def approval_message(request, catalogue: Catalogue, hub_url: str) -> Reply:
    """The approval message in the channel: the request, its cost, and buttons while it is open."""
    price, diff = upgrade_cost_words(request.current, request.flavor, catalogue)
    title = f":money_with_wings: *Paid hardware request* from <@{escape(request.requester)}>: {upgrade_words(request)}."
    details = [
        f"*Space:* {space_link(request.space, hub_url)}",
        f"*Hardware:* {flavor_words(request.current, catalogue)} → {flavor_words(request.flavor, catalogue)}",
        f"*New price:* {price}",
        f"*Difference:* {diff}",
        f"*Sleep:* {upgrade_sleep_words(request)}",
        f"*Expires:* {when_words(request.expires_at)}",
    ]
    blocks = [section(title), section("\n".join(details))]
    outcome = approval_status_line(request)
    if outcome:
        blocks.append(section(outcome))
    if request.status in ("pending", "failed"):
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "action_id": APPROVE_ACTION, "value": request.id, "style": "primary",
             "text": {"type": "plain_text", "text": "Approve"},
             "confirm": {"title": {"type": "plain_text", "text": "Approve paid hardware?"},
                         "text": {"type": "mrkdwn", "text": f"{upgrade_words(request)}: {price}."[:300]},
                         "confirm": {"type": "plain_text", "text": "Approve"},
                         "deny": {"type": "plain_text", "text": "Back"}}},
            {"type": "button", "action_id": DENY_ACTION, "value": request.id, "style": "danger",
             "text": {"type": "plain_text", "text": "Deny"}},
        ]})
    blocks.append(context(f"Request {code(request.id)} · approvers decide; the requester can't approve their own."))
    state = {"pending": "waiting for an approver"}.get(request.status, request.status)
    text = (f"Paid hardware request from <@{escape(request.requester)}>: {upgrade_words(request)} "
            f"({price_words(catalogue.price(request.flavor))}) — {state}")
    return Reply(text, blocks)


def approval_sent_reply(request, permalink: str, ttl: int) -> Reply:
    where = f"<{permalink}|the approval request>" if permalink else "the approval request"
    text = (f":hourglass_flowing_sand: A paid upgrade needs an approver, so nothing changed yet. Sent for approval: "
            f"{where} in <#{escape(request.channel)}> to {upgrade_words(request)}. It expires in "
            f"{duration_words(ttl)}. Withdraw it with `/space approvals cancel {request.id}`.")
    return Reply(text, [section(text)])


def approval_already_pending_reply(request, permalink: str) -> Reply:
    where = f"<{permalink}|waiting for an approver>" if permalink else "waiting for an approver"
    text = (f"The same change is already {where} (request {code(request.id)}, asked by "
            f"<@{escape(request.requester)}>). Nothing new was posted.")
    return Reply(text, [section(text)])


def approval_not_posted(channel: str) -> str:
    return (f"The approval request could not be posted to <#{escape(channel)}> (is Space Ops in that channel?), "
            f"so nothing was changed and nothing is pending. Try again, or ask an admin to check "
            f"SPACEOPS_APPROVAL_CHANNEL.")


def approval_apply_failed(request, sentence: str) -> str:
    return (f"You approved, but the Hub refused to {upgrade_words(request)}: {sentence} "
            f"The request is still open; click *Approve* again to retry.")


# A dead replica's claim that the Hub never applied (stored as the request's error).
APPLY_STOPPED = ("The Space Ops replica applying it stopped before the Hub confirmed, and the Hub shows no change, "
                 "so nothing was changed.")


def approval_applied_unrecorded(request) -> str:
    return (f"You approved, and the Hub accepted it: {upgrade_words(request)}. Space Ops could not record the "
            f"decision (its database is unreachable); the approval message catches up by itself when it is back. "
            f"Don't approve again.")


def approval_click_reply(request) -> Reply:
    """What the approver who clicked sees (the message in the channel shows it too)."""
    verb = {"approved": "Approved", "denied": "Denied"}.get(request.status, request.status.capitalize())
    text = f"{verb}: {upgrade_words(request)}."
    return Reply(text, [section(text)])


def approval_not_open_reply(request) -> Reply:
    """A click on a request someone already decided, or that expired."""
    if request is None:
        text = "This approval request no longer exists. Nothing was changed."
    elif request.status == "applying":
        text = f"<@{escape(request.decided_by)}> is applying this request right now. Nothing else was changed."
    elif request.status == "expired":
        text = f"This request for {code(request.space)} expired before anyone decided. Nothing was changed."
    else:
        text = f"This request was already {request.status}{_by(request)}{_at(request)}. Nothing else was changed."
    return Reply(text, [section(text)])


def approval_cancelled_reply(request) -> Reply:
    verb = "withdrew" if request.decided_by == request.requester else "cancelled"
    text = f"You {verb} request {code(request.id)} ({upgrade_words(request)})."
    return Reply(text, [section(text)])


def approval_outcome_note(request) -> str:
    """Thread reply under the approval message that tells the requester."""
    who = f"<@{escape(request.requester)}>"
    outcome = approval_status_line(request)
    return f"{who} your request to {upgrade_words(request)}: {outcome}"


def approvals_list_reply(requests: Iterable, catalogue: Catalogue, hub_url: str) -> Reply:
    requests = list(requests)
    if not requests:
        return Reply("No pending hardware requests.", [section("No pending hardware requests.")])
    rows = []
    for request in requests:
        note = {"failed": " — *last attempt failed*", "applying": " — *being applied*"}.get(request.status, "")
        rows.append(f"{code(request.id)} <@{escape(request.requester)}>: {upgrade_words(request)} "
                    f"({price_words(catalogue.price(request.flavor))}), expires {when_words(request.expires_at)}"
                    + note)
    text = (f"*Pending hardware requests* ({len(requests)}):\n" + "\n".join(rows)
            + "\nCancel one (admin) or withdraw your own: `/space approvals cancel ID`.")
    return Reply(text, [section(text[:3000])])


# ---------------------------------------------------------------- alerts

ALERT_ACTIONS = {"restart": "alert:restart", "resume": "alert:resume", "sleep": "alert:sleep1h"}
LOG_CHARS = 2500


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


def _button(text: str, action: str, value: str, style: str | None = None) -> dict[str, Any]:
    button = {"type": "button", "text": {"type": "plain_text", "text": text}, "action_id": action, "value": value}
    if style:
        button["style"] = style
    return button


def _alert_buttons(alert) -> list[dict[str, Any]]:
    if alert.kind in ("transition", "settled") and alert.new in ("RUNTIME_ERROR", "BUILD_ERROR"):
        return [_button("Restart", ALERT_ACTIONS["restart"], alert.space, "danger")]
    if alert.kind in ("transition", "settled") and alert.new == "PAUSED":
        return [_button("Resume", ALERT_ACTIONS["resume"], alert.space, "primary")]
    if alert.kind == "cost":
        return [_button("Set 1 h sleep", ALERT_ACTIONS["sleep"], alert.space, "primary")]
    return []


def alert_line(alert, hub_url: str) -> str:
    """One line for an alert: used alone, in summaries and in mute-ended notes."""
    link = f"*{space_link(alert.space, hub_url)}*"
    if alert.kind in ("transition", "settled"):
        emoji = STAGE_EMOJI.get(alert.new or "", ":large_blue_circle:")
        was = (f" after {duration_words(alert.seconds)} {stage_words(alert.old)}"
               if alert.seconds and alert.old else "")
        lead = "settled: " if alert.kind == "settled" else ""
        return f"{emoji} {lead}{link} {_change_words(alert.old, alert.new)}{was}"
    if alert.kind == "hardware":
        return f":gear: {link} now runs on {code(alert.hardware)}: the requested hardware is applied"
    if alert.kind == "stuck":
        return (f":hourglass: {link} has been {stage_words(alert.new)} for {duration_words(alert.seconds or 0)}; "
                f"it may be stuck")
    if alert.kind == "flapping":
        window = duration_words(alert.extra.get("window", 0))
        return (f":warning: {link} is flapping: {alert.extra.get('changes')} stage changes in {window} "
                f"(now {stage_words(alert.new)}). Further changes are held back until it settles")
    if alert.kind == "cost":
        return (f":moneybag: {link} runs on paid {code(alert.hardware)} and never sleeps: "
                f"about ${alert.extra.get('per_day', 0):,.2f}/day, running for "
                f"{duration_words(alert.at - (alert.since or alert.at))}")
    if alert.kind == "unreadable":
        since = time.strftime("%H:%M", time.gmtime(alert.since or alert.at))
        return f":grey_question: can't read {link} since {since} UTC: {escape(alert.reason or 'unknown error')}"
    if alert.kind == "readable":
        return f":white_check_mark: {link} can be read again; it is {stage_words(alert.new)}"
    return f"{link}: {escape(alert.kind)}"


def alert_message(alert, hub_url: str) -> Reply:
    """The message a watching channel gets for one alert."""
    line = alert_line(alert, hub_url)
    details = []
    if alert.kind == "transition" and alert.hardware:
        details.append(f"Hardware: {code(alert.hardware)}"
                       + (" (requested hardware applied)" if alert.extra.get("hardware_applied") else ""))
    if alert.error and alert.kind in ("transition", "settled", "flapping"):
        details.append(f"Error: ```{escape(str(alert.error)[:1500])}```")
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
    lines = [alert_line(a, hub_url) for a in alerts[:40]]
    if len(alerts) > 40:
        lines.append(f"…and {len(alerts) - 40} more")
    head = (f":rewind: Space Ops could not poll for {duration_words(gap)}. "
            f"{len(alerts)} change{'s' if len(alerts) != 1 else ''} meanwhile:")
    text = head + "\n" + "\n".join(lines)
    return Reply(head, [section(text)])


def mute_ended_message(target: str, count: int, latest: str, hub_url: str) -> Reply:
    text = (f":bell: The mute on {code(target)} is over. {count} alert{'s' if count != 1 else ''} "
            f"came meanwhile; the latest: {latest}")
    return Reply(text, [section(text)])


def only_words(only) -> str:
    return ", ".join(sorted(only)) if only else "all alerts"


def watch_reply(target: str, channel: str, only, stage: str | None, existed: bool) -> Reply:
    now = f" It is {stage_words(stage)} now." if stage else ""
    verb = "Updated the watch on" if existed else "Watching"
    text = f"{verb} {code(target)} in <#{escape(channel)}>: {only_words(only)}.{now}"
    return Reply(text, [section(text)], public=True)


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
    return Reply(text, [section(text[:3000])])


def mute_reply(target: str, channel: str, until: float) -> Reply:
    return notice_reply(f"Muted {code(target)} in <#{escape(channel)}> until {when_words(until)}. "
                        f"You'll get one line when it ends if anything happened.")


def unmute_reply(target: str, channel: str, existed: bool) -> Reply:
    if not existed:
        return notice_reply(f"{code(target)} is not muted in <#{escape(channel)}>.")
    return notice_reply(f"Unmuted {code(target)} in <#{escape(channel)}>.")
