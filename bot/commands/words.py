"""The words of `/space` replies: help, status, flavors, variables, secrets, audit, the secret form."""

from __future__ import annotations

from typing import Any, Iterable

from bot.core.blocks import clip
from bot.commands.grammar import COMMANDS
from bot.core.flavors import Catalogue
from bot.core.markup import code, escape
from bot.core.words import (STAGE_EMOJI, Reply, context, duration_words, flavor_words, hub_identity_words,
                            money_words, price_words, section, sleep_words, space_link, stage_words, when_words)

DEV_MODE_ON = ":hammer_and_wrench: dev mode on: app restarts without a rebuild are not incidents"


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
    if raw.get("devMode"):
        lines.append(DEV_MODE_ON)
    error = str(raw.get("errorMessage") or "").strip()  # a blank one says nothing: no empty "Error:" line
    if error and hide_error:
        lines.append(f"*Error:* hidden here: {code(space)} is private (its error text shows in a channel scoped "
                     f"to its namespace, or in a DM with Space Ops)")
    elif error:
        lines.append(f"*Error:* ```{escape(clip(error, 1500))}```")
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
    # Our own words and a date token: nothing from outside to escape (escaping would show the token as typed).
    return Reply(text, [section(text), context(source)])


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


def _dur(seconds) -> str:
    try:
        seconds = int(seconds)
    except (TypeError, ValueError):
        return "?"
    return "never sleep" if seconds < 0 else duration_words(seconds)


def _sleep_to(seconds) -> str:
    try:
        return "never sleep" if int(seconds) < 0 else f"sleep after {duration_words(int(seconds))} idle"
    except (TypeError, ValueError):
        return "sleep after ? idle"


def _request(p: dict) -> str:
    """" (request `1oNS…`)": the start of the id, as `/space approvals` lists it in full."""
    rid = str(p.get("id") or p.get("approval") or "")
    return f" (request {code(rid[:4] + '…' if len(rid) > 5 else rid)})" if rid else ""


def _where(p: dict) -> str:
    return f" in <#{escape(str(p['channel']))}>" if p.get("channel") else ""


def _upgrade(space: str, p: dict) -> str:
    """What an approval request asks for, as a verb phrase: "move `acme/chat` to `a10g-small`"."""
    action, flavor = p.get("action"), code(str(p.get("flavor") or "?"))
    if action == "resume":
        return f"resume {space} on {flavor}"
    if action == "sleep":
        return f"let {space} {_sleep_to(p.get('sleep'))}"
    if action == "schedule":
        return f"schedule paid hardware for {space}"
    if p.get("to"):
        return f"duplicate {space} as {code(str(p['to']))} on {flavor}"
    return f"move {space} to {flavor}"


def _schedule_words(verb: str):
    """A schedule's own change (the runner's `schedule.pause` …, params with `schedule`), or the
    `schedule pause|resume ID` command (params with `id`)."""
    def words(space: str, p: dict) -> str:
        if "schedule" in p:
            what = {"pause": f"pause {space}", "resume": f"resume {space}", "restart": f"restart {space}",
                    "sleep": f"set the sleep time of {space}", "hw": f"change the hardware of {space}"}[verb]
            return f"let schedule {code(str(p['schedule']))} {what}" + (" (its retry)" if p.get("retry") else "")
        if verb == "pause":
            return f"pause schedule {code(str(p.get('id', '?')))} of {space} (until `schedule resume`)"
        return f"resume schedule {code(str(p.get('id', '?')))} of {space}"
    return words


def _duplicate(s: str, p: dict) -> str:
    extras = (["private"] if p.get("private") else []) + ([f"on {code(str(p['hw']))}"] if p.get("hw") else []) \
        + ([_sleep_to(p["sleep"])] if p.get("sleep") else [])
    return f"duplicate {s} as {code(str(p.get('to', '?')))}" + "".join(f", {w}" for w in extras)


def _scheduled(s: str, p: dict) -> str:
    return (f"schedule {escape(str(p.get('action', '?')))}" + (f" {code(str(p['flavor']))}" if p.get("flavor") else "")
            + (f" {_dur(p['sleep'])}" if p.get("sleep") else "") + f" of {s} {escape(str(p.get('when', '')))}"
            + (f" ({escape(str(p['tz']))})" if p.get("tz") else "")
            + (f" as schedule {code(str(p['id']))}" if p.get("id") else "")
            + (", approved" if p.get("approved") else ""))


