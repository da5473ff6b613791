"""Which actor owns which logical shard, and the names actors are found by."""

from __future__ import annotations


def owned_shards(actor_index: int, actor_count: int, shard_count: int) -> list[int]:
    """Logical shards owned by actor `actor_index` of `actor_count` (round robin)."""
    return [s for s in range(shard_count) if s % actor_count == actor_index]


def owner_of(shard: int, actor_count: int) -> int:
    return shard % actor_count


def ingest_name(prefix: str, index: int) -> str:
    return f"{prefix}-ingest-{index}"


def ledger_name(prefix: str, index: int) -> str:
    return f"{prefix}-ledger-{index}"
