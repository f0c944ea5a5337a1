"""All configuration, read once from the environment into one frozen object."""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass, field
from typing import Mapping

from bot.core.errors import ConfigError
from bot.core.redisurl import parse_redis_url

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_HF_ENDPOINT = "https://huggingface.co"

# Where a newcomer gets each value: named in the error when it is missing.
WHERE_TO_GET = {
    "SLACK_BOT_TOKEN": "Slack app page → OAuth & Permissions → Bot User OAuth Token (xoxb-…)",
    "SLACK_SIGNING_SECRET": "Slack app page → Basic Information → App Credentials → Signing Secret (HTTP mode)",
    "SLACK_APP_TOKEN": "Slack app page → Basic Information → App-Level Tokens (xapp-…, scope connections:write; Socket Mode)",
    "HF_TOKEN": "https://huggingface.co/settings/tokens (a write or fine-grained token, not the `hf auth login` one)",
    "REDIS_URL": "redis://localhost:6379/0, or leave unset with `make run` to start a local redis-server",
}

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$", re.I | re.ASCII)
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _ids(raw: str | None) -> frozenset[str]:
    return frozenset(part.strip() for part in (raw or "").split(",") if part.strip())


def _seconds(name: str, raw: str | None, default: int) -> int:
    if not raw or not raw.strip():
        return default
    match = _DURATION.match(raw)
    if not match:
        raise ConfigError(f"{name}={raw!r} is not a duration (examples: 90, 15m, 24h, 1d)")
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
    if seconds <= 0:
        raise ConfigError(f"{name}={raw!r} must be longer than zero (examples: 90, 15m, 24h, 1d)")
    return seconds


def _number(name: str, raw: str | None, default: float, zero_ok: bool = False) -> float:
    """A number of seconds or dollars: refused with a sentence naming the variable when it is not one."""
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number (example: {name}={default:g})") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ConfigError(f"{name}={raw!r} is not a number (example: {name}={default:g})")
    if value < 0 or (value == 0 and not zero_ok):
        least = "zero or more" if zero_ok else "more than zero"
        raise ConfigError(f"{name}={raw!r} must be {least} (example: {name}={default:g})")
    return value


# Slack ids: users U…/W…, user groups S…, channels C…/G…/D…, workspaces T…/E…
_USER_OR_GROUP = re.compile(r"^[UWS][A-Z0-9]{1,20}$")
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{1,20}$")
_CHANNEL_NAME = re.compile(r"^#[a-z0-9][a-z0-9_\-]{0,79}$")
_TEAM_ID = re.compile(r"^[TE][A-Z0-9]{1,20}$")


def _checked_ids(name: str, raw: str | None, pattern: re.Pattern, what: str) -> frozenset[str]:
    ids = _ids(raw)
    bad = sorted(i for i in ids if not pattern.match(i))
    if bad:
        raise ConfigError(f"{name} has {bad[0]!r}, which is not {what}. Copy ids from Slack "
                          f"(a profile's ⋮ menu → Copy member ID; a channel's details → Channel ID).")
    return ids


USER_IDS = "a Slack user id (U…/W…) or user group id (S…)"


def _approval_channel(raw: str) -> str:
    """A channel id, or `#name` (resolved to its id at start-up, see bot/app.py)."""
    if not raw or _CHANNEL_ID.match(raw) or _CHANNEL_NAME.match(raw.lower()):
        return raw
    raise ConfigError(f"SPACEOPS_APPROVAL_CHANNEL={raw!r} is neither a channel id (C…) nor a channel name (#ops)")


FERNET_HINT = ("Make a key with `python -c \"from cryptography.fernet import Fernet; "
               "print(Fernet.generate_key().decode())\"`; to rotate, put the new key first: NEW,OLD.")


def _fernet_keys(raw: str | None) -> tuple[str, ...]:
    """SPACEOPS_SECRET_KEY: comma-separated Fernet keys (the first encrypts, every one decrypts). The value is
    never echoed in an error: only which entry is wrong."""
    keys = tuple(part.strip() for part in (raw or "").split(",") if part.strip())
    for index, value in enumerate(keys, 1):
        try:
            if len(base64.urlsafe_b64decode(value.encode("ascii"))) != 32:
                raise ValueError
        except (ValueError, UnicodeEncodeError, binascii.Error):
            raise ConfigError(f"SPACEOPS_SECRET_KEY: entry {index} of {len(keys)} is not a Fernet key (44 "
                              f"characters of url-safe base64). {FERNET_HINT}") from None
    if len(set(keys)) != len(keys):
        raise ConfigError("SPACEOPS_SECRET_KEY lists the same key twice: give each key once, the newest first.")
    return keys


