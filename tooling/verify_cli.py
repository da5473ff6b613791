"""`posray verify-receipt`: check a receipt end to end without trusting posray's database.

From the proof API (GET /v1/receipts/{code}/proof), or with --tiles from C2SP tiles alone: the
shard's checkpoint, the entry bundle holding the record and the hash tiles of its proof, from
posray's /tlog/, any static server or CDN holding an export, or the export's directory.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from posray.domain.cosignature import CosignatureVerifier
from posray.domain.errors import PosrayError
from posray.domain.note import NoteError, NoteVerifier
from posray.domain.receipt_proof import verify_receipt_bundle


def run_verify(code: str, base_url: str, proof_file: Path | None, key: str | None,
               save: Path | None, witnesses: tuple[list[str], int] = ([], 0)) -> int:
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
            key = _fetched_key(http, base_url)
    return _checked(bundle, key, code, save, witnesses)


def run_verify_tiles(code: str, tiles: str, base_url: str, key: str | None, save: Path | None,
                     shard: int | None, seq: int | None, witnesses: tuple[list[str], int] = ([], 0)) -> int:
    """Verify from tiles: 0 verified, 1 not (or tiles missing), 2 on usage errors.

    The receipt's (shard, seq) come from --shard/--seq, or else from the API's receipt lookup:
    only a hint of where to look, since the record found there must name the code.
    """
    from posray.adapters.tile_files import TileDirectory
    from posray.adapters.tile_http import HttpTiles
    from posray.services.tile_client import receipt_bundle

    with httpx.Client(base_url=base_url, timeout=15, follow_redirects=True) as http:
        if (shard is None) != (seq is None):
            print("give both --shard and --seq, or neither (then the API locates the receipt)")
            return 2
        if shard is None:
            r = http.get(f"/v1/receipts/{code}")
            if r.status_code != 200:
                print(f"the API could not locate the receipt: {r.status_code} {r.text}")
                return 1
            shard, seq = r.json()["shard"], r.json()["seq"]
            print(f"located by {base_url}: shard {shard} seq {seq} (the record in the tiles must name the code)")
        if key is None:
            key = _fetched_key(http, base_url)
        try:
            verifier = NoteVerifier.from_verifier_key(key)
        except NoteError as e:
            print(f"the operator key is not a valid note verifier key: {e}")
            return 2
        local = not tiles.startswith(("http://", "https://"))
        source = TileDirectory(Path(tiles)) if local else HttpTiles(tiles, http)
        try:
            bundle = receipt_bundle(source, verifier, shard, seq)
        except PosrayError as e:  # no checkpoint or tile, a bad signature, a malformed tile, unreachable
            print(f"FAIL tiles       {e}")
            print("receipt NOT verified")
            return 1
    print(f"ok   tiles       checkpoint of size {bundle['tree_size']}, entry bundle and "
          f"{len(bundle['inclusion_proof'])} proof hashes read from {tiles}")
    return _checked(bundle, key, code, save, witnesses)


def _fetched_key(http: httpx.Client, base_url: str) -> str:
    key = http.get("/.well-known/posray/log-key").json()["verifier_key"]
    print(f"operator key fetched from {base_url} (compare it with the published one): {key}")
    return key


def _checked(bundle: dict, key: str, code: str, save: Path | None, witnesses: tuple[list[str], int]) -> int:
    if save:
        save.write_text(json.dumps(bundle, indent=2))
        print(f"saved the proof bundle to {save}")
    try:
        verifier = NoteVerifier.from_verifier_key(key)
        witness_keys = [CosignatureVerifier.from_verifier_key(k) for k in witnesses[0]]
    except NoteError as e:
        print(f"a key is not a valid verifier key: {e}")
        return 2
    if witnesses[1] > len({w.label for w in witness_keys}):
        print(f"--witnesses {witnesses[1]} needs at least that many distinct --witness-key")
        return 2
    checks = verify_receipt_bundle(bundle, verifier, code, witnesses=witness_keys, witnesses_min=witnesses[1])
    for check in checks:
        print(f"{'ok  ' if check.ok else 'FAIL'} {check.name:<11} {check.detail}")
    verified = all(c.ok for c in checks)
    print("receipt VERIFIED" if verified else "receipt NOT verified")
    return 0 if verified else 1
