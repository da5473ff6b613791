"""Use case `draw_winners`: the receipt lottery of a period, recomputable from public data.

The rule is posray.domain.lottery's (docs/lottery.md). This module fetches what the rule
needs from the ledger — documents per shard in the period, each shard's drawing checkpoint,
the eligible counts under those checkpoints — then maps the winning indexes back to
(shard, seq) and receipt codes, checking what it read back against the rule.
"""

from __future__ import annotations

from dataclasses import dataclass

from posray.adapters.pg_lottery import PgLottery, StoredCheckpoint
from posray.domain.chain import record_code
from posray.domain.codes import CodeKey
from posray.domain.errors import AuditDivergence, PosrayError
from posray.domain.lottery import (
    SETTLE_S,
    WINNERS_MAX,
    ShardCommitment,
    draw,
    locate,
    note_sha256,
    seed_of,
    statement_bytes,
)
from posray.domain.note import NoteError, NoteVerifier, open_checkpoint
from posray.domain.transaction import utc_iso_ms


class DrawRefused(PosrayError):
    """The draw of this period cannot run (yet); the message says why and what to wait for."""


@dataclass(frozen=True, slots=True)
class ShardPart:
    """One shard's part in a draw: documents in the period, eligible ones, drawing checkpoint."""

    shard: int
    in_period: int
    eligible: int
    checkpoint: StoredCheckpoint

    @property
    def late(self) -> int:
        """Documents accepted in the period but recorded after the drawing checkpoint."""
        return self.in_period - self.eligible


@dataclass(frozen=True, slots=True)
class Winner:
    """A winning receipt; `rank` counts from 1, `index` is its place in the eligible list."""

    rank: int
    index: int
    shard: int
    seq: int
    code: str
    accepted_at_ms: int


@dataclass(frozen=True, slots=True)
class LotteryDraw:
    """Everything a draw decided and everything needed to recompute it."""

    start_ms: int
    end_ms: int
    winners_requested: int
    settle_s: int
    shards: tuple[ShardPart, ...]
    statement: bytes
    seed: bytes
    winners: tuple[Winner, ...]

    @property
    def eligible(self) -> int:
        return sum(part.eligible for part in self.shards)


async def draw_winners(
    lottery: PgLottery, code_key: CodeKey, start_ms: int, end_ms: int, winners: int,
    now_ms: int, verifier: NoteVerifier | None = None, settle_s: int = SETTLE_S,
) -> LotteryDraw:
    """Draw `winners` receipts among those accepted in [start_ms, end_ms).

    Args:
        lottery: the ledger reads.
        code_key: the operator's code key, to print the winners' receipt codes.
        start_ms, end_ms: the period, epoch milliseconds (UTC), end excluded.
        winners: how many receipts win (1..WINNERS_MAX).
        now_ms: the current time; the period must have closed `settle_s` ago.
        verifier: when given, each drawing checkpoint's signature is verified first.
        settle_s: the delay after the period before a checkpoint may seed the draw.

    Raises:
        ValueError: an empty period or a winner count out of range.
        DrawRefused: the period is not over (plus the settle delay), has no receipt, or a shard
            with receipts in it has no checkpoint created after the settle delay yet.
        AuditDivergence: a stored checkpoint does not verify, or a read contradicts the rule.
    """
    if end_ms <= start_ms or not 1 <= winners <= WINNERS_MAX:
        raise ValueError(f"a draw needs from < to and 1 <= winners <= {WINNERS_MAX}")
    not_before_ms = end_ms + settle_s * 1000
    if now_ms < not_before_ms:
        raise DrawRefused(f"the period ends at {utc_iso_ms(end_ms)}; the draw needs checkpoints "
                          f"created from {utc_iso_ms(not_before_ms)} on: wait until then")
    in_period = await lottery.period_counts(start_ms, end_ms)
    if not in_period:
        raise DrawRefused("no receipt was recorded with accepted_at in the period")
    checkpoints = await lottery.first_checkpoints(sorted(in_period), not_before_ms)
    missing = sorted(set(in_period) - set(checkpoints))
    if missing:
        raise DrawRefused(
            f"shard(s) {', '.join(map(str, missing))} have receipts in the period but no checkpoint"
            f" created at or after {utc_iso_ms(not_before_ms)} yet; a shard signs a checkpoint when"
            " its log grows, so wait until they record new receipts, then draw again")
    _verify_checkpoints(checkpoints.values(), verifier)
    eligible = await lottery.eligible_counts(
        start_ms, end_ms, {s: c.tree_size for s, c in checkpoints.items()})
    parts = tuple(ShardPart(s, in_period[s], eligible[s], checkpoints[s]) for s in sorted(in_period))
    commitments = [ShardCommitment(p.shard, p.eligible, p.checkpoint.tree_size,
                                   note_sha256(p.checkpoint.note)) for p in parts]
    statement = statement_bytes(start_ms, end_ms, winners, commitments, settle_s)
    seed = seed_of(statement)
    indexes = draw(sum(p.eligible for p in parts), winners, seed)
    chosen = await _winners(lottery, code_key, start_ms, end_ms, parts, commitments, indexes)
    return LotteryDraw(start_ms, end_ms, winners, settle_s, parts, statement, seed, chosen)


def _verify_checkpoints(checkpoints, verifier: NoteVerifier | None) -> None:
    """Check each stored note right after reading it: signed by the operator, same size and root."""
    if verifier is None:
        return
    for stored in checkpoints:
        try:
            opened = open_checkpoint(verifier, stored.note)
        except NoteError as e:
            raise AuditDivergence(f"shard {stored.shard}: checkpoint {stored.tree_size}: {e}") from e
        if (opened.tree_size, opened.root_hash) != (stored.tree_size, stored.root_hash):
            raise AuditDivergence(f"shard {stored.shard}: checkpoint {stored.tree_size}: "
                                  "the signed note names another tree size or root")


async def _winners(
    lottery: PgLottery, code_key: CodeKey, start_ms: int, end_ms: int,
    parts: tuple[ShardPart, ...], commitments: list[ShardCommitment], indexes: list[int],
) -> tuple[Winner, ...]:
    """Map winning indexes to (shard, seq) with one query per shard that has winners."""
    placed = [locate(index, commitments) for index in indexes]
    found: dict[tuple[int, int], tuple[int, int, bytes]] = {}
    for part in parts:
        ranks = sorted({rank for shard, rank in placed if shard == part.shard})
        if not ranks:
            continue
        rows = await lottery.eligible_seqs(part.shard, start_ms, end_ms, part.checkpoint.tree_size, ranks)
        for rank in ranks:
            seq, accepted_ms, record = rows.get(rank, (0, start_ms - 1, b""))
            if not (1 <= seq <= part.checkpoint.tree_size and start_ms <= accepted_ms < end_ms):
                raise AuditDivergence(f"shard {part.shard}: eligible document {rank} is missing or"
                                      " outside the period; the ledger changed under the draw")
            found[(part.shard, rank)] = (seq, accepted_ms, record)
    out = []
    for n, (index, (shard, rank)) in enumerate(zip(indexes, placed), start=1):
        seq, accepted_ms, record = found[(shard, rank)]
        out.append(Winner(n, index, shard, seq, record_code(code_key, shard, seq, record), accepted_ms))
    return tuple(out)
