"""The requesting user's time zone from Slack (`users.info` → `tz`), cached; None when Slack can't say."""

from __future__ import annotations

import logging
import threading
import time

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

log = logging.getLogger(__name__)
CACHE_SECONDS = 3600


class SlackZones:
    def __init__(self, client: WebClient | None):
        self.client = client
        self._cache: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def __call__(self, user: str) -> str | None:
        if self.client is None or not user:
            return None
        with self._lock:
            cached = self._cache.get(user)
            if cached and cached[0] > time.monotonic():
                return cached[1]
        try:
            # The client's own timeout (10 s) bounds this call.
            name = (self.client.users_info(user=user).get("user") or {}).get("tz") or None
        except (SlackApiError, OSError) as err:
            log.warning("users.info for %s failed (%s); the schedule uses UTC unless --tz says", user, err)
            return None
        with self._lock:
            self._cache[user] = (time.monotonic() + CACHE_SECONDS, name)
        return name
