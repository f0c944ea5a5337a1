"""All configuration, read once from the environment into one frozen object."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Mapping

from bot.core.errors import ConfigError

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_HF_ENDPOINT = "https://huggingface.co"

# Where a newcomer gets each value: named in the error when it is missing.
WHERE_TO_GET = {
    "SLACK_BOT_TOKEN": "Slack app page → OAuth & Permissions → Bot User OAuth Token (xoxb-…)",
    "SLACK_SIGNING_SECRET": "Slack app page → Basic Information → App Credentials → Signing Secret",
    "SLACK_APP_TOKEN": "Slack app page → Basic Information → App-Level Tokens (xapp-…, scope connections:write)",
    "HF_TOKEN": "https://huggingface.co/settings/tokens (a write or fine-grained token, not the `hf auth login` one)",
    "REDIS_URL": "redis://localhost:6379/0, or leave unset with `make run` to start a local redis-server",
}

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$", re.I | re.ASCII)
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _ids(raw: str | None) -> frozenset[str]:
    return frozenset(part.strip() for part in (raw or "").split(",") if part.strip())


def _seconds(name: str, raw: str | None, default: int) -> int:
    if not raw:
        return default
    match = _DURATION.match(raw)
    if not match:
        raise ConfigError(f"{name}={raw!r} is not a duration (examples: 90, 15m, 24h, 1d)")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]


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
    # Alert thresholds (bot.alerts.transitions.Policy) and hot polling.
    stuck_minutes: int = 30
    crashloop_errors: int = 3
    crashloop_minutes: int = 15
    cost_warning_hours: int = 24
    unreadable_after: int = 3
    hot_seconds: int = 5
    hub_webhook_secret: str = ""
    public_url: str = ""

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
            admins=_ids(env.get("SPACEOPS_ADMINS")),
            operators=_ids(env.get("SPACEOPS_OPERATORS")),
            approvers=_ids(env.get("SPACEOPS_APPROVERS")),
            approval_channel=get("SPACEOPS_APPROVAL_CHANNEL"),
            approval_ttl=_seconds("SPACEOPS_APPROVAL_TTL", env.get("SPACEOPS_APPROVAL_TTL"), 24 * 3600),
            poll_seconds=_seconds("SPACEOPS_POLL_SECONDS", env.get("SPACEOPS_POLL_SECONDS"), 60),
            hub_timeout=float(get("SPACEOPS_HUB_TIMEOUT", "10")),
            stuck_minutes=_count("SPACEOPS_STUCK_MINUTES", env.get("SPACEOPS_STUCK_MINUTES"), 30, 1, 24 * 60),
            crashloop_errors=_count("SPACEOPS_CRASHLOOP_ERRORS", env.get("SPACEOPS_CRASHLOOP_ERRORS"), 3, 2, 100),
            crashloop_minutes=_count("SPACEOPS_CRASHLOOP_MINUTES", env.get("SPACEOPS_CRASHLOOP_MINUTES"), 15, 1,
                                     24 * 60),
            cost_warning_hours=_count("SPACEOPS_COST_WARNING_HOURS", env.get("SPACEOPS_COST_WARNING_HOURS"), 24, 1,
                                      24 * 30),
            unreadable_after=_count("SPACEOPS_UNREADABLE_AFTER", env.get("SPACEOPS_UNREADABLE_AFTER"), 3, 1, 1000),
            hot_seconds=_count("SPACEOPS_HOT_SECONDS", env.get("SPACEOPS_HOT_SECONDS"), 5, 1, 3600),
            hub_webhook_secret=get("SPACEOPS_HUB_WEBHOOK_SECRET"),
            public_url=get("SPACEOPS_PUBLIC_URL").rstrip("/"),
        )
        settings.check_formats()
        return settings

    def check_formats(self) -> None:
        if self.slack_bot_token and not self.slack_bot_token.startswith("xoxb-"):
            raise ConfigError("SLACK_BOT_TOKEN must be a bot token starting with xoxb-")
        if self.slack_app_token and not self.slack_app_token.startswith("xapp-"):
            raise ConfigError("SLACK_APP_TOKEN must be an app-level token starting with xapp-")
        if self.redis_url and not re.match(r"^rediss?://|^unix://", self.redis_url):
            raise ConfigError(f"REDIS_URL must start with redis://, rediss:// or unix:// (got {self.redis_url!r})")
        if self.public_url and not re.match(r"^https?://[^\s/]+", self.public_url):
            raise ConfigError(f"SPACEOPS_PUBLIC_URL must be the bot's public http(s) URL (got {self.public_url!r})")
        if self.hub_webhook_secret and len(self.hub_webhook_secret) < 16:
            raise ConfigError("SPACEOPS_HUB_WEBHOOK_SECRET must be at least 16 characters (a random string)")
        if not re.match(r"^https?://", self.hf_endpoint):
            raise ConfigError(f"HF_ENDPOINT must be an http(s) URL (got {self.hf_endpoint!r})")

    def require(self, *names: str) -> None:
        """Raise one ConfigError naming every missing variable and where to get it."""
        missing = [name for name in names if not getattr(self, name.lower().removeprefix("spaceops_"), "")]
        if missing:
            lines = [f"  {name}: {WHERE_TO_GET.get(name, 'see README')}" for name in missing]
            raise ConfigError("missing configuration:\n" + "\n".join(lines))

    @property
    def slack_api_base(self) -> str:
        return self.slack_api_url if self.slack_api_url.endswith("/") else self.slack_api_url + "/"
