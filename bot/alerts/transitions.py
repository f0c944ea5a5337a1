"""Turning what the Hub says about a Space into alerts: pure functions over plain values.

`observe(previous state, new observation)` returns the next state and the alerts it implies;
`failed(...)` does the same for a read that did not work. Nothing here talks to the network.
Stages are compared as strings: the Hub reports stages (`SLEEPING`) the Python enum lacks.
"""

from __future__ import annotations

import functools
import json
import operator
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace

UP = frozenset({"RUNNING", "RUNNING_BUILDING", "RUNNING_APP_STARTING"})
ERRORS = frozenset({"RUNTIME_ERROR", "BUILD_ERROR", "CONFIG_ERROR", "NO_APP_FILE"})
ASLEEP = frozenset({"SLEEPING", "STOPPED"})
STARTING = frozenset({"BUILDING", "APP_STARTING", "RUNNING_BUILDING", "RUNNING_APP_STARTING"})
STUCK_STAGES = frozenset({"BUILDING", "APP_STARTING", "RUNNING_BUILDING"})
SETTLED = frozenset({"RUNNING", "PAUSED"}) | ASLEEP
# Since late 2025 the Hub bills a Space while it starts or runs, not while it builds its image.
BILLED = frozenset({"APP_STARTING", "RUNNING", "RUNNING_BUILDING", "RUNNING_APP_STARTING"})
WITH_LOGS = frozenset({"RUNTIME_ERROR", "BUILD_ERROR"})
# In dev mode the app process restarts in place on each edit, without a rebuild: moves among these stages
# are not incidents, never count towards a crash loop, and say at most one line in an open incident's thread.
DEV_RELOADS = frozenset({"RUNNING", "APP_STARTING", "RUNNING_APP_STARTING", "RUNTIME_ERROR"})
SCHEMA = 1  # the `v` of every stored alert and state; readers ignore fields they do not know
_encode = json.JSONEncoder(separators=(",", ":")).encode  # one encoder, not one per record (json.dumps's)


class Unreadable(ValueError):
    """A stored record that cannot be decoded (not JSON, not an object, a required field missing)."""


def _known(cls, data) -> dict:
    """The fields of `data` that `cls` has: a record written by a newer replica still decodes."""
    if not isinstance(data, dict):
        raise Unreadable(f"{cls.__name__}: not an object")
    names = _names(cls)
    return {k: v for k, v in data.items() if k in names}


@functools.cache
def _names(cls) -> frozenset[str]:
    return frozenset(f.name for f in fields(cls))


def _loads(text) -> dict:
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as err:
        raise Unreadable(f"not JSON: {err}") from err
    if not isinstance(data, dict):
        raise Unreadable("not an object")
    return data


@dataclass(frozen=True)
class Policy:
    """Thresholds (settings `SPACEOPS_*`, see `policy_of`). 30 min is the Hub's own launch timeout."""

    stuck_after: float = 30 * 60
    crashloop_errors: int = 3          # this many errors…
    crashloop_window: float = 15 * 60  # …within this window is a crash loop (sleep, builds, restarts never count)
    settle_after: float = 10 * 60      # a crash loop is over once the Space has run this long
    cost_after: float = 24 * 3600      # a paid never-sleeping Space running longer than this gets a daily warning
    fail_report_after: int = 3         # consecutive failed reads before "can't read" is said (once)


def policy_of(settings) -> Policy:
    """The thresholds from the settings (already validated there)."""
    return Policy(stuck_after=settings.stuck_minutes * 60, crashloop_errors=settings.crashloop_errors,
                  crashloop_window=settings.crashloop_minutes * 60, cost_after=settings.cost_warning_hours * 3600,
                  fail_report_after=settings.unreadable_after)


# Slots: a first cycle holds 100,000 observations and states at once, and a dict per instance was most of it.
@dataclass(frozen=True, slots=True)
class Observation:
    """One successful read of a Space's runtime, at `at` (epoch seconds)."""

    space: str
    stage: str
    at: float
    hardware: str | None = None
    requested: str | None = None
    sleep_time: int | None = None
    error: str | None = None
    dev_mode: bool = False

    @classmethod
    def from_runtime(cls, space: str, runtime, at: float) -> "Observation":
        raw = getattr(runtime, "raw", None) or {}
        return cls(space, str(runtime.stage), at, runtime.hardware, runtime.requested_hardware,
                   runtime.sleep_time, raw.get("errorMessage"), bool(raw.get("devMode")))

    @classmethod
    def from_print(cls, space: str, fields: tuple, at: float) -> "Observation":
        """From a runtime's `fingerprint` (the batched read keeps only that of its JSON)."""
        return cls(space, fields[0], at, *fields[1:])


