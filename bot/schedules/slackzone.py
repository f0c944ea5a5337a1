"""The requesting user's time zone from Slack (`users.info` → `tz`), cached; None when Slack can't say."""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.core.cache import TtlCache

log = logging.getLogger(__name__)
CACHE_SECONDS = 3600


class SlackZones:
    def __init__(self, client: WebClient | None):
        self.client = client
        self._zones: TtlCache[str | None] = TtlCache(CACHE_SECONDS)

    def __call__(self, user: str) -> str | None:
        if self.client is None or not user:
            return None
        try:
            return self._zones.get(user, lambda: self._zone_of(user))
        except (SlackApiError, OSError) as err:
            log.warning("users.info for %s failed (%s); the schedule uses UTC unless --tz says", user, err)
            return None

    def _zone_of(self, user: str) -> str | None:
        # The client's own timeout (10 s) bounds this call.
        return (self.client.users_info(user=user).get("user") or {}).get("tz") or None
