"""The `/space` command grammar: text in, a `Command` value out (or `BadInput` with a suggestion)."""

from __future__ import annotations

import difflib
import html
import re
import zoneinfo
from dataclasses import dataclass, field
from typing import Callable

from bot.core.errors import BadInput
from bot.core.flavors import Catalogue
from bot.core.markup import escape

# name → (usage, example, summary). The order is the order of `help`.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "status": ("status SPACE", "status acme/chat", "stage, hardware and price, sleep time, replicas, error"),
    "restart": ("restart SPACE [--factory]", "restart acme/chat", "restart (--factory rebuilds without cache)"),
    "resume": ("resume SPACE", "resume acme/chat", "start a paused Space again"),
    "pause": ("pause SPACE", "pause acme/chat", "pause: no billing until resumed"),
    "hw": ("hw SPACE FLAVOR", "hw acme/chat t4-medium",
           "change hardware (paid upgrades need approval); add --for 4h to go back by itself"),
    "sleep": ("sleep SPACE DURATION|never", "sleep acme/chat 1h", "sleep after that much idle time"),
    "var": ("var ls|set|rm SPACE [KEY[=VALUE]]", "var set acme/chat MODEL=gpt2", "list, set or remove variables"),
    "secret": ("secret ls|set|rm SPACE [KEY]", "secret set acme/chat OPENAI_KEY",
               "list, set (in a private form) or remove secrets"),
    "duplicate": ("duplicate FROM TO [--private] [--hw FLAVOR] [--sleep DURATION]",
                  "duplicate acme/chat acme/chat-staging --private", "copy a Space"),
    "flavors": ("flavors", "flavors", "hardware catalogue with prices per hour"),
    "watch": ("watch SPACE|NAMESPACE/* [#channel] [--only KINDS]", "watch acme/* --only errors",
              "post this channel's alerts when a Space changes stage"),
    "unwatch": ("unwatch SPACE|NAMESPACE/* [#channel]", "unwatch acme/chat", "stop watching"),
    "watches": ("watches [all]", "watches", "what this channel (or the workspace) watches"),
    "mute": ("mute SPACE|NAMESPACE/* DURATION", "mute acme/chat 2h", "silence this channel's alerts for a while"),
    "unmute": ("unmute SPACE|NAMESPACE/*", "unmute acme/chat", "end a mute"),
    "webhook": ("webhook [enable|disable]", "webhook enable",
                "Hub push webhook: pushed Spaces are read at once (admins; needs a public URL)"),
    "approvals": ("approvals [cancel ID]", "approvals", "pending hardware requests; cancel or withdraw one"),
    "audit": ("audit [SPACE]", "audit acme/chat", "who did what, newest first"),
    "schedule": ("schedule SPACE|NAMESPACE/* ACTION WHEN [--tz Area/City]",
                 "schedule acme/demo pause weekdays 19:00 --tz Europe/Paris",
                 "act at set times: ACTION pause, resume, restart, sleep DURATION or hw FLAVOR; WHEN weekdays "
                 "19:00, daily 02:30, mon,wed,fri 08:00, every 6h, cron (5 fields in quotes) or at 2026-12-24 "
                 "18:00; schedule pause ID holds it until schedule resume ID"),
    "schedules": ("schedules [SPACE|NAMESPACE/*]", "schedules acme/demo", "schedules and timed upgrades"),
    "unschedule": ("unschedule ID", "unschedule 7f3a", "remove a schedule, or cancel a timed upgrade's revert"),
    "scope": ("scope [#channel] [NAMESPACE/* [read|operate]]", "scope #alerts acme/* read",
              "what a channel may see and do (admins set it)"),
    "unscope": ("unscope #channel NAMESPACE/*", "unscope #alerts acme/*", "remove one of a channel's scopes"),
    "cost": ("cost [SPACE|NAMESPACE/*] [--days N | --month [YYYY-MM]] [--chart]", "cost acme/* --days 30",
             "estimated spend per Space, highest first, with the month's projection"),
    "digest": ("digest #channel daily|weekly [HH:MM] [--tz Area/City] | digest #channel off",
               "digest #ops weekly 09:00 --tz Europe/Paris", "a scheduled uptime and spend summary with a chart"),
    "digests": ("digests", "digests", "the scheduled digests"),
    "budget": ("budget NAMESPACE/* [AMOUNT/month | off]", "budget acme/* 500/month",
               "a monthly budget with alerts at 80%, 100% and when the projection exceeds it"),
    "logs": ("logs SPACE [--build] [--lines N]", "logs acme/chat --lines 100",
             "the last log lines (run, or build with --build; 30 by default, at most 500)"),
    "dev": ("dev SPACE on|off", "dev acme/chat on", "turn dev mode on or off (operators)"),
    "volumes": ("volumes SPACE", "volumes acme/chat", "what is mounted in the Space"),
    "volume": ("volume add SPACE bucket|model|dataset|space SOURCE MOUNT_PATH [--ro] [--revision R] | "
               "volume rm SPACE MOUNT_PATH", "volume add acme/chat model acme/llm /models --ro",
               "mount or unmount a volume (operators; the Space restarts)"),
    "login": ("login", "login", "sign in with Hugging Face: your Hub roles then count here"),
    "whoami": ("whoami", "whoami", "your linked Hugging Face account and what its roles let you do"),
    "logout": ("logout", "logout", "forget your Hugging Face link at once"),
    "help": ("help [COMMAND]", "help hw", "this help"),
}
ALIASES = {"hardware": "hw", "restore": "resume", "start": "resume", "vars": "var", "variable": "var",
           "variables": "var", "secrets": "secret", "dup": "duplicate", "clone": "duplicate", "fork": "duplicate",
           "flavours": "flavors", "hardwares": "flavors", "stop": "pause", "?": "help", "approval": "approvals",
           "info": "status", "reboot": "restart", "costs": "cost", "spend": "cost", "budgets": "budget",
           "log": "logs", "devmode": "dev", "mounts": "volumes", "vol": "volume",
           "signin": "login", "sign-in": "login", "signout": "logout", "sign-out": "logout", "me": "whoami"}