def fingerprint(runtime: dict) -> tuple:
    """The fields of a runtime's JSON an observation keeps, as one comparable value (KeyError without a stage)."""
    hardware = runtime.get("hardware") or {}
    return (str(runtime["stage"]), hardware.get("current"), hardware.get("requested"), runtime.get("gcTimeout"),
            runtime.get("errorMessage"), bool(runtime.get("devMode")))


def state_print(state: "SpaceState") -> tuple:
    """The same fields of a stored state: equal to a read's `fingerprint` when the read saw nothing new."""
    return (state.stage, state.hardware, state.requested, state.sleep_time, state.error, state.dev_mode)


def quiet(state: "SpaceState | None") -> bool:
    """Whether reading the same runtime again can change nothing but the observation time: no alert is due
    on time alone (stuck, settled, cost), no failed read or unobserved stretch is open. The poller skips such
    a Space while its read's `fingerprint` equals the state's (`observe` would return it unchanged)."""
    return (state is not None and bool(state.stage) and state.stage not in STARTING and state.crashloop is None
            and state.last_read is None and state.fail_since is None and not state.fail_count
            and not state.fail_reason and not state.fail_reported
            and not (state.stage == "RUNNING" and (state.sleep_time is None or state.sleep_time < 0)))


@dataclass(frozen=True)
class Alert:
    """Something a channel should hear about one Space. `kinds` are the `--only` words it matches."""

    kind: str                      # transition, hardware, stuck, cost, crashloop, settled, unreadable, readable
    space: str
    at: float
    kinds: tuple[str, ...]
    old: str | None = None
    new: str | None = None
    seconds: float | None = None   # time spent in `old`
    hardware: str | None = None
    requested: str | None = None
    error: str | None = None
    incident: float | None = None  # start of the incident this belongs to
    opens: bool = False
    closes: bool = False
    reason: str | None = None      # unreadable: what the Hub said
    since: float | None = None     # unreadable: failing since; cost: running since
    logs: tuple[str, ...] | None = None
    extra: dict = field(default_factory=dict)
    # `seconds` (and a cost alert's `since`) counts from the bot's first sighting, not from when the stage
    # began: what was observed, so the words say "at least".
    at_least: bool = False

    @property
    def id(self) -> str:
        return f"{self.space}:{int(self.at * 1000)}:{self.kind}"

    def to_json(self) -> str:
        # The fields are plain values (tuples, a flat `extra`): no `asdict`, whose deep copy cost a burst's enqueue.
        return _encode({"v": SCHEMA, **self.__dict__})

    @classmethod
    def from_json(cls, text: str) -> "Alert":
        """Tolerant: unknown fields are ignored; Unreadable when it is not an alert at all."""
        data = _known(cls, _loads(text))
        try:
            data["kinds"] = tuple(data.get("kinds") or ())
            data["logs"] = tuple(data["logs"]) if data.get("logs") is not None else None
            data["extra"] = data.get("extra") if isinstance(data.get("extra"), dict) else {}
            alert = cls(**data)
            float(alert.at)
        except (TypeError, ValueError) as err:
            raise Unreadable(f"alert: {err}") from err
        return alert

    def matches(self, only: frozenset[str] | set[str]) -> bool:
        return not only or bool(set(self.kinds) & set(only))


