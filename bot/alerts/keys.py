"""Where the poller keeps each watched Space in Redis, and its two shared keys (the lease, the last good cycle)."""

from __future__ import annotations

from bot.core.store import key

LEASE = key("{poll}", "leader")
LAST_OK = key("{poll}", "last_ok")
HUB_FAILING = key("{poll}", "hub_failing")  # since when every poll read failed on the Hub's side (health)
HISTORY_MAXLEN = 500


def state_key(space: str) -> str:
    # The Space id is the hash tag: its state, usage and history live in one slot for the CAS script.
    return key("space", "{" + space + "}", "state")


def usage_key(space: str) -> str:
    return key("space", "{" + space + "}", "usage")


def history_key(space: str) -> str:
    return key("space", "{" + space + "}", "history")

