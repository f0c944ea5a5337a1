"""Reading watched Spaces from the Hub each tick, deciding alerts once, and handing them to the outbox.

Exactly-once comes from Redis, not from APScheduler: a leader lease (one Lua script) picks the
replica that polls, and a per-Space compare-and-set on the stored state (its observation time is
the fence) decides whether a change is new, so a late or stale poller never posts twice.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from itertools import islice
from typing import Callable

import redis
from huggingface_hub import HfApi, SpaceRuntime
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.utils import httpx

from bot.alerts import rollups
from bot.alerts.outbox import Outbox
from bot.alerts.transitions import (WITH_LOGS, Alert, Observation, Policy, SpaceState, Unreadable, failed, observe,
                                    usage_delta)
from bot.alerts.watches import WatchSet, WatchStore
from bot.core.budget import Budget, RateLimitHit  # noqa: F401 — RateLimitHit is re-exported
from bot.core.flavors import CatalogueSource
from bot.core.hub import CallAborted, observed
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
READ_TIMEOUTS = 3       # a whole read (every page of a listing) ends within this many Hub timeouts
LOG_SECONDS = 3.0       # an alert waits at most this long for its log lines
LOG_FETCH_MAX = 20      # more failures than this in one cycle: no log lines (one request each)


def state_key(space: str) -> str:
    # The Space id is the hash tag: its state, usage and history live in one slot for the CAS script.
    return key("space", "{" + space + "}", "state")


def usage_key(space: str) -> str:
    return key("space", "{" + space + "}", "usage")


def history_key(space: str) -> str:
    return key("space", "{" + space + "}", "history")


# Redis's own clock inside a script (ARGV[i] = '' asks for it): the same for every replica, however far
# their clocks drift. Tests pass an injected time instead.
_NOW = """
local function clock(given)
  local now = tonumber(given)
  if now then return now end
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
"""

# Renew if mine, take if free or expired; the lease value carries its expiry (on Redis's clock, or the
# injected one in tests), and PEXPIRE still removes it in real time when every replica is gone.
# ARGV: owner, now ('' = Redis TIME), ttl seconds, ttl ms.
_LEASE = _NOW + """
local now = clock(ARGV[2])
local cur = redis.call('GET', KEYS[1])
if cur then
  local owner, expires = string.match(cur, '^(.*)|([0-9.]+)$')
  if owner ~= ARGV[1] and expires and tonumber(expires) > now then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. string.format('%.3f', now + tonumber(ARGV[3])), 'PX', ARGV[4])
