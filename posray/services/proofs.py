"""Use cases of the transparency logs: tree heads, inclusion and consistency proofs.

Each shard's recorded documents, in sequence order, are the leaves of an append-only RFC 6962
tree (posray.domain.tlog). Proofs are computed from the stored subtree hashes with one query.
"""

from __future__ import annotations

import base64

from posray.domain import tlog
from posray.domain.cosignature import with_signatures
from posray.domain.errors import AuditDivergence, InvalidRequest, NotFound
from posray.domain.note import NoteSigner
from posray.services.ports import Ledger


def _computed(shard: int, compute):
    try:
        return compute()
    except KeyError as e:
        raise AuditDivergence(f"shard {shard}: stored log hash {e.args[0]} is missing; run `posray audit`") from None


async def tree_root(ledger: Ledger, shard: int, size: int) -> bytes:
    """Root hash of the first `size` leaves of `shard`'s log."""
    keys = tlog.range_keys(0, size)
    stored = await ledger.stored_hashes(shard, keys)
    return _computed(shard, lambda: tlog.range_hash(0, size, stored))


async def published_checkpoint(ledger: Ledger, shard: int, tree_size: int | None = None,
                               cosigned_min: int = 0) -> tuple[int, bytes, str] | None:
    """(size, root, note) of the checkpoint posray publishes: the latest one with at least
    `cosigned_min` witness cosignatures (or the one at `tree_size`), the witnesses' cosignature
    lines appended to the log's signed note."""
    found = await ledger.checkpoint(shard, tree_size, cosigned_min)
    if found is None:
        return None
    size, root, note = found
    return size, root, with_signatures(note, await ledger.cosignatures(shard, size))


async def inclusion(ledger: Ledger, shard: int, seq: int, tree_size: int | None = None,
                    cosigned_min: int = 0, leaves: dict[tuple[int, int], bytes] | None = None) -> dict:
    """Inclusion proof of document `seq` against the latest published checkpoint or a given tree size.

    Args:
        leaves: leaf hashes by (0, index) the ledger may no longer hold (a detached day's, read
            back from the tiles archive); the stored ones win. With them, the root is compared
            with the checkpoint's before the proof is served.

    Raises:
        AuditDivergence: with `leaves`, the proof's root is not the checkpoint's.
        NotFound: no checkpoint covers the document yet, or no such tree size.
        InvalidRequest: the tree size does not contain the document (400).
    """
    checkpoint = await published_checkpoint(ledger, shard, tree_size, cosigned_min)
    if tree_size is None and (checkpoint is None or checkpoint[0] < seq):
        raise NotFound("no checkpoint covers this receipt yet; try again in a few seconds")
    if tree_size is not None and tree_size < seq:
        raise InvalidRequest("tree_size", f"must be at least {seq} to contain this receipt")
    size = checkpoint[0] if tree_size is None else tree_size
    if size > (await ledger.head(shard)).last_seq:
        raise NotFound(f"shard {shard}'s log has fewer than {size} leaves")
    ranges = tlog.inclusion_ranges(seq - 1, size)
    keys = tlog.proof_keys(ranges) | tlog.range_keys(0, size)
    stored = await ledger.stored_hashes(shard, keys)
    if leaves:
        stored = {**{k: leaves[k] for k in keys if k in leaves}, **stored}
    root = _computed(shard, lambda: tlog.range_hash(0, size, stored))
    if leaves and checkpoint is not None and checkpoint[0] == size and checkpoint[1] != root:
        # Only archived leaves are checked here: a tampered ledger is the customer's proof to catch.
        raise AuditDivergence(f"shard {shard}: with leaves from the tiles archive the log gives another root than "
                              f"the checkpoint at size {size}; run `posray audit`")
    return {
        "shard": shard,
        "leaf_index": seq - 1,
        "tree_size": size,
        "root_hash": root.hex(),
        "inclusion_proof": [h.hex() for h in _computed(shard, lambda: tlog.proof_hashes(ranges, stored))],
        "checkpoint": checkpoint[2] if checkpoint and checkpoint[0] == size else None,
    }


async def consistency(ledger: Ledger, shard: int, first: int, second: int) -> dict:
    """Consistency proof between two sizes of `shard`'s log (RFC 6962 §2.1.2).

    Raises:
        InvalidRequest: sizes out of order (400).
        NotFound: the log is smaller than `second`.
    """
    if not 0 < first <= second:
        raise InvalidRequest("first", "must satisfy 0 < first <= second")
    if second > (await ledger.head(shard)).last_seq:
        raise NotFound(f"shard {shard}'s log has fewer than {second} leaves")
    ranges = tlog.consistency_ranges(first, second)
    stored = await ledger.stored_hashes(shard, tlog.proof_keys(ranges))
    return {
        "shard": shard,
        "first": first,
        "second": second,
        "consistency_proof": [h.hex() for h in _computed(shard, lambda: tlog.proof_hashes(ranges, stored))],
    }


async def checkpoint_note(ledger: Ledger, shard: int, tree_size: int | None = None,
                          cosigned_min: int = 0) -> str:
    """The signed note of `shard`'s latest published checkpoint (see `published_checkpoint`), or of
    the one at `tree_size`, with the witnesses' cosignatures.

    Raises:
        NotFound: no checkpoint of this size (or none yet).
    """
    found = await published_checkpoint(ledger, shard, tree_size, cosigned_min)
    if found is None:
        raise NotFound("no checkpoint of this size (or none yet)")
    return found[2]


def log_key(key_name: str, signing_seed: bytes, origins: list[str]) -> dict:
    """The logs' verifier key, as witnesses and verifiers fetch it."""
    signer = NoteSigner(key_name, signing_seed)
    return {
        "key_name": signer.name,
        "verifier_key": signer.verifier_key(),
        "public_key_ed25519": base64.b64encode(signer.public_key).decode(),
        "origins": origins,
    }
