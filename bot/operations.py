"""What each `/space` command does: Hub calls through the official client, audit, and the reply."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

from huggingface_hub import HfApi

from bot import hub, render
from bot.errors import BadInput, NotAllowed, SpaceOpsError
from bot.flavors import DEFAULT_FLAVOR, Catalogue
from bot.grammar import Command
from bot.markup import code, escape
from bot.permissions import READS, Roles
from bot.render import Reply
from bot.settings import Settings
from bot.slack import Poster
from bot.store import Store, state_errors

log = logging.getLogger(__name__)
CATALOGUE_SECONDS = 3600


@dataclass(frozen=True)
class Actor:
    """Who asked, and where."""

    user: str
    channel: str = ""
    team: str = ""


@dataclass(frozen=True)
class Upgrade:
    """A paid hardware change waiting for an approver: from `hw` or from `duplicate --hw`."""

    space: str
    current: str
    flavor: str
    sleep_seconds: int | None = None
    duplicate_to: str | None = None
    private: bool = False


Handler = Callable[[Command, Actor], Reply]


class Operations:
    """Runs parsed commands. Feature modules (approvals, watching) add handlers with `handle()`."""

    def __init__(self, settings: Settings, api: HfApi, store: Store, poster: Poster, roles: Roles | None = None):
        self.settings = settings
        self.api = api
        self.store = store
        self.poster = poster
        self.roles = roles or Roles(settings)
        self.hub_url = settings.hf_endpoint
        self._catalogue = Catalogue()
        self._catalogue_at = 0.0
        self._catalogue_lock = threading.Lock()
        self.handlers: dict[str, Handler] = {
            "help": lambda cmd, actor: render.help_reply(cmd.topic),
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
        self.request_upgrade: Callable[[Upgrade, Actor], Reply] = self._upgrade_unavailable

    def handle(self, name: str, handler: Handler) -> None:
        self.handlers[name] = handler

    # ------------------------------------------------------------------ entry point

    def run(self, cmd: Command, actor: Actor) -> Reply:
        """Check permissions, run, and turn any of our errors into a reply. Bugs still raise."""
        try:
            self.roles.check(cmd.name, actor.user, cmd.space)
            if cmd.target:
                self.roles.check(cmd.name, actor.user, cmd.target)
            handler = self.handlers.get(cmd.name)
            if handler is None:
                return render.notice_reply(f"`{cmd.name.replace('.', ' ')}` is not available yet in this version.")
            with state_errors():
                return handler(cmd, actor)
        except SpaceOpsError as err:
            if isinstance(err, NotAllowed):
                self._audit_refusal(cmd, actor, err)
            return render.error_reply(err.sentence)

    def run_secret_set(self, space: str, key: str, value: str, actor: Actor, description: str | None = None) -> Reply:
        try:
            return self.set_secret(space, key, value, actor, description)
        except SpaceOpsError as err:
            return render.error_reply(err.sentence)

    def _audit_refusal(self, cmd: Command, actor: Actor, err: SpaceOpsError) -> None:
        if cmd.name not in READS:
            self.store.audit(actor.user, cmd.name, cmd.space or "", {}, result=f"refused: {err.sentence[:120]}")

    @property
    def catalogue(self) -> Catalogue:
        return self._catalogue

    def refresh_catalogue(self, force: bool = False) -> Catalogue:
        """The Hub's flavor list, cached for an hour; the shipped table when the Hub can't be read."""
        with self._catalogue_lock:
            if not force and time.monotonic() - self._catalogue_at < CATALOGUE_SECONDS and self._catalogue_at:
                return self._catalogue
            try:
                items = hub.call(self.api.list_spaces_hardware)
                self._catalogue = Catalogue.from_hub(items)
            except SpaceOpsError as err:
                log.warning("hardware catalogue unavailable, using the shipped one: %s", err.sentence)
                self._catalogue = Catalogue()
            self._catalogue_at = time.monotonic()
            return self._catalogue

    # ------------------------------------------------------------------ reads

    def runtime(self, space: str):
        return hub.call(self.api.get_space_runtime, space, space=space)

    def status(self, cmd: Command, actor: Actor) -> Reply:
        return render.status_reply(cmd.space, self.runtime(cmd.space), self.catalogue, self.hub_url)

    def flavors(self, cmd: Command, actor: Actor) -> Reply:
        return render.flavors_reply(self.refresh_catalogue(force=True))

    def var_ls(self, cmd: Command, actor: Actor) -> Reply:
        variables = hub.call(self.api.get_space_variables, cmd.space, space=cmd.space)
        return render.variables_reply(cmd.space, variables)

    def secret_ls(self, cmd: Command, actor: Actor) -> Reply:
        secrets = hub.call(self.api.get_space_secrets, cmd.space, space=cmd.space)
        return render.secrets_reply(cmd.space, secrets)

    def audit(self, cmd: Command, actor: Actor) -> Reply:
        return render.audit_reply(self.store.audit_entries(cmd.space), cmd.space)

    # ------------------------------------------------------------------ changes

    def _change(self, actor: Actor, action: str, space: str, params: dict, fn: Callable[[], object]):
        """Run a change with Redis required first, and an audit entry whatever the outcome."""
        self.store.require()
        try:
            result = fn()
        except SpaceOpsError as err:
            self.store.audit(actor.user, action, space, params, result=f"error: {err.sentence[:200]}")
            raise
        self.store.audit(actor.user, action, space, params)
        return result

    def restart(self, cmd: Command, actor: Actor) -> Reply:
        action = "resume" if cmd.name == "resume" else "restart"
        runtime = self._change(actor, action, cmd.space, {"factory": cmd.factory} if cmd.factory else {},
                               lambda: hub.call(self.api.restart_space, cmd.space, factory_reboot=cmd.factory,
                                                space=cmd.space))
        verb = {"resume": "resumed", "restart": "factory-rebooted" if cmd.factory else "restarted"}[action]
        return render.change_reply(actor.user, verb, cmd.space, f"now {render.stage_words(runtime.stage)}.")

    def pause(self, cmd: Command, actor: Actor) -> Reply:
        runtime = self._change(actor, "pause", cmd.space, {},
                               lambda: hub.call(self.api.pause_space, cmd.space, space=cmd.space))
        return render.change_reply(actor.user, "paused", cmd.space,
                                   f"now {render.stage_words(runtime.stage)}; no billing until someone resumes it "
                                   f"with `/space resume {escape(cmd.space)}`.")

    def hardware(self, cmd: Command, actor: Actor) -> Reply:
        runtime = self.runtime(cmd.space)
        current = runtime.requested_hardware or runtime.hardware
        if current is None:
            raise BadInput(f"{code(cmd.space)} is a static Space: it has no hardware to change.")
        if cmd.flavor == current:
            return render.notice_reply(f"{code(cmd.space)} is already on {render.flavor_words(current, self.catalogue)}.")
        if self.catalogue.is_upgrade(current, cmd.flavor):
            self.store.require()
            return self.request_upgrade(Upgrade(cmd.space, current, cmd.flavor), actor)
        new = self._change(actor, "hw", cmd.space, {"from": current, "flavor": cmd.flavor},
                           lambda: hub.call(self.api.request_space_hardware, cmd.space, cmd.flavor, space=cmd.space))
        return render.change_reply(
            actor.user, "moved", cmd.space,
            f"{render.flavor_words(current, self.catalogue)} → {render.flavor_words(cmd.flavor, self.catalogue)}; "
            f"now {render.stage_words(new.stage)}.")

    def apply_hardware(self, space: str, flavor: str, sleep_seconds: int | None = None):
        """The Hub call behind an approved upgrade (no permission check: the approval was it)."""
        return hub.call(self.api.request_space_hardware, space, flavor, sleep_time=sleep_seconds, space=space)

    def sleep(self, cmd: Command, actor: Actor) -> Reply:
        runtime = self.runtime(cmd.space)
        hardware = runtime.requested_hardware or runtime.hardware
        if hardware is None:
            raise BadInput(f"{code(cmd.space)} is a static Space: it never sleeps.")
        if hardware == DEFAULT_FLAVOR:
            raise BadInput(f"{code(cmd.space)} runs on free cpu-basic, which always sleeps after 48 h idle. "
                           f"Only upgraded hardware can change its sleep time (`/space hw {escape(cmd.space)} …`).")
        new = self._change(actor, "sleep", cmd.space, {"seconds": cmd.seconds},
                           lambda: hub.call(self.api.set_space_sleep_time, cmd.space, cmd.seconds, space=cmd.space))
        return render.change_reply(actor.user, "set the sleep time of", cmd.space,
                                   render.sleep_words(new.sleep_time if new.sleep_time is not None else cmd.seconds,
                                                      hardware) + ".")

    def var_set(self, cmd: Command, actor: Actor) -> Reply:
        self._change(actor, "var.set", cmd.space, {"key": cmd.key, "value": cmd.value[:200]},
                     lambda: hub.call(self.api.add_space_variable, cmd.space, cmd.key, cmd.value, space=cmd.space))
        return render.change_reply(actor.user, f"set variable {code(cmd.key)} on", cmd.space,
                                   "the Space restarts to pick it up.")

    def var_rm(self, cmd: Command, actor: Actor) -> Reply:
        return self._remove_key(cmd, actor, "variable", self.api.get_space_variables, self.api.delete_space_variable)

    def set_secret(self, space: str, key: str, value: str, actor: Actor, description: str | None = None) -> Reply:
        """From the secret modal: the value goes to the Hub and nowhere else (not the audit, not a log)."""
        self.roles.check("secret.set", actor.user, space)
        self._change(actor, "secret.set", space, {"key": key},
                     lambda: hub.call(self.api.add_space_secret, space, key, value, description=description or None,
                                      space=space))
        return render.change_reply(actor.user, f"set secret {code(key)} on", space,
                                   "the Space restarts to pick it up.")

    def secret_rm(self, cmd: Command, actor: Actor) -> Reply:
        return self._remove_key(cmd, actor, "secret", self.api.get_space_secrets, self.api.delete_space_secret)

    def _remove_key(self, cmd: Command, actor: Actor, kind: str, list_keys, delete_key) -> Reply:
        # The Hub answers 200 for a missing key, so look first to say something true.
        if cmd.key not in hub.call(list_keys, cmd.space, space=cmd.space):
            return render.notice_reply(f"{code(cmd.space)} has no {kind} {code(cmd.key)}; nothing to remove.")
        action = "var.rm" if kind == "variable" else "secret.rm"
        self._change(actor, action, cmd.space, {"key": cmd.key},
                     lambda: hub.call(delete_key, cmd.space, cmd.key, space=cmd.space))
        return render.change_reply(actor.user, f"removed {kind} {code(cmd.key)} from", cmd.space)

    def duplicate(self, cmd: Command, actor: Actor) -> Reply:
        if cmd.flavor and self.catalogue.is_upgrade(DEFAULT_FLAVOR, cmd.flavor):
            self.store.require()
            upgrade = Upgrade(cmd.space, DEFAULT_FLAVOR, cmd.flavor, cmd.seconds, cmd.target, cmd.private)
            return self.request_upgrade(upgrade, actor)
        return self.apply_duplicate(cmd.space, cmd.target, actor, cmd.private, cmd.flavor, cmd.seconds)

    def apply_duplicate(self, source: str, target: str, actor: Actor, private: bool = False,
                        flavor: str | None = None, sleep_seconds: int | None = None) -> Reply:
        params = {"to": target, "private": private, "hw": flavor, "sleep": sleep_seconds}
        self._change(actor, "duplicate", source, {k: v for k, v in params.items() if v},
                     lambda: hub.call(self.api.duplicate_repo, source, target, repo_type="space",
                                      private=private or None, space_hardware=flavor,
                                      space_sleep_time=sleep_seconds, space=source))
        extras = [word for word in ("private" if private else "", f"on {flavor}" if flavor else "") if word]
        link = f"<{self.hub_url}/spaces/{target}|{escape(target)}>"
        return render.change_reply(actor.user, "duplicated", source,
                                   f"new Space {link}" + (f" ({', '.join(extras)})" if extras else "")
                                   + ". Secrets are not copied.")

    def _upgrade_unavailable(self, upgrade: Upgrade, actor: Actor) -> Reply:
        old = render.flavor_words(upgrade.current, self.catalogue)
        new = render.flavor_words(upgrade.flavor, self.catalogue)
        return render.notice_reply(f"{old} → {new} on {code(upgrade.space)} is a paid upgrade and needs an approver. "
                                   f"Approvals are not set up in this version, so nothing was changed.")
