"""The Hub's `RateLimit` window for the bot's token, shared by the poller and people's commands.

The poller stops at a reserve (20% of the window) so commands still work; commands spend from the same
window, each member at most a share of it, so one member looping `/space status` cannot use it up.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from bot.core.hub import rate_limit_of

DEFAULT_WINDOW = 300.0  # the Hub's window when no RateLimit header has been seen yet


class RateLimitHit(Exception):
    """The Hub said 429, or our own budget says stop: not a failure of any Space."""


class ShareUsed(Exception):
    """One member used their share of the window; `retry_after` seconds until it renews."""

    def __init__(self, retry_after: int, exhausted: bool = False):
        super().__init__(retry_after)
        self.retry_after = retry_after
        self.exhausted = exhausted  # the whole budget, not only this member's share


@dataclass
class Budget:
    """The Hub's `RateLimit` window as last seen; keeps a reserve for people's commands."""

    remaining: int | None = None
    reset_at: float = 0.0
    quota: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    user_spent: dict[str, int] = field(default_factory=dict)
    user_window_end: float = 0.0

    @property
    def reserve(self) -> int:
        return max(50, int((self.quota or 1000) * 0.2))

    @property
    def user_share(self) -> int:
        """Hub requests one member's commands may make per window: a quarter of the window, at least 20."""
        return max(20, (self.quota or 1000) // 4)

    def note(self, response, now: float) -> None:
        remaining, reset = rate_limit_of(response)
        policy = response.headers.get("ratelimit-policy", "") if response is not None else ""
        with self.lock:
            if remaining is not None:
                self.remaining, self.reset_at = remaining, now + (reset or 0)
            if "q=" in policy:
                try:
                    self.quota = int(policy.split("q=")[1].split(";")[0])
                except ValueError:
                    pass

    def exhausted(self, now: float) -> None:
        """A 429: nothing left, until the header's reset or a minute from now."""
        with self.lock:
            self.remaining = 0
            if self.reset_at <= now:  # no RateLimit header came with it
                self.reset_at = now + 60

    def spend(self, now: float) -> None:
        """Take one request from the budget or raise RateLimitHit (slow down rather than fail)."""
        with self.lock:
            if self.remaining is None or now >= self.reset_at:
                return
            if self.remaining <= self.reserve:
                raise RateLimitHit(f"budget low: {self.remaining} left for {self.reset_at - now:.0f} s")
            self.remaining -= 1

    def spend_command(self, user: str, now: float) -> None:
        """One Hub request for `user`'s command, or ShareUsed: commands may use the reserve, each member
        at most `user_share` per window."""
        with self.lock:
            if now >= self.user_window_end:
                self.user_spent.clear()
                self.user_window_end = self.reset_at if self.reset_at > now else now + DEFAULT_WINDOW
            known = self.remaining is not None and now < self.reset_at
            # An exhausted window is left to the Hub to say (its 429 becomes a sentence): our view may be stale.
            if self.user_spent.get(user, 0) >= self.user_share:
                raise ShareUsed(int(self.user_window_end - now) + 1)
            self.user_spent[user] = self.user_spent.get(user, 0) + 1
            if known and self.remaining > 0:
                self.remaining -= 1

    def commands_spent(self, now: float) -> int:
        """Hub requests people's commands made in the current window (they have the reserve of their own)."""
        with self.lock:
            return sum(self.user_spent.values()) if now < self.user_window_end else 0

    def charge(self, now: float) -> None:
        """One Hub request of a change the leader's jobs make for people (a schedule, a revert): taken from
        what is left, never refused here (the Hub's own 429 says when nothing is)."""
        with self.lock:
            if self.remaining is not None and now < self.reset_at and self.remaining > 0:
                self.remaining -= 1

    def left(self) -> int | None:
        with self.lock:
            return self.remaining
