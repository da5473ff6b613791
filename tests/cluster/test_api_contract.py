"""Property-based fuzzing of the live server against its OpenAPI document (issue 11 part C).

Schemathesis generates requests for every route of /openapi.json, valid and invalid, and checks
each answer: never a 5xx, never a hang, and status, content type and body as documented.
Bounded: MAX_EXAMPLES per operation keeps the whole run under a minute on 2 cores.
"""

from __future__ import annotations

import time
from collections import Counter

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.cluster
MAX_EXAMPLES = 25
REQUEST_TIMEOUT_S = 10
TALLY: Counter = Counter()


def test_the_served_document_is_openapi_3_1_and_lists_every_public_route(http):
    doc = http.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    for path in ("/v1/transactions", "/v1/transactions/batch", "/v1/receipts/{code}", "/v1/receipts",
                 "/r/{code}", "/v1/merchant/documents", "/v1/admin/terminals"):
        assert path in doc["paths"], path


def test_no_input_gets_a_5xx_a_hang_or_an_undocumented_answer(posray_cluster, operator_token):
    _, base_url = posray_cluster
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    checks = (not_a_server_error, status_code_conformance, content_type_conformance,
              response_schema_conformance)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        strategy = operation.as_strategy()

        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def fuzz(case):
            # Half the admin requests carry the operator token, to reach past the 401.
            if "admin" in case.path and TALLY["requests"] % 2:
                case.headers = {**(case.headers or {}), "authorization": f"Bearer {operator_token}"}
            started = time.monotonic()
            try:
                response = case.call(base_url=base_url, timeout=REQUEST_TIMEOUT_S)
            except (httpx.TimeoutException, TimeoutError, OSError) as e:
                TALLY["hangs"] += 1
                failures.append(f"{case.method} {case.formatted_path}: {type(e).__name__}")
                return
            TALLY["requests"] += 1
            TALLY[f"{response.status_code // 100}xx"] += 1
            TALLY["slowest_ms"] = max(TALLY["slowest_ms"], int((time.monotonic() - started) * 1000))
            try:
                case.validate_response(response, checks=checks)
            except Exception as e:  # collect them all; report at the end
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: "
                                f"{str(e)[:300]}")

        fuzz()
    print(f"\nfuzzer tally: {dict(TALLY)}")
    assert TALLY["requests"] > 200
    assert TALLY["5xx"] == 0 and TALLY["hangs"] == 0, failures[:10]
    assert not failures, failures[:10]