def _flag(name: str, raw: str | None) -> bool:
    value = (raw or "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ConfigError(f"{name}={raw!r} must be 1 or 0")


# SPACEOPS_ROLES_FROM and SPACEOPS_UNLINKED: each word and what it means, for the start-up error.
ROLES_FROM = {"slack": "the lists SPACEOPS_OPERATORS, SPACEOPS_APPROVERS, SPACEOPS_READERS (the default)",
              "hub": "the linked Hugging Face account's role in the Space's namespace",
              "both": "the lower of the two (the lists are a ceiling)"}
UNLINKED = {"read": "members with no linked Hugging Face account may read public Spaces (the default)",
            "none": "they may do nothing until they run /space login"}


def _choice(name: str, raw: str | None, choices: dict[str, str], default: str) -> str:
    """One of a few words; the error names the setting and says what each word means."""
    value = (raw or "").strip().lower() or default
    if value in choices:
        return value
    meanings = "; ".join(f"{word}: {meaning}" for word, meaning in choices.items())
    raise ConfigError(f"{name}={raw!r} must be one of {', '.join(choices)} ({meanings})")


def _count(name: str, raw: str | None, default: int, minimum: int = 1, maximum: int = 10_000) -> int:
    if not raw or not raw.strip():
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number (default {default})") from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name}={raw!r} must be between {minimum} and {maximum} (default {default})")
    return value