@dataclass(frozen=True, slots=True)
class SpaceState:
    """What the poller remembers about one Space between reads (stored in Redis, see bot/poller.py)."""

    space: str
    stage: str = ""                # "" until the first successful read
    since: float = 0.0             # when it entered `stage`
    version: float = 0.0           # observation time of this state: the CAS fence
    hardware: str | None = None
    requested: str | None = None
    sleep_time: int | None = None
    error: str | None = None
    incident: float | None = None  # start of an open incident (left RUNNING, not yet back)
    errors: tuple[float, ...] = ()   # when it entered an error stage, within the crash-loop window
    crashloop: float | None = None   # start of the crash loop it is in
    stuck: bool = False            # stuck alert already sent for this stint
    cost_day: str = ""             # UTC day of the last cost warning
    fail_since: float | None = None
    fail_count: int = 0
    fail_reason: str = ""
    fail_reported: bool = False
    first_seen: float = 0.0
    # Billing counts only what was observed: `last_read` is set when the Space stops being observed (a
    # failed read, or nobody watches it any more) to its last successful read, where its stage was rolled
    # up; `counted` is where the rolled-up part of the current stage ends (0: nothing of it yet).
    last_read: float | None = None
    counted: float = 0.0
    dev_mode: bool = False           # as last read (the App Home and `status` say "dev mode on")
    dev_noted: float | None = None   # the incident whose thread heard of a dev-mode reload already
    # False when the bot did not watch its stage throughout since `since`: it was read again after a time nobody
    # observed, still in that stage (it may have left and come back meanwhile).
    since_known: bool = True

    @property
    def stint_seen_from_start(self) -> bool:
        """Whether the bot saw the stage it is in begin: a first sighting's stage began before it, unknown when."""
        return self.since > self.first_seen and self.since_known

    def to_json(self) -> str:
        # The fields are plain values (a tuple at most): no `asdict`, whose deep copy was most of a first cycle.
        names, values = _state_fields()
        return _encode({"v": SCHEMA, **dict(zip(names, values(self)))})

    def to_fields(self) -> dict[str, str]:
        return {"json": self.to_json(), "stage": self.stage, "ts": repr(self.version)}

    @classmethod
    def from_fields(cls, space: str, stored: dict[str, str]) -> "SpaceState | None":
        """None when nothing is stored; unknown fields are ignored; Unreadable when it cannot be decoded
        (the poller then starts the Space afresh from its next read)."""
        if not stored or "json" not in stored:
            return None
        data = _known(cls, _loads(stored["json"]))
        try:
            data["errors"] = tuple(float(t) for t in data.get("errors") or ())
            data["space"] = space
            for name in ("version", "since", "counted"):
                if name in data:
                    data[name] = float(data[name] or 0)
            if data.get("last_read") is not None:
                data["last_read"] = float(data["last_read"])
            if "stage" in data:
                data["stage"] = str(data["stage"])
            state = cls(**data)
        except (TypeError, ValueError) as err:
            raise Unreadable(f"state of {space}: {err}") from err
        return state


@functools.cache
def _state_fields() -> tuple[tuple[str, ...], Callable]:
    """SpaceState's field names in order, and a function giving their values (its JSON's keys and values)."""
    names = tuple(f.name for f in fields(SpaceState))
    return names, operator.attrgetter(*names)


def kinds_of(old: str | None, new: str) -> tuple[str, ...]:
    """The `--only` words a stage change matches."""
    if new in ERRORS:
        return ("errors",)
    if new in ASLEEP or (old in ASLEEP):
        return ("sleep",)
    if new == "PAUSED":
        return ("paused",)
    if new in STARTING:
        return ("building",)
    return ("running",)


