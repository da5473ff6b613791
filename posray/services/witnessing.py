"""Use case `witness`: submit each shard's new checkpoints to independent witnesses, keep their cosignatures.

For every configured witness (c2sp.org/tlog-witness) and shard, when the shard's latest signed
checkpoint is larger than the last one that witness cosigned, POST add-checkpoint with the RFC 6962
consistency proof from that size. A 409 names the size the witness holds: the request is made
again from there (a witness restored from a backup, or state this ledger never stored). The
cosignature in a 200 is verified with the witness's configured key before it is stored; the
checkpoint routes, proof bundles and tile exports append the stored cosignatures to the note.
Runs beside recording at its own pace, never in its way: a witness that is down or refuses only
delays its own cosignatures.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from posray.domain.cosignature import CosignatureVerifier, with_signatures
from posray.domain.errors import PosrayError
from posray.domain.note import NoteError
from posray.domain.witness import format_add_checkpoint
from posray.services import proofs
from posray.services.ports import Ledger, WitnessClient

log = logging.getLogger(__name__)
ATTEMPTS_MAX = 3  # one 409 is expected after a restore; more means the witness keeps moving
SUBMISSIONS_IN_FLIGHT_MAX = 16


@dataclass(frozen=True, slots=True)
class WitnessConfig:
    """A witness posray submits to: its submission prefix URL and its cosignature key."""

    url: str
    verifier: CosignatureVerifier

    @classmethod
    def parse(cls, url: str, verifier_key: str) -> WitnessConfig:
        return cls(url.rstrip("/"), CosignatureVerifier.from_verifier_key(verifier_key))


@dataclass(frozen=True, slots=True)
class Submitted:
    """What one submission of a shard's latest checkpoint to one witness came to."""

    shard: int
    witness: str
    tree_size: int
    cosigned: bool
    detail: str


async def submit(ledger: Ledger, client: WitnessClient, witness: WitnessConfig, shard: int) -> Submitted:
    """Bring `witness` up to `shard`'s latest signed checkpoint; store its cosignature.

    Raises:
        Unavailable: PostgreSQL or the witness is unreachable.
    """
    label = witness.verifier.label
    latest = await ledger.checkpoint(shard)
    if latest is None:
        return Submitted(shard, label, 0, False, "no checkpoint yet")
    size, _, note = latest
    old = await ledger.cosigned_size(shard, label)
    if size <= old:
        return Submitted(shard, label, size, True, f"cosigned at size {old} already")
    for _ in range(ATTEMPTS_MAX):
        proof = await _proof(ledger, shard, old, size)
        status, body = await client.add_checkpoint(witness.url, format_add_checkpoint(old, proof, note))
        text = body.decode(errors="replace")
        if status == 200:
            return await _stored(ledger, witness, shard, size, note, text)
        if status != 409:
            return Submitted(shard, label, size, False, f"refused from size {old}: {status} {text.strip()[:200]}")
        held = text.strip()
        if not held.isdigit() or int(held) == old:
            return Submitted(shard, label, size, False, f"409 without a usable size: {held[:40]!r}")
        if int(held) > size:
            return Submitted(shard, label, size, False, f"the witness holds size {held}, beyond this log's "
                             f"{size}: it has seen another view of this log (a fork?)")
        old = int(held)
    return Submitted(shard, label, size, False, f"still conflicting after {ATTEMPTS_MAX} attempts")


async def _proof(ledger: Ledger, shard: int, old: int, size: int) -> list[bytes]:
    if old == 0 or old == size:
        return []
    found = await proofs.consistency(ledger, shard, old, size)
    return [bytes.fromhex(h) for h in found["consistency_proof"]]


async def _stored(ledger: Ledger, witness: WitnessConfig, shard: int, size: int, note: str, answer: str) -> Submitted:
    lines = [line + "\n" for line in answer.split("\n") if line]
    try:
        cosigned = witness.verifier.verify(with_signatures(note, lines))
    except NoteError as e:
        return Submitted(shard, witness.verifier.label, size, False, f"answered 200 without a valid cosignature: {e}")
    await ledger.add_cosignature(shard, size, cosigned.witness, cosigned.line, int(time.time() * 1000))
    return Submitted(shard, cosigned.witness, size, True, f"cosigned at {cosigned.timestamp}")


async def witness_round(ledger: Ledger, client: WitnessClient, witnesses: list[WitnessConfig],
                        shards: list[int]) -> list[Submitted]:
    """Submit every shard's latest checkpoint to every witness (a bounded number at a time).

    A failure of one submission (a witness or PostgreSQL away) is its result, not the round's.
    """
    limit = asyncio.Semaphore(SUBMISSIONS_IN_FLIGHT_MAX)

    async def one(witness: WitnessConfig, shard: int) -> Submitted:
        async with limit:
            try:
                return await submit(ledger, client, witness, shard)
            except PosrayError as e:
                return Submitted(shard, witness.verifier.label, 0, False, f"{type(e).__name__}: {e}")

    return list(await asyncio.gather(*(one(w, s) for s in shards for w in witnesses)))


async def keep_witnessing(ledger: Ledger, client: WitnessClient, witnesses: list[WitnessConfig],
                          shards: list[int], interval_s: float, sleep=None) -> None:
    """Run witness rounds every `interval_s` for as long as the caller lets it (a LedgerWriter task).

    Logs each change of a (shard, witness) pair between cosigned and failing, not every round.
    """
    sleep = sleep or asyncio.sleep
    failing: dict[tuple[int, str], str] = {}
    while True:
        try:
            for result in await witness_round(ledger, client, witnesses, shards):
                key = (result.shard, result.witness)
                if not result.cosigned and failing.get(key) != result.detail:
                    log.warning("witness %s, shard %d: %s", result.witness, result.shard, result.detail)
                    failing[key] = result.detail
                elif result.cosigned and failing.pop(key, None) is not None:
                    log.info("witness %s, shard %d: cosigning again (size %d)", result.witness, result.shard,
                             result.tree_size)
        except Exception:  # a bug must not stop recording's actor; say so and go on at the same pace
            log.exception("witness round failed")
        await sleep(interval_s)
