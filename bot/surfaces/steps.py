"""Workflow Builder steps (`functions:` in the manifest): each runs as the command it stands for, with the
rights of the person who ran the workflow, in the workflow's channel, through the same gate. A step that
waits (an approval, a Space coming up) is kept in Redis and finished from the leader's tick with the
poller's own observations; its completion is claimed by execution id, so it is sent exactly once."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, fields
from typing import Callable

from slack_sdk.errors import SlackApiError, SlackClientError

from bot.core.blocks import clip
from bot.alerts.keys import state_key
from bot.alerts.transitions import ERRORS, Observation, SpaceState
from bot.commands.grammar import parse_command, parse_space
from bot.core.errors import BadInput, SpaceOpsError
from bot.core.markup import code, escape
from bot.core.permissions import Actor
from bot.core.store import REDIS_ERRORS, Store, key
from bot.surfaces import words

log = logging.getLogger(__name__)
# callback_id in the manifest → the command it runs ("wait" is this module's own).
STEPS = {"space_status": "status", "space_restart": "restart", "space_pause": "pause",
         "space_resume": "resume", "space_hardware": "hw", "space_wait_running": "wait"}
PENDING = key("steps", "pending")  # hash: execution id → Pending JSON
KEEP_SECONDS = 7 * 86400  # the longest a step waits (Slack's own limit is unverified); its claim lives as long
DEFAULT_WAIT_MINUTES = 30
VERSION = 1


def seen_key(space: str) -> str:
    return key("steps", "seen", "{" + space + "}")


def started_key(execution: str) -> str:
    return key("steps", "started", execution)


def done_key(execution: str) -> str:
    return key("steps", "done", execution)


@dataclass(frozen=True)
class Outcome:
    """What a step ends with now: outputs (done), a sentence (failed), or neither (pending: finished later)."""

    outputs: dict | None = None
    error: str | None = None

    @property
    def pending(self) -> bool:
        return self.outputs is None and self.error is None


@dataclass(frozen=True)
class Pending:
    execution: str
    kind: str            # "approval" or "wait"
    space: str
    created: float
    deadline: float
    request: str = ""    # the approval request's id
    user: str = ""
    outputs: dict | None = None  # kind "result": an outcome whose completion Slack did not take yet
    error: str | None = None
    v: int = VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def decode(cls, raw: str | None) -> "Pending | None":
        """Tolerant: unknown fields (a newer replica's) ignored; None for what can't be read."""
        try:
            data = json.loads(raw or "")
            known = {f.name for f in fields(cls)}
            return cls(**{k: v for k, v in data.items() if k in known})
        except (ValueError, TypeError):
            return None


class Steps:
    def __init__(self, store: Store, ops, approvals, heat: Callable[[str, float], None], client=None,
                 space_url: Callable[[str], str] = lambda space: space):
        self.store = store
        self.ops = ops
        self.approvals = approvals
        self.heat = heat          # the poller reads a hot Space often: what a waiting step finishes from
        self.client = client      # slack_sdk WebClient (functions.completeSuccess/completeError)
        self.space_url = space_url

    # ------------------------------------------------------------------ a step runs

    def run(self, callback: str, execution: str, inputs: dict, team: str = "") -> Outcome:
        """Validate like the command's arguments, ask the gate through the command, act or wait. An execution
        Slack delivers again (a retried event) is not run twice: its start is claimed in Redis."""
        try:
            self.store.require()
            if not self.store.redis.set(started_key(execution), "1", nx=True, ex=KEEP_SECONDS):
                return Outcome()  # already running or done: whoever has it finishes it
        except REDIS_ERRORS:
            return Outcome(error=words.STEP_NO_REDIS)
        try:
            return self._run(STEPS[callback], execution, inputs or {}, team)
        except SpaceOpsError as err:
            return Outcome(error=err.sentence)

    def _run(self, name: str, execution: str, inputs: dict, team: str) -> Outcome:
        user, channel = str(inputs.get("user") or ""), str(inputs.get("channel") or "")
        if not user:
            raise BadInput(words.STEP_NO_USER)
        if not channel:
            raise BadInput(words.STEP_NO_CHANNEL)
        if not str(inputs.get("space") or "").strip():
            raise BadInput(words.STEP_NO_SPACE)
        space = parse_space(str(inputs["space"]))
        actor = Actor(user=user, channel=channel, team=team)
        if name == "wait":
            return self._wait(execution, space, inputs.get("timeout_minutes"), actor)
        if name == "hw" and not str(inputs.get("flavor") or "").strip():
            raise BadInput(words.STEP_NO_FLAVOR)
        text = f"{name} {space}" + (f" {inputs['flavor']}" if name == "hw" else "")
        cmd = parse_command(text, self.ops.catalogue)  # the command's own checks of its arguments
        if name == "status":
            self.ops.check(cmd, actor)  # the gate and roles, as `status` here; then one read of the Space
            return Outcome(outputs=self.status_outputs(cmd.space, actor))
        before = self._open_ids()
        reply = self.ops.attempt(cmd, actor)
        if reply.text.startswith(":warning:"):
            return Outcome(error=reply.text.removeprefix(":warning:").strip())
        if not reply.public:
            request = self._new_request(cmd.space, user, before)
            if request is not None:  # a paid change: the usual approval request was posted
                now = self.store.clock()
                self._keep(Pending(execution, "approval", cmd.space, now, request.expires_at + 60, request.id, user))
                return Outcome()
        return Outcome(outputs={})

    def status_outputs(self, space: str, actor: Actor) -> dict:
        runtime = self.ops.runtime(space)
        raw = getattr(runtime, "raw", {}) or {}
        error = str(raw.get("errorMessage") or "")
        if error and not self.ops.reveals(space, actor):
            error = "hidden here: the Space is private"
        return {"stage": runtime.stage or "", "hardware": runtime.hardware or runtime.requested_hardware or "",
                "url": self.space_url(space), "error": clip(error, 1500)}

    def _wait(self, execution: str, space: str, timeout, actor: Actor) -> Outcome:
        try:
            minutes = DEFAULT_WAIT_MINUTES if timeout in (None, "") else int(str(timeout))
        except ValueError:
            raise BadInput(words.STEP_BAD_TIMEOUT) from None
        if not 1 <= minutes <= 1440:
            raise BadInput(words.STEP_BAD_TIMEOUT)
        cmd = parse_command(f"status {space}", self.ops.catalogue)
        self.ops.check(cmd, actor)  # the gate and roles, as `status` in that channel
        if self.ops.runtime(cmd.space).stage == "RUNNING":  # one read: a Space that is not there fails now
            return Outcome(outputs={"stage": "RUNNING"})
        now = self.store.clock()
        pending = Pending(execution, "wait", cmd.space, now, now + 60 * minutes, user=actor.user)
        self._keep(pending)
        self.heat(cmd.space, now)
        return self._check(pending, now) or Outcome()

    def _open_ids(self) -> set[str]:
        store = getattr(self.approvals, "store", None)
        return {r.id for r in store.open_requests()} if store is not None else set()

    def _new_request(self, space: str, user: str, before: set[str]):
        store = getattr(self.approvals, "store", None)
        if store is None:
            return None
        fresh = [r for r in store.open_requests() if r.space == space and r.requester == user and r.id not in before]
        return max(fresh, key=lambda r: r.created_at) if fresh else None

    def _keep(self, pending: Pending) -> None:
        self.store.require()
        self.store.redis.hset(PENDING, pending.execution, pending.to_json())

    # ------------------------------------------------------------------ waiting steps, on the leader's tick

    def tick(self, now: float) -> int:
        """Finish the waiting steps whose outcome is known; a per-entry failure is logged and retried."""
        finished = 0
        for execution, raw in self.store.redis.hgetall(PENDING).items():
            pending = Pending.decode(raw)
            if pending is None:
                log.warning("a pending workflow step could not be read; dropped: %s", execution)
                self.store.redis.hdel(PENDING, execution)
                continue
            if now > pending.created + KEEP_SECONDS:
                if pending.kind == "result":
                    self.store.redis.hdel(PENDING, execution)  # Slack never took it: given up
                else:
                    self.finish(execution, Outcome(error=words.STEP_TOO_LONG.format(days=KEEP_SECONDS // 86400)))
                continue
            try:
                outcome = self._check(pending, now)
                if outcome is None:
                    if pending.kind == "wait":
                        self.heat(pending.space, now)
                    continue
                finished += self.finish(execution, outcome)
            except (SpaceOpsError, *REDIS_ERRORS) as err:
                log.warning("workflow step %s not checked this time: %s", execution, err)
        return finished

    def _check(self, pending: Pending, now: float) -> Outcome | None:
        if pending.kind == "result":
            return Outcome(outputs=pending.outputs if pending.error is None else None, error=pending.error)
        if pending.kind == "approval":
            request = self.approvals.store.get(pending.request)
            if request is None or request.status == "expired" or now > pending.deadline:
                return Outcome(error=words.STEP_EXPIRED)
            if request.status == "approved":
                return Outcome(outputs={})
            if request.status in ("denied", "cancelled"):
                return Outcome(error=words.STEP_DENIED.format(status=request.status))
            if request.status == "failed":
                # Approved, but the Hub refused it: the step ends with the reason now (an approver may still
                # try the request again; the workflow has moved on and reruns the step if it must).
                return Outcome(error=words.STEP_APPLY_FAILED.format(reason=request.error or "no reason given"))
            return None
        state = self._last_seen(pending.space)
        seen = state is not None and state.version >= pending.created - 1
        if seen and state.stage == "RUNNING":
            return Outcome(outputs={"stage": "RUNNING"})
        if seen and state.stage in ERRORS:
            return Outcome(error=words.STEP_WAIT_ERROR.format(space=code(pending.space), stage=state.stage,
                                                              error=escape(clip(state.error or "no error text", 300))))
        if now > pending.deadline:
            minutes = round((pending.deadline - pending.created) / 60)
            stage = state.stage if state is not None and state.stage else "not yet read"
            return Outcome(error=words.STEP_WAIT_TIMEOUT.format(space=code(pending.space), minutes=minutes,
                                                                stage=stage))
        return None

    def observed(self, result, space: str, now: float) -> None:
        """A hot read of a Space (bot/alerts/hot.py's listener): kept for the waiting steps, which are
        finished at once when it settles them."""
        if not isinstance(result, Observation):
            return
        redis = self.store.redis
        waiting = [p for p in map(Pending.decode, redis.hvals(PENDING)) if p and p.kind == "wait" and p.space == space]
        if not waiting:
            return
        seen = {"v": VERSION, "stage": result.stage, "error": result.error or "", "at": result.at}
        redis.set(seen_key(space), json.dumps(seen), ex=KEEP_SECONDS)
        for pending in waiting:
            outcome = self._check(pending, now)
            if outcome is not None:
                self.finish(pending.execution, outcome)

    def _last_seen(self, space: str) -> SpaceState | None:
        """The newest of the poller's stored state (a watched Space) and the last hot read kept here."""
        redis = self.store.redis
        state = SpaceState.from_fields(space, redis.hgetall(state_key(space)))
        try:
            seen = json.loads(redis.get(seen_key(space)) or "null")
            hot = SpaceState(space, stage=str(seen["stage"]), version=float(seen["at"]),
                             error=str(seen.get("error") or "")) if isinstance(seen, dict) else None
        except (ValueError, KeyError, TypeError):
            hot = None
        if hot is not None and (state is None or hot.version > state.version):
            return hot
        return state

    # ------------------------------------------------------------------ the completion, exactly once

    def finish(self, execution: str, outcome: Outcome) -> bool:
        """Send the completion if this replica claims the execution id first; False when another did."""
        if outcome.pending:
            return False
        redis = self.store.redis
        if self.client is None:  # the console: no Slack to tell
            log.warning("workflow step %s ended with no Slack client to tell", execution)
            redis.hdel(PENDING, execution)
            return False
        if not redis.set(done_key(execution), "1", nx=True, ex=KEEP_SECONDS):
            redis.hdel(PENDING, execution)
            return False
        try:
            if outcome.error is not None:
                self.client.functions_completeError(function_execution_id=execution, error=outcome.error)
            else:
                self.client.functions_completeSuccess(function_execution_id=execution, outputs=outcome.outputs)
        except SlackApiError as err:
            if err.response.status_code < 500 and err.response.status_code != 429:
                log.warning("Slack refused the completion of step %s: %s", execution, err.response.get("error"))
                redis.hdel(PENDING, execution)
                return True
            return self._later(execution, outcome, err)
        except (SlackClientError, OSError) as err:
            return self._later(execution, outcome, err)
        redis.hdel(PENDING, execution)
        return True

    def _later(self, execution: str, outcome: Outcome, err: Exception) -> bool:
        """Slack did not take the completion: unclaimed, and kept for the next tick (any replica)."""
        redis = self.store.redis
        log.warning("completion of step %s not sent (%s); tried again on the next tick", execution, err)
        redis.delete(done_key(execution))
        if not redis.hexists(PENDING, execution):
            now = self.store.clock()
            redis.hset(PENDING, execution, Pending(execution, "result", "", now, now + KEEP_SECONDS,
                                                   outputs=outcome.outputs, error=outcome.error).to_json())
        return False