# What a person did, per audited action: a verb phrase over the Space (in code) and the entry's params. The
# past tense comes from its first word (`_past`); a refused or failed entry reads "tried to …".
AUDIT_WORDS: dict[str, Any] = {
    "restart": lambda s, p: (f"factory-reboot {s}" if p.get("factory") else f"restart {s}") + _request(p),
    "resume": lambda s, p: f"resume {s}" + _request(p),
    "pause": lambda s, p: f"pause {s}",
    "hw": lambda s, p: (f"move {s}" + (f" from {code(str(p['from']))}" if p.get("from") else "")
                        + f" to {code(str(p.get('flavor', '?')))}"
                        + (f" for {_dur(p['for'])}" if p.get("for") else "") + _request(p)),
    "sleep": lambda s, p: f"set the sleep time of {s} to {_dur(p.get('seconds'))}" + _request(p),
    "var.set": lambda s, p: f"set variable {code(str(p.get('key', '?')))} on {s}",
    "var.rm": lambda s, p: f"remove variable {code(str(p.get('key', '?')))} from {s}",
    "secret.set": lambda s, p: f"set secret {code(str(p.get('key', '?')))} on {s}",
    "secret.rm": lambda s, p: f"remove secret {code(str(p.get('key', '?')))} from {s}",
    "duplicate": _duplicate,
    "signin.start": lambda s, p: "start a sign-in with Hugging Face",
    "signin.check": lambda s, p: "check a sign-in with Hugging Face",
    "signin.link": lambda s, p: (f"link the Hugging Face account {code(str(p['hub_user']))}" if p.get("hub_user")
                                 else "link a Hugging Face account")
                                + (f" (also linked to {', '.join('<@' + escape(str(u)) + '>' for u in p['also_linked'])})"
                                   if p.get("also_linked") else ""),
    "signin.refresh": lambda s, p: (f"refresh the Hugging Face roles of {code(str(p['hub_user']))}"
                                    if p.get("hub_user") else "refresh Hugging Face roles"),
    "signin.logout": lambda s, p: (f"sign out of Hugging Face ({code(str(p['hub_user']))})" if p.get("hub_user")
                                   else "sign out of Hugging Face"),
    "dev": lambda s, p: f"turn dev mode {'on' if p.get('enabled') else 'off'} for {s}",
    "volume.add": lambda s, p: f"mount {code(str(p.get('source', '?')))} at {code(str(p.get('mount', '?')))} on {s}",
    "volume.rm": lambda s, p: f"remove the volume at {code(str(p.get('mount', '?')))} from {s}",
    "watch": lambda s, p: (f"watch {s}{_where(p)}"
                           + (f" (only {escape(', '.join(map(str, p['only'])))})" if p.get("only") else "")),
    "unwatch": lambda s, p: f"stop watching {s}{_where(p)}",
    "mute": lambda s, p: f"mute {s}{_where(p)}" + (f" for {_dur(p['seconds'])}" if p.get("seconds") else ""),
    "unmute": lambda s, p: f"unmute {s}{_where(p)}",
    "schedule": _scheduled,
    "unschedule": lambda s, p: f"remove schedule {code(str(p.get('id', '?')))} of {s}",
    "schedule.pause": _schedule_words("pause"),
    "schedule.resume": _schedule_words("resume"),
    "schedule.restart": _schedule_words("restart"),
    "schedule.sleep": _schedule_words("sleep"),
    "schedule.hw": _schedule_words("hw"),
    "hw-for.extend": lambda s, p: (f"extend the timed upgrade {code(str(p.get('id', '?')))} of {s}"
                                   + (f" by {_dur(p['seconds'])}" if p.get("seconds") else "")),
    "hw-for.revert": lambda s, p: (f"move {s} back" + (f" to {code(str(p['flavor']))}" if p.get("flavor") else "")
                                   + f" as its timed upgrade {code(str(p.get('id', '?')))} ended"),
    "scope": lambda s, p: (f"let <#{escape(str(p.get('channel', '?')))}> "
                           + ("only read" if p.get("level") == "read" else "read and operate") + f" {s}"),
    "unscope": lambda s, p: f"remove the scope {s}" + (f" from <#{escape(str(p['channel']))}>"
                                                        if p.get("channel") else ""),
    "approval.request": lambda s, p: f"ask to {_upgrade(s, p)}{_request(p)}",
    "approval.approve": lambda s, p: f"approve the request to {_upgrade(s, p)}{_request(p)}",
    "approval.deny": lambda s, p: f"deny the request to {_upgrade(s, p)}{_request(p)}",
    "approval.cancel": lambda s, p: f"withdraw the request to {_upgrade(s, p)}{_request(p)}",
    "approval.expire": lambda s, p: f"let the request to {_upgrade(s, p)} expire{_request(p)}",
    "digest": lambda s, p: (f"schedule a {escape(str(p.get('period', '?')))} digest{_where(p)}"
                            + (f" at {escape(str(p['time']))}" if p.get("time") else "")
                            + (f" ({escape(str(p['tz']))})" if p.get("tz") else "")),
    "digest.off": lambda s, p: f"stop the digest{_where(p)}",
    "budget.set": lambda s, p: (f"set a budget of {money_words(float(p.get('amount') or 0))}/month on {s}"
                                + (f", alerts in <#{escape(str(p['channel']))}>" if p.get("channel") else "")),
    "budget.off": lambda s, p: f"remove the budget of {s}",
    "webhook.enable": lambda s, p: "enable the Hub webhook" + (f" for {escape(', '.join(map(str, p['namespaces'])))}"
                                                               if p.get("namespaces") else ""),
    "webhook.disable": lambda s, p: "disable the Hub webhook",
}
# Commands audited only when refused (a person tried; nothing changed), beyond the actions above.
REFUSED_WORDS: dict[str, Any] = {
    "approvals.cancel": lambda s, p: "withdraw an approval request",
    "scope.set": lambda s, p: f"set the scope of a channel to {s}",
    "webhook": lambda s, p: "manage the Hub webhook",
}
_PAST = {"set": "set", "let": "let", "withdraw": "withdrew", "stop": "stopped", "deny": "denied",
         "factory-reboot": "factory-rebooted", "ask": "asked", "run": "ran"}


