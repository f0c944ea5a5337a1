"""The words of `/space` replies: help, status, flavors, variables, secrets, audit, the secret form."""

from __future__ import annotations

from typing import Any, Iterable

from bot.core.blocks import clip
from bot.commands.grammar import COMMANDS
from bot.core.flavors import Catalogue
from bot.core.markup import code, escape
from bot.core.words import (STAGE_EMOJI, Reply, context, flavor_words, price_words, section, sleep_words,
                            space_link, stage_words, when_words)

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


def status_reply(space: str, runtime, catalogue: Catalogue, hub_url: str, hide_error: bool = False) -> Reply:
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
    if raw.get("errorMessage") and hide_error:
        lines.append(f"*Error:* hidden here: {code(space)} is private (its error text shows in a channel scoped "
                     f"to its namespace, or in a DM with Space Ops)")
    elif raw.get("errorMessage"):
        lines.append(f"*Error:* ```{escape(clip(str(raw['errorMessage']), 1500))}```")
    text = "\n".join(lines)
    return Reply(text, [section(text), context(f"<{hub_url}/spaces/{space}|Open on Hugging Face>")])


def flavors_reply(catalogue: Catalogue, hub_failed: bool = False) -> Reply:
    rows = [f"{code(f.name)} {escape(f.pretty)} — *{price_words(f.price_per_hour)}*"
            + (f" ({escape(f.spec)})" if f.spec else "") for f in catalogue]
    source = "from the Hub" if catalogue.source == "hub" else "shipped price list; the Hub's catalogue was unreachable"
    if catalogue.source == "hub" and getattr(catalogue, "read_at", 0):
        source = ("last read from the Hub" if hub_failed else "from the Hub") + f" {when_words(catalogue.read_at)}"
        if hub_failed:
            source += "; the Hub's list can't be read right now"
    text = "*Hardware flavors* (USD per hour):\n" + "\n".join(rows)
    return Reply(text, [section(text), context(escape(source))])


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
    return Reply(text, [section(text)])