SUBCOMMANDS = {"var": ("ls", "set", "rm"), "secret": ("ls", "set", "rm"), "volume": ("add", "rm")}
SUB_ALIASES = {"list": "ls", "get": "ls", "show": "ls", "add": "set", "put": "set", "delete": "rm",
               "del": "rm", "remove": "rm", "unset": "rm"}
ALERT_KINDS = ("errors", "building", "running", "sleep", "paused", "hardware", "stuck", "cost")

_PART = r"[A-Za-z0-9](?:[A-Za-z0-9_.\-]*[A-Za-z0-9])?"
_SPACE_ID = re.compile(rf"^({_PART})/({_PART})$")
_NAMESPACE_PATTERN = re.compile(rf"^({_PART})/\*$")
_SPACE_URL = re.compile(r"^(?:https?://)?(?:www\.)?(?:huggingface\.co|hf\.co)/spaces/([^/?#\s]+)/([^/?#\s]+)/?(?:[?#].*)?$", re.I)
_SLACK_LINK = re.compile(r"^<([^|>]+)(?:\|[^>]*)?>$")
_CHANNEL = re.compile(r"^<#([CG][A-Z0-9]+)(?:\|[^>]*)?>$")
_BARE_CHANNEL = re.compile(r"^([CG][A-Z0-9]{6,})$")
_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# ASCII: `\d` and str.isdigit() also match "²" or "٣", which int() then refuses.
_DURATION_PART = re.compile(r"(\d+)\s*([smhd])", re.I | re.ASCII)
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_-]{4,64}$")
MAX_TEXT = 4000


@dataclass(frozen=True)
class Command:
    """One parsed `/space` invocation. `name` is canonical: "status", "var.set", "approvals.cancel"…"""

    name: str
    space: str | None = None
    flavor: str | None = None
    seconds: int | None = None  # sleep / mute durations; -1 means never
    key: str | None = None
    value: str | None = None
    target: str | None = None
    private: bool = False
    factory: bool = False
    channel: str | None = None
    only: frozenset[str] = field(default_factory=frozenset)
    topic: str | None = None
    request_id: str | None = None
    everywhere: bool = False
    action: str | None = None       # schedule: pause | resume | restart | sleep | hw
    when: str | None = None         # schedule: WHEN text, parsed by bot.schedules.when
    tz: str | None = None           # schedule: --tz Area/City
    for_seconds: int | None = None  # hw --for DURATION
    level: str | None = None  # `scope`: read | operate
    # cost, digest and budget (bot/fleet)
    days: int | None = None
    month: str | None = None       # YYYY-MM, or "" for the current month
    chart: bool = False
    period: str | None = None      # daily | weekly
    at: str | None = None          # HH:MM
    amount: float | None = None    # budget per month in USD
    # logs, dev, volume (bot/commands/tools.py)
    build: bool = False
    lines: int | None = None
    enabled: bool = False
    volume_type: str | None = None
    source: str | None = None
    mount: str | None = None
    revision: str | None = None
    read_only: bool = False

    @property
    def is_pattern(self) -> bool:
        return bool(self.space and self.space.endswith("/*"))


