"""A bounded per-client token-bucket limiter for the public (customer) endpoints; pure, no I/O.

Each client address owns a bucket of at most `burst` tokens refilled at `rate_per_s`; a request
takes one token or is refused with the time until the next token. At most `clients_max`
buckets are kept: the least recently seen client is forgotten first, which only ever hands a
forgotten client a fresh, full bucket (memory stays bounded whatever addresses arrive).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from typing import Callable

_EPSILON = 1e-9


class RateLimiter:
    """Token buckets keyed by client address, in least-recently-used order."""

    def __init__(self, rate_per_s: float, burst: int, clients_max: int,
                 clock: Callable[[], float] = time.monotonic):
        """Args:
            rate_per_s: tokens added per second to each bucket; 0 or less turns limiting off.
            burst: the bucket's capacity, i.e. requests a rested client may send at once (>= 1).
            clients_max: buckets kept at most (>= 1).
            clock: seconds, monotonic (injected by tests).
        """
        if burst < 1 or clients_max < 1:
            raise ValueError("burst and clients_max must be at least 1")
        self.rate_per_s, self.burst, self.clients_max = rate_per_s, burst, clients_max
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, at)

    @property
    def enabled(self) -> bool:
        return self.rate_per_s > 0

    def __len__(self) -> int:
        return len(self._buckets)

    def acquire(self, client: str) -> float:
        """Take one token for `client`.

        Returns:
            0.0 when the request may proceed, else the seconds until the client's next token.
        """
        if not self.enabled:
            return 0.0
        now = self._clock()
        tokens, at = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate_per_s)
        if tokens >= 1.0 - _EPSILON:  # 0.3 s at 10/s must buy 3 tokens despite float rounding
            tokens = max(0.0, tokens - 1.0)
            wait_s = 0.0
        else:
            wait_s = (1.0 - tokens) / self.rate_per_s
        self._buckets[client] = (tokens, now)
        if len(self._buckets) > self.clients_max:
            self._buckets.popitem(last=False)
        return wait_s


def retry_after_s(wait_s: float) -> int:
    """The Retry-After header's whole seconds for a wait (at least 1)."""
    return max(1, math.ceil(wait_s))


def client_address(scope: dict, forwarded_hops: int) -> str:
    """The address a request is limited by.

    With `forwarded_hops` = 0, the peer of the replica's HTTP server (scope["client"]); behind
    Ray Serve's HAProxy that is HAProxy itself, since Ray's HAProxy neither adds nor strips
    X-Forwarded-For. With N > 0 trusted proxies in front that each append the address they
    received the request from, the N-th X-Forwarded-For entry from the right: entries further
    left were written by the client and can be forged.
    """
    peer = scope.get("client")
    peer_host = peer[0] if peer else "unknown"
    if forwarded_hops <= 0:
        return peer_host
    values = [v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"x-forwarded-for"]
    hops = [h.strip() for h in ",".join(values).split(",") if h.strip()]
    if len(hops) < forwarded_hops:
        return peer_host
    return hops[-forwarded_hops]
