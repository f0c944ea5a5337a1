"""Reading watched Spaces from the Hub each tick, deciding alerts once, and handing them to the outbox.

Exactly-once comes from Redis, not from APScheduler: a leader lease (one Lua script) picks the
replica that polls, and a per-Space compare-and-set on the stored state (its observation time is
the fence) decides whether a change is new, so a late or stale poller never posts twice.
"""

from __future__ import annotations

import json
import logging
import operator
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from itertools import compress
from collections.abc import Mapping
from typing import Callable

import redis
from huggingface_hub import HfApi, SpaceRuntime

from bot.core.blocks import clip
from bot.alerts import rollups
from bot.alerts.keys import HISTORY_MAXLEN, LAST_OK, history_key, state_key, usage_key
from bot.alerts.outbox import Outbox
from bot.alerts.reader import HubReader, ReadFailed
from bot.alerts.retention import BACKSTOP
from bot.alerts.scripts import CAS, CAS_MANY, CLEAR_PENDING, HGETALL_MANY
from bot.alerts.transitions import (WITH_LOGS, Alert, Observation, Policy, SpaceState, Unreadable, failed,
                                    observe, quiet, state_print, unobserved, usage_delta)
from bot.alerts.watches import WatchSet, WatchStore
from bot.core import memory
from bot.core.budget import Budget, RateLimitHit
from bot.core.flavors import CatalogueSource
from bot.core.permissions import namespace_of

log = logging.getLogger(__name__)
DOWNTIME_INTERVALS = 5  # more than a lease handover (2.5 intervals + one tick) takes
# A namespace whose listing timed out (too large to list in time) has its known Spaces read one by one for
# this long, then is listed again: never silence after one "can't read".
LIST_RETRY = 10 * 60
READ_TIMEOUTS = 3       # a whole read (every page of a listing) ends within this many Hub timeouts
COMMIT_BATCH = 200     # Spaces whose CAS go in one call (on a cluster, one pipeline); the lease is re-checked between
GIVE_BACK_AFTER = 10_000  # a cycle that wrote this many states gives the memory it freed back (bot/core/memory.py)
LOG_FETCH_MAX = 20      # more failures than this in one cycle: no log lines (one request each)
# A Space this leader has not read, whose retention mark (`watched_at`, refreshed hourly while it is watched)
# is older than this, was not watched meanwhile: its stage counts up to that mark, not over the time between.
UNSEEN_AFTER = 2 * 3600


@dataclass
class CycleReport:
    """What one poll cycle did (the benchmark and tests read it)."""

    polled: bool = False
    hub_requests: int = 0
    spaces: int = 0
    alerts: int = 0
    failures: int = 0
    rate_limited: bool = False
    hub_failed: bool = False  # reads were tried and only the Hub's (or the network's) failures came back
    downtime: float = 0.0
    batched: list[str] = field(default_factory=list)
    per_space: int = 0
    # What the cycle read, once its decisions are committed (command follow-through reads them too).
    observations: Mapping = field(default_factory=dict, repr=False)
    # Spaces read that showed nothing new (their runtime's fingerprint equals their quiet state's): not decided.
    unchanged: dict = field(default_factory=dict, repr=False)


class Observations(Mapping):
    """A cycle's reads: the decided ones as they are, the unchanged ones built from their fingerprint only
    when asked for (follow-through asks for a few)."""

    def __init__(self, results: dict, unchanged: dict, at: float):
        self.results, self.unchanged, self.at = results, unchanged, at

    def __getitem__(self, space: str):
        if space in self.results:
            return self.results[space]
        return Observation.from_print(space, self.unchanged[space], self.at)

    def __iter__(self):
        yield from self.results
        yield from (s for s in self.unchanged if s not in self.results)

    def __len__(self) -> int:
        return len(self.results) + sum(s not in self.results for s in self.unchanged)

    def __contains__(self, space) -> bool:
        return space in self.results or space in self.unchanged


