"""The one way out to the Hub for changes: every HfApi write the bot makes is a method here.

Each change, whoever asks (a command, a button, an approval, a schedule, a revert, the webhook setup):
1. writes its "attempt" audit entry (no entry, no change: Redis down refuses with a sentence);
2. spends from the shared rate budget, each of its HTTP requests (a person's within their share);
3. has a deadline for all of its requests together;
4. turns what the Hub client raises into a sentence (`bot.core.hub.hub_errors`);
5. writes its outcome audit entry, whatever it is (that write never raises).
A process that dies between 1 and 5 leaves the attempt, which `/space audit` shows as "started, outcome
unknown": a change that reached the Hub is never unrecorded. tests/test_audit_before_change.py checks that
no other module calls an HfApi write method.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from bot.core.blocks import clip
from bot.core import hub
from bot.core.budget import Budget, ShareUsed
from bot.core.errors import RateLimited, SpaceOpsError
from bot.core.store import Store
from bot.core.words import budget_used

T = TypeVar("T")


@dataclass(frozen=True)
class Why:
    """Who makes a change and how the audit names it: `action` ("restart", "schedule.pause", "hw-for.revert"),
    `params` (never a secret's value). `person`: made for someone right now (a command, a click), charged
    to their share of the budget; otherwise the leader's own job acting for its creator (a schedule, a
    revert), charged to the budget as a whole."""

    user: str
    action: str
    params: dict[str, Any] = field(default_factory=dict)
    person: bool = True


class Changes:
    """Every Hub write, audited before and after, metered, with a deadline and errors as sentences."""

    def __init__(self, api: HfApi, store: Store, budget: Budget | None = None, deadline: float = 20.0,
                 clock: Callable[[], float] | None = None):
        self.api = api
        self.store = store
        self.budget = budget
        self.deadline = deadline  # seconds for all the HTTP requests of one change
        self.clock = clock or store.clock  # Redis's (bot/core/clock.py)

    # ------------------------------------------------------------------ the one path

    def make(self, why: Why, space: str, call: Callable[[], T]) -> T:
        """Run `call` (HfApi writes) as the change `why` on `space` ("" for none): attempt, budget,
        deadline, sentences, outcome."""
        attempt = self.store.attempt(why.user, why.action, space, why.params)
        try:
            with self.metered(why), hub.deadline(self.deadline), hub.hub_errors(space or None):
                result = call()
        except SpaceOpsError as err:
            self.store.audit(why.user, why.action, space, why.params, result=f"error: {clip(err.sentence, 200)}",
                             attempt=attempt)
            raise
        except BaseException as err:
            self.store.audit(why.user, why.action, space, why.params,
                             result=f"error: unexpected {type(err).__name__}", attempt=attempt)
            raise
        self.store.audit(why.user, why.action, space, why.params, attempt=attempt)
        return result

    def metered(self, why: Why):
        """Each HTTP request spends from the shared budget; inside a command's own metering, that one counts."""
        if self.budget is None or hub.metering():
            return contextlib.nullcontext()
        if why.person:
            return meter(self.budget, why.user, self.clock)
        budget, clock = self.budget, self.clock
        return hub.metered(lambda: budget.charge(clock()), lambda response: budget.note(response, clock()))

    # ------------------------------------------------------------------ the Hub's writes, one method each

    def restart(self, why: Why, space: str, factory: bool = False):
        return self.make(why, space, lambda: self.api.restart_space(space, factory_reboot=factory))

    def pause(self, why: Why, space: str):
        return self.make(why, space, lambda: self.api.pause_space(space))

    def hardware(self, why: Why, space: str, flavor: str, sleep_seconds: int | None = None):
        return self.make(why, space, lambda: self.api.request_space_hardware(space, flavor, sleep_time=sleep_seconds))

    def sleep_time(self, why: Why, space: str, seconds: int):
        return self.make(why, space, lambda: self.api.set_space_sleep_time(space, seconds))

    def set_variable(self, why: Why, space: str, key: str, value: str):
        return self.make(why, space, lambda: self.api.add_space_variable(space, key, value))

    def remove_variable(self, why: Why, space: str, key: str):
        return self.make(why, space, lambda: self.api.delete_space_variable(space, key))

    def set_secret(self, why: Why, space: str, key: str, value: str, description: str | None = None):
        return self.make(why, space, lambda: self.api.add_space_secret(space, key, value,
                                                                        description=description or None))

    def remove_secret(self, why: Why, space: str, key: str):
        return self.make(why, space, lambda: self.api.delete_space_secret(space, key))

    def duplicate(self, why: Why, source: str, target: str, private: bool = False, flavor: str | None = None,
                  sleep_seconds: int | None = None):
        return self.make(why, source, lambda: self.api.duplicate_repo(
            source, target, repo_type="space", private=private or None, space_hardware=flavor,
            space_sleep_time=sleep_seconds))

    def add_webhook(self, why: Why, url: str, watched: list, domains: list, secret: str):
        return self.make(why, "", lambda: self.api.create_webhook(url=url, watched=watched, domains=domains,
                                                                   secret=secret))

    def remove_webhook(self, why: Why, hook_id: str) -> None:
        """Delete a Hub webhook; one the Hub no longer has counts as deleted."""
        def delete() -> None:
            try:
                self.api.delete_webhook(hook_id)
            except HfHubHTTPError as err:
                if getattr(getattr(err, "response", None), "status_code", None) != 404:
                    raise
        self.make(why, "", delete)

    def dev_mode(self, why: Why, space: str, enabled: bool):
        """`/space dev`: dev mode on or off."""
        call = self.api.enable_space_dev_mode if enabled else self.api.disable_space_dev_mode
        return self.make(why, space, lambda: call(space))

    def volumes(self, why: Why, space: str, volumes: list):
        """`/space volume add|rm`: replaces the whole list (bot/commands/tools.py edits it under a lock)."""
        return self.make(why, space, lambda: self.api.set_space_volumes(space, volumes=volumes))


def meter(budget: Budget, user: str, clock: Callable[[], float]):
    """Every Hub request made inside spends from the shared budget, within `user`'s share (a sentence when
    it is used up, before the request is sent)."""
    def before_each() -> None:
        try:
            budget.spend_command(user, clock())
        except ShareUsed as used:
            raise RateLimited(budget_used(used.retry_after, used.exhausted), used.retry_after) from None

    return hub.metered(before_each, lambda response: budget.note(response, clock()))