def parse_space(token: str, allow_pattern: bool = False) -> str:
    """Normalise a Space id, URL or Slack link to `namespace/name`; refuse anything else."""
    raw = token.strip()
    link = _SLACK_LINK.match(raw)
    if link:
        raw = link.group(1)
    url = _SPACE_URL.match(raw)
    if url:
        raw = f"{url.group(1)}/{url.group(2)}"
    if allow_pattern and _NAMESPACE_PATTERN.match(raw):
        return raw
    if _SPACE_ID.match(raw) and len(raw) <= 96 and "--" not in raw and ".." not in raw:
        return raw
    hint = "namespace/name or a huggingface.co/spaces/… link"
    if allow_pattern:
        hint += ", or namespace/* for every Space of a user or org"
    raise BadInput(f"`{_clip(token)}` is not a Space id: use {hint} (example: acme/chat).")


def parse_duration(token: str, allow_never: bool = True) -> int:
    """`90`, `90s`, `15m`, `2h`, `1d`, `1h30m` → seconds; `never` → -1."""
    text = token.strip().lower()
    if allow_never and text in ("never", "off", "none", "-1"):
        return -1
    if text.isascii() and text.isdigit():
        seconds = int(text)
    else:
        parts = _DURATION_PART.findall(text)
        if not parts or "".join(f"{n}{u}" for n, u in parts) != re.sub(r"\s+", "", text):
            raise BadInput(f"`{_clip(token)}` is not a duration: use 90, 90s, 15m, 2h, 1d"
                           + (" or never." if allow_never else "."))
        seconds = sum(int(n) * _UNIT[u.lower()] for n, u in parts)
    if seconds <= 0 or seconds > 365 * 86400:
        raise BadInput(f"`{_clip(token)}` is out of range: give a duration between 1s and 365d.")
    return seconds


def parse_command(text: str, catalogue: Catalogue | Callable[[], Catalogue] | None = None) -> Command:
    """Parse the text after `/space`. Raises BadInput (with a suggestion where one fits).
    `catalogue` may be a function, called only when the text names a flavor: Slack's ack path then reads
    the shared catalogue (a Redis round trip) for `hw` and the like, not for every command."""
    catalogue = catalogue or Catalogue()
    if len(text or "") > MAX_TEXT:
        raise BadInput(f"That command is too long ({len(text)} characters); the limit is {MAX_TEXT}.")
    words = (text or "").split()
    if not words:
        return Command("help")
    verb = _canonical_verb(words[0])
    args = words[1:]
    parser = _PARSERS[verb]
    return parser(args, text, catalogue)


def _canonical_verb(word: str) -> str:
    verb = word.lower().lstrip("/")
    verb = ALIASES.get(verb, verb)
    if verb in COMMANDS:
        return verb
    choices = list(COMMANDS) + list(ALIASES)
    close = difflib.get_close_matches(verb, choices, n=1, cutoff=0.6)
    suggestion = ALIASES.get(close[0], close[0]) if close else None
    hint = f" Did you mean `{suggestion}`?" if suggestion else ""
    raise BadInput(f"Unknown command `{_clip(word)}`.{hint} Commands: {', '.join(COMMANDS)}.")


def _clip(text: str, limit: int = 60) -> str:
    """Echo user text inside a sentence: shortened, and escaped for mrkdwn."""
    text = text.replace("`", "'")
    return escape(text if len(text) <= limit else text[: limit - 1] + "…")


def _need(args: list[str], count: int, verb: str) -> None:
    if len(args) < count:
        usage, example, _ = COMMANDS[verb]
        raise BadInput(f"Usage: `/space {usage}` (example: `/space {example}`).")


def _split_flags(args: list[str], verb: str, flags_with_value: tuple[str, ...] = (),
                 bool_flags: tuple[str, ...] = ()) -> tuple[list[str], dict[str, str | bool]]:
    positional, flags = [], {}
    known = flags_with_value + bool_flags
    i = 0
    while i < len(args):
        word = args[i]
        if word.startswith(("--", "—", "–")):
            name, _, inline = word.lstrip("-—–").partition("=")
            name = name.lower()
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
                hint = f" Did you mean `--{close[0]}`?" if close else ""
                allowed = ", ".join(f"--{k}" for k in known) or "none"
                raise BadInput(f"`{verb}` has no option `--{_clip(name)}`.{hint} Options: {allowed}.")
            if name in flags_with_value:
                if not inline:
                    i += 1
                    if i >= len(args):
                        raise BadInput(f"`--{name}` needs a value.")
                    inline = args[i]
                flags[name] = inline
            else:
                flags[name] = True
        else:
            positional.append(word)
        i += 1
    return positional, flags


