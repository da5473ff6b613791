"""The receipt lottery rule, version 1: a public statement, its SHA-256 seed, and the draw.

docs/lottery.md is the reference (with a worked example and a stand-alone re-implementation);
in short:
    eligible    the documents recorded with from <= accepted_at < to (UTC, whole milliseconds),
                in every shard that recorded documents in the period, limited to the tree of
                that shard's drawing checkpoint (seq <= tree_size), in canonical order (shard, seq)
    drawing checkpoint of a shard   its earliest checkpoint created at or after to + SETTLE_S
    statement   the text `statement_bytes` writes: period, winners, settle delay and, per shard,
                the eligible count, the checkpoint's tree size and the SHA-256 of its signed note
    seed        SHA-256(statement)
    draw        `draw(eligible_count, winners, seed)`: winning indexes into the eligible list

Everything here is pure, so the same functions serve the draw, its tests and any auditor.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from posray.domain.transaction import utc_iso_ms

RULE = "posray-lottery-v1"
SETTLE_S = 60  # receipts accepted just before the end are recorded and checkpointed by then
WINNERS_MAX = 10_000  # bounds the draw to about 10**5 hashes whatever the eligible count
DRAW_BITS = 256
_TRIES_PER_ELIGIBLE = 64  # a winner needing more tries has probability below e**-128


@dataclass(frozen=True, slots=True)
class ShardCommitment:
    """One shard's line of the statement: what it contributes and the checkpoint that fixes it."""

    shard: int
    eligible: int
    tree_size: int
    note_sha256: bytes


def note_sha256(note: str) -> bytes:
    """SHA-256 of a signed checkpoint note, exactly as served (UTF-8, signature lines included)."""
    return hashlib.sha256(note.encode()).digest()


def statement_bytes(
    start_ms: int, end_ms: int, winners: int, shards: list[ShardCommitment], settle_s: int = SETTLE_S
) -> bytes:
    """The canonical statement of a draw: ASCII lines, each ending in a newline.

        posray-lottery-v1
        from 2026-10-01T00:00:00.000Z
        to 2026-11-01T00:00:00.000Z
        winners 3
        settle_s 60
        shard 0 eligible 5 tree_size 12 note_sha256 <64 hex digits>
        ...                                   (one line per shard, ascending shard numbers)

    Raises:
        ValueError: an empty period, a negative winner count, or shards not strictly ascending.
    """
    if end_ms <= start_ms or winners < 0 or settle_s < 0:
        raise ValueError("a draw needs from < to, winners >= 0 and settle_s >= 0")
    numbers = [s.shard for s in shards]
    if numbers != sorted(set(numbers)):
        raise ValueError("statement shards must be unique and in ascending order")
    lines = [RULE, f"from {utc_iso_ms(start_ms)}", f"to {utc_iso_ms(end_ms)}",
             f"winners {winners}", f"settle_s {settle_s}"]
    lines += [
        f"shard {s.shard} eligible {s.eligible} tree_size {s.tree_size} note_sha256 {s.note_sha256.hex()}"
        for s in shards
    ]
    return "".join(f"{line}\n" for line in lines).encode("ascii")


def seed_of(statement: bytes) -> bytes:
    """The draw's randomness: SHA-256 of the statement."""
    return hashlib.sha256(statement).digest()


def candidate(seed: bytes, winner: int, counter: int) -> int:
    """Try `counter` for winner `winner`: SHA-256(seed || winner || counter), both 8-byte big endian."""
    block = seed + winner.to_bytes(8, "big") + counter.to_bytes(8, "big")
    return int.from_bytes(hashlib.sha256(block).digest(), "big")


def uniform_index(value: int, count: int, bits: int = DRAW_BITS) -> int | None:
    """`value mod count`, or None when `value` falls in the biased top (rejection sampling).

    Of the 2**bits values, the highest 2**bits mod count are rejected, so each index keeps
    exactly floor(2**bits / count) values: the accepted indexes are exactly uniform.
    """
    limit = (1 << bits) - (1 << bits) % count
    return value % count if value < limit else None


def draw(eligible_count: int, winners: int, seed: bytes) -> list[int]:
    """Winning indexes into the eligible list, in rank order, without duplicates.

    When `winners` >= `eligible_count`, every eligible receipt wins: [0, 1, ..., count - 1].
    Otherwise, for winner i = 0, 1, ..., winners - 1, try counter = 0, 1, 2, ...: the index is
    `uniform_index(candidate(seed, i, counter), eligible_count)`; a rejected value or an index
    already drawn moves on to the next counter.

    Raises:
        ValueError: a negative count or winner number.
        RuntimeError: a winner needed more than 64 * eligible_count tries (probability < e**-128).
    """
    if eligible_count < 0 or winners < 0:
        raise ValueError("eligible_count and winners must be >= 0")
    if winners >= eligible_count:
        return list(range(eligible_count))
    chosen: list[int] = []
    taken: set[int] = set()
    for i in range(winners):
        for counter in range(_TRIES_PER_ELIGIBLE * eligible_count):
            index = uniform_index(candidate(seed, i, counter), eligible_count)
            if index is not None and index not in taken:
                break
        else:
            raise RuntimeError(f"winner {i}: no free index after {counter + 1} tries")
        chosen.append(index)
        taken.add(index)
    return chosen


def locate(index: int, shards: list[ShardCommitment]) -> tuple[int, int]:
    """(shard, rank within that shard's eligible documents) of an index into the eligible list.

    Raises:
        IndexError: the index is outside the eligible list.
    """
    if index >= 0:
        for s in shards:
            if index < s.eligible:
                return s.shard, index
            index -= s.eligible
    raise IndexError("index outside the eligible list")
