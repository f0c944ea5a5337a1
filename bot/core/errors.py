"""The few errors the core raises. Each carries a sentence a person can read; handlers render it once."""

from __future__ import annotations


class SpaceOpsError(Exception):
    """Base: `str(err)` is shown to the user as it is (after escaping)."""

    def __init__(self, sentence: str):
        super().__init__(sentence)
        self.sentence = sentence


class ConfigError(SpaceOpsError):
    """Configuration is missing or malformed (start-up only)."""


class BadInput(SpaceOpsError):
    """The command text cannot be understood; `suggestion` is a corrected command word, if any."""


class NotAllowed(SpaceOpsError):
    """The user lacks a role, or the Space is outside SPACEOPS_NAMESPACES."""


class NotFound(SpaceOpsError):
    """The Space (or request) does not exist or the token cannot see it."""


class HubRefused(SpaceOpsError):
    """The Hub said no (403, 400, 409...): the message explains why."""


class RateLimited(SpaceOpsError):
    """The Hub's rate limit is exhausted; `retry_after` in seconds when known."""

    def __init__(self, sentence: str, retry_after: int | None = None):
        super().__init__(sentence)
        self.retry_after = retry_after


class HubUnavailable(SpaceOpsError):
    """The Hub is down, slow (timeout) or answered nonsense."""


class StateUnavailable(SpaceOpsError):
    """Redis is unreachable: changing commands refuse rather than act without an audit record."""