def _too_many(args: list[str], count: int, verb: str) -> None:
    if len(args) > count:
        usage, _, _ = COMMANDS[verb]
        raise BadInput(f"Too many words after `{verb}`: `{_clip(' '.join(args[count:]))}`. "
                       f"Usage: `/space {usage}`.")


_FLAVOR_NAME = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,39}$")
# How close to a known flavor a name must be to count as its typo rather than a flavor the catalogue lacks.
TYPO_CUTOFF = 0.85


def _flavor(token: str, catalogue: Catalogue | Callable[[], Catalogue]) -> str:
    """A known flavor; a name one typo away from one gets "Did you mean"; any other well-formed name is
    taken as a flavor the catalogue does not know yet (treated as paid at an unknown price: an approver
    decides, see bot/commands/costs.py)."""
    catalogue = catalogue() if callable(catalogue) else catalogue
    name = token.strip().lower()
    if name in catalogue:
        return name
    if not _FLAVOR_NAME.match(name):
        raise BadInput(f"`{_clip(token)}` is not a hardware flavor. See `/space flavors`.")
    close = difflib.get_close_matches(name, [f.name for f in catalogue], n=1, cutoff=TYPO_CUTOFF)
    if close:
        raise BadInput(f"`{_clip(token)}` is not a hardware flavor. Did you mean `{close[0]}`?")
    return name


def _simple(verb: str):
    def parse(args, _text, _catalogue):
        _need(args, 1, verb)
        _too_many(args, 1, verb)
        return Command(verb, space=parse_space(args[0]))
    return parse


def _parse_help(args, _text, _catalogue):
    topic = None
    if args:
        topic = ALIASES.get(args[0].lower(), args[0].lower())
        if topic not in COMMANDS:
            topic = _canonical_verb(args[0])
    return Command("help", topic=topic)


def _parse_restart(args, _text, _catalogue):
    positional, flags = _split_flags(args, "restart", bool_flags=("factory",))
    _need(positional, 1, "restart")
    _too_many(positional, 1, "restart")
    return Command("restart", space=parse_space(positional[0]), factory=bool(flags.get("factory")))


def _parse_hw(args, _text, catalogue):
    args, flags = _split_flags(args, "hw", ("for",))
    _need(args, 2, "hw")
    _too_many(args, 2, "hw")
    for_seconds = None
    if "for" in flags:
        for_seconds = parse_duration(str(flags["for"]), allow_never=False)
        if for_seconds < 60:
            raise BadInput("`--for` takes at least 1 minute (examples: 30m, 4h, 3d).")
    return Command("hw", space=parse_space(args[0]), flavor=_flavor(args[1], catalogue), for_seconds=for_seconds)


def _parse_sleep(args, _text, _catalogue):
    _need(args, 2, "sleep")
    return Command("sleep", space=parse_space(args[0]), seconds=parse_duration(" ".join(args[1:])))


def _sub(verb: str, args: list[str]) -> str:
    _need(args, 1, verb)
    word = args[0].lower()
    sub = SUB_ALIASES.get(word, word)
    if sub not in SUBCOMMANDS[verb]:
        close = difflib.get_close_matches(sub, SUBCOMMANDS[verb], n=1, cutoff=0.5)
        hint = f" Did you mean `{verb} {close[0]}`?" if close else ""
        raise BadInput(f"`{verb}` takes ls, set or rm, not `{_clip(args[0])}`.{hint}")
    return sub


def _key(token: str) -> str:
    if not _KEY.match(token):
        raise BadInput(f"`{_clip(token)}` is not a valid key: start with a letter, then letters, digits or _.")
    return token


def _parse_var(args, text, _catalogue):
    sub = _sub("var", args)
    _need(args, 2, "var")
    space = parse_space(args[1])
    if sub == "ls":
        _too_many(args, 2, "var")
        return Command("var.ls", space=space)
    if sub == "rm":
        _need(args, 3, "var")
        _too_many(args, 3, "var")
        return Command("var.rm", space=space, key=_key(args[2]))
    # The value is the raw rest of the text, so spaces inside it survive.
    rest = re.split(r"\s+", text.strip(), maxsplit=3)
    if len(rest) < 4 or "=" not in rest[3]:
        raise BadInput("Usage: `/space var set SPACE KEY=VALUE` (example: `/space var set acme/chat MODEL=gpt2`).")
    key, _, value = rest[3].partition("=")
    value = _unquote(html.unescape(unwrap_slack(value.strip())))
    return Command("var.set", space=space, key=_key(key.strip()), value=value)


