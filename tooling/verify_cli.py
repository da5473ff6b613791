"""`posray verify-receipt`: check a receipt end to end without trusting posray's database."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from posray.domain.note import NoteError, NoteVerifier
from posray.domain.receipt_proof import verify_receipt_bundle


def run_verify(code: str, base_url: str, proof_file: Path | None, key: str | None,
               save: Path | None) -> int:
    """Print each verification step; return 0 when the receipt verifies, 1 when not, 2 on usage errors."""
    with httpx.Client(base_url=base_url, timeout=15) as http:
        if proof_file:
            bundle = json.loads(proof_file.read_text())
        else:
            r = http.get(f"/v1/receipts/{code}/proof")
            if r.status_code != 200:
                print(f"the server could not give a proof: {r.status_code} {r.text}")
                return 1
            bundle = r.json()
        if key is None:
            key = http.get("/.well-known/posray/log-key").json()["verifier_key"]
            print(f"operator key fetched from {base_url} (compare it with the published one): {key}")
    if save:
        save.write_text(json.dumps(bundle, indent=2))
        print(f"saved the proof bundle to {save}")
    try:
        verifier = NoteVerifier.from_verifier_key(key)
    except NoteError as e:
        print(f"the operator key is not a valid note verifier key: {e}")
        return 2
    checks = verify_receipt_bundle(bundle, verifier, code)
    for check in checks:
        print(f"{'ok  ' if check.ok else 'FAIL'} {check.name:<11} {check.detail}")
    verified = all(c.ok for c in checks)
    print("receipt VERIFIED" if verified else "receipt NOT verified")
    return 0 if verified else 1
