"""Which Redis client a `REDIS_URL` means: one server, a Redis Cluster, or a primary found through Sentinel.

    redis://[user:password@]host:6379/0          one server (rediss:// for TLS; unix:///path.sock)
    redis+cluster://[user:password@]host:7000[,host:7001…]   Redis Cluster (or SPACEOPS_REDIS_CLUSTER=1)
    redis+sentinel://[user:password@]host:26379[,host:26380…]/MASTER_NAME[/db]   Sentinel

`rediss+cluster://` and `rediss+sentinel://` use TLS. The user and password are the data nodes'
(the cluster's nodes, or Sentinel's primary and replicas); Sentinels themselves are asked without them.
Parsing is pure (`parse_redis_url`), so settings can check a URL without connecting.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from bot.core.errors import ConfigError

SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster", "redis+sentinel", "rediss+sentinel")
EXAMPLES = ("redis://host:6379/0, rediss://user:password@host:6380/0, redis+cluster://host:7000,host:7001 "
            "or redis+sentinel://host:26379,host:26380/mymaster")


@dataclass(frozen=True)
class RedisTarget:
    """What a URL asks for: `kind` is single | cluster | sentinel."""

    kind: str
    url: str                            # single: the URL as given (redis-py reads it)
    nodes: tuple[tuple[str, int], ...] = ()   # cluster startup nodes, or the Sentinels
    master: str = ""                    # sentinel: the monitored primary's name
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False


def _nodes(netloc_hosts: str, default_port: int, url: str) -> tuple[tuple[str, int], ...]:
    nodes = []
    for part in netloc_hosts.split(","):
        part = part.strip()
        if not part:
            continue
        host, sep, port = part.rpartition(":") if not part.endswith("]") else (part, "", "")
        if not sep:
            host, port = part, str(default_port)
        host = host.strip("[]")
        if not host or not port.isdigit():
            raise ConfigError(f"REDIS_URL has a bad host:port {part!r} ({_hide(url)})")
        nodes.append((host, int(port)))
    if not nodes:
        raise ConfigError(f"REDIS_URL names no host ({_hide(url)}); examples: {EXAMPLES}")
    return tuple(nodes)


def _hide(url: str) -> str:
    """The URL with its password replaced, for messages and logs."""
    scheme, sep, rest = url.partition("://")
    creds, at, hosts = rest.rpartition("@")
    if not at:
        return url
    user = creds.partition(":")[0]
    return f"{scheme}{sep}{user}:***@{hosts}"


def parse_redis_url(url: str, cluster: bool = False) -> RedisTarget:
    """REDIS_URL (and SPACEOPS_REDIS_CLUSTER) → RedisTarget; a ConfigError names what is wrong."""
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme not in SCHEMES:
        raise ConfigError(f"REDIS_URL must start with redis://, rediss://, unix://, redis+cluster:// or "
                          f"redis+sentinel:// (got {_hide(url)!r}); examples: {EXAMPLES}")
    tls = scheme.startswith("rediss")
    if scheme in ("redis", "rediss", "unix") and not cluster:
        return RedisTarget("single", url, tls=tls)
    if scheme == "unix":
        raise ConfigError("SPACEOPS_REDIS_CLUSTER=1 needs a redis:// or rediss:// REDIS_URL, not a unix socket")
    # urlsplit cannot read several hosts; split the authority by hand.
    rest = url.partition("://")[2]
    authority, _, path = rest.partition("/")
    creds, at, hosts = authority.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = creds.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    query = urlsplit("x://h/" + path).path.strip("/")
    if scheme.endswith("+sentinel"):
        master, _, db = query.partition("/")
        if not master:
            raise ConfigError(f"REDIS_URL for Sentinel must name the primary after the hosts: "
                              f"redis+sentinel://host:26379,host:26380/mymaster (got {_hide(url)!r})")
        if db and not db.isdigit():
            raise ConfigError(f"REDIS_URL database number must be a number (got {db!r})")
        return RedisTarget("sentinel", url, _nodes(hosts, 26379, url), master=unquote(master),
                           db=int(db or 0), username=username, password=password, tls=tls)
    if query not in ("", "0"):
        raise ConfigError(f"Redis Cluster has only database 0 (REDIS_URL ends in /{query})")
    return RedisTarget("cluster", url, _nodes(hosts, 6379, url), username=username, password=password, tls=tls)
