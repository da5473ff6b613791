"""The merchant API over HTTP, through Serve: a merchant's token reaches its own data and nothing else."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tooling.simulator import make_document
from tests.cluster.conftest import wait_until

pytestmark = pytest.mark.cluster
POSRAY = str(Path(sys.executable).with_name("posray"))


def bearer(token: str) -> dict:
    return {"authorization": f"Bearer {token}"}


def register(http, operator_token: str, merchant_id: str) -> tuple[str, bytes]:
    terminal_id = f"T-{merchant_id}-{secrets.token_hex(3)}"
    r = http.post("/v1/admin/terminals", json={"terminal_id": terminal_id, "merchant_id": merchant_id},
                  headers=bearer(operator_token))
    assert r.status_code == 201, r.text
    return terminal_id, bytes.fromhex(r.json()["key_hex"])


def sell(http, terminal_id: str, key: bytes, count: int) -> list[dict]:
    accepted = []
    for counter in range(1, count + 1):
        r = http.post("/v1/transactions", json=make_document(terminal_id, counter, key))
        assert r.status_code == 200, r.text
        accepted.append(r.json())
    return accepted


def cli(posray_cluster, seed_file, tmp_path, *args) -> subprocess.CompletedProcess:
    settings, _ = posray_cluster
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSRAY_")}
    env.update({"POSRAY_PG_DSN": settings.pg_dsn, "POSRAY_OPERATOR_SEED_FILE": str(seed_file),
                "POSRAY_DATA_DIR": str(tmp_path)})
    return subprocess.run([POSRAY, "merchants", *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def merchants(posray_cluster, operator_token):
    """Merchants A and B with one terminal each and recorded sales; A's token from the admin API."""
    import httpx

    _, base_url = posray_cluster
    tag = secrets.token_hex(3)
    a, b = f"MA-{tag}", f"MB-{tag}"
    with httpx.Client(base_url=base_url, timeout=30) as http:
        (ta, ka), (tb, kb) = register(http, operator_token, a), register(http, operator_token, b)
        sold_a, sold_b = sell(http, ta, ka, 5), sell(http, tb, kb, 3)
        issued = http.post(f"/v1/admin/merchants/{a}/token", headers=bearer(operator_token))
        assert issued.status_code == 201, issued.text
        assert issued.json()["merchant_id"] == a and issued.json()["token_version"] == 1
        token = issued.json()["token"]
        day = sold_a[0]["accepted_at"][:10]
        recorded = wait_until(lambda: len(http.get(
            "/v1/merchant/documents", params={"date": day}, headers=bearer(token)).json()["documents"]) == 5)
        assert recorded, "A's documents were not recorded in time"
    return {"a": a, "b": b, "ta": ta, "tb": tb, "sold_a": sold_a, "sold_b": sold_b,
            "token": token, "day": day}


def test_a_merchant_token_gets_that_merchants_documents_only(http, merchants):
    r = http.get("/v1/merchant/documents", params={"date": merchants["day"]}, headers=bearer(merchants["token"]))
    assert r.status_code == 200, r.text
    documents = r.json()["documents"]
    assert sorted(d["code"] for d in documents) == sorted(s["code"] for s in merchants["sold_a"])
    assert {d["terminal_id"] for d in documents} == {merchants["ta"]}
    assert not {d["code"] for d in documents} & {s["code"] for s in merchants["sold_b"]}
    assert r.json()["next"] is None


def test_pages_of_two_cover_the_day_once(http, merchants):
    codes, after = [], None
    for _ in range(10):
        params = {"date": merchants["day"], "limit": 2} | ({"after": after} if after else {})
        page = http.get("/v1/merchant/documents", params=params, headers=bearer(merchants["token"])).json()
        codes += [d["code"] for d in page["documents"]]
        after = page["next"]
        if after is None:
            break
    assert sorted(codes) == sorted(s["code"] for s in merchants["sold_a"])


def test_terminals_and_summary_are_the_merchants_own(http, merchants):
    listed = http.get("/v1/merchant/terminals", headers=bearer(merchants["token"])).json()
    assert [t["terminal_id"] for t in listed["terminals"]] == [merchants["ta"]]
    summary = http.get("/v1/merchant/summary", params={"from": merchants["day"], "to": merchants["day"]},
                       headers=bearer(merchants["token"])).json()
    ((entry,),) = [summary["days"]]
    assert entry["documents"] == 5 and entry["sales"]["count"] == 5


def test_asking_for_another_merchants_terminal_is_403_like_an_unknown_one(http, merchants):
    replies = [http.get("/v1/merchant/documents", params={"date": merchants["day"], "terminal_id": t},
                        headers=bearer(merchants["token"])) for t in (merchants["tb"], "T-nobody-at-all")]
    assert [r.status_code for r in replies] == [403, 403]
    assert replies[0].json() == replies[1].json()
    assert merchants["tb"] not in replies[0].text


def test_no_token_or_a_wrong_one_is_401(http, merchants, operator_token):
    token = merchants["token"]
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    for headers in ({}, {"authorization": "Bearer"}, bearer(tampered), bearer(operator_token), {"authorization": token}):
        r = http.get("/v1/merchant/terminals", headers=headers)
        assert r.status_code == 401, (headers, r.text)
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["error"] == "unauthenticated"
    assert http.post(f"/v1/admin/merchants/{merchants['a']}/token", headers=bearer(token)).status_code == 401
    assert http.post("/v1/admin/merchants/M-nobody/token", headers=bearer(operator_token)).status_code == 404


def test_revoked_tokens_get_401_at_once_and_the_cli_issues_new_ones(
    http, merchants, posray_cluster, seed_file, tmp_path, operator_token
):
    b = merchants["b"]
    old = cli(posray_cluster, seed_file, tmp_path, "token", b)
    assert old.returncode == 0, old.stderr
    old_token = old.stdout.strip()
    assert http.get("/v1/merchant/terminals", headers=bearer(old_token)).json()["merchant_id"] == b
    revoked = cli(posray_cluster, seed_file, tmp_path, "revoke-tokens", b)
    assert revoked.returncode == 0 and "version 2" in revoked.stdout, revoked.stdout + revoked.stderr
    assert http.get("/v1/merchant/terminals", headers=bearer(old_token)).status_code == 401
    again = http.post(f"/v1/admin/merchants/{b}/revoke-tokens", headers=bearer(operator_token))
    assert again.json() == {"merchant_id": b, "token_version": 3}
    fresh = http.post(f"/v1/admin/merchants/{b}/token", headers=bearer(operator_token)).json()
    assert fresh["token_version"] == 3
    r = http.get("/v1/merchant/documents", params={"date": merchants["day"]}, headers=bearer(fresh["token"]))
    assert r.status_code == 200 and {d["terminal_id"] for d in r.json()["documents"]} <= {merchants["tb"]}