def day_of(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def observe(prev: SpaceState | None, obs: Observation, policy: Policy,
            price_per_hour: float | None = None) -> tuple[SpaceState, list[Alert]]:
    """The next state and its alerts. A first sighting is a baseline: no alert."""
    if prev is None:  # the same state as from a blank one below, built at once (a first cycle builds 100,000)
        return SpaceState(obs.space, stage=obs.stage, since=obs.at, version=obs.at, hardware=obs.hardware,
                          requested=obs.requested, sleep_time=obs.sleep_time, error=obs.error,
                          dev_mode=obs.dev_mode, first_seen=obs.at), []
    if not prev.stage:
        base = prev
        state = replace(base, stage=obs.stage, since=obs.at, version=obs.at, hardware=obs.hardware,
                        requested=obs.requested, sleep_time=obs.sleep_time, error=obs.error, dev_mode=obs.dev_mode,
                        first_seen=base.first_seen or obs.at, fail_since=None, fail_count=0, fail_reason="",
                        fail_reported=False)
        return state, []
    alerts: list[Alert] = []
    state = replace(prev, version=obs.at, hardware=obs.hardware, requested=obs.requested,
                    sleep_time=obs.sleep_time, error=obs.error, dev_mode=obs.dev_mode)
    if prev.fail_reported:
        alerts.append(Alert("readable", obs.space, obs.at, ("errors",), new=obs.stage, since=prev.fail_since))
    state = replace(state, fail_since=None, fail_count=0, fail_reason="", fail_reported=False)
    if prev.last_read is not None:
        # Observed again after a time nobody saw: its stage counts again from now, not over that time, and how
        # long it has been in it is known only as "at least" (it may have left and come back meanwhile).
        state = replace(state, last_read=None, counted=obs.at, since_known=False)

    if obs.stage != prev.stage and _dev_reload(prev, obs):
        state, change_alerts = _dev_reloaded(prev, state, obs)
        alerts += change_alerts
    elif obs.stage != prev.stage:
        state, change_alerts = _stage_change(prev, state, obs, policy)
        alerts += change_alerts
    else:
        state, alerts = _steady(prev, state, obs, policy, alerts, price_per_hour)
    state, alerts = _cost(state, obs, policy, price_per_hour, alerts)
    return state, alerts


def _stage_change(prev: SpaceState, state: SpaceState, obs: Observation,
                  policy: Policy) -> tuple[SpaceState, list[Alert]]:
    """A new stage. Only entering an error counts towards a crash loop; sleep, wake, builds, restarts and
    dev-mode reloads never do. In a crash loop, the changes go on in its thread and RUNNING closes nothing
    until the Space has run for `settle_after`."""
    errors = tuple(t for t in prev.errors if t > obs.at - policy.crashloop_window)
    if obs.stage in ERRORS and prev.stage not in ERRORS:
        errors += (obs.at,)
    state = replace(state, stage=obs.stage, since=obs.at, errors=errors, stuck=False, since_known=True)
    applied = (prev.requested is not None and prev.hardware != prev.requested
               and obs.hardware == obs.requested == prev.requested)
    if prev.crashloop is None and len(errors) >= policy.crashloop_errors:
        alert = Alert("crashloop", obs.space, obs.at, ("errors",), old=prev.stage, new=obs.stage,
                      seconds=obs.at - prev.since, hardware=obs.hardware, error=obs.error, incident=obs.at,
                      opens=True, extra={"errors": len(errors), "window": policy.crashloop_window,
                             "settle": policy.settle_after}, at_least=not prev.stint_seen_from_start)
        return replace(state, crashloop=obs.at, incident=obs.at), [alert]
    kinds = kinds_of(prev.stage, obs.stage) + (("hardware",) if applied else ())
    incident, opens, closes = prev.incident, False, False
    if prev.crashloop is not None:
        incident = prev.crashloop
    elif incident is None and ((prev.stage in UP and obs.stage not in UP | ASLEEP | {"PAUSED"})
                               or obs.stage in ERRORS):
        incident, opens = obs.at, True
    elif incident is not None and obs.stage == "RUNNING":
        closes = True
    alert = Alert("transition", obs.space, obs.at, kinds, old=prev.stage, new=obs.stage,
                  seconds=obs.at - prev.since, hardware=obs.hardware, requested=obs.requested, error=obs.error,
                  incident=incident, opens=opens, closes=closes, extra={"hardware_applied": applied},
                  at_least=not prev.stint_seen_from_start)
    return replace(state, incident=None if closes else incident), [alert]


def _dev_reload(prev: SpaceState, obs: Observation) -> bool:
    """An app restart in place while dev mode is on (no build in between), outside a crash loop, and not the
    return to RUNNING that ends an open incident (that one is said as usual)."""
    return (obs.dev_mode and prev.crashloop is None and prev.stage in DEV_RELOADS and obs.stage in DEV_RELOADS
            and not (prev.incident is not None and obs.stage == "RUNNING"))


def _dev_reloaded(prev: SpaceState, state: SpaceState, obs: Observation) -> tuple[SpaceState, list[Alert]]:
    """Not an incident and no crash-loop count: nothing at all, or, in the thread of an incident that is
    open already, one line the first time."""
    state = replace(state, stage=obs.stage, since=obs.at, stuck=False)
    if prev.incident is None or prev.dev_noted == prev.incident:
        return state, []
    alert = Alert("transition", obs.space, obs.at, kinds_of(prev.stage, obs.stage), old=prev.stage, new=obs.stage,
                  seconds=obs.at - prev.since, hardware=obs.hardware, requested=obs.requested, error=obs.error,
                  incident=prev.incident, extra={"dev_reload": True})
    return replace(state, dev_noted=prev.incident), [alert]


def _steady(prev: SpaceState, state: SpaceState, obs: Observation, policy: Policy,
            alerts: list[Alert], price: float | None = None) -> tuple[SpaceState, list[Alert]]:
    alerts = list(alerts)
    applied = (prev.requested is not None and prev.hardware != prev.requested
               and obs.hardware == obs.requested == prev.requested)
    if applied:
        alerts.append(Alert("hardware", obs.space, obs.at, ("hardware",), new=obs.stage, hardware=obs.hardware,
                            incident=prev.incident))
    if (prev.crashloop is not None and obs.stage in SETTLED and obs.stage not in ERRORS
            and obs.at - prev.since >= policy.settle_after):
        # "errors" too: a channel that heard the crash loop hears that it is over.
        kinds = ("errors",) + kinds_of(None, obs.stage)
        alerts.append(Alert("settled", obs.space, obs.at, kinds, new=obs.stage,
                            seconds=obs.at - prev.since, hardware=obs.hardware, incident=prev.crashloop,
                            closes=obs.stage == "RUNNING", extra={"loop": obs.at - prev.crashloop}))
        state = replace(state, crashloop=None, incident=None, errors=())
    if obs.stage in STUCK_STAGES and not prev.stuck and obs.at - prev.since > policy.stuck_after:
        billed = obs.stage in BILLED
        alerts.append(Alert("stuck", obs.space, obs.at, ("stuck",), new=obs.stage, seconds=obs.at - prev.since,
                            hardware=obs.hardware, incident=prev.incident,
                            extra={"billed": billed, "per_hour": price if price is not None else None},
                            at_least=not prev.stint_seen_from_start))
        state = replace(state, stuck=True)
    return state, alerts


def _cost(state: SpaceState, obs: Observation, policy: Policy, price: float | None,
          alerts: list[Alert]) -> tuple[SpaceState, list[Alert]]:
    never_sleeps = obs.sleep_time is None or obs.sleep_time < 0
    if (price and price > 0 and obs.stage == "RUNNING" and never_sleeps and obs.at - state.since > policy.cost_after
            and state.cost_day != day_of(obs.at)):
        alerts = alerts + [Alert("cost", obs.space, obs.at, ("cost",), new=obs.stage, hardware=obs.hardware,
                                 since=state.since, extra={"per_day": round(price * 24, 2), "per_hour": price},
                                 at_least=not state.stint_seen_from_start)]
        state = replace(state, cost_day=day_of(obs.at))
    return state, alerts


def failed(prev: SpaceState | None, space: str, reason: str, at: float,
           policy: Policy, last_read: float | None = None) -> tuple[SpaceState, list[Alert]]:
    """A read that did not work: never a transition; said once after a few in a row. The first one also
    ends what is counted of its stage at `last_read`, its last successful read (see `unobserved`)."""
    base = prev or SpaceState(space)
    state = replace(base, fail_since=base.fail_since or at, fail_count=base.fail_count + 1, fail_reason=reason,
                    version=max(base.version, at))
    if last_read is not None:
        state = unobserved(state, last_read)
    if state.fail_count >= policy.fail_report_after and not base.fail_reported:
        alert = Alert("unreadable", space, at, ("errors",), old=base.stage or None, reason=reason,
                      since=state.fail_since)
        return replace(state, fail_reported=True), [alert]
    return state, []


def unobserved(state: SpaceState, last_read: float) -> SpaceState:
    """The state of a Space that is not observed any more (its reads fail, or nobody watches it): its stage
    counts up to `last_read`, its last successful read, and no further until it is read again."""
    if not state.stage or state.last_read is not None:
        return state
    last_read = max(last_read, state.since, state.counted or 0.0)
    return replace(state, last_read=last_read, counted=last_read)


def usage_delta(prev: SpaceState | None, state: SpaceState) -> dict[str, float]:
    """Seconds to add per `stage|flavor` when a state replaces another (hardware time and uptime)."""
    if prev is None or not prev.stage or state.stage == prev.stage:
        return {}
    seconds = max(0.0, state.since - prev.since)
    return {f"{prev.stage}|{prev.hardware or 'none'}": seconds} if seconds else {}
