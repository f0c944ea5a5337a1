"""What each `/space` command does: Hub calls through the official client, audit, and the reply."""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from typing import Callable, Protocol

from huggingface_hub import HfApi

from bot.core.blocks import clip
from bot.commands import costs, words
from bot.commands.grammar import Command
from bot.core import hub
from bot.core.budget import Budget
from bot.core.changes import Changes, Why, meter
from bot.core.errors import BadInput, NotAllowed, SpaceOpsError
from bot.core.flavors import DEFAULT_FLAVOR, Catalogue, CatalogueSource
from bot.core.hub import Spaces
from bot.core.markup import code, escape
from bot.core.permissions import READS, Actor, Roles, declare
from bot.core.settings import Settings
from bot.core.store import Store, state_errors
from bot.core.words import (Reply, change_reply, differs_words, duration_words, error_reply, flavor_words,
                            hub_reports_words, notice_reply, sleep_words, stage_words)

log = logging.getLogger(__name__)
# What this feature's commands need (bot/core/permissions reads it; the core knows no command names).
declare(reads={"help", "status", "flavors", "var.ls", "secret.ls", "audit"},
        changes={"restart", "resume", "pause", "hw", "sleep", "var.set", "var.rm", "secret.set", "secret.rm",
                 "duplicate"})


@dataclass(frozen=True)
class Upgrade:
    """A change that raises spend, waiting for an approver: `hw`, `duplicate --hw`, or another feature's
    action (`action` names it; `params` is what its applier needs; `summary`/`cost_note` are its words)."""

    space: str
    current: str
    flavor: str
    sleep_seconds: int | None = None
    duplicate_to: str | None = None
    private: bool = False
    action: str = "hw"
    params: str = ""     # JSON, for the action's applier
    summary: str = ""    # mrkdwn: what will happen ("resume `acme/chat` on `a100-large`")
    cost_note: str = ""  # mrkdwn: what it costs, when not one flavor's price


class UpgradeRequests(Protocol):
    """Who takes a paid upgrade that needs an approver (the approvals package implements it)."""

    def request(self, upgrade: Upgrade, actor: Actor) -> Reply: ...


class NoApprovals:
    """Stands in when no approval flow is wired: a paid upgrade is refused with the reason."""

    def __init__(self, catalogues: CatalogueSource):
        self.catalogues = catalogues

    def request(self, upgrade: Upgrade, actor: Actor) -> Reply:
        old = flavor_words(upgrade.current, self.catalogues.current)
        new = flavor_words(upgrade.flavor, self.catalogues.current)
        return notice_reply(f"{old} → {new} on {code(upgrade.space)} is a paid upgrade and needs an approver. "
                            f"Approvals are not set up in this version, so nothing was changed.")


Handler = Callable[[Command, Actor], Reply]


class ChangeListener(Protocol):
    """Told of every change that went through (the alerts package follows the Space and may post the
    announcement itself, returning the reply marked `posted`)."""

    def changed(self, name: str, space: str, actor: Actor, reply: Reply) -> Reply: ...


class NoListener:
    def changed(self, name: str, space: str, actor: Actor, reply: Reply) -> Reply:
        return reply


def duplicate_audited(changes: Changes, user: str, source: str, target: str, private: bool = False,
                      flavor: str | None = None, sleep_seconds: int | None = None):
    """Duplicate a Space on the Hub with its audit entry: from `/space duplicate` and from an approval."""
    params = {"to": target, "private": private, "hw": flavor, "sleep": sleep_seconds}
    why = Why(user, "duplicate", {k: v for k, v in params.items() if v})
    return changes.duplicate(why, source, target, private, flavor, sleep_seconds)