# Slack rewrites what people type in command text: links `<https://x|x>`, e-mail `<mailto:a@b.c|a@b.c>`,
# mentions `<@U123|name>`, channels `<#C123|name>`, groups `<!subteam^S1|@team>`, `<!here>`.
_SLACK_ENTITY = re.compile(r"<((?:https?://|mailto:|tel:|@[UW]|#[CG]|!)[^<>|\s]*)(?:\|([^<>]*))?>", re.I)


def _typed(match: re.Match) -> str:
    target, label = match.group(1), match.group(2)
    if target.startswith("@"):
        return "@" + (label or target[1:])
    if target.startswith("#"):
        return "#" + (label or target[1:])
    if target.startswith("!"):
        name = label or target[1:].split("^")[0]
        return name if name.startswith("@") else "@" + name
    if label:  # Slack labels an auto-linked URL or address with what was typed
        return label
    return target.removeprefix("mailto:")


def unwrap_slack(text: str) -> str:
    """What the person typed, from Slack's command text: `<https://a.b/c>` → `https://a.b/c`,
    `<mailto:a@b.c|a@b.c>` → `a@b.c`, `<@U1|ana>` → `@ana`, `<http://a.b|a.b>` → `a.b`."""
    return _SLACK_ENTITY.sub(_typed, text)


def _unquote(value: str) -> str:
    for left, right in (('"', '"'), ("'", "'"), ("“", "”"), ("‘", "’")):
        if len(value) >= 2 and value.startswith(left) and value.endswith(right):
            return value[1:-1]
    return value


def _parse_secret(args, _text, _catalogue):
    sub = _sub("secret", args)
    _need(args, 2, "secret")
    space = parse_space(args[1])
    if sub == "ls":
        _too_many(args, 2, "secret")
        return Command("secret.ls", space=space)
    _need(args, 3, "secret")
    if len(args) > 3 or "=" in args[2]:
        # Someone pasted the value: refuse, so it goes no further than this parse.
        raise BadInput("Secret values never go in the command text: type `/space secret set SPACE KEY` "
                       "and enter the value in the private form that opens.")
    return Command(f"secret.{sub}", space=space, key=_key(args[2]))


def _parse_duplicate(args, _text, catalogue):
    positional, flags = _split_flags(args, "duplicate", ("hw", "sleep"), ("private",))
    _need(positional, 2, "duplicate")
    _too_many(positional, 2, "duplicate")
    source, target = parse_space(positional[0]), parse_space(positional[1])
    if source == target:
        raise BadInput("The copy needs a different name than the original.")
    flavor = _flavor(str(flags["hw"]), catalogue) if "hw" in flags else None
    seconds = parse_duration(str(flags["sleep"])) if "sleep" in flags else None
    return Command("duplicate", space=source, target=target, private=bool(flags.get("private")),
                   flavor=flavor, seconds=seconds)


def _parse_flavors(args, _text, _catalogue):
    return Command("flavors")


def _channel(token: str) -> str:
    match = _CHANNEL.match(token) or _BARE_CHANNEL.match(token)
    if not match:
        raise BadInput(f"`{_clip(token)}` is not a channel: pick it with # so Slack links it (e.g. #alerts).")
    return match.group(1)


def _only(raw: str) -> frozenset[str]:
    kinds = {part.strip().lower() for part in raw.split(",") if part.strip()}
    singular = {"error": "errors", "sleeping": "sleep", "pause": "paused", "build": "building",
                "recovery": "running", "up": "running"}
    kinds = {singular.get(kind, kind) for kind in kinds}
    unknown = sorted(kinds - set(ALERT_KINDS))
    if unknown or not kinds:
        close = difflib.get_close_matches(unknown[0], ALERT_KINDS, n=1, cutoff=0.6) if unknown else []
        hint = f" Did you mean `{close[0]}`?" if close else ""
        raise BadInput(f"Unknown alert kind `{_clip(','.join(unknown))}`.{hint} Kinds: {', '.join(ALERT_KINDS)}.")
    return frozenset(kinds)


def _parse_watch(verb: str):
    def parse(args, _text, _catalogue):
        positional, flags = _split_flags(args, verb, ("only",) if verb == "watch" else ())
        _need(positional, 1, verb)
        _too_many(positional, 2, verb)
        channel = _channel(positional[1]) if len(positional) > 1 else None
        only = _only(str(flags["only"])) if "only" in flags else frozenset()
        return Command(verb, space=parse_space(positional[0], allow_pattern=True), channel=channel, only=only)
    return parse


def _parse_watches(args, _text, _catalogue):
    _too_many(args, 1, "watches")
    if args and args[0].lower() not in ("all", "--all"):
        raise BadInput("Usage: `/space watches` for this channel, `/space watches all` for the workspace.")
    return Command("watches", everywhere=bool(args))