def _past(phrase: str) -> str:
    verb, _, rest = phrase.partition(" ")
    past = _PAST.get(verb) or (verb + "d" if verb.endswith("e") else verb + "ed")
    return f"{past} {rest}"


def audit_phrase(entry) -> str:
    """What the entry's action was, as a verb phrase ("set the sleep time of `acme/chat` to 1 h")."""
    space = code(entry.space) if entry.space else "the workspace"
    params = entry.params if isinstance(entry.params, dict) else {}
    render = AUDIT_WORDS.get(entry.action) or REFUSED_WORDS.get(entry.action)
    try:
        return render(space, params) if render else f"run {code(entry.action)} on {space}"
    except (KeyError, TypeError, ValueError):  # a record from another version, with params this one lacks
        return f"run {code(entry.action)} on {space}"


def audit_words(entry) -> str:
    """One audit entry as what a person did: "@alice set the sleep time of `acme/chat` to 1 h", "@bob tried to
    restart `acme/chat`: *refused* (…)". A function of the entry alone, so more can be said around it."""
    who, phrase = f"<@{escape(entry.user)}>{hub_identity_words(getattr(entry, 'hub', None))}", audit_phrase(entry)
    result = entry.result or "ok"
    if result == "ok":
        return f"{who} {_past(phrase)}"
    if result.startswith("started"):
        return f"{who} started to {phrase}; the outcome is unknown (Space Ops stopped before the Hub answered)"
    if result.startswith("skipped"):
        return f"{who}'s schedule did not {phrase.removeprefix('let ')}: skipped, {escape(result.partition(': ')[2])}"
    kind, _, why = result.partition(": ")
    return f"{who} tried to {phrase}: *{escape(kind)}*" + (f" ({escape(why)})" if why else "")


def audit_reply(entries: Iterable, space: str | None) -> Reply:
    entries = list(entries)
    scope = f" for {code(space)}" if space else ""
    if not entries:
        return Reply(f"No audit entries{scope} yet.")
    rows = [f"{when_words(entry.ts)} {audit_words(entry)}" for entry in entries]
    text = f"*Audit trail{scope}*, newest first:\n" + "\n".join(rows)
    return Reply(text, [section(text)])


