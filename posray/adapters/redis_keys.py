"""Redis key names of posray; the {shard} hash tag keeps one shard's keys in one slot."""

from __future__ import annotations


def shard_tag(prefix: str, shard: int) -> str:
    return f"{prefix}:{{{shard}}}"


def seq_key(prefix: str, shard: int) -> str:
    return f"{shard_tag(prefix, shard)}:seq"


def stream_key(prefix: str, shard: int) -> str:
    return f"{shard_tag(prefix, shard)}:stream"


def recorded_key(prefix: str, shard: int) -> str:
    """The ledger's recorded height as last told to Redis (for the backlog bound)."""
    return f"{shard_tag(prefix, shard)}:recorded"


def fence_key(prefix: str, shard: int) -> str:
    """The shard's fence "epoch:reserved_seq", set from the ledger (posray.domain.fence)."""
    return f"{shard_tag(prefix, shard)}:fence"


def idem_key(prefix: str, shard: int, terminal_id: str, counter: int) -> str:
    return f"{shard_tag(prefix, shard)}:idem:{terminal_id}:{counter}"


LEDGER_GROUP = "ledger"
