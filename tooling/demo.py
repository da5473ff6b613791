"""`posray demo`: what a terminal vendor and a customer do, against the running HTTP API.

Registers terminals (operator API), sends single sales and an offline batch, resends one
(same code), looks a receipt up by code and by printed fields, waits until it is recorded
and checks its Merkle inclusion proof locally.
"""

from __future__ import annotations

import time

import httpx

from posray.adapters.keyfile import load_keys
from posray.domain.merkle import leaf_hash, verify_inclusion
from posray.settings import Settings
from tooling.simulator import make_document


def run_demo(settings: Settings, base_url: str, terminals: int = 3, sales: int = 20) -> int:
    token = load_keys(settings.seed_file).api_token
    run = time.strftime("%H%M%S")
    with httpx.Client(base_url=base_url, timeout=30) as http:
        keys = {}
        for i in range(terminals):
            tid = f"DEMO-{run}-{i}"
            r = http.post("/v1/admin/terminals", json={"terminal_id": tid, "merchant_id": "demo-bakery",
                          "merchant_name": "Demo Bakery"}, headers={"authorization": f"Bearer {token}"})
            r.raise_for_status()
            keys[tid] = bytes.fromhex(r.json()["key_hex"])
        print(f"registered {terminals} terminals of merchant demo-bakery")
        ids = list(keys)
        receipts = []
        started = time.perf_counter()
        for n in range(sales):
            tid = ids[n % terminals]
            doc = make_document(tid, n // terminals + 1, keys[tid])
            r = http.post("/v1/transactions", json=doc)
            r.raise_for_status()
            receipts.append((doc, r.json()))
        elapsed = time.perf_counter() - started
        print(f"sent {sales} single sales in {elapsed:.2f} s; first receipt code {receipts[0][1]['code_display']}")
        backlog = [make_document(ids[0], 1000 + k, keys[ids[0]]) for k in range(50)]
        r = http.post("/v1/transactions/batch", json={"documents": backlog})
        r.raise_for_status()
        accepted = sum(1 for x in r.json()["results"] if x["status"] == "accepted")
        print(f"uploaded an offline batch of {len(backlog)}: {accepted} accepted")
        doc, first = receipts[0]
        again = http.post("/v1/transactions", json=doc).json()
        print(f"resent the first sale: same code {again['code'] == first['code']}, duplicate={again['duplicate']}")
        receipt = _wait_recorded(http, first["code"])
        proof = receipt["ledger"]
        ok = verify_inclusion(
            leaf_hash(proof["record"].encode()), proof["leaf_index"], proof["batch_size"],
            [bytes.fromhex(h) for h in proof["inclusion_proof"]],
            bytes.fromhex(proof["header"]["merkle_root"]),
        )
        print(f"receipt {receipt['code_display']}: {receipt['status']} in batch {proof['batch_no']} "
              f"of shard {receipt['shard']}, total {receipt['total_minor'] / 100:.2f} {receipt['currency']}; "
              f"inclusion proof verifies: {ok}")
        by_fields = http.get("/v1/receipts", params={
            "terminal_id": doc["terminal_id"], "counter": doc["counter"],
            "date": doc["issued_at"][:10], "total_minor": doc["total_minor"]}).json()
        print(f"lookup by printed fields finds the same receipt: {by_fields.get('code') == first['code']}")
        print(f"receipt page: {first['verify_url']}")
        return 0 if ok else 1


def _wait_recorded(http: httpx.Client, code: str, timeout_s: float = 30) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        receipt = http.get(f"/v1/receipts/{code}").json()
        if receipt.get("status") == "recorded" or time.monotonic() > deadline:
            return receipt
        time.sleep(0.2)