return 1
"""

_HOLDS = _NOW + """
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local owner, expires = string.match(cur, '^(.*)|([0-9.]+)$')
if owner == ARGV[1] and expires and tonumber(expires) > clock(ARGV[2]) then return 1 end
return 0
"""

_RELEASE = """
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. '|' then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS: state, usage, history, then the day and month roll-up hashes. ARGV: expected ts ('' = none), new ts,
# state json, stage, pending alerts json, history entry json ('' = none), history maxlen, guard ('1': a stored
# ts far ahead of Redis's clock, written by a replica whose clock ran ahead, does not fence), roll-up entries
# json ('' = none; see bot/alerts/rollups.py `cas_rollup`), roll-up TTL, then usage field/seconds pairs.
# New alerts are appended to those still pending (never overwritten); returns {1, all pending} or 0.
_CAS = _NOW + """
local cur = redis.call('HGET', KEYS[1], 'ts')
if (cur or '') ~= ARGV[1] then return 0 end
local curn = cur and tonumber(cur)
if curn and ARGV[8] == '1' and curn > clock('') + 60 then curn = nil end
if curn and tonumber(ARGV[2]) <= curn then return 0 end
redis.call('HSET', KEYS[1], 'json', ARGV[3], 'stage', ARGV[4], 'ts', ARGV[2], 'v', '1')
local pending = ''
if ARGV[5] ~= '' then
  pending = redis.call('HGET', KEYS[1], 'pending') or ''
  if pending ~= '' then
    local ok, old = pcall(cjson.decode, pending)
    if ok and type(old) == 'table' then
      for _, a in ipairs(cjson.decode(ARGV[5])) do table.insert(old, a) end
      pending = cjson.encode(old)
    else
      pending = ARGV[5]
    end
  else
    pending = ARGV[5]
  end
  redis.call('HSET', KEYS[1], 'pending', pending)
end
if ARGV[6] ~= '' then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*', 'entry', ARGV[6])
end
if ARGV[9] ~= '' then
  for _, e in ipairs(cjson.decode(ARGV[9])) do
    local k = KEYS[3 + e.k]
    if e.add then for f, v in pairs(e.add) do redis.call('HINCRBY', k, f, v) end end
    if e.peak then
      for f, v in pairs(e.peak) do
        if v > tonumber(redis.call('HGET', k, f) or '0') then redis.call('HSET', k, f, v) end
      end
    end
    if e.sum then
      for f, v in pairs(e.sum) do
        local cur, i = {0, 0, 0, 0, 0}, 0
        for n in string.gmatch(redis.call('HGET', k, f) or '', '%-?%d+') do
          i = i + 1
          if i <= 5 then cur[i] = tonumber(n) end
        end
        for j = 1, 4 do cur[j] = cur[j] + (tonumber(v[j]) or 0) end
        if (tonumber(v[5]) or 0) > cur[5] then cur[5] = tonumber(v[5]) end
        redis.call('HSET', k, f, table.concat(cur, ' '))
      end
    end
    if e.h then
      local cur, rank, out = redis.call('HGET', k, 'h') or '', '.spurb', {}
      for i = 1, 24 do
        local a, b = string.sub(cur, i, i), string.sub(e.h, i, i)
        if a == '' then a = '.' end
        if (string.find(rank, b, 1, true) or 1) > (string.find(rank, a, 1, true) or 1) then a = b end
        out[i] = a
      end
      redis.call('HSET', k, 'h', table.concat(out))
    end
    redis.call('EXPIRE', k, ARGV[10])
  end
end
for i = 11, #ARGV, 2 do redis.call('HINCRBYFLOAT', KEYS[2], ARGV[i], ARGV[i + 1]) end
return {1, pending}
"""

# Remove the pending alerts only if they are still exactly those that were queued.
_CLEAR_PENDING = """
if redis.call('HGET', KEYS[1], 'pending') == ARGV[1] then return redis.call('HDEL', KEYS[1], 'pending') end
return 0
"""


class Lease:
    """Leader lease on one Redis key: `acquire()` renews or takes it; only the holder polls.

    Expiry is on Redis's clock (`TIME` inside the script), so replicas whose clocks differ by minutes
    still agree on who leads; `now` is for tests with an injected clock."""

    def __init__(self, client: redis.Redis, ttl: float, owner: str | None = None):
        self.redis = client
        self.ttl = ttl
        self.owner = owner or uuid.uuid4().hex
        self._acquire = client.register_script(_LEASE)
        self._holds = client.register_script(_HOLDS)
        self._release = client.register_script(_RELEASE)

    def acquire(self, now: float | None = None) -> bool:
        return bool(self._acquire(keys=[LEASE], args=[self.owner, "" if now is None else repr(now), repr(self.ttl),
                                                      int(self.ttl * 1000)]))

    def holds(self, now: float | None = None) -> bool:
        return bool(self._holds(keys=[LEASE], args=[self.owner, "" if now is None else repr(now)]))

    def release(self) -> None:
        self._release(keys=[LEASE], args=[self.owner])


