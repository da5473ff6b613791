"""Checks the route table runs before a handler: the operator's token, the public rate limit."""

from __future__ import annotations

import hmac

from posray.domain.errors import OperatorOnly, RateLimited
from posray.domain.keys import OperatorKeys
from posray.services.ratelimit import client_address, retry_after_s

# Customers' endpoints: public, so each client address is rate-limited (POSRAY_PUBLIC_*). Every GET
# under these prefixes counts, an unknown path included, so probing for routes costs the same.
PUBLIC_PREFIXES = ("/v1/receipts", "/r/", "/v1/log/", "/.well-known/", "/tlog/")


def authorize(scope, keys: OperatorKeys) -> None:
    """Raises OperatorOnly (401) unless the request carries the operator's bearer token."""
    header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
    token = header[7:] if header.startswith("Bearer ") else ""
    if not hmac.compare_digest(token.encode(), keys.api_token.encode()):
        raise OperatorOnly("operator token required")


def limit(scope, backend, bucket: str = "") -> None:
    """Raises RateLimited (429 + Retry-After) once the client address has used up its bucket.

    Args:
        bucket: "" for the public endpoints; another name keeps a separate budget per address.
    """
    client = client_address(scope, backend.settings.trusted_proxy_hops)
    wait_s = backend.limiter.acquire(f"{bucket}|{client}" if bucket else client)
    if wait_s > 0:
        raise RateLimited("too many requests from this address", retry_after_s(wait_s))