def _parse_mute(args, _text, _catalogue):
    _need(args, 2, "mute")
    return Command("mute", space=parse_space(args[0], allow_pattern=True),
                   seconds=parse_duration(" ".join(args[1:]), allow_never=False))


def _parse_unmute(args, _text, _catalogue):
    _need(args, 1, "unmute")
    _too_many(args, 1, "unmute")
    return Command("unmute", space=parse_space(args[0], allow_pattern=True))


def _parse_approvals(args, _text, _catalogue):
    if not args:
        return Command("approvals")
    if args[0].lower() in ("cancel", "withdraw", "rm") and len(args) == 2 and _REQUEST_ID.match(args[1]):
        return Command("approvals.cancel", request_id=args[1])
    raise BadInput("Usage: `/space approvals` to list, `/space approvals cancel ID` to cancel or withdraw one.")


def _parse_webhook(args, _text, _catalogue):
    _too_many(args, 1, "webhook")
    if not args or args[0].lower() in ("show", "status"):
        return Command("webhook")
    if args[0].lower() in ("enable", "on", "disable", "off"):
        return Command("webhook.enable" if args[0].lower() in ("enable", "on") else "webhook.disable")
    raise BadInput("Usage: `/space webhook` shows it, `/space webhook enable` or `disable` changes it.")


def _parse_audit(args, _text, _catalogue):
    _too_many(args, 1, "audit")
    return Command("audit", space=parse_space(args[0]) if args else None)


SCHEDULE_ACTIONS = ("pause", "resume", "restart", "sleep", "hw")
_SCHEDULE_ID = re.compile(r"^[0-9a-f]{4,8}$", re.I)


def _schedule_id(token: str, verb: str) -> str:
    if not _SCHEDULE_ID.match(token):
        raise BadInput(f"`{_clip(token)}` is not a schedule id (see `/space schedules`). Usage: `/space {verb} ID`.")
    return token.lower()


def _parse_schedule(args, _text, catalogue):
    positional, flags = _split_flags(args, "schedule", ("tz",))
    if len(positional) == 2 and positional[0].lower() in ("pause", "resume", "skip", "unpause"):
        sub = {"skip": "pause", "unpause": "resume"}.get(positional[0].lower(), positional[0].lower())
        return Command(f"schedule.{sub}", request_id=_schedule_id(positional[1], f"schedule {sub}"))
    _need(positional, 3, "schedule")
    space = parse_space(positional[0], allow_pattern=True)
    action = ALIASES.get(positional[1].lower(), positional[1].lower())
    if action not in SCHEDULE_ACTIONS:
        close = difflib.get_close_matches(action, SCHEDULE_ACTIONS, n=1, cutoff=0.6)
        hint = f" Did you mean `{close[0]}`?" if close else ""
        raise BadInput(f"`{_clip(positional[1])}` is not a schedule action.{hint} Actions: pause, resume, restart, "
                       f"sleep DURATION|never, hw FLAVOR.")
    rest = positional[2:]
    flavor = seconds = None
    if action in ("sleep", "hw"):
        _need(rest, 2, "schedule")
        if action == "hw":
            flavor = _flavor(rest[0], catalogue)
        else:
            seconds = parse_duration(rest[0])
        rest = rest[1:]
    tz = str(flags["tz"]) if "tz" in flags else None
    return Command("schedule", space=space, action=action, flavor=flavor, seconds=seconds, when=" ".join(rest),
                   tz=tz)


def _parse_schedules(args, _text, _catalogue):
    _too_many(args, 1, "schedules")
    return Command("schedules", space=parse_space(args[0], allow_pattern=True) if args else None)


def _parse_unschedule(args, _text, _catalogue):
    _need(args, 1, "unschedule")
    _too_many(args, 1, "unschedule")
    return Command("unschedule", request_id=_schedule_id(args[0], "unschedule"))


SCOPE_LEVELS = ("read", "operate")


def _parse_scope(args, _text, _catalogue):
    _too_many(args, 3, "scope")
    channel = _channel(args[0]) if args else None
    if len(args) <= 1:
        return Command("scope", channel=channel)
    pattern = parse_space(args[1], allow_pattern=True)
    if not pattern.endswith("/*"):
        raise BadInput(f"A scope is a namespace: `{_clip(pattern.split('/')[0])}/*`, not one Space.")
    level = args[2].lower() if len(args) > 2 else "operate"
    if level not in SCOPE_LEVELS:
        raise BadInput(f"`{_clip(args[2])}` is not a level: use read or operate.")
    return Command("scope.set", channel=channel, space=pattern, level=level)


