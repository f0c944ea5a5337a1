"""The `/space` command grammar: text in, a `Command` value out (or `BadInput` with a suggestion)."""

from __future__ import annotations

import difflib
import html
import re
from dataclasses import dataclass, field

from bot.core.errors import BadInput
from bot.core.flavors import Catalogue
from bot.core.markup import escape

# name → (usage, example, summary). The order is the order of `help`.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "status": ("status SPACE", "status acme/chat", "stage, hardware and price, sleep time, replicas, error"),
    "restart": ("restart SPACE [--factory]", "restart acme/chat", "restart (--factory rebuilds without cache)"),
    "resume": ("resume SPACE", "resume acme/chat", "start a paused Space again"),
    "pause": ("pause SPACE", "pause acme/chat", "pause: no billing until resumed"),
    "hw": ("hw SPACE FLAVOR", "hw acme/chat t4-medium", "change hardware (paid upgrades need approval)"),
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
    "help": ("help [COMMAND]", "help hw", "this help"),
}
ALIASES = {"hardware": "hw", "restore": "resume", "start": "resume", "vars": "var", "variable": "var",
           "variables": "var", "secrets": "secret", "dup": "duplicate", "clone": "duplicate", "fork": "duplicate",
           "flavours": "flavors", "hardwares": "flavors", "stop": "pause", "?": "help", "approval": "approvals",
           "info": "status", "reboot": "restart"}
SUBCOMMANDS = {"var": ("ls", "set", "rm"), "secret": ("ls", "set", "rm")}
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


def parse_command(text: str, catalogue: Catalogue | None = None) -> Command:
    """Parse the text after `/space`. Raises BadInput (with a suggestion where one fits)."""
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


def _flavor(token: str, catalogue: Catalogue) -> str:
    name = token.strip().lower()
    if name in catalogue:
        return name
    suggestion = catalogue.suggest(name)
    hint = f" Did you mean `{suggestion}`?" if suggestion else " See `/space flavors`."
    raise BadInput(f"`{_clip(token)}` is not a hardware flavor.{hint}")


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
    _need(args, 2, "hw")
    _too_many(args, 2, "hw")
    return Command("hw", space=parse_space(args[0]), flavor=_flavor(args[1], catalogue))


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
    return Command("var.set", space=space, key=_key(key.strip()), value=_unquote(html.unescape(value.strip())))


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


_PARSERS = {
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
    "help": _parse_help,
}