class Operations:
    """Runs parsed commands. Features (approvals, watches) add their commands with `handle()` at wiring."""

    def __init__(self, settings: Settings, api: HfApi, spaces: Spaces, store: Store, roles: Roles,
                 catalogues: CatalogueSource, upgrades: UpgradeRequests | None = None, budget: Budget | None = None,
                 changes: ChangeListener | None = None, rewrites: list[Callable[[Command], Command]] = (),
                 guards: list[Callable[[Command, Actor], None]] = (),
                 reveals: Callable[[str, Actor], bool] | None = None, changes_out: Changes | None = None):
        self.settings = settings
        self.budget = budget  # the poller's: commands spend from the same RateLimit window, each member a share
        self.api = api
        self.spaces = spaces
        self.store = store
        # The one way a change reaches the Hub (attempt audit, budget, deadline, sentences, outcome).
        self.changes_out = changes_out or Changes(api, store, budget, 2 * settings.hub_timeout)
        self.roles = roles
        self.catalogues = catalogues
        self.upgrades = upgrades or NoApprovals(catalogues)
        self.changes: ChangeListener = changes or NoListener()  # follow-through (bot/alerts/followthrough.py)
        self.hub_url = settings.hf_endpoint
        # Checks of other features (channel scopes, workspace, guests): each raises NotAllowed.
        self.guards = list(guards)
        # Rewrites before anything else (the Hub's casing of Space ids for stored ones).
        self.rewrites = list(rewrites)
        # Whether a Space's private details (error text) may be shown where this actor asked.
        self.reveals: Callable[[str, Actor], bool] = reveals or (lambda space, actor: True)
        self.handlers: dict[str, Handler] = {
            "help": lambda cmd, actor: words.help_reply(cmd.topic),
            "status": self.status,
            "restart": self.restart,
            "resume": self.restart,
            "pause": self.pause,
            "hw": self.hardware,
            "sleep": self.sleep,
            "var.ls": self.var_ls,
            "var.set": self.var_set,
            "var.rm": self.var_rm,
            "secret.ls": self.secret_ls,
            "secret.rm": self.secret_rm,
            "duplicate": self.duplicate,
            "flavors": self.flavors,
            "audit": self.audit,
        }

    def handle(self, name: str, handler: Handler) -> None:
        self.handlers[name] = handler

    # ------------------------------------------------------------------ entry point

    def run(self, cmd: Command, actor: Actor) -> Reply:
        """Check permissions, run, and turn any of our errors into a reply. Bugs still raise."""
        try:
            return self.attempt(cmd, actor)
        except SpaceOpsError as err:
            return error_reply(err.sentence)

    def attempt(self, cmd: Command, actor: Actor) -> Reply:
        """`run`, with our errors raised (a workflow step fails with the sentence a command would show)."""
        try:
            for rewrite in self.rewrites:
                cmd = rewrite(cmd)
            for guard in self.guards:
                guard(cmd, actor)
            self.roles.check(cmd.name, actor.user, cmd.space)
            if cmd.target:
                self.roles.check(cmd.name, actor.user, cmd.target)
            handler = self.handlers.get(cmd.name)
            if handler is None:
                return notice_reply(f"`{cmd.name.replace('.', ' ')}` is not available yet in this version.")
            with state_errors(), self.metered(actor.user):
                reply = handler(cmd, actor)
            if reply.public:
                reply = self.changes.changed(cmd.name, cmd.target if cmd.name == "duplicate" else cmd.space,
                                             actor, reply)
            return reply
        except SpaceOpsError as err:
            if isinstance(err, NotAllowed):
                self._audit_refusal(cmd, actor, err)
            raise

    def check(self, cmd: Command, actor: Actor) -> None:
        """Every check `run` makes before a handler (guards, roles); raises NotAllowed. For paths that run
        outside `run`: the secret form."""
        for guard in self.guards:
            guard(cmd, actor)
        self.roles.check(cmd.name, actor.user, cmd.space)

    def run_secret_set(self, space: str, key: str, value: str, actor: Actor, description: str | None = None) -> Reply:
        try:
            with self.metered(actor.user):
                reply = self.set_secret(space, key, value, actor, description)
            return self.changes.changed("secret.set", space, actor, reply) if reply.public else reply
        except SpaceOpsError as err:
            return error_reply(err.sentence)

    def metered(self, user: str):
        """Every Hub request of this command spends from the shared budget, within `user`'s share."""
        if self.budget is None:
            return contextlib.nullcontext()
        return meter(self.budget, user, self.store.clock)

    def _audit_refusal(self, cmd: Command, actor: Actor, err: SpaceOpsError) -> None:
        if cmd.name not in READS:
            self.store.audit(actor.user, cmd.name, cmd.space or "", {}, result=f"refused: {clip(err.sentence, 120)}",
                             per_space=False)

    @property
    def catalogue(self) -> Catalogue:
        return self.catalogues.current

    # ------------------------------------------------------------------ reads

    def runtime(self, space: str):
        return self.spaces.runtime(space)

    def status(self, cmd: Command, actor: Actor) -> Reply:
        runtime = self.runtime(cmd.space)
        hidden = bool((getattr(runtime, "raw", {}) or {}).get("errorMessage")) and not self.reveals(cmd.space, actor)
        return words.status_reply(cmd.space, runtime, self.catalogue, self.hub_url, hide_error=hidden)

    def flavors(self, cmd: Command, actor: Actor) -> Reply:
        catalogue = self.catalogues.refresh()
        return words.flavors_reply(catalogue, hub_failed=getattr(self.catalogues, "failed", False))

    def var_ls(self, cmd: Command, actor: Actor) -> Reply:
        variables = hub.call(self.api.get_space_variables, cmd.space, space=cmd.space)
        return words.variables_reply(cmd.space, variables)

    def secret_ls(self, cmd: Command, actor: Actor) -> Reply:
        secrets = hub.call(self.api.get_space_secrets, cmd.space, space=cmd.space)
        return words.secrets_reply(cmd.space, secrets)

    def audit(self, cmd: Command, actor: Actor) -> Reply:
        entries = [e for e in self.store.audit_entries(cmd.space) if not e.space or self.reveals(e.space, actor)]
        return words.audit_reply(entries, cmd.space)

    # ------------------------------------------------------------------ changes

    def _free_below(self) -> float:
        return getattr(self.settings, "approval_free_below", 0.0)

    def restart(self, cmd: Command, actor: Actor) -> Reply:
        action = "resume" if cmd.name == "resume" else "restart"
        runtime = self.runtime(cmd.space)
        if runtime.stage == "PAUSED":
            # Billing starts again: on paid hardware that is an approver's decision.
            flavor = runtime.requested_hardware or runtime.hardware
            change = costs.resume_change(cmd.space, flavor, self.catalogue)
            if costs.needs_approval(change, self._free_below()):
                self.store.require()
                verb = "resume" if action == "resume" else ("factory-reboot" if cmd.factory else "restart")
                return self.upgrades.request(Upgrade(
                    cmd.space, flavor or "", flavor or "", action="resume",
                    params=json.dumps({"factory": cmd.factory, "verb": action}, sort_keys=True),
                    summary=f"{verb} {code(cmd.space)} on {code(flavor or 'unknown hardware')}",
                    cost_note=change.note), actor)
        runtime = self.changes_out.restart(Why(actor.user, action, {"factory": cmd.factory} if cmd.factory else {}),
                                           cmd.space, cmd.factory)
        verb = {"resume": "resumed", "restart": "factory-rebooted" if cmd.factory else "restarted"}[action]
        return change_reply(actor.user, verb, cmd.space,
                            f"now {stage_words(runtime.stage)}. {hub_reports_words(runtime, self.catalogue)}")

    def pause(self, cmd: Command, actor: Actor) -> Reply:
        runtime = self.changes_out.pause(Why(actor.user, "pause"), cmd.space)
        return change_reply(actor.user, "paused", cmd.space,
                            f"now {stage_words(runtime.stage)}; no billing until someone resumes it "
                            f"with `/space resume {escape(cmd.space)}`. {hub_reports_words(runtime, self.catalogue)}")

    def hardware(self, cmd: Command, actor: Actor) -> Reply:
        if cmd.for_seconds:
            # `--for`: a timed upgrade, run by the schedules feature (registered as "hw.for" at wiring).
            timed = self.handlers.get("hw.for")
            if timed is None:
                return notice_reply("Timed upgrades (`--for`) are not available in this version.")
            return timed(cmd, actor)
        runtime = self.runtime(cmd.space)
        current = runtime.requested_hardware or runtime.hardware
        if current is None:
            raise BadInput(f"{code(cmd.space)} is a static Space: it has no hardware to change.")
        if cmd.flavor == current:
            return notice_reply(f"{code(cmd.space)} is already on {flavor_words(current, self.catalogue)}.")
        if self.catalogue.is_upgrade(current, cmd.flavor) and costs.needs_approval(
                costs.hardware_change(current, cmd.flavor, self.catalogue), self._free_below()):
            self.store.require()
            return self.upgrades.request(Upgrade(cmd.space, current, cmd.flavor), actor)
        new = self.changes_out.hardware(Why(actor.user, "hw", {"from": current, "flavor": cmd.flavor}), cmd.space,
                                        cmd.flavor)
        return change_reply(
            actor.user, "moved", cmd.space,
            f"{flavor_words(current, self.catalogue)} → {flavor_words(cmd.flavor, self.catalogue)}; "
            f"now {stage_words(new.stage)}. {hub_reports_words(new, self.catalogue)}"
            + differs_words(new, cmd.flavor, None, "was asked"))

    def sleep(self, cmd: Command, actor: Actor) -> Reply:
        runtime = self.runtime(cmd.space)
        hardware = runtime.requested_hardware or runtime.hardware
        if hardware is None:
            raise BadInput(f"{code(cmd.space)} is a static Space: it never sleeps.")
        if hardware == DEFAULT_FLAVOR:
            raise BadInput(f"{code(cmd.space)} runs on free cpu-basic, which always sleeps after 48 h idle. "
                           f"Only upgraded hardware can change its sleep time (`/space hw {escape(cmd.space)} …`).")
        change = costs.sleep_change(hardware, runtime.sleep_time, cmd.seconds, self.catalogue)
        if costs.needs_approval(change, self._free_below()) and change.raises:
            self.store.require()
            when = "never sleep" if cmd.seconds < 0 else f"sleep after {duration_words(cmd.seconds)} idle"
            return self.upgrades.request(Upgrade(
                cmd.space, hardware, hardware, action="sleep", params=json.dumps({"seconds": cmd.seconds}),
                summary=f"let {code(cmd.space)} {when}", cost_note=change.note), actor)
        new = self.changes_out.sleep_time(Why(actor.user, "sleep", {"seconds": cmd.seconds}), cmd.space, cmd.seconds)
        return change_reply(actor.user, "set the sleep time of", cmd.space,
                            f"{sleep_words(cmd.seconds, hardware)}. {hub_reports_words(new, self.catalogue)}"
                            + differs_words(new, None, cmd.seconds, "was asked"))

    def var_set(self, cmd: Command, actor: Actor) -> Reply:
        # The audit trail keeps the key, never the value (a variable may still hold something private).
        self.changes_out.set_variable(Why(actor.user, "var.set", {"key": cmd.key}), cmd.space, cmd.key, cmd.value)
        return change_reply(actor.user, f"set variable {code(cmd.key)} on", cmd.space,
                            "the Space restarts to pick it up.")

    def var_rm(self, cmd: Command, actor: Actor) -> Reply:
        return self._remove_key(cmd, actor, "variable", self.api.get_space_variables, self.changes_out.remove_variable)

    def set_secret(self, space: str, key: str, value: str, actor: Actor, description: str | None = None) -> Reply:
        """From the secret modal: the value goes to the Hub and nowhere else (not the audit, not a log)."""
        self.check(Command("secret.set", space=space, key=key), actor)
        self.changes_out.set_secret(Why(actor.user, "secret.set", {"key": key}), space, key, value, description)
        return change_reply(actor.user, f"set secret {code(key)} on", space, "the Space restarts to pick it up.")

    def secret_rm(self, cmd: Command, actor: Actor) -> Reply:
        return self._remove_key(cmd, actor, "secret", self.api.get_space_secrets, self.changes_out.remove_secret)

    def _remove_key(self, cmd: Command, actor: Actor, kind: str, list_keys, remove) -> Reply:
        # The Hub answers 200 for a missing key, so look first to say something true.
        if cmd.key not in hub.call(list_keys, cmd.space, space=cmd.space):
            return notice_reply(f"{code(cmd.space)} has no {kind} {code(cmd.key)}; nothing to remove.")
        action = "var.rm" if kind == "variable" else "secret.rm"
        remove(Why(actor.user, action, {"key": cmd.key}), cmd.space, cmd.key)
        return change_reply(actor.user, f"removed {kind} {code(cmd.key)} from", cmd.space)

    def duplicate(self, cmd: Command, actor: Actor) -> Reply:
        if cmd.flavor and self.catalogue.is_upgrade(DEFAULT_FLAVOR, cmd.flavor) and costs.needs_approval(
                costs.hardware_change(DEFAULT_FLAVOR, cmd.flavor, self.catalogue), self._free_below()):
            self.store.require()
            upgrade = Upgrade(cmd.space, DEFAULT_FLAVOR, cmd.flavor, cmd.seconds, cmd.target, cmd.private)
            return self.upgrades.request(upgrade, actor)
        return self.apply_duplicate(cmd.space, cmd.target, actor, cmd.private, cmd.flavor, cmd.seconds)

    def apply_duplicate(self, source: str, target: str, actor: Actor, private: bool = False,
                        flavor: str | None = None, sleep_seconds: int | None = None) -> Reply:
        duplicate_audited(self.changes_out, actor.user, source, target, private, flavor, sleep_seconds)
        extras = [word for word in ("private" if private else "", f"on {flavor}" if flavor else "") if word]
        link = f"<{self.hub_url}/spaces/{target}|{escape(target)}>"
        return change_reply(actor.user, "duplicated", source,
                            f"new Space {link}" + (f" ({', '.join(extras)})" if extras else "")
                            + ". Secrets are not copied.")

    # ------------------------------------------------------------------ approved changes

    def approval_appliers(self) -> dict[str, tuple[Callable, Callable]]:
        """Actions this feature sends for approval: action → (apply(request, user), landed(request)).
        The approvals package wraps them as its kinds at wiring (it imports this package, not the reverse)."""
        return {"resume": (self._apply_resume, self._resume_landed),
                "sleep": (self._apply_sleep, self._sleep_landed)}

    def _apply_resume(self, request, user: str):
        factory = bool(request.data.get("factory"))
        action = "resume" if request.data.get("verb", "resume") == "resume" else "restart"
        why = Why(user, action, {"approval": request.id, **({"factory": True} if factory else {})})
        return self.changes_out.restart(why, request.space, factory)

    def _resume_landed(self, request) -> bool:
        return self.runtime(request.space).stage != "PAUSED"

    def _apply_sleep(self, request, user: str):
        seconds = int(request.data.get("seconds", 0))
        return self.changes_out.sleep_time(Why(user, "sleep", {"seconds": seconds, "approval": request.id}),
                                           request.space, seconds)

    def _sleep_landed(self, request) -> bool:
        seconds = int(request.data.get("seconds", 0))
        sleep_time = self.runtime(request.space).sleep_time
        return (sleep_time is None or sleep_time < 0) if seconds < 0 else sleep_time == seconds