@dataclass(frozen=True)
class Settings:
    slack_bot_token: str = ""
    slack_signing_secret: str = ""
    slack_app_token: str = ""
    slack_api_url: str = DEFAULT_SLACK_API_URL
    hf_token: str = ""
    hf_endpoint: str = DEFAULT_HF_ENDPOINT
    redis_url: str = ""
    namespaces: frozenset[str] = field(default_factory=frozenset)
    admins: frozenset[str] = field(default_factory=frozenset)
    operators: frozenset[str] = field(default_factory=frozenset)
    approvers: frozenset[str] = field(default_factory=frozenset)
    approval_channel: str = ""
    approval_ttl: int = 24 * 3600
    poll_seconds: int = 60
    hub_timeout: float = 10.0
    workers: int = 16
    queue: int = 64
    shutdown_seconds: int = 20
    ops_channel: str = ""
    schedule_grace: int = 15 * 60
    redis_cluster: bool = False  # SPACEOPS_REDIS_CLUSTER=1, or a redis+cluster:// REDIS_URL
    approval_free_below: float = 0.0  # USD per day: smaller cost increases apply without an approver
    readers: frozenset[str] = field(default_factory=frozenset)  # who may read; empty = every member
    allowed_teams: frozenset[str] = field(default_factory=frozenset)  # other workspaces whose members may act
    # Where rights come from (bot/access/hubroles.py): the Slack lists above, the linked Hub account's role
    # in the Space's namespace, or the lower of the two; and what a member with no linked account may do.
    roles_from: str = "slack"
    unlinked: str = "read"
    # Alert thresholds (bot.alerts.transitions.Policy) and hot polling.
    stuck_minutes: int = 30
    crashloop_errors: int = 3
    crashloop_minutes: int = 15
    cost_warning_hours: int = 24
    unreadable_after: int = 3
    hot_seconds: int = 5
    # The batched poll is split into this many shards by namespace, each with its own lease (1: one replica
    # polls everything, as before shards existed; bot/alerts/shards.py).
    poll_shards: int = 1
    hub_webhook_secret: str = ""
    public_url: str = ""
    # Sign in with Hugging Face (bot/signin): the OAuth app, the key(s) its tokens are encrypted with, how
    # often roles are read again, how long a link lives without a refresh token.
    hub_oauth_client_id: str = ""
    secret_keys: tuple[str, ...] = field(default=(), repr=False)  # Fernet keys: the first encrypts, all decrypt
    hub_roles_ttl: int = 3600
    hub_link_days: int = 30

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Build settings from the environment (or a given mapping); checks formats, not presence."""
        env = os.environ if env is None else env
        get = lambda name, default="": (env.get(name) or default).strip()  # noqa: E731
        settings = cls(
            slack_bot_token=get("SLACK_BOT_TOKEN"),
            slack_signing_secret=get("SLACK_SIGNING_SECRET"),
            slack_app_token=get("SLACK_APP_TOKEN"),
            slack_api_url=get("SLACK_API_URL", DEFAULT_SLACK_API_URL),
            hf_token=get("HF_TOKEN"),
            hf_endpoint=get("HF_ENDPOINT", DEFAULT_HF_ENDPOINT).rstrip("/"),
            redis_url=get("REDIS_URL"),
            namespaces=_ids(env.get("SPACEOPS_NAMESPACES")),
            admins=_checked_ids("SPACEOPS_ADMINS", env.get("SPACEOPS_ADMINS"), _USER_OR_GROUP, USER_IDS),
            operators=_checked_ids("SPACEOPS_OPERATORS", env.get("SPACEOPS_OPERATORS"), _USER_OR_GROUP, USER_IDS),
            approvers=_checked_ids("SPACEOPS_APPROVERS", env.get("SPACEOPS_APPROVERS"), _USER_OR_GROUP, USER_IDS),
            approval_channel=_approval_channel(get("SPACEOPS_APPROVAL_CHANNEL")),
            approval_ttl=_seconds("SPACEOPS_APPROVAL_TTL", env.get("SPACEOPS_APPROVAL_TTL"), 24 * 3600),
            poll_seconds=_seconds("SPACEOPS_POLL_SECONDS", env.get("SPACEOPS_POLL_SECONDS"), 60),
            hub_timeout=_number("SPACEOPS_HUB_TIMEOUT", env.get("SPACEOPS_HUB_TIMEOUT"), 10.0),
            readers=_checked_ids("SPACEOPS_READERS", env.get("SPACEOPS_READERS"), _USER_OR_GROUP, USER_IDS),
            allowed_teams=_checked_ids("SPACEOPS_ALLOWED_TEAMS", env.get("SPACEOPS_ALLOWED_TEAMS"), _TEAM_ID,
                                       "a Slack workspace id (T…) or organisation id (E…)"),
            roles_from=_choice("SPACEOPS_ROLES_FROM", env.get("SPACEOPS_ROLES_FROM"), ROLES_FROM, "slack"),
            unlinked=_choice("SPACEOPS_UNLINKED", env.get("SPACEOPS_UNLINKED"), UNLINKED, "read"),
            approval_free_below=_number("SPACEOPS_APPROVAL_FREE_BELOW", env.get("SPACEOPS_APPROVAL_FREE_BELOW"),
                                        0.0, zero_ok=True),
            workers=_count("SPACEOPS_WORKERS", env.get("SPACEOPS_WORKERS"), 16) or 16,
            queue=_count("SPACEOPS_QUEUE", env.get("SPACEOPS_QUEUE"), 64),
            shutdown_seconds=_seconds("SPACEOPS_SHUTDOWN_SECONDS", env.get("SPACEOPS_SHUTDOWN_SECONDS"), 20),
            ops_channel=get("SPACEOPS_OPS_CHANNEL"),
            schedule_grace=_seconds("SPACEOPS_SCHEDULE_GRACE", env.get("SPACEOPS_SCHEDULE_GRACE"), 15 * 60),
            redis_cluster=_flag("SPACEOPS_REDIS_CLUSTER", env.get("SPACEOPS_REDIS_CLUSTER"))
            or get("REDIS_URL").lower().startswith(("redis+cluster://", "rediss+cluster://")),
            stuck_minutes=_count("SPACEOPS_STUCK_MINUTES", env.get("SPACEOPS_STUCK_MINUTES"), 30, 1, 24 * 60),
            crashloop_errors=_count("SPACEOPS_CRASHLOOP_ERRORS", env.get("SPACEOPS_CRASHLOOP_ERRORS"), 3, 2, 100),
            crashloop_minutes=_count("SPACEOPS_CRASHLOOP_MINUTES", env.get("SPACEOPS_CRASHLOOP_MINUTES"), 15, 1,
                                     24 * 60),
            cost_warning_hours=_count("SPACEOPS_COST_WARNING_HOURS", env.get("SPACEOPS_COST_WARNING_HOURS"), 24, 1,
                                      24 * 30),
            unreadable_after=_count("SPACEOPS_UNREADABLE_AFTER", env.get("SPACEOPS_UNREADABLE_AFTER"), 3, 1, 1000),
            hot_seconds=_count("SPACEOPS_HOT_SECONDS", env.get("SPACEOPS_HOT_SECONDS"), 5, 1, 3600),
            poll_shards=_count("SPACEOPS_POLL_SHARDS", env.get("SPACEOPS_POLL_SHARDS"), 1, 1, 1024),
            hub_webhook_secret=get("SPACEOPS_HUB_WEBHOOK_SECRET"),
            public_url=get("SPACEOPS_PUBLIC_URL").rstrip("/"),
            # Sign in with Hugging Face (bot/signin).
            hub_oauth_client_id=get("SPACEOPS_HUB_OAUTH_CLIENT_ID"),
            secret_keys=_fernet_keys(env.get("SPACEOPS_SECRET_KEY")),
            hub_roles_ttl=_seconds("SPACEOPS_HUB_ROLES_TTL", env.get("SPACEOPS_HUB_ROLES_TTL"), 3600),
            hub_link_days=_count("SPACEOPS_HUB_LINK_DAYS", env.get("SPACEOPS_HUB_LINK_DAYS"), 30, 1, 365),
        )
        settings.check_formats()
        settings.check_signin(settings.roles_from)
        return settings

    def check_formats(self) -> None:
        if self.slack_bot_token and not self.slack_bot_token.startswith("xoxb-"):
            raise ConfigError("SLACK_BOT_TOKEN must be a bot token starting with xoxb-")
        if self.slack_app_token and not self.slack_app_token.startswith("xapp-"):
            raise ConfigError("SLACK_APP_TOKEN must be an app-level token starting with xapp-")
        if self.redis_url:
            parse_redis_url(self.redis_url, self.redis_cluster)  # a ConfigError names what is wrong
        if self.public_url and not re.match(r"^https?://[^\s/]+", self.public_url):
            raise ConfigError(f"SPACEOPS_PUBLIC_URL must be the bot's public http(s) URL (got {self.public_url!r})")
        if self.hub_webhook_secret and len(self.hub_webhook_secret) < 16:
            raise ConfigError("SPACEOPS_HUB_WEBHOOK_SECRET must be at least 16 characters (a random string)")
        if not re.match(r"^https?://", self.hf_endpoint):
            raise ConfigError(f"HF_ENDPOINT must be an http(s) URL (got {self.hf_endpoint!r})")

    def check_signin(self, roles_from: str) -> None:
        """Sign-in needs its OAuth app and a key for its tokens; rights from Hub roles need sign-in.
        `roles_from` is SPACEOPS_ROLES_FROM (slack, hub or both; its own check is the access gate's)."""
        if self.hub_roles_ttl < 60:
            raise ConfigError(f"SPACEOPS_HUB_ROLES_TTL={self.hub_roles_ttl}s is too short: roles are read from the "
                              f"Hub at most every minute (example: SPACEOPS_HUB_ROLES_TTL=1h)")
        if roles_from in ("hub", "both") and not self.secret_keys:
            raise ConfigError(f"SPACEOPS_ROLES_FROM={roles_from} needs SPACEOPS_SECRET_KEY: the sign-in tokens are "
                              f"kept encrypted with it, never in clear. {FERNET_HINT}")
        if self.hub_oauth_client_id and not self.secret_keys:
            raise ConfigError(f"SPACEOPS_HUB_OAUTH_CLIENT_ID is set but SPACEOPS_SECRET_KEY is not: the sign-in "
                              f"tokens are kept encrypted with it, never in clear. {FERNET_HINT}")

    @property
    def signin_enabled(self) -> bool:
        return bool(self.hub_oauth_client_id and self.secret_keys)

    def require(self, *names: str, either: tuple[tuple[str, ...], ...] = ()) -> None:
        """Raise one ConfigError naming every missing variable and where to get it; each tuple in
        `either` is satisfied by any one of its variables (named together when all are missing)."""
        lines = [f"  {name}: {WHERE_TO_GET.get(name, 'see docs/reference.md')}" for name in names
                 if not getattr(self, name.lower().removeprefix("spaceops_"), "")]
        for group in either:
            if not any(getattr(self, name.lower().removeprefix("spaceops_"), "") for name in group):
                lines.append(f"  {' or '.join(group)}: one of them:")
                lines += [f"    {name}: {WHERE_TO_GET.get(name, 'see docs/reference.md')}" for name in group]
        if lines:
            raise ConfigError("missing configuration:\n" + "\n".join(lines))

    def warnings(self) -> list[str]:
        """Configuration that works but that someone should fix: one line each, logged at start-up."""
        lines = []
        if not self.admins and not self.approvers:
            lines.append("No approver or admin is configured (SPACEOPS_APPROVERS, SPACEOPS_ADMINS): requests for "
                         "paid hardware can be made but never decided.")
        if self.secret_keys and not self.hub_oauth_client_id:
            lines.append("SPACEOPS_SECRET_KEY is set but SPACEOPS_HUB_OAUTH_CLIENT_ID is not: nobody can sign in "
                         "with Hugging Face (`/space login`) until the OAuth app's client id is given.")
        return lines

    @property
    def slack_api_base(self) -> str:
        return self.slack_api_url if self.slack_api_url.endswith("/") else self.slack_api_url + "/"
