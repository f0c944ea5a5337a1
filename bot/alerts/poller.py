"""Reading watched Spaces from the Hub each tick, deciding alerts once, and handing them to the outbox.

Exactly-once comes from Redis, not from APScheduler: a leader lease (one Lua script) picks the
replica that polls, and a per-Space compare-and-set on the stored state (its observation time is
the fence) decides whether a change is new, so a late or stale poller never posts twice.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from itertools import islice

import redis
from huggingface_hub import HfApi, SpaceRuntime
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.utils import httpx

from bot.alerts.outbox import Outbox
from bot.alerts.transitions import WITH_LOGS, Alert, Observation, Policy, SpaceState, failed, observe, usage_delta
from bot.alerts.watches import WatchSet, WatchStore
from bot.core.flavors import CatalogueSource
from bot.core.hub import CallAborted, observed, rate_limit_of
from bot.core.permissions import namespace_of
from bot.core.store import key

log = logging.getLogger(__name__)

LEASE = key("{poll}", "leader")
LAST_OK = key("{poll}", "last_ok")
HISTORY_MAXLEN = 500
LOG_LINES = 20
LOG_SCAN = 2000
LOG_LINE_CHARS = 300
DOWNTIME_INTERVALS = 5  # more than a lease handover (2.5 intervals + one tick) takes


def state_key(space: str) -> str:
    # The Space id is the hash tag: its state, usage and history live in one slot for the CAS script.
    return key("space", "{" + space + "}", "state")


def usage_key(space: str) -> str:
    return key("space", "{" + space + "}", "usage")


def history_key(space: str) -> str:
    return key("space", "{" + space + "}", "history")


# Renew if mine, take if free or expired; the lease value carries its expiry so an injected clock works
# in tests, and PEXPIRE still removes it in real time when every replica is gone.
_LEASE = """
local cur = redis.call('GET', KEYS[1])
if cur then
  local owner, expires = string.match(cur, '^(.*)|([0-9.]+)$')
  if owner ~= ARGV[1] and tonumber(expires) > tonumber(ARGV[2]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[3], 'PX', ARGV[4])
return 1
"""

_RELEASE = """
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. '|' then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS: state, usage, history. ARGV: expected ts ('' = none), new ts, state json, stage, pending alerts json,
# history entry json ('' = none), history maxlen, then usage field/seconds pairs.
_CAS = """
local cur = redis.call('HGET', KEYS[1], 'ts')
if (cur or '') ~= ARGV[1] then return 0 end
if cur and tonumber(ARGV[2]) <= tonumber(cur) then return 0 end
redis.call('HSET', KEYS[1], 'json', ARGV[3], 'stage', ARGV[4], 'ts', ARGV[2])
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'pending', ARGV[5]) end
if ARGV[6] ~= '' then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*', 'entry', ARGV[6])
end
for i = 8, #ARGV, 2 do redis.call('HINCRBYFLOAT', KEYS[2], ARGV[i], ARGV[i + 1]) end
return 1
"""

_CLEAR_PENDING = """
if redis.call('HGET', KEYS[1], 'ts') == ARGV[1] then return redis.call('HDEL', KEYS[1], 'pending') end
return 0
"""


class Lease:
    """Leader lease on one Redis key: `acquire(now)` renews or takes it; only the holder polls."""

    def __init__(self, client: redis.Redis, ttl: float, owner: str | None = None):
        self.redis = client
        self.ttl = ttl
        self.owner = owner or uuid.uuid4().hex
        self._acquire = client.register_script(_LEASE)
        self._release = client.register_script(_RELEASE)

    def acquire(self, now: float) -> bool:
        return bool(self._acquire(keys=[LEASE], args=[self.owner, repr(now), repr(now + self.ttl),
                                                      int(self.ttl * 1000)]))

    def holds(self, now: float) -> bool:
        value = self.redis.get(LEASE) or ""
        owner, _, expires = value.rpartition("|")
        return owner == self.owner and float(expires or 0) > now

    def release(self) -> None:
        self._release(keys=[LEASE], args=[self.owner])


class RateLimitHit(Exception):
    """The Hub said 429, or our own budget says stop: not a failure of any Space."""