def _parse_unscope(args, _text, _catalogue):
    _need(args, 2, "unscope")
    _too_many(args, 2, "unscope")
    pattern = parse_space(args[1], allow_pattern=True)
    if not pattern.endswith("/*"):
        raise BadInput(f"A scope is a namespace: `{_clip(pattern.split('/')[0])}/*`, not one Space.")
    return Command("unscope", channel=_channel(args[0]), space=pattern)


_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$", re.ASCII)
_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$", re.ASCII)
_AMOUNT = re.compile(r"^\$?(\d{1,9}(?:\.\d{1,2})?)(?:/(?:month|mo|m))?$", re.ASCII | re.I)


def _parse_cost(args, _text, _catalogue):
    # `--month` takes an optional YYYY-MM, which _split_flags can't express: read it here.
    rest, month = [], None
    i = 0
    while i < len(args):
        if args[i].lower().lstrip("-—–") == "month" and args[i].startswith(("--", "—", "–")):
            month = ""
            if i + 1 < len(args) and _MONTH.match(args[i + 1]):
                month = args[i + 1]
                i += 1
        elif args[i].lower().startswith("--month="):
            month = args[i].split("=", 1)[1]
            if not _MONTH.match(month):
                raise BadInput(f"`{_clip(month)}` is not a month: use YYYY-MM (example: 2026-11).")
        else:
            rest.append(args[i])
        i += 1
    positional, flags = _split_flags(rest, "cost", ("days",), ("chart",))
    _too_many(positional, 1, "cost")
    days = None
    if "days" in flags:
        raw = str(flags["days"])
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 400:
            raise BadInput(f"`--days {_clip(raw)}` is out of range: give a number of days from 1 to 400.")
        days = int(raw)
    if days is not None and month is not None:
        raise BadInput("Give `--days N` or `--month [YYYY-MM]`, not both.")
    space = parse_space(positional[0], allow_pattern=True) if positional else None
    return Command("cost", space=space, days=days, month=month, chart=bool(flags.get("chart")))


def _parse_digest(args, _text, _catalogue):
    positional, flags = _split_flags(args, "digest", ("tz",))
    _need(positional, 2, "digest")
    _too_many(positional, 3, "digest")
    channel = _channel(positional[0])
    period = positional[1].lower()
    if period in ("off", "stop", "none"):
        _too_many(positional, 2, "digest")
        return Command("digest.off", channel=channel)
    if period not in ("daily", "weekly"):
        raise BadInput(f"`{_clip(positional[1])}` is not a digest period: use daily, weekly or off.")
    at = "09:00"
    if len(positional) > 2:
        match = _HHMM.match(positional[2])
        if not match:
            raise BadInput(f"`{_clip(positional[2])}` is not a time of day: use HH:MM (example: 09:00).")
        at = f"{int(match.group(1)):02d}:{match.group(2)}"
    tz = str(flags.get("tz") or "UTC")
    try:
        zoneinfo.ZoneInfo(tz)
    except (ValueError, KeyError, zoneinfo.ZoneInfoNotFoundError):
        raise BadInput(f"`{_clip(tz)}` is not a time zone: use Area/City (example: Europe/Paris) or UTC.") from None
    return Command("digest", channel=channel, period=period, at=at, tz=tz)


def _parse_digests(args, _text, _catalogue):
    _too_many(args, 0, "digests")
    return Command("digests")


def _no_args(verb: str):
    def parse(args, _text, _catalogue):
        _too_many(args, 0, verb)
        return Command(verb)
    return parse


def _parse_budget(args, _text, _catalogue):
    _need(args, 1, "budget")
    _too_many(args, 2, "budget")
    target = parse_space(args[0], allow_pattern=True)
    if not target.endswith("/*"):
        raise BadInput(f"Budgets are per namespace: use `{escape(target.split('/')[0])}/*`.")
    if len(args) == 1:
        return Command("budget", space=target)
    if args[1].lower() in ("off", "none", "remove"):
        return Command("budget.off", space=target)
    match = _AMOUNT.match(args[1].replace(",", ""))
    if not match or float(match.group(1)) <= 0:
        raise BadInput(f"`{_clip(args[1])}` is not a monthly amount: use dollars per month (example: 500/month).")
    return Command("budget.set", space=target, amount=float(match.group(1)))


LOG_LINES_DEFAULT = 30
LOG_LINES_MAX = 500
VOLUME_TYPES = ("bucket", "model", "dataset", "space")


def _parse_logs(args, _text, _catalogue):
    positional, flags = _split_flags(args, "logs", ("lines",), ("build",))
    _need(positional, 1, "logs")
    _too_many(positional, 1, "logs")
    lines = LOG_LINES_DEFAULT
    if "lines" in flags:
        raw = str(flags["lines"])
        if not raw.isdigit() or not 1 <= int(raw) <= LOG_LINES_MAX:
            raise BadInput(f"`--lines` takes a number from 1 to {LOG_LINES_MAX}, not `{_clip(raw)}`.")
        lines = int(raw)
    return Command("logs", space=parse_space(positional[0]), build=bool(flags.get("build")), lines=lines)