class ReadFailed(Exception):
    """A read that did not work; `reason` is short ("403", "timeout")."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class HubReader:
    """Runtimes through HfApi: `list_spaces(author=…, expand=["runtime"])` for a namespace,
    `get_space_runtime` for one Space. Each read runs inside `hub.observed()`, so the budget sees every
    `RateLimit` header and pays for every page, and a 429/5xx ends the read at once instead of
    `list_spaces`' own sleep-and-retry.
    """

    def __init__(self, api: HfApi, budget: Budget, read_seconds: float = 30.0, log_seconds: float = LOG_SECONDS):
        self.api = api
        self.budget = budget
        self.read_seconds = read_seconds
        self.log_seconds = log_seconds
        self.requests = 0
        self._count_lock = threading.Lock()
        self.shas: dict[str, str] = {}  # Space → commit, from the batched read (a new one makes it hot)
        # {Space: private?} → None: told the visibilities each batched read saw; set at wiring (access).
        self.privacy: Callable[[dict[str, bool]], None] = lambda seen: None

    def _before_request(self, now: float) -> None:
        self.budget.spend(now)
        with self._count_lock:
            self.requests += 1

    def _read(self, fn, now: float):
        """Run one HfApi read under `observed()`: (its result, how many HTTP responses it took)."""
        responses: list = []
        try:
            with observed(lambda: self._before_request(now), self.read_seconds) as responses:
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
        """`list_spaces` with the runtime, the commit and the visibility of each Space (in the same pages);
        notes the commits in `shas` and hands each visibility to `privacy` (access keeps it)."""
        seen: dict[str, bool] = {}
        for info in self.api.list_spaces(author=namespace, expand=["runtime", "sha", "private"]):
            if info.sha:
                self.shas[info.id] = info.sha
            if info.private is not None:
                seen[info.id] = bool(info.private)
            yield info
        try:
            self.privacy(seen)
        except Exception:  # noqa: BLE001 — a visibility not kept is asked of the Hub when needed
            log.warning("visibilities of %s not kept", namespace, exc_info=True)

    def space(self, space: str, now: float) -> SpaceRuntime:
        runtime, _ = self._read(lambda: self.api.get_space_runtime(space), now)
        return runtime

    def last_log_lines(self, space: str, build: bool) -> tuple[str, ...] | None:
        """The last lines of the run or build log, bounded in count, size and time (`log_seconds`: a stream
        that keeps sending keep-alive events ends there with what it gave); None when unreadable."""
        lines: list[str] = []
        try:
            with observed(None, self.log_seconds):
                for line in islice(self.api.fetch_space_logs(space, build=build), LOG_SCAN):
                    lines.append(line.rstrip("\n")[:LOG_LINE_CHARS])
                    del lines[:-LOG_LINES]
            return tuple(lines)
        except CallAborted as err:
            if err.reason == "timeout" and lines:
                return tuple(lines)
            log.info("logs of %s not readable: %s", space, err.reason)
            return None
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
                 catalogues: CatalogueSource, interval: float, policy: Policy | None = None, workers: int = 16,
                 hub_timeout: float = 10.0):
        self.redis = client
        self.api = api
        self.outbox = outbox
        self.watch_store = watch_store
        self.catalogues = catalogues
        self.interval = interval
        self.policy = policy or Policy()
        self.budget = Budget()
        self.reader = HubReader(api, self.budget, read_seconds=READ_TIMEOUTS * hub_timeout)
        # Wall-clock bound of one cycle's waiting on the Hub: a cycle never runs into the next tick.
        self.cycle_seconds = max(float(interval), self.reader.read_seconds + 1.0)
        self.troubled: dict[str, str] = {}  # read target → reason, while its reads fail (logged once)
        self.unqueued: dict[str, str] = {}  # space → pending alerts JSON decided but not yet queued
        self.server_clock = False  # True when `now` comes from Redis TIME (production), not a test's clock
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="spaceops-poll")
        self.pages: dict[str, int] = {}  # pages a namespace listing took last time
        self.cache: dict[str, tuple[str, SpaceState]] = {}  # space → (stored ts, state), valid while leader
        self._cas = client.register_script(_CAS)
        self._clear = client.register_script(_CLEAR_PENDING)
        self.annotate = None  # Alert → Alert before commit (the commit a push brought, bot/alerts/hot.py)

    def forget(self) -> None:
        """Drop cached states (leadership was lost: another replica may have written since)."""
        self.cache.clear()
        self.unqueued.clear()

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

    def read(self, watches: WatchSet, now: float, report: CycleReport,
             deadline: float | None = None) -> dict[str, Observation | str]:
        """Space → Observation, or a short failure reason. Reads the budget would not allow are skipped
        (`report.rate_limited`): those Spaces keep their last state until a later cycle. A read still
        running at `deadline` (time.monotonic()) counts as a timeout; the cycle goes on without it."""
        namespaces, singles = self.plan(watches)
        report.batched, report.per_space = sorted(namespaces), len(singles)
        results: dict[str, Observation | str] = {}
        deadline = deadline if deadline is not None else time.monotonic() + self.cycle_seconds
        futures = {self.pool.submit(self.reader.namespace, ns, now): ns for ns in namespaces}
        futures.update({self.pool.submit(self.reader.space, space, now): space for space in singles})
        for future, name in futures.items():
            try:
                value = future.result(timeout=max(0.0, deadline - time.monotonic()))
            except RateLimitHit as err:
                if not report.rate_limited:
                    log.warning("Hub budget low, reading less this cycle: %s", err)
                report.rate_limited = True
                continue
            except (ReadFailed, FutureTimeout) as err:
                reason = err.reason if isinstance(err, ReadFailed) else "timeout"
                if isinstance(err, FutureTimeout):
                    future.cancel()
                self._trouble(name, reason)
                results.update({space: reason for space in self._known_in(name, watches, singles)})
                continue
            self._trouble(name, None)
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

    def _trouble(self, name: str, reason: str | None) -> None:
        """One log line when reads of a namespace or Space start failing, one when they work again."""
        if reason is None:
            if self.troubled.pop(name, None) is not None:
                log.info("Hub reads of %s work again", name)
            return
        if name not in self.troubled:
            log.warning("Hub read of %s failed (%s); its Spaces keep their last state until it works", name,
                        reason)
        self.troubled[name] = reason

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
                try:
                    state = SpaceState.from_fields(space, fields)
                except Unreadable as err:
                    # Written by a replica we cannot read: start this Space afresh (a baseline, no alert);
                    # the stored ts stays the fence so the next write replaces it.
                    log.warning("stored state of %s unreadable (%s); starting it afresh", space, err)
                    state = None
                self.cache[space] = (fields.get("ts", ""), state)
                if fields.get("pending"):
                    # A previous leader decided these but may have died before enqueueing them.
                    self.unqueued[space] = fields["pending"]

    def requeue(self, watches: WatchSet | None = None, summary: tuple[float, float] | None = None) -> list[Alert]:
        """Queue every decided-but-unqueued alert, then clear exactly those from Redis (delivery ids dedupe,
        so queuing twice never posts twice). Runs every cycle: a failed enqueue is retried next time."""
        if not self.unqueued:
            return []
        watches = watches if watches is not None else self.watch_store.load()
        alerts: list[Alert] = []
        taken = dict(self.unqueued)
        for space, pending in taken.items():
            alerts += _pending_alerts(space, pending)
        if alerts:
            if summary:
                self.outbox.enqueue_summary(alerts, watches, summary[0], summary[1])
            else:
                self.outbox.enqueue(alerts, watches)
        for space, pending in taken.items():
            self._clear(keys=[state_key(space)], args=[pending])
            if self.unqueued.get(space) == pending:
                del self.unqueued[space]
        return alerts

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
        price = self.catalogues.current.price(prev.hardware) if prev is not None else None
        rollup_keys, rollup = rollups.cas_rollup(space, rollups.transition_rollup(prev, state, price))
        fields = state.to_fields()
        ok = self._cas(keys=[state_key(space), usage_key(space), history_key(space), *rollup_keys],
                       args=[expected, new_ts, fields["json"], state.stage, pending, history, HISTORY_MAXLEN,
                             "1" if self.server_clock else "", _dumps(rollup) if rollup else "", rollups.TTL,
                             *usage])
        if ok:
            self.cache[space] = (new_ts, state)
            if ok[1]:
                self.unqueued[space] = ok[1]
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

    def cycle(self, now: float, leading: Callable[[], bool] | None = None) -> CycleReport:
        """Read, decide, commit, enqueue. Call only while holding the lease; `leading()` re-checks it before
        the commits (a read can take a while) and every second while they run."""
        report = CycleReport(polled=True)
        deadline = time.monotonic() + self.cycle_seconds
        requests_before = self.reader.requests
        watches = self.watch_store.load()
        last_ok = self.redis.get(LAST_OK)
        results = self.read(watches, now, report, deadline) if len(watches) else {}
        report.hub_requests = self.reader.requests - requests_before
        report.spaces = len(results)
        successes = sum(isinstance(r, Observation) for r in results.values())
        # The Hub answered when something was read or every failure was a Space's own (404, 403). When only
        # transport errors, 5xx and 429 came back, the Hub (or our network) is down: no Space is blamed.
        hub_answered = bool(successes) or not any(hub_failure(r) for r in results.values())
        gap = now - float(last_ok) if last_ok else 0.0
        downtime = bool(last_ok) and gap > DOWNTIME_INTERVALS * self.interval and hub_answered
        report.downtime = gap if downtime else 0.0

        self._load(list(results))
        self.requeue(watches)  # alerts an earlier cycle decided but could not queue
        decided = {}
        for space, result in results.items():
            report.failures += not isinstance(result, Observation)
            outcome = self._decide(space, result, now, bool(successes) or not hub_failure(result))
            if outcome:
                decided[space] = outcome
        self._attach_logs(decided, downtime, deadline)
        committed: list[Alert] = []
        checked = time.monotonic()
        if decided and leading is not None and not leading():
            log.info("poll lease lost during the cycle; leaving its decisions to the new leader")
            self.forget()
            return report
        for space, (state, alerts) in decided.items():
            if leading is not None and time.monotonic() - checked > 1.0:
                checked = time.monotonic()
                if not leading():
                    log.info("poll lease lost during the commits; the new leader goes on")
                    self.forget()
                    break
            prev = self.cache.get(space, ("", None))[1]
            if not self._commit(space, prev, state, alerts):
                log.info("state of %s changed under us (another poller); skipping", space)
                continue
            committed += alerts
        self.requeue(watches, (gap, now) if downtime else None)
        report.alerts = len(committed)
        if not report.rate_limited and hub_answered:
            # A cycle cut short by the budget is not a success: changes meanwhile get the downtime summary.
            self.redis.set(LAST_OK, repr(now))
        return report

    def _attach_logs(self, decided: dict, downtime: bool, deadline: float | None = None) -> None:
        """Crash and build-failure alerts carry the last log lines (read concurrently, bounded in time); the
        commit behind a build or crash is named first (`annotate`)."""
        if self.annotate is not None:
            for space, (_, alerts) in decided.items():
                alerts[:] = [self.annotate(alert) for alert in alerts]
        if downtime:
            return
        wanted = [(space, i, alert) for space, (_, alerts) in decided.items() for i, alert in enumerate(alerts)
                  if alert.kind in ("transition", "crashloop") and alert.new in WITH_LOGS]
        if len(wanted) > LOG_FETCH_MAX:
            # A mass event: the alerts are folded into one message per channel, which shows no log lines.
            log.info("%d Spaces failed at once; their alerts go without log lines", len(wanted))
            return
        futures = [(space, i, alert, self.pool.submit(self.reader.last_log_lines, space, alert.new == "BUILD_ERROR"))
                   for space, i, alert in wanted]
        wait_until = time.monotonic() + self.reader.log_seconds + 1.0
        if deadline is not None:
            wait_until = min(wait_until, max(deadline, time.monotonic() + 1.0))
        for space, i, alert, future in futures:
            state, alerts = decided[space]
            try:
                lines = future.result(timeout=max(0.0, wait_until - time.monotonic()))
            except FutureTimeout:
                future.cancel()
                lines = None
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
        self.requeue(watches)
        return committed


def hub_failure(result: Observation | str) -> bool:
    """A failed read that is the Hub's (or the network's), not the Space's: timeouts, 5xx, 429, bad answers.
    A 404 or 403 is the Space's own: it was deleted, renamed, or the token may not read it."""
    if isinstance(result, Observation):
        return False
    return not (result.isdigit() and 400 <= int(result) < 500 and result not in ("408", "429"))


def _pending_alerts(space: str, pending: str) -> list[Alert]:
    """The alerts of a `pending` field; one that cannot be read is logged and left out, never a crash."""
    try:
        items = json.loads(pending)
    except ValueError:
        log.error("pending alerts of %s unreadable; dropped", space)
        return []
    alerts = []
    for item in items if isinstance(items, list) else []:
        try:
            alerts.append(Alert.from_json(item))
        except Unreadable as err:
            log.error("a pending alert of %s is unreadable (%s); dropped", space, err)
    return alerts


def _dumps(value) -> str:
    return json.dumps(value, separators=(",", ":"))


def usage(client: redis.Redis, space: str, now: float) -> dict[str, float]:
    """Seconds per `stage|flavor` since the first poll, including the current stint (uptime and spend)."""
    totals = {name: float(value) for name, value in client.hgetall(usage_key(space)).items()}
    try:
        state = SpaceState.from_fields(space, client.hgetall(state_key(space)))
    except Unreadable:
        state = None
    if state and state.stage:
        name = f"{state.stage}|{state.hardware or 'none'}"
        totals[name] = totals.get(name, 0.0) + max(0.0, now - state.since)
    return totals


