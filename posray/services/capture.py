"""Use case `append_batch`: capture one shard's documents in Redis and mint their receipts.

Runs inside an IngestShard actor. The receipt (code, fiscal sign) is returned only after the
Redis write returned, i.e. after the AOF fsync when Redis runs with appendfsync always.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from posray.adapters.redis_capture import CONFLICT, SAME, RedisCapture
from posray.domain.codes import display_code, make_code
from posray.domain.errors import DocumentConflict
from posray.domain.keys import OperatorKeys, fiscal_sign
from posray.domain.transaction import Submission, utc_iso_ms


@dataclass(frozen=True, slots=True)
class Accepted:
    """An acknowledged document: what the terminal prints."""

    code: str
    shard: int
    seq: int
    accepted_at_ms: int
    fiscal_sign: str
    duplicate: bool

    def to_json(self, public_base_url: str) -> dict:
        url = f"{public_base_url}/r/{self.code}"
        return {
            "status": "accepted",
            "code": self.code,
            "code_display": display_code(self.code),
            "shard": self.shard,
            "seq": self.seq,
            "accepted_at": utc_iso_ms(self.accepted_at_ms),
            "fiscal_sign": self.fiscal_sign,
            "verify_url": url,
            "qr_payload": url,
            "duplicate": self.duplicate,
        }


async def append_batch(
    capture: RedisCapture, keys: OperatorKeys, shard: int, submissions: list[Submission]
) -> list[Accepted | DocumentConflict]:
    """Capture `submissions` (all of `shard`) in one atomic Redis step.

    Returns one result per submission: Accepted (new or an identical retry) or a conflict.

    Raises:
        Overloaded: the shard's backlog is full (nothing was written).
        Unavailable: Redis failed; the caller answers 503 and the terminal retries safely.
    """
    now_ms = int(time.time() * 1000)
    outcomes = await capture.append(shard, now_ms, submissions)
    results: list[Accepted | DocumentConflict] = []
    for sub, out in zip(submissions, outcomes):
        if out.status == CONFLICT:
            code = make_code(keys.code, shard, out.seq)
            results.append(
                DocumentConflict(
                    "counter",
                    f"terminal {sub.terminal_id} already used counter {sub.counter} for another "
                    f"document (receipt {code})",
                )
            )
            continue
        code = make_code(keys.code, shard, out.seq)
        sign = fiscal_sign(keys.fiscal, code, sub.document_hash, out.accepted_at_ms)
        results.append(Accepted(code, shard, out.seq, out.accepted_at_ms, sign, out.status == SAME))
    return results