# ---------------------------------------------------------------- `/space logs`

def logs_private(space: str) -> str:
    return f"{code(space)} is private: its logs are shown only where its details may be."


def logs_static(space: str) -> str:
    return f"{code(space)} is a static Space: it has no logs."


def logs_none_yet(space: str, kind: str) -> str:
    return f"{code(space)} has no {kind} log lines yet."


def logs_silent(space: str, seconds: float) -> str:
    return (f"The Hub sent nothing for the logs of {code(space)} within {seconds:g} s (not even a keep-alive). "
            f"Try again in a minute.")


def logs_none_within(space: str, seconds: float) -> str:
    return f"The Hub sent no log lines within {seconds:g} s for {code(space)}."


def logs_asleep(space: str, stage: str, ran_until: float | None, changed: str | None, now: float) -> str:
    """A Space that is asleep or paused has no logs: when it last ran (the poller saw it stop), or failing
    that when the Hub last changed it, and that logs start again when it runs."""
    if ran_until:
        when = f" It last ran until {when_words(ran_until)} ({duration_words(max(0.0, now - ran_until))} ago)."
    elif changed:
        when = f" Space Ops has not seen it run; the Hub last changed it on {escape(changed)}."
    else:
        when = ""
    return f"{code(space)} is {stage_words(stage)}: no logs now.{when} Logs start again when it runs."


def logs_head(space: str, kind: str, shown: int, read: int) -> str:
    head = f"Last {shown} {kind} log lines of {code(space)}"
    if read > shown:
        head += f" (of {read} read; ask with `--lines {shown}` or fewer to see them all here)"
    return head


def logs_uploaded(space: str, kind: str, count: int) -> str:
    return (f"The last {count} {kind} log lines of {code(space)} are in the file `{escape(logs_filename(space, kind))}` "
            f"Space Ops just uploaded to this conversation.")


def logs_not_uploaded(space: str, kind: str, count: int, shown: int) -> str:
    return (f"{count} {kind} log lines of {code(space)} were read but could not be uploaded as a file here "
            f"(is Space Ops a member of this channel?); the last {shown}:")


def logs_filename(space: str, kind: str) -> str:
    return f"{space.replace('/', '-')}-{kind}.log"


# ---------------------------------------------------------------- `/space dev`, `/space volumes`, `volume add|rm`

DEV_NEEDS_PLAN = "Dev mode needs a PRO, Team or Enterprise plan on the Space's owner."
VOLUMES_RESTART = "the Space restarts to apply it."


def dev_turned(enabled: bool) -> str:
    return f"turned dev mode {'on' if enabled else 'off'} for"


def volumes_none(space: str) -> str:
    return f"{code(space)} has no volumes."


def volumes_reply(space: str, mounts: list) -> Reply:
    lines = [f"• {code(v.mount_path)} ← {escape(v.type)} {code(v.source)}"
             f"{' (read-only)' if v.read_only else ' (read-write)'}"
             f"{' at ' + code(v.revision) if v.revision else ''}" for v in mounts]
    text = f"Volumes of {code(space)}:\n" + "\n".join(lines)
    return Reply(text, [section(text)])


def volumes_busy(space: str) -> str:
    return f"Someone is changing the volumes of {code(space)} right now; try again."


def volumes_changed_meanwhile(space: str) -> str:
    return (f"The volumes of {code(space)} changed while you edited them; nothing was changed. "
            f"Check `/space volumes {escape(space)}` and try again.")


def volume_always_read_only(kind: str) -> str:
    return f" ({escape(kind)}s are always mounted read-only)"


def volume_taken(space: str, mount: str) -> str:
    return (f"Something is already mounted at {code(mount)}: remove it first with "
            f"`/space volume rm {escape(space)} {escape(mount)}`.")


def volume_mounted(kind: str, source: str, mount: str, note: str) -> str:
    return f"mounted {escape(kind)} {code(source)} at {code(mount)}{note} on"


def volume_source_refused(source: str) -> str:
    return f"{code(source)} cannot be mounted from here: it is private or not found."


def volume_nothing_at(space: str, mount: str) -> str:
    return f"Nothing is mounted at {code(mount)} on {code(space)}."


def volume_unmounted(mount: str) -> str:
    return f"unmounted {code(mount)} from"