class ReadFailed(Exception):
    """A read that did not work; `reason` is short ("403", "timeout")."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class Budget:
    """The Hub's `RateLimit` window as last seen; keeps a reserve for people's commands."""

    remaining: int | None = None
    reset_at: float = 0.0
    quota: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def reserve(self) -> int:
        return max(50, int((self.quota or 1000) * 0.2))

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


class HubReader:
    """Runtimes through HfApi: `list_spaces(author=…, expand=["runtime"])` for a namespace,
    `get_space_runtime` for one Space. Each read runs inside `hub.observed()`, so the budget sees every
    `RateLimit` header and pays for every page, and a 429/5xx ends the read at once instead of
    `list_spaces`' own sleep-and-retry.
    """

    def __init__(self, api: HfApi, budget: Budget):
        self.api = api
        self.budget = budget
        self.requests = 0
        self._count_lock = threading.Lock()
        self.shas: dict[str, str] = {}  # Space → commit, from the batched read (a new one makes it hot)

    def _before_request(self, now: float) -> None:
        self.budget.spend(now)
        with self._count_lock:
            self.requests += 1

    def _read(self, fn, now: float):
        """Run one HfApi read under `observed()`: (its result, how many HTTP responses it took)."""
        responses: list = []
        try:
            with observed(lambda: self._before_request(now)) as responses:
                result = fn()
        except (CallAborted, HfHubHTTPError, httpx.HTTPError, ValueError, KeyError, TypeError,
                AttributeError) as err:
            self._note(responses, now)
            raise self._failure(err, now) from err
        self._note(responses, now)
        return result, len(responses)

    def _failure(self, err: Exception, now: float) -> Exception:
        if isinstance(err, CallAborted):
            if err.reason == "429":
                self.budget.exhausted(now)
                return RateLimitHit("429 from the Hub")
            return ReadFailed(err.reason)
        if isinstance(err, HfHubHTTPError):
            status = getattr(getattr(err, "response", None), "status_code", None)
            return ReadFailed(str(status or "HTTP error"))
        if isinstance(err, httpx.HTTPError):
            return ReadFailed("Hub unreachable")
        return ReadFailed("unexpected answer")  # a 200 whose JSON does not have the shape the client expects

    def _note(self, responses: list, now: float) -> None:
        for response in responses:
            self.budget.note(response, now)

    def namespace(self, namespace: str, now: float) -> tuple[list[tuple[str, SpaceRuntime | None]], int]:
        """Every Space of a namespace with its runtime: ([(id, runtime)], pages used)."""
        return self._read(lambda: [(info.id, info.runtime)
                                   for info in self._listing(namespace)], now)

    def _listing(self, namespace: str):
        """`list_spaces` with the runtime and the commit of each Space; notes the commits in `shas`."""
        for info in self.api.list_spaces(author=namespace, expand=["runtime", "sha"]):
            if info.sha:
                self.shas[info.id] = info.sha
            yield info

    def space(self, space: str, now: float) -> SpaceRuntime:
        runtime, _ = self._read(lambda: self.api.get_space_runtime(space), now)
        return runtime

    def last_log_lines(self, space: str, build: bool) -> tuple[str, ...] | None:
        """The last lines of the run or build log, bounded in count and size; None when unreadable."""
        try:
            lines: list[str] = []
            for line in islice(self.api.fetch_space_logs(space, build=build), LOG_SCAN):
                lines.append(line.rstrip("\n")[:LOG_LINE_CHARS])
                del lines[:-LOG_LINES]
            return tuple(lines)
        except (HfHubHTTPError, httpx.HTTPError, ValueError, KeyError) as err:
            log.info("logs of %s not readable: %s", space, type(err).__name__)
            return None


@dataclass
class CycleReport:
    """What one poll cycle did (the benchmark and tests read it)."""

    polled: bool = False
    hub_requests: int = 0
    spaces: int = 0
    alerts: int = 0
    failures: int = 0
    rate_limited: bool = False
    downtime: float = 0.0
    batched: list[str] = field(default_factory=list)
    per_space: int = 0


class Poller:
    """One poll cycle: plan reads, read, decide with CAS, enqueue."""

    def __init__(self, client: redis.Redis, api: HfApi, outbox: Outbox, watch_store: WatchStore,
                 catalogues: CatalogueSource, interval: float, policy: Policy | None = None, workers: int = 16):
        self.redis = client
        self.api = api
        self.outbox = outbox
        self.watch_store = watch_store
        self.catalogues = catalogues
        self.interval = interval
        self.policy = policy or Policy()
        self.budget = Budget()
        self.reader = HubReader(api, self.budget)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="spaceops-poll")
        self.pages: dict[str, int] = {}  # pages a namespace listing took last time
        self.cache: dict[str, tuple[str, SpaceState]] = {}  # space → (stored ts, state), valid while leader
        self._cas = client.register_script(_CAS)
        self._clear = client.register_script(_CLEAR_PENDING)
        self.annotate = None  # Alert → Alert before commit (the commit a push brought, bot/alerts/hot.py)

    def forget(self) -> None:
        """Drop cached states (leadership was lost: another replica may have written since)."""
        self.cache.clear()

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ planning and reading

    def plan(self, watches: WatchSet) -> tuple[set[str], set[str]]:
        """(namespaces to list, Spaces to read one by one): whichever costs fewer requests per namespace."""
        batch = set(watches.pattern_namespaces())
        by_ns: dict[str, list[str]] = {}
        for space in watches.explicit_spaces():
            by_ns.setdefault(namespace_of(space), []).append(space)
        single = set()
        for ns, spaces in by_ns.items():
            if ns in batch:
                continue
            if len(spaces) > self.pages.get(ns, 1):
                batch.add(ns)
            else:
                single.update(spaces)
        return batch, single

    def read(self, watches: WatchSet, now: float, report: CycleReport) -> dict[str, Observation | str]:
        """Space → Observation, or a short failure reason. Reads the budget would not allow are skipped
        (`report.rate_limited`): those Spaces keep their last state until a later cycle."""
        namespaces, singles = self.plan(watches)
        report.batched, report.per_space = sorted(namespaces), len(singles)
        results: dict[str, Observation | str] = {}
        futures = {self.pool.submit(self.reader.namespace, ns, now): ns for ns in namespaces}
        futures.update({self.pool.submit(self.reader.space, space, now): space for space in singles})
        for future, name in futures.items():
            try:
                value = future.result()
            except RateLimitHit as err:
                if not report.rate_limited:
                    log.warning("Hub budget low, reading less this cycle: %s", err)
                report.rate_limited = True
                continue
            except ReadFailed as err:
                results.update({space: err.reason for space in self._known_in(name, watches, singles)})
                continue
            if name in singles:
                results[name] = self._observation(name, value, now)
                continue
            items, pages = value
            self.pages[name] = pages
            listed = set()
            for space, runtime in items:
                listed.add(space)
                if watches.is_watched(space) and runtime:
                    results[space] = self._observation(space, runtime, now)
            for space in watches.explicit_spaces():
                if namespace_of(space) == name and space not in listed:
                    results[space] = "404"
        return results

    def _known_in(self, name: str, watches: WatchSet, singles: set[str]) -> set[str]:
        """The Spaces a failed read was about: one Space, or the namespace's watched and known ones."""
        if name in singles:
            return {name}
        return {s for s in watches.explicit_spaces() | set(self.cache)
                if namespace_of(s) == name and watches.is_watched(s)}

    @staticmethod
    def _observation(space: str, runtime: SpaceRuntime, now: float) -> Observation | str:
        try:
            return Observation.from_runtime(space, runtime, now)
        except (KeyError, TypeError, AttributeError):
            return "unexpected answer"

    # ------------------------------------------------------------------ state

    def _load(self, spaces: list[str]) -> None:
        missing = [s for s in spaces if s not in self.cache]
        for chunk_start in range(0, len(missing), 1000):
            chunk = missing[chunk_start:chunk_start + 1000]
            pipe = self.redis.pipeline(transaction=False)
            for space in chunk:
                pipe.hgetall(state_key(space))
            for space, fields in zip(chunk, pipe.execute()):
                state = SpaceState.from_fields(space, fields)
                self.cache[space] = (fields.get("ts", ""), state) if state else ("", None)
                if fields.get("pending"):
                    # A previous leader decided these but may have died before enqueueing them.
                    self.outbox.redeliver([Alert.from_json(a) for a in json.loads(fields["pending"])])
                    self._clear(keys=[state_key(space)], args=[fields.get("ts", "")])

    def _commit(self, space: str, prev: SpaceState | None, state: SpaceState, alerts: list[Alert]) -> bool:
        """CAS the new state (with alerts as pending, usage and history) into Redis; False if stale."""
        expected = self.cache.get(space, ("", None))[0]
        new_ts = repr(state.version)
        history = ""
        if prev is not None and prev.stage and prev.stage != state.stage:
            history = _dumps({"at": state.since, "from": prev.stage, "to": state.stage,
                              "hardware": state.hardware, "error": (state.error or "")[:300]})
        pending = _dumps([a.to_json() for a in alerts]) if alerts else ""
        usage = [x for item in usage_delta(prev, state).items() for x in (item[0], repr(item[1]))]
        fields = state.to_fields()
        ok = self._cas(keys=[state_key(space), usage_key(space), history_key(space)],
                       args=[expected, new_ts, fields["json"], state.stage, pending, history, HISTORY_MAXLEN,
                             *usage])
        if ok:
            self.cache[space] = (new_ts, state)
        else:
            self.cache.pop(space, None)
        return bool(ok)

    def _decide(self, space: str, result: Observation | str, now: float,
                count_failures: bool) -> tuple[SpaceState, list[Alert]] | None:
        prev = self.cache.get(space, ("", None))[1]
        if isinstance(result, Observation):
            state, alerts = observe(prev, result, self.policy, self.catalogues.current.price(result.hardware))
        elif count_failures:
            state, alerts = failed(prev, space, result, now, self.policy)
        else:
            return None
        if prev is not None and replace(state, version=prev.version) == prev:
            return None  # nothing new: no write, so an unchanged poll costs no Redis command
        return state, alerts

    # ------------------------------------------------------------------ the cycle

    def cycle(self, now: float) -> CycleReport:
        """Read, decide, commit, enqueue. Call only while holding the lease."""
        report = CycleReport(polled=True)
        requests_before = self.reader.requests
        watches = self.watch_store.load()
        last_ok = self.redis.get(LAST_OK)
        results = self.read(watches, now, report) if len(watches) else {}
        report.hub_requests = self.reader.requests - requests_before
        report.spaces = len(results)
        successes = sum(isinstance(r, Observation) for r in results.values())
        # When nothing could be read, the Hub (or our network) is down: not a per-Space problem.
        count_failures = successes > 0
        gap = now - float(last_ok) if last_ok else 0.0
        downtime = bool(last_ok) and gap > DOWNTIME_INTERVALS * self.interval and (successes or not results)
        report.downtime = gap if downtime else 0.0

        self._load(list(results))
        decided = {}
        for space, result in results.items():
            report.failures += not isinstance(result, Observation)
            outcome = self._decide(space, result, now, count_failures)
            if outcome:
                decided[space] = outcome
        self._attach_logs(decided, downtime)
        committed: list[Alert] = []
        for space, (state, alerts) in decided.items():
            prev = self.cache.get(space, ("", None))[1]
            if not self._commit(space, prev, state, alerts):
                log.info("state of %s changed under us (another poller); skipping", space)
                continue
            committed += alerts
        if committed:
            if downtime:
                self.outbox.enqueue_summary(committed, watches, gap, now)
            else:
                self.outbox.enqueue(committed, watches)
            for space in {a.space for a in committed}:
                self._clear(keys=[state_key(space)], args=[self.cache[space][0]])
        report.alerts = len(committed)
        if not report.rate_limited and (successes or not results):
            # A cycle cut short by the budget is not a success: changes meanwhile get the downtime summary.
            self.redis.set(LAST_OK, repr(now))
        return report

    def _attach_logs(self, decided: dict, downtime: bool) -> None:
        """Crash and build-failure alerts carry the last log lines (read concurrently, bounded)."""
        if self.annotate is not None:
            for space, (_, alerts) in decided.items():
                alerts[:] = [self.annotate(alert) for alert in alerts]
        if downtime:
            return
        wanted = [(space, i, alert) for space, (_, alerts) in decided.items() for i, alert in enumerate(alerts)
                  if alert.kind in ("transition", "crashloop") and alert.new in WITH_LOGS]
        futures = [(space, i, alert, self.pool.submit(self.reader.last_log_lines, space, alert.new == "BUILD_ERROR"))
                   for space, i, alert in wanted]
        for space, i, alert, future in futures:
            state, alerts = decided[space]
            lines = future.result()
            alerts[i] = replace(alert, logs=lines) if lines is not None else \
                replace(alert, extra={**alert.extra, "logs": "unreadable"})


    def apply(self, results: dict[str, Observation | str], now: float) -> list[Alert]:
        """Decide, commit and enqueue reads made outside the cycle (hot reads): the same CAS and outbox, so a
        hot read and a batched one can never both post the same change. Returns the committed alerts."""
        watches = self.watch_store.load()
        self._load(list(results))
        decided = {}
        for space, result in results.items():
            outcome = self._decide(space, result, now, True)
            if outcome:
                decided[space] = outcome
        self._attach_logs(decided, False)
        committed: list[Alert] = []
        for space, (state, alerts) in decided.items():
            if self._commit(space, self.cache.get(space, ("", None))[1], state, alerts):
                committed += alerts
        if committed:
            self.outbox.enqueue(committed, watches)
            for space in {a.space for a in committed}:
                self._clear(keys=[state_key(space)], args=[self.cache[space][0]])
        return committed


def _dumps(value) -> str:
    return json.dumps(value, separators=(",", ":"))


def usage(client: redis.Redis, space: str, now: float) -> dict[str, float]:
    """Seconds per `stage|flavor` since the first poll, including the current stint (uptime and spend)."""
    totals = {name: float(value) for name, value in client.hgetall(usage_key(space)).items()}
    state = SpaceState.from_fields(space, client.hgetall(state_key(space)))
    if state and state.stage:
        name = f"{state.stage}|{state.hardware or 'none'}"
        totals[name] = totals.get(name, 0.0) + max(0.0, now - state.since)
    return totals