class Poller:
    """One poll cycle: plan reads, read, decide with CAS, enqueue."""

    def __init__(self, client: redis.Redis, api: HfApi, outbox: Outbox, watch_store: WatchStore,
                 catalogues: CatalogueSource, interval: float, policy: Policy | None = None, workers: int = 16,
                 hub_timeout: float = 10.0, privacy: Callable[[dict[str, bool]], None] | None = None):
        self.redis = client
        self.api = api
        self.outbox = outbox
        self.watch_store = watch_store
        self.catalogues = catalogues
        self.interval = interval
        self.policy = policy or Policy()
        self.budget = Budget()
        self.reader = HubReader(api, self.budget, read_seconds=READ_TIMEOUTS * hub_timeout, privacy=privacy)
        # Wall-clock bound of one cycle's waiting on the Hub: a cycle never runs into the next tick.
        self.cycle_seconds = max(float(interval), self.reader.read_seconds + 1.0)
        self.troubled: dict[str, str] = {}  # read target → reason, while its reads fail (logged once)
        self.unqueued: dict[str, str] = {}  # space → pending alerts JSON decided but not yet queued
        self.server_clock = False  # True when `now` comes from the one clock (production), not a test's stepped one
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="spaceops-poll")
        self.pages: dict[str, int] = {}  # pages a namespace listing took last time
        self.unlisted: dict[str, float] = {}  # namespace → until when it is not listed (its listing timed out)
        self.cache: dict[str, tuple[str, SpaceState]] = {}  # space → (stored ts, state), valid while leader
        # space → `state_print` of its quiet state (bot/alerts/transitions.py `quiet`), kept instead of the whole
        # state while its reads show nothing new; loaded again from Redis when one does. Prints are shared.
        self.packed: dict[str, tuple] = {}
        self._prints: dict[tuple, tuple] = {}
        self.generation = 0  # counts `forget()`s: what was known of Redis before one is not any more
        # space → its last successful read by this leader: where its billing stops when it stops being observed.
        self.observed: dict[str, float] = {}
        self.last_ok: float | None = None  # the last good cycle before this one (LAST_OK)
        self.marked: dict[str, float] = {}  # space → its retention mark when its state was loaded
        self.closing: dict[str, float] = {}  # space → where the decided state's stage stopped being observed
        self._cas = client.register_script(CAS)
        self._cas_many = client.register_script(CAS_MANY)
        self._hgetall_many = client.register_script(HGETALL_MANY)
        self.cross_slot_refused = False  # the server refused a script over several slots: one Space per script
        self._clear = client.register_script(CLEAR_PENDING)
        # [Alert] → the same [Alert], in order, before commit (the commit a push brought, bot/alerts/hot.py)
        self.annotate: Callable[[list[Alert]], list[Alert]] | None = None
        # namespace → whether this replica polls it (its poll shard is held here, bot/alerts/shards.py); None: all.
        self.owns: Callable[[str], bool] | None = None

    def forget(self) -> None:
        """Drop cached states (leadership was lost: another replica may have written since)."""
        self.generation += 1
        self.cache.clear()
        self.packed.clear()
        self.unqueued.clear()
        self.unlisted.clear()  # its known Spaces were in the cache: list it again
        self.observed.clear()
        self.marked.clear()
        self.closing.clear()

    def forget_space(self, space: str) -> None:
        """Drop one Space (its keys were removed by retention)."""
        self.cache.pop(space, None)
        self.packed.pop(space, None)
        self.observed.pop(space, None)

    def forget_namespaces(self, which: Callable[[str], bool]) -> None:
        """Drop what is known of the Spaces of these namespaces (their shard changed hands: another replica
        may write them now, or did meanwhile). Decided-but-unqueued alerts stay: queuing twice never posts twice."""
        self.generation += 1
        for kept in (self.cache, self.packed, self.observed, self.marked, self.closing):
            for space in [s for s in kept if which(namespace_of(s))]:
                del kept[space]
        for ns in [ns for ns in self.unlisted if which(ns)]:
            del self.unlisted[ns]

    def known(self) -> list[str]:
        """Every Space this leader holds a state of."""
        cache, packed = self.cache.copy(), self.packed.copy()  # other threads ask (previews): copy first
        return [*cache, *(s for s in packed if s not in cache)]

    def _pack(self, spaces) -> None:
        """Keep only the print of each of these Spaces whose cached state is quiet."""
        prints = self._prints
        if len(prints) > 10_000:
            prints.clear()
        for space in spaces:
            entry = self.cache.get(space)
            if entry is not None and quiet(entry[1]):
                key = state_print(entry[1])
                self.packed[space] = prints.setdefault(key, key)
                del self.cache[space]

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ planning and reading

    def plan(self, watches: WatchSet, now: float | None = None) -> tuple[set[str], set[str]]:
        """(namespaces to list, Spaces to read one by one): whichever costs fewer requests per namespace; a
        namespace whose listing timed out less than `LIST_RETRY` ago has its known Spaces read one by one."""
        owns = self.owns
        batch = {ns for ns in watches.pattern_namespaces() if owns is None or owns(ns)}
        single: set[str] = set()
        for ns, spaces in watches.explicit_by_namespace().items():
            if ns in batch or (owns is not None and not owns(ns)):
                continue
            if len(spaces) > self.pages.get(ns, 1):
                batch.add(ns)
            else:
                single.update(spaces)
        known = None
        for ns, until in list(self.unlisted.items()):
            if now is None or now >= until:
                del self.unlisted[ns]
            elif ns in batch:
                batch.discard(ns)
                known = set(self.known()) if known is None else known
                single.update(s for s in watches.explicit_in(ns) | known
                              if namespace_of(s) == ns and watches.is_watched(s))
        return batch, single

    def read(self, watches: WatchSet, now: float, report: CycleReport,
             deadline: float | None = None) -> dict[str, Observation | str]:
        """Space → Observation, or a short failure reason. Reads the budget would not allow are skipped
        (`report.rate_limited`): those Spaces keep their last state until a later cycle. A read still
        running at `deadline` (time.monotonic()) counts as a timeout; the cycle goes on without it."""
        namespaces, singles = self.plan(watches, now)
        report.batched, report.per_space = sorted(namespaces), len(singles)
        self.reader.keep_pages(namespaces)
        results: dict[str, Observation | str] = {}
        deadline = deadline if deadline is not None else time.monotonic() + self.cycle_seconds
        listings: dict[str, set[str]] = {}  # namespace → the Spaces its listing had
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
                if reason == "timeout" and name in namespaces:
                    self.unlisted[name] = now + LIST_RETRY
                self._trouble(name, reason)
                results.update({space: reason for space in self._known_in(name, watches, singles)})
                continue
            self._trouble(name, None)
            if name in singles:
                results[name] = self._observation(name, value, now)
                continue
            pages, requests = value
            self.pages[name] = requests
            self.unlisted.pop(name, None)
            listed = listings[name] = set()
            every, explicit = watches.pattern_watched(name), watches.explicit_in(name)
            packed, observed, unchanged = self.packed, self.observed, report.unchanged
            for page in pages:
                spaces, prints = page.spaces, page.prints
                listed.update(spaces)
                # A page of watched Spaces, each with a runtime and read before: each entry is unchanged when its
                # print is its quiet state's, compared at C speed (the per-entry loop below decides the same).
                if (every or explicit.issuperset(spaces)) and None not in prints \
                        and all(map(observed.__contains__, spaces)):
                    same = list(map(operator.eq, prints, map(packed.get, spaces)))
                    if all(same):
                        unchanged.update(zip(spaces, prints))
                        continue
                    unchanged.update(zip(compress(spaces, same), compress(prints, same)))
                    other = list(map(operator.not_, same))
                    for space, seen in zip(compress(spaces, other), compress(prints, other)):
                        results[space] = Observation.from_print(space, seen, now)
                    continue
                for space, seen in zip(spaces, prints):
                    if seen and (every or space in explicit):
                        if packed.get(space) == seen and space in observed:
                            unchanged[space] = packed[space]
                        else:
                            results[space] = Observation.from_print(space, seen, now)
            for space in explicit:
                if space not in listed:
                    results[space] = "404"
        # A Space this leader read before that its namespace's listing no longer has was deleted (or renamed):
        # unreadable, so it stops accruing.
        unchanged = report.unchanged  # listed again (so not deleted)
        for space in self.observed:
            if space in results or space in unchanged:
                continue
            if space not in listings.get(namespace_of(space), (space,)) and watches.is_watched(space):
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
        return {s for s in watches.explicit_in(name) | set(self.known())
                if namespace_of(s) == name and watches.is_watched(s)}

    @staticmethod
    def _observation(space: str, runtime: SpaceRuntime | tuple, now: float) -> Observation | str:
        try:
            if isinstance(runtime, tuple):  # an entry of a batched listing (bot/alerts/reader.py)
                return Observation.from_print(space, runtime, now)
            return Observation.from_runtime(space, runtime, now)
        except (KeyError, TypeError, AttributeError):
            return "unexpected answer"

    # ------------------------------------------------------------------ state

    def _load(self, spaces: list[str]) -> None:
        missing = [s for s in spaces if s not in self.cache]
        for chunk_start in range(0, len(missing), 1000):
            chunk = missing[chunk_start:chunk_start + 1000]
            for space, fields in zip(chunk, self._hashes([state_key(space) for space in chunk])):
                try:
                    state = SpaceState.from_fields(space, fields)
                except Unreadable as err:
                    # Written by a replica we cannot read: start this Space afresh (a baseline, no alert);
                    # the stored ts stays the fence so the next write replaces it.
                    log.warning("stored state of %s unreadable (%s); starting it afresh", space, err)
                    state = None
                self.cache[space] = (fields.get("ts", ""), state)
                self.packed.pop(space, None)
                try:
                    mark = fields.get("watched_at")
                    if mark:
                        self.marked[space] = float(mark)
                    else:
                        self.marked.pop(space, None)  # none yet: the same as 0 (`_unseen_since`, retention)
                except ValueError:
                    self.marked.pop(space, None)
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
        self._scripts(self._clear, [([state_key(space)], [pending]) for space, pending in taken.items()])
        for space, pending in taken.items():
            if self.unqueued.get(space) == pending:
                del self.unqueued[space]
        return alerts

    def _commit(self, space: str, prev: SpaceState | None, state: SpaceState, alerts: list[Alert]) -> bool:
        """CAS the new state (with alerts as pending, usage and history) into Redis; False if stale."""
        return bool(self._commit_all([(space, prev, state, alerts)]))

    def _commit_all(self, items: list[tuple[str, SpaceState | None, SpaceState, list[Alert]]]) -> list[str]:
        """`_commit` for many Spaces in one pipeline (a first cycle writes every state: one round trip per
        Space was most of it); each CAS is its own script, so each Space is fenced alone. The Spaces committed."""
        if not items:
            return []
        calls = [self._cas_call(space, prev, state, alerts) for space, prev, state, alerts in items]
        answers = self._scripts(self._cas, calls)
        done = []
        cache, marked, observed = self.cache, self.marked, self.observed
        for (space, _, state, _), ok in zip(items, answers):
            if ok:
                cache[space] = (repr(state.version), state)
                if ok[1]:
                    self.unqueued[space] = ok[1]
                if observed.get(space) == state.version:
                    marked[space] = state.version  # the CAS wrote it as `watched_at` (`_cas_call`)
                done.append(space)
            else:
                cache.pop(space, None)
        return done

    def _one_slot_only(self) -> bool:
        """Whether a script may touch only keys of one slot: a cluster, or a server that said CROSSSLOT once (a
        proxy in front of one)."""
        return self.cross_slot_refused or isinstance(self.redis, redis.cluster.RedisCluster)

    def _many(self, run: Callable[[], list], one_by_one: Callable[[], list]) -> list:
        """`run` (one script over many Spaces' keys) unless the server refuses keys of several slots together:
        then `one_by_one`, from now on. A refused script ran nothing (the keys are checked first)."""
        if not self._one_slot_only():
            try:
                return run()
            except redis.ResponseError as err:
                if not str(err).startswith("CROSSSLOT"):
                    raise
                log.info("Redis refuses scripts over several slots; the poller writes one Space per script")
                self.cross_slot_refused = True
        return one_by_one()

    def _hashes(self, names: list[str]) -> list[dict[str, str]]:
        """HGETALL of each of these hashes: in one script call on a single server (a pipeline of 1,000 HGETALLs
        cost redis-py's per-command work 1,000 times), pipelined on a cluster (its keys are in many slots)."""
        def pipelined():
            pipe = self.redis.pipeline(transaction=False)
            for name in names:
                pipe.hgetall(name)
            return pipe.execute()
        return self._many(lambda: [dict(zip(flat[::2], flat[1::2])) for flat in self._hgetall_many(keys=names)],
                          pipelined)

    def _scripts(self, script, calls: list[tuple[list[str], list]]) -> list:
        """Run one script per (keys, args), pipelined where the client allows; the answers in order. A batch of
        CAS on a single server is one call (CAS_MANY: each Space still fenced alone, bot/alerts/scripts.py)."""
        if script is self._cas and len(calls) > 1:
            keys, args = [], []
            for k, a in calls:
                keys += k
                args += [len(k), len(a), *a]
            return self._many(lambda: self._cas_many(keys=keys, args=args), lambda: self._each(script, calls))
        return self._each(script, calls)

    def _each(self, script, calls: list[tuple[list[str], list]]) -> list:
        if isinstance(self.redis, redis.cluster.RedisCluster):
            # redis-py's cluster pipeline refuses scripts: one call each (a first cycle on a cluster is slower).
            return [script(keys=keys, args=args) for keys, args in calls]
        pipe = self.redis.pipeline(transaction=False)
        for keys, args in calls:
            script(keys=keys, args=args, client=pipe)
        return pipe.execute()

    def _cas_call(self, space: str, prev: SpaceState | None, state: SpaceState,
                  alerts: list[Alert]) -> tuple[list[str], list]:
        """The CAS script's keys and arguments for one Space's new state."""
        expected = self.cache.get(space, ("", None))[0]
        new_ts = repr(state.version)
        # A state read now (not one closed because nobody watches it): the CAS writes the retention mark too.
        mark = new_ts if self.observed.get(space) == state.version else ""
        keys = [state_key(space), usage_key(space), history_key(space)]
        pending = _dumps([a.to_json() for a in alerts]) if alerts else ""
        closed = self.closing.pop(space, None)
        if prev is None or not prev.stage:
            # A first state (a baseline): no stage ended, so no history, usage or price to look up.
            deltas = rollups.transition_rollup(prev, state, None)
            history, usage = "", []
        else:
            history = ""
            if prev.stage != state.stage:
                history = _dumps({"at": state.since, "from": prev.stage, "to": state.stage,
                                  "hardware": state.hardware, "error": clip(state.error or "", 300)})
            usage = [x for item in usage_delta(prev, state).items() for x in (item[0], repr(item[1]))]
            price = self.catalogues.current.price(prev.hardware)
            if closed is not None:
                # Not observed between `closed` and this read: what it did before counts up to `closed`.
                between = unobserved(prev, closed)
                deltas = rollups.add_deltas(rollups.transition_rollup(prev, between, price),
                                            rollups.transition_rollup(between, state, price))
            else:
                deltas = rollups.transition_rollup(prev, state, price)
        if deltas:
            rollup_keys, rollup = rollups.cas_rollup(space, deltas)
            keys += rollup_keys
        else:
            rollup = None
        return (keys, [expected, new_ts, state.to_json(), state.stage, pending, history, HISTORY_MAXLEN,
                       "1" if self.server_clock else "", _dumps(rollup) if rollup else "", rollups.TTL, mark,
                       BACKSTOP, *usage])

    def _decide(self, space: str, result: Observation | str, now: float,
                count_failures: bool) -> tuple[SpaceState, list[Alert]] | None:
        prev = self.cache.get(space, ("", None))[1]
        self.closing.pop(space, None)
        if isinstance(result, Observation):
            unseen = self._unseen_since(space, prev, now)
            if unseen is not None:
                self.closing[space] = unseen
                prev = unobserved(prev, unseen)
            state, alerts = observe(prev, result, self.policy, self.catalogues.current.price(result.hardware))
        elif count_failures:
            state, alerts = failed(prev, space, result, now, self.policy, self._last_read(prev))
        else:
            return None
        if prev is not None and replace(state, version=prev.version) == prev:
            return None  # nothing new: no write, so an unchanged poll costs no Redis command
        return state, alerts

    def _last_read(self, prev: SpaceState | None) -> float | None:
        """When a Space whose read failed was last read successfully (None: it was not being observed): this
        leader's own record, else the last good cycle (every watched Space is read in one), else its state's
        own observation time."""
        if prev is None or not prev.stage or prev.last_read is not None:
            return None
        if prev.space in self.observed:
            return self.observed[prev.space]
        return max(prev.version, self.last_ok or 0.0)

    def _unseen_since(self, space: str, prev: SpaceState | None, now: float) -> float | None:
        """Where a Space read now stopped being observed, when it was not watched for a while and its unwatch
        was not seen by this leader (another leader's, or one from before a restart): its retention mark."""
        if prev is None or not prev.stage or prev.last_read is not None or space in self.observed:
            return None
        mark = self.marked.get(space) or 0.0
        if not mark or now - mark <= UNSEEN_AFTER:
            return None
        return max(prev.version, mark)

    def _saw(self, results: dict[str, Observation | str]) -> None:
        for space, result in results.items():
            if isinstance(result, Observation):
                self.observed[space] = max(self.observed.get(space, 0.0), result.at)

    def _unwatched(self, watches: WatchSet, results: dict, now: float,
                   unchanged: dict | None = None) -> dict[str, tuple[SpaceState, list[Alert]]]:
        """Spaces this leader read that nobody watches any more: their stage counts up to their last read."""
        unchanged = unchanged or {}
        gone = [space for space in self.observed
                if space not in results and space not in unchanged and not watches.is_watched(space)]
        self._load(gone)
        out = {}
        for space in gone:
            last = self.observed.pop(space)
            prev = self.cache.get(space, ("", None))[1]
            if prev is not None and prev.stage and prev.last_read is None:
                out[space] = (replace(unobserved(prev, last), version=max(now, prev.version)), [])
        return out

    # ------------------------------------------------------------------ the cycle

    def cycle(self, now: float, leading: Callable[[], bool] | None = None) -> CycleReport:
        """Read, decide, commit, enqueue. Call only while holding the lease; `leading()` re-checks it before
        the commits (a read can take a while) and every second while they run."""
        report = CycleReport(polled=True)
        deadline = time.monotonic() + self.cycle_seconds
        requests_before = self.reader.requests
        watches = self.watch_store.load()
        last_ok = self.redis.get(LAST_OK)
        self.last_ok = float(last_ok) if last_ok else None
        results = self.read(watches, now, report, deadline) if len(watches) else {}
        unchanged = report.unchanged
        report.hub_requests = self.reader.requests - requests_before
        report.spaces = len(results) + len(unchanged)
        successes = sum(isinstance(r, Observation) for r in results.values()) + len(unchanged)
        # The Hub answered when something was read or every failure was a Space's own (404, 403). When only
        # transport errors, 5xx and 429 came back, the Hub (or our network) is down: no Space is blamed.
        hub_answered = bool(successes) or not any(hub_failure(r) for r in results.values())
        report.hub_failed = bool(results) and not hub_answered
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
        self._saw(results)
        observed = self.observed
        for space in unchanged:
            if observed[space] < now:
                observed[space] = now
        decided.update(self._unwatched(watches, results, now, unchanged))
        self._attach_logs(decided, downtime, deadline)
        committed: list[Alert] = []
        checked = time.monotonic()
        if decided and leading is not None and not leading():
            log.info("poll lease lost during the cycle; leaving its decisions to the new leader")
            self.forget()
            return report
        items = list(decided.items())
        for start in range(0, len(items), COMMIT_BATCH):
            if start and leading is not None and time.monotonic() - checked > 1.0:
                checked = time.monotonic()
                if not leading():
                    log.info("poll lease lost during the commits; the new leader goes on")
                    self.forget()
                    break
            batch = [(space, self.cache.get(space, ("", None))[1], state, alerts)
                     for space, (state, alerts) in items[start:start + COMMIT_BATCH]]
            done = set(self._commit_all(batch))
            for space, _, _, alerts in batch:
                if space in done:
                    committed += alerts
                else:
                    log.info("state of %s changed under us (another poller); skipping", space)
        self.requeue(watches, (gap, now) if downtime else None)
        report.alerts = len(committed)
        report.observations = Observations(results, unchanged, now)
        self._pack([s for s, r in results.items() if isinstance(r, Observation)])
        if len(decided) >= GIVE_BACK_AFTER:
            memory.give_back()  # what deciding and writing them took is free now: most of the process's RSS
        if not report.rate_limited and hub_answered:
            # A cycle cut short by the budget is not a success: changes meanwhile get the downtime summary.
            self.redis.set(LAST_OK, repr(now))
        return report

    def _attach_logs(self, decided: dict, downtime: bool, deadline: float | None = None) -> None:
        """Crash and build-failure alerts carry the last log lines (read concurrently, bounded in time); the
        commit behind a build or crash is named first (`annotate`)."""
        if self.annotate is not None:
            lists = [alerts for _, alerts in decided.values() if alerts]
            named = iter(self.annotate([alert for alerts in lists for alert in alerts]))
            for alerts in lists:
                alerts[:] = [next(named) for _ in alerts]
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
        self._saw(results)
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
