"""Secrets never reach a log or an HTTP reply, after everything the cluster tests did.

Runs after the other posray_cluster tests (file order), adds its own traffic (registrations,
good and bad documents, a revocation, lookups, admin calls with wrong tokens), then searches
every log file of the Ray session and every reply for every key of the run: the operator seed,
the keys derived from it, the API token, every registered terminal's key and every merchant
token (all versions) of every merchant.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from pathlib import Path

import asyncpg
import pytest

from posray.adapters.keyfile import load_keys
from posray.domain.keys import terminal_key
from posray.domain.merchant_token import issue_token
from tooling.simulator import make_document, resign

pytestmark = pytest.mark.cluster
HEX_RUN = re.compile(rb"[0-9a-fA-F]{64,}")


def session_logs() -> list[Path]:
    import ray._private.worker

    logs = Path(ray._private.worker._global_node.get_session_dir_path()) / "logs"
    return [p for p in logs.rglob("*") if p.is_file()]


def all_terminal_keys(dsn: str, master: bytes) -> dict[str, bytes]:
    async def rows():
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetch("SELECT terminal_id, key_version FROM terminals")
        finally:
            await conn.close()

    return {f"terminal {r['terminal_id']} v{r['key_version']}": terminal_key(master, r["terminal_id"], v)
            for r in asyncio.run(rows()) for v in range(1, r["key_version"] + 1)}


def all_merchant_tokens(dsn: str, key: bytes) -> dict[bytes, str]:
    """Every merchant token that could have been issued, as verbatim needles (their MAC part)."""
    async def rows():
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetch("SELECT merchant_id, token_version FROM merchants")
        finally:
            await conn.close()

    return {issue_token(key, r["merchant_id"], v).rsplit(".", 1)[1].encode(): f"merchant {r['merchant_id']} token v{v}"
            for r in asyncio.run(rows()) for v in range(1, r["token_version"] + 1)}


def operator_secrets(seed_file: Path) -> dict[str, bytes]:
    keys = load_keys(seed_file)
    return {"operator seed": bytes.fromhex(seed_file.read_text().strip()),
            "terminal master key": keys.terminal_master, "receipt code key": keys.code.secret,
            "fiscal key": keys.fiscal, "checkpoint signing seed": keys.signing_seed,
            "operator API token": bytes.fromhex(keys.api_token), "merchant token key": keys.merchant_token}


def leaks(text: bytes, hex_secrets: dict[bytes, str], plain: dict[bytes, str]) -> set[str]:
    """Names of the secrets found in `text`: as hex (any case, inside longer hex runs too) or verbatim."""
    found = {name for needle, name in plain.items() if needle in text}
    for run in HEX_RUN.findall(text):
        run = run.lower()
        for start in range(len(run) - 63):
            name = hex_secrets.get(run[start:start + 64])
            if name:
                found.add(name)
    return found


def exercise(http, token: str) -> list:
    """Traffic touching every path that handles a secret; returns the replies that must not hold one."""
    replies = []
    keys = {}
    for n in range(2):
        r = http.post("/v1/admin/terminals", json={"terminal_id": f"T-secret-{n}-{time.time_ns()}",
                                                  "merchant_id": "m-secrets"},
                      headers={"authorization": f"Bearer {token}"})
        assert r.status_code == 201, r.text  # the one reply allowed to carry a terminal key
        keys[r.json()["terminal_id"]] = bytes.fromhex(r.json()["key_hex"])
    (t0, k0), (t1, k1) = keys.items()
    good = http.post("/v1/transactions", json=make_document(t0, 1, k0))
    replies.append(good)
    code = good.json()["code"]
    replies += [
        http.post("/v1/transactions", json=make_document(t0, 2, k1)),                   # wrong key
        http.post("/v1/transactions", json=resign(dict(make_document(t0, 3, k0), total_minor=-1), k0)),
        http.post("/v1/transactions", json=dict(make_document(t0, 1, k0), total_minor=1)),  # conflict/MAC
        http.post("/v1/transactions", content=b'{"terminal_id": '),
        http.post("/v1/transactions/batch", json={"documents": [make_document(t1, 1, k1), {"x": 1}]}),
        http.post(f"/v1/admin/terminals/{t1}/revoke", headers={"authorization": f"Bearer {token}"}),
        http.get(f"/v1/receipts/{code}"), http.get(f"/v1/receipts/{code}/proof"), http.get(f"/r/{code}"),
        http.get("/v1/receipts/NOT-A-CODE"), http.get("/.well-known/posray/log-key"),
        http.post("/v1/admin/terminals", json={"terminal_id": "T-x", "merchant_id": "m"},
                  headers={"authorization": f"Bearer {token[:-1]}0"}),
        http.post("/v1/admin/terminals", json={"terminal_id": "T-x", "merchant_id": "m"},
                  headers={"authorization": f"Bearer {k0.hex()}"}),
        http.post(f"/v1/admin/terminals/{t0}/revoke"),
        http.post("/v1/admin/terminals", content=b"not json", headers={"authorization": f"Bearer {token}"}),
        http.post("/v1/admin/terminals/T-nobody/revoke", headers={"authorization": f"Bearer {token}"}),
    ]
    issued = http.post("/v1/admin/merchants/m-secrets/token", headers={"authorization": f"Bearer {token}"})
    assert issued.status_code == 201, issued.text  # the one reply allowed to carry a merchant token
    merchant = {"authorization": f"Bearer {issued.json()['token']}"}
    replies += [
        http.get("/v1/merchant/terminals", headers=merchant),
        http.get("/v1/merchant/documents", params={"date": good.json()["accepted_at"][:10]}, headers=merchant),
        http.get("/v1/merchant/documents", params={"date": "2026-13-01", "after": "x"}, headers=merchant),
        http.get("/v1/merchant/documents", params={"date": "2026-01-01", "terminal_id": "T-x"}, headers=merchant),
        http.get("/v1/merchant/terminals", headers={"authorization": merchant["authorization"][:-1] + "_"}),
        http.post("/v1/admin/merchants/m-secrets/revoke-tokens", headers={"authorization": f"Bearer {token}"}),
        http.get("/v1/merchant/summary", params={"from": "2026-01-01", "to": "2026-01-02"}, headers=merchant),
    ]
    time.sleep(1.5)  # the revocation reaches the replica's cache
    replies.append(http.post("/v1/transactions", json=make_document(t1, 2, k1)))
    return replies


def test_no_secret_of_the_run_is_in_any_log_or_reply(http, operator_token, posray_cluster, seed_file):
    settings, _ = posray_cluster
    replies = exercise(http, operator_token)
    bad_token_replies = [r for r in replies if r.request.url.path.startswith("/v1/admin/")
                         and r.status_code == 401]
    admin = [(r.request.method, r.request.url.path, r.status_code) for r in replies
             if r.request.url.path.startswith("/v1/admin/")]
    assert len(bad_token_replies) == 3, admin
    secrets_by_name = operator_secrets(seed_file) | all_terminal_keys(settings.pg_dsn, load_keys(seed_file).terminal_master)
    assert len(secrets_by_name) > 6
    hex_secrets = {value.hex().encode(): name for name, value in secrets_by_name.items()}
    plain = {base64.b64encode(v): f"{n} (base64)" for n, v in operator_secrets(seed_file).items()}
    plain.update({bytes(v): f"{n} (raw)" for n, v in operator_secrets(seed_file).items()})
    plain.update(all_merchant_tokens(settings.pg_dsn, load_keys(seed_file).merchant_token))
    assert any(name.startswith("merchant m-secrets token") for name in plain.values())

    for r in replies:
        reply = "\n".join(f"{k}: {v}" for k, v in r.headers.items()).encode() + b"\n" + r.content
        assert not leaks(reply, hex_secrets, plain), (r.request.url, r.status_code)
        if r.status_code >= 400:
            assert b"Traceback" not in r.content, (r.request.url, r.text[:500])

    time.sleep(2)  # let the workers' log files catch up
    files = session_logs()
    assert any(p.name.startswith("replica_") or "serve" in str(p) for p in files), "no Serve log found"
    found = {str(p): sorted(names) for p in files if (names := leaks(p.read_bytes(), hex_secrets, plain))}
    assert found == {}, f"secrets in logs: {found}"
