"""Customers' endpoints are public but rate-limited per client address (through HAProxy, for real)."""

from __future__ import annotations

import secrets
import time

import pytest

from tests.cluster.conftest import wait_until

pytestmark = pytest.mark.cluster


def test_a_burst_beyond_the_limit_gets_429_with_retry_after_even_with_forged_forwarding(http, posray_cluster):
    settings, _ = posray_cluster
    requests = settings.public_burst * 3
    statuses, refused = [], None
    for _ in range(requests):
        # Forged X-Forwarded-For must not buy a fresh bucket (no trusted proxy is configured).
        r = http.get("/.well-known/posray/log-key",
                     headers={"x-forwarded-for": f"198.51.100.{secrets.randbelow(250)}"})
        statuses.append(r.status_code)
        if r.status_code == 429:
            refused = r
    assert statuses[: settings.public_burst // 2] == [200] * (settings.public_burst // 2)
    assert set(statuses) == {200, 429}
    assert statuses.count(429) >= 1
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"] == "rate_limited"
    # Sending documents is not a public lookup: never limited here.
    assert http.get("/healthz").status_code == 200
    # Leave a full bucket to the tests after this one.
    assert wait_until(lambda: http.get("/.well-known/posray/log-key").status_code == 200, timeout_s=10)
    time.sleep(settings.public_burst / settings.public_rate_per_s)
