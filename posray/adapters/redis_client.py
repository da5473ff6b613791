"""Redis clients for posray: one server by URL, or the primary a set of Sentinels names.

Every Redis client posray builds (capture, streams, lookups, status) comes from `connect`, so
that with Sentinel all of them follow a failover: a connection to the old primary fails (or
answers READONLY), the client answers Unavailable, and its next connection asks the sentinels
where the primary is now.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel
from redis.connection import parse_url

# How long one sentinel may take to answer "where is the primary?" before the next is asked.
SENTINEL_TIMEOUT_S = 1.0


class SentinelRedis(aioredis.Redis):
    """A client of a Sentinel-managed primary; closing it also closes its links to the sentinels."""

    sentinel: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.sentinel is not None:
            for link in self.sentinel.sentinels:
                await link.aclose()


def connect(url: str | None, sentinels: Sequence[tuple[str, int]] = (), master: str | None = None,
            **kwargs) -> aioredis.Redis:
    """An asyncio Redis client with bounded timeouts.

    Args:
        url: The server's URL; with sentinels, only its credentials and database number count.
        sentinels: (host, port) of the sentinels; empty to connect to `url` directly.
        master: The name the sentinels monitor the primary under (required with sentinels).
        kwargs: Client options overriding posray's timeouts (socket_timeout, ...).
    """
    options = {
        "socket_timeout": kwargs.pop("socket_timeout", 10),
        "socket_connect_timeout": kwargs.pop("socket_connect_timeout", 5),
        "health_check_interval": kwargs.pop("health_check_interval", 30),
        **kwargs,
    }
    if not sentinels:
        if url is None:
            raise ValueError("no Redis URL and no sentinels configured")
        return aioredis.Redis.from_url(url, **options)
    if not master:
        raise ValueError("sentinels configured without the name of the primary they monitor")
    parsed = parse_url(url) if url else {}
    for name in ("username", "password", "db"):
        if parsed.get(name) is not None:
            options.setdefault(name, parsed[name])
    bounded = {"socket_timeout": SENTINEL_TIMEOUT_S, "socket_connect_timeout": SENTINEL_TIMEOUT_S}
    sentinel = Sentinel(list(sentinels), sentinel_kwargs=bounded)
    client = sentinel.master_for(master, redis_class=SentinelRedis, **options)
    client.sentinel = sentinel
    return client
