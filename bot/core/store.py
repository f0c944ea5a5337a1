"""The Redis edge: connection, audit trail and idempotency keys.

Key layout (all under `spaceops:`). Keys that one script touches together share a `{hash tag}`
so the same code runs on Redis Cluster.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import gc
import json
import logging
import uuid
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Iterator

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from bot.core.clock import Clock
from bot.core.errors import ConfigError, StateUnavailable
from bot.core.redisurl import parse_redis_url

log = logging.getLogger(__name__)
PREFIX = "spaceops:"
AUDIT_MAXLEN = 100_000
AUDIT_PER_SPACE_MAXLEN = 1_000
# The whole family: connection loss and timeouts, but also a replica made read-only by a failover
# (ReadOnlyError), maxmemory with noeviction (OutOfMemoryError), any other error reply, and a cluster
# resharding or failing over (RedisClusterException is not a RedisError).
REDIS_ERRORS = (redis.RedisError, OSError, redis.exceptions.RedisClusterException)
FAST_TIMEOUT = 0.2  # the dedupe check on the ack path: Slack allows 3 s for the whole answer


def connect(url: str, cluster: bool = False) -> redis.Redis:
    """The client `REDIS_URL` asks for: one server, a Redis Cluster (`redis+cluster://` or `cluster=True`),
    or the primary Sentinel names (`redis+sentinel://…/MASTER`); see bot/core/redisurl.py."""
    target = parse_redis_url(url, cluster)
    if target.kind == "single":
        # from_url gets no retries by default (redis-py 8); pass them explicitly.
        return redis.Redis.from_url(
            url, decode_responses=True, health_check_interval=30, socket_timeout=5, socket_connect_timeout=2,
            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), 2),
        )
    auth = {"username": target.username, "password": target.password}
    if target.kind == "cluster":
        from redis.cluster import ClusterNode, RedisCluster

        # A failover takes the cluster a few seconds: retries span about one, and the caller's next
        # attempt (a click, the next tick) finds the promoted replica through a refreshed slot map.
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in target.nodes], decode_responses=True,
            socket_timeout=5, socket_connect_timeout=2, ssl=target.tls,
            retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), 3), **auth,
        )
    from redis.sentinel import Sentinel, SentinelManagedSSLConnection

    if target.tls:
        auth["connection_class"] = SentinelManagedSSLConnection
    sentinel = Sentinel(list(target.nodes), socket_timeout=2, socket_connect_timeout=2,
                        sentinel_kwargs={"socket_timeout": 2, "socket_connect_timeout": 2, "ssl": target.tls})
    return sentinel.master_for(
        target.master, decode_responses=True, db=target.db, health_check_interval=30, socket_timeout=5,
        socket_connect_timeout=2, retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), 3), **auth,
    )


def fast_client(client: redis.Redis) -> redis.Redis:
    """A client on the same server with a short timeout and no retries, for checks on Slack's ack path.

    A cluster or Sentinel client is returned as it is: its own failover handling matters more there than
    a short timeout (its commands still have a 5 s socket timeout)."""
    if type(client) is not redis.Redis or type(client.connection_pool) is not redis.ConnectionPool:
        return client
    kwargs = dict(client.connection_pool.connection_kwargs)
    kwargs.update(socket_timeout=FAST_TIMEOUT, socket_connect_timeout=FAST_TIMEOUT, retry=Retry(
        ExponentialWithJitterBackoff(base=0.01, cap=0.01), 0), health_check_interval=0)
    pool = redis.ConnectionPool(connection_class=client.connection_pool.connection_class, **kwargs)
    return redis.Redis(connection_pool=pool)


def record_from_redis(cls, raw: dict[str, str]) -> dict:
    """A stored hash as the field values of dataclass `cls`, tolerantly: unknown fields are ignored, missing
    ones left out (their defaults apply), a garbled number is 0. Types are read from the annotations."""
    values: dict = {}
    for f in fields(cls):
        if f.name not in raw:
            continue
        text = raw[f.name]
        try:
            if f.type == "float":
                values[f.name] = float(text or 0)
            elif f.type == "int":
                values[f.name] = int(text or 0)
            elif f.type == "int | None":
                values[f.name] = int(text) if text else None
            elif f.type == "bool":
                values[f.name] = text == "1"
            else:
                values[f.name] = text
        except ValueError:
            values[f.name] = 0 if f.type in ("float", "int") else None
    return values


def script_each(client, source: str, calls: list[tuple[list[str], list]]) -> list:
    """Run one Lua script once per (keys, args), each call's keys in one slot: pipelined on one server
    (or Sentinel's primary), one call at a time on a Redis Cluster, whose pipelines cannot carry scripts."""
    if not isinstance(client, redis.Redis):
        script = client.register_script(source)
        return [script(keys=keys, args=args) for keys, args in calls]
    sha = client.script_load(source)  # loaded now, so EVALSHA in the pipeline finds it after a restart too
    pipe = client.pipeline(transaction=False)
    for keys, args in calls:
        pipe.evalsha(sha, len(keys), *keys, *args)
    return pipe.execute()


@contextlib.contextmanager
def bulk_decoding() -> Iterator[None]:
    """Python's cyclic garbage collector paused while tens of thousands of acyclic records are decoded (it
    would otherwise walk all of them again and again as they pile up); resumed after, if it was on."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def script_groups(client, source: str, groups: list[list[str]], args: list, per_call: int = 200,
                  per_read: int = 10) -> Iterator[str]:
    """One Lua script over many groups of keys of the same size, each group in one slot, with the same args;
    yields one result per group, in order. The script loops over its KEYS in groups (`#KEYS / #group`). On one
    server (or Sentinel's primary) `per_call` groups go in each call, `per_read` calls per pipeline; on a Redis
    Cluster, one group per call, so that every call's keys share a slot. The next pipeline is read on a second
    connection while the caller works through this one's results: Redis works while Python decodes."""
    if not groups:
        return
    batch = per_call if isinstance(client, redis.Redis) else 1
    calls = [([k for group in groups[start:start + batch] for k in group], args)
             for start in range(0, len(groups), batch)]
    reads = [calls[start:start + per_read] for start in range(0, len(calls), per_read)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="redis-read") as reader:
        pending = reader.submit(script_each, client, source, reads[0])
        for following in reads[1:] + [None]:
            results = pending.result()
            if following is not None:
                pending = reader.submit(script_each, client, source, following)
            for result in results:
                yield from result


UNREACHABLE = ("Space Ops cannot reach its database right now, so it can't do this: it makes no change without "
               "a record of it. `status`, `flavors`, `var ls`, `secret ls` and `help` still work; "
               "try again in a minute.")


REFUSES_WRITES = ("Space Ops's database refuses writes right now ({why}), so it can't do this: it makes no "
                  "change without a record of it. `status`, `flavors`, `var ls`, `secret ls` and `help` still work; "
                  "try again in a few minutes.")


def unavailable(err: Exception) -> StateUnavailable:
    """The sentence for a Redis error: unreachable, or reachable but refusing writes."""
    if isinstance(err, redis.ReadOnlyError):
        return StateUnavailable(REFUSES_WRITES.format(why="it is a read-only replica, probably failing over"))
    if isinstance(err, redis.OutOfMemoryError):
        return StateUnavailable(REFUSES_WRITES.format(why="it is out of memory"))
    if isinstance(err, redis.ResponseError):
        return StateUnavailable(REFUSES_WRITES.format(why="it answered with an error"))
    return StateUnavailable(UNREACHABLE)


@contextlib.contextmanager
def state_errors() -> Iterator[None]:
    """Redis going away mid-command is a sentence for the user (StateUnavailable), not a traceback."""
    try:
        yield
    except REDIS_ERRORS as err:
        raise unavailable(err) from err


def key(*parts: str) -> str:
    return PREFIX + ":".join(parts)


@dataclass(frozen=True)
class AuditEntry:
    id: str
    ts: float
    user: str
    action: str
    space: str
    params: dict[str, Any]
    result: str
    hub: dict[str, str] = field(default_factory=dict)  # the Hub identity at the time ({} in older entries)


# The alerts outbox claims each delivery with `SET … NX GET` (bot/alerts/outbox.py), which Redis added in 7.0.
MIN_REDIS = (7, 0)


def check_server_version(client) -> None:
    """Refuse a Redis server older than 7.0 with a sentence; an unreachable one is not refused here (the bot
    starts and /healthz says Redis is down) and one whose INFO is disabled is let through with a warning."""
    try:
        info = client.info("server")
    except REDIS_ERRORS as err:
        log.warning("Redis server version not checked (%s: %s)", type(err).__name__, err)
        return
    # A cluster client answers per node ({node: {...}}), a single server with one dict.
    nodes = info.values() if info and all(isinstance(v, dict) for v in info.values()) else [info]
    for node in nodes:
        version = str(node.get("redis_version", ""))
        try:
            found = tuple(int(part) for part in version.split(".")[:2])
        except ValueError:
            continue
        if found < MIN_REDIS:
            raise ConfigError(f"REDIS_URL points at Redis {version}; Space Ops needs Redis 7.0 or newer: the alerts "
                              f"outbox claims each delivery with SET … NX GET, which Redis 7.0 added (on {version} no "
                              f"alert would ever be delivered). Upgrade that server or point REDIS_URL at a 7.x one.")


class Store:
    """Small shared store; feature stores (approvals, watches) take `store.redis`."""

    def __init__(self, client: redis.Redis, fast: redis.Redis | None = None, clock: Clock | None = None,
                 identify: Callable[[str, str, float], dict[str, str]] | None = None):
        self.redis = client
        # Who the entry's Slack user is on the Hub ({"user", "role", "namespace"} or {}), for the audit:
        # bot/access/identity.py under SPACEOPS_ROLES_FROM=hub|both; the core knows no feature.
        self.identify = identify
        self.fast = fast or client  # short timeout, no retries: used before Slack's ack
        # Redis's clock, for every time another replica compares (bot/core/clock.py); read with the fast
        # client: a slow answer keeps the last offset rather than holding up the caller.
        self.clock = clock or Clock(self.fast)

    def ping(self) -> bool:
        try:
            return bool(self.redis.ping())
        except REDIS_ERRORS:
            return False

    def require(self) -> None:
        """Raise StateUnavailable unless Redis answers: changes are never made without an audit trail."""
        if not self.ping():
            raise StateUnavailable(UNREACHABLE)

    def warm(self, connections: int) -> int:
        """Open up to `connections` connections of the fast client now, at start-up; how many are open.

        The ack path takes one each: without this, the first burst of requests after a start opened them all
        at once (a connect and its handshake each), and those first acks took 100 ms (bench/ack.py)."""
        pool = getattr(self.fast, "connection_pool", None)
        if type(pool) is not redis.ConnectionPool:
            return 0  # a cluster or Sentinel client manages its own connections
        opened = []
        try:
            for _ in range(connections):
                opened.append(pool.get_connection())
        except REDIS_ERRORS as err:
            log.warning("Redis connections not opened ahead (%s): the first requests open them", type(err).__name__)
        finally:
            for connection in opened:
                pool.release(connection)
        return len(opened)

    def once(self, name: str, ttl: int = 3600) -> bool:
        """True the first time `name` is seen within `ttl` seconds (Slack retries, double submits)."""
        try:
            return bool(self.fast.set(key("once", name), "1", nx=True, ex=ttl))
        except REDIS_ERRORS as err:
            log.warning("duplicate check skipped (%s): answering anyway", type(err).__name__)
            return True  # without Redis we cannot dedupe; better to answer than to drop

    def audit(self, user: str, action: str, space: str = "", params: dict | None = None,
              result: str = "ok", now: float | None = None, attempt: str = "", per_space: bool = True) -> None:
        """Append to the audit stream; never raises (a lost entry is logged). Never pass secret values.
        `per_space=False` keeps the entry out of the Space's own stream (refusals: anyone can name any Space,
        so those keys would grow without bound)."""
        try:
            self._append(user, action, space, params, result, now, attempt, per_space)
        except (*REDIS_ERRORS, TypeError, ValueError) as err:
            log.error("audit entry lost (%s): action=%s space=%s user=%s result=%s", type(err).__name__,
                      action, space, user, result)

    def _append(self, user: str, action: str, space: str, params: dict | None, result: str, now: float | None,
                attempt: str, per_space: bool = True) -> None:
        fields = {"ts": f"{now or self.clock():.3f}", "user": user, "action": action, "space": space,
                  "params": json.dumps(params or {}, sort_keys=True), "result": result, "v": "1"}
        if attempt:
            fields["attempt"] = attempt
        hub = self.identify(user, space, float(fields["ts"])) if self.identify else {}
        if hub:
            fields["hub"] = json.dumps(hub, sort_keys=True)
        pipe = self.redis.pipeline(transaction=False)
        pipe.xadd(key("audit"), fields, maxlen=AUDIT_MAXLEN, approximate=True)
        if space and per_space:
            pipe.xadd(key("audit", "space", space), fields, maxlen=AUDIT_PER_SPACE_MAXLEN, approximate=True)
        pipe.execute()

    def attempt(self, user: str, action: str, space: str, params: dict) -> str:
        """Write a change's "attempt" entry and return its id, for the outcome entry (`audit(attempt=…)`);
        raises StateUnavailable when it cannot be written: no entry, no change. Changes call it through
        `bot.core.changes.Changes`, before the Hub hears of them."""
        attempt = uuid.uuid4().hex[:12]
        try:
            self._append(user, action, space, params, ATTEMPT, None, attempt)
        except REDIS_ERRORS as err:
            raise unavailable(err) from err
        return attempt

    def audit_entries(self, space: str | None = None, count: int = 20) -> list[AuditEntry]:
        stream = key("audit", "space", space) if space else key("audit")
        try:
            rows = self.redis.xrevrange(stream, count=count)
        except REDIS_ERRORS as err:
            raise StateUnavailable("The audit trail cannot be read right now (database unreachable).") from err
        # An attempt whose outcome is also listed is shown once, as its outcome; one without an outcome
        # (the process died between the Hub call and the record of its answer) says so.
        finished = {f.get("attempt") for _, f in rows if f.get("attempt") and f.get("result") != ATTEMPT}
        return [AuditEntry(id=entry_id, ts=_float(f.get("ts")), user=f.get("user", ""), action=f.get("action", ""),
                           space=f.get("space", ""), params=_params(f.get("params")), hub=_params(f.get("hub")),
                           result=f.get("result", "") if f.get("result") != ATTEMPT else "started, outcome unknown")
                for entry_id, f in rows if not (f.get("result") == ATTEMPT and f.get("attempt") in finished)]

    def audit_attempts(self, space: str) -> list[dict]:
        """Raw entries of one Space's audit stream, oldest first (attempts included): for tests and tools."""
        return [f for _, f in self.redis.xrange(key("audit", "space", space))]


ATTEMPT = "attempt"


def _float(raw) -> float:
    try:
        return float(raw or 0)
    except ValueError:
        return 0.0


def _params(raw) -> dict:
    try:
        value = json.loads(raw or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