def _parse_dev(args, _text, _catalogue):
    _need(args, 2, "dev")
    _too_many(args, 2, "dev")
    word = args[1].lower()
    if word not in ("on", "off"):
        close = difflib.get_close_matches(word, ("on", "off"), n=1, cutoff=0.5)
        hint = f" Did you mean `{close[0]}`?" if close else ""
        raise BadInput(f"`dev` takes on or off, not `{_clip(args[1])}`.{hint}")
    return Command("dev", space=parse_space(args[0]), enabled=word == "on")


def _mount_path(token: str) -> str:
    if not token.startswith("/"):
        raise BadInput(f"`{_clip(token)}` is not an absolute mount path: start it with `/` (example: `/data`).")
    path = "/" + "/".join(part for part in token.split("/") if part)
    if path == "/":
        raise BadInput("A volume cannot be mounted at `/`: pick a folder such as `/data`.")
    if any(part == ".." for part in path.split("/")):
        raise BadInput(f"`{_clip(token)}` is not a mount path: `..` is not allowed.")
    return path


def _parse_volume(args, _text, _catalogue):
    word = args[0].lower() if args else ""
    word = {"remove": "rm", "delete": "rm", "del": "rm", "mount": "add", "unmount": "rm"}.get(word, word)
    if word not in SUBCOMMANDS["volume"]:
        _need(args, 1, "volume")
        close = difflib.get_close_matches(word, SUBCOMMANDS["volume"], n=1, cutoff=0.5)
        hint = f" Did you mean `volume {close[0]}`?" if close else ""
        raise BadInput(f"`volume` takes add or rm, not `{_clip(args[0])}`.{hint}")
    positional, flags = _split_flags(args[1:], "volume", ("revision",), ("ro",))
    if word == "rm":
        _need(positional, 2, "volume")
        _too_many(positional, 2, "volume")
        return Command("volume.rm", space=parse_space(positional[0]), mount=_mount_path(positional[1]))
    _need(positional, 4, "volume")
    _too_many(positional, 4, "volume")
    kind = positional[1].lower()
    if kind not in VOLUME_TYPES:
        close = difflib.get_close_matches(kind, VOLUME_TYPES, n=1, cutoff=0.5)
        hint = f" Did you mean `{close[0]}`?" if close else ""
        raise BadInput(f"`{_clip(positional[1])}` is not a volume type.{hint} Types: bucket, model, dataset, space.")
    if not _SPACE_ID.match(positional[2]):
        raise BadInput(f"`{_clip(positional[2])}` is not a source: use `owner/name`.")
    revision = str(flags["revision"]) if "revision" in flags else None
    if revision is not None and kind == "bucket":
        raise BadInput("`--revision` is for models, datasets and Spaces, not buckets.")
    if revision is not None and not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,99}$", revision):
        raise BadInput(f"`{_clip(revision)}` is not a revision.")
    return Command("volume.add", space=parse_space(positional[0]), volume_type=kind, source=positional[2],
                   mount=_mount_path(positional[3]), revision=revision, read_only=bool(flags.get("ro")))


_PARSERS = {
    "logs": _parse_logs,
    "dev": _parse_dev,
    "volumes": _simple("volumes"),
    "volume": _parse_volume,
    "scope": _parse_scope,
    "unscope": _parse_unscope,
    "status": _simple("status"),
    "restart": _parse_restart,
    "resume": _simple("resume"),
    "pause": _simple("pause"),
    "hw": _parse_hw,
    "sleep": _parse_sleep,
    "var": _parse_var,
    "secret": _parse_secret,
    "duplicate": _parse_duplicate,
    "flavors": _parse_flavors,
    "watch": _parse_watch("watch"),
    "unwatch": _parse_watch("unwatch"),
    "watches": _parse_watches,
    "mute": _parse_mute,
    "unmute": _parse_unmute,
    "approvals": _parse_approvals,
    "webhook": _parse_webhook,
    "audit": _parse_audit,
    "cost": _parse_cost,
    "digest": _parse_digest,
    "digests": _parse_digests,
    "budget": _parse_budget,
    "help": _parse_help,
    "login": _no_args("login"),
    "whoami": _no_args("whoami"),
    "logout": _no_args("logout"),
    "schedule": _parse_schedule,
    "schedules": _parse_schedules,
    "unschedule": _parse_unschedule,
}
