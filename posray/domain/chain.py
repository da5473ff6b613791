"""Ledger records (the Merkle leaves) and hash-chained batch headers.

A record binds a document to where and when posray accepted it; a batch header binds a
run of consecutive records (by their RFC 6962 Merkle root) to the previous batch header of
the same shard, so changing any record or header breaks every later link.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from posray.domain.canonical import canonical_bytes
from posray.domain.codes import CodeKey, legacy_code, make_code
from posray.domain.merkle import leaf_hash, root_hash
from posray.domain.transaction import document_hash, utc_iso_ms

GENESIS_HASH = bytes(32)
# Version 2: the record's code binds the document (posray.domain.codes); version 1 codes bound
# only (shard, seq). The record's layout is the same in both.
RECORD_VERSION = 2
RECORD_VERSIONS = (1, 2)


def record_bytes(shard: int, seq: int, code: str, accepted_at_ms: int, canonical: bytes) -> bytes:
    """Canonical JSON of a ledger record, built around the already canonical document.

    Equal to canonical_bytes({"accepted_at", "code", "document", "seq", "shard", "v"}):
    the keys are written in RFC 8785 order, so no re-parse of the document is needed.
    """
    return b'{"accepted_at":"%s","code":"%s","document":%s,"seq":%d,"shard":%d,"v":%d}' % (
        utc_iso_ms(accepted_at_ms).encode(),
        code.encode(),
        canonical,
        seq,
        shard,
        RECORD_VERSION,
    )


def record_code(key: CodeKey, shard: int, seq: int, record: bytes) -> str:
    """The code a stored record must carry: version 2 binds its document, version 1 the place only."""
    if record.endswith(b',"v":1}'):
        return legacy_code(key, shard, seq)
    return make_code(key, shard, seq, document_hash(record_document(record)))


def record_document(record: bytes) -> bytes:
    """The canonical document inside a record, byte for byte (as `record_bytes` placed it)."""
    return record[record.index(b'"document":') + 11 : record.rindex(b',"seq":')]


@dataclass(frozen=True, slots=True)
class BatchHeader:
    """One recorded batch of a shard; `prev_hash` is the previous header's hash."""

    shard: int
    batch_no: int
    first_seq: int
    last_seq: int
    merkle_root: bytes
    prev_hash: bytes
    recorded_at_ms: int

    @property
    def size(self) -> int:
        return self.last_seq - self.first_seq + 1

    def to_bytes(self) -> bytes:
        return canonical_bytes(
            {
                "batch_no": self.batch_no,
                "first_seq": self.first_seq,
                "last_seq": self.last_seq,
                "merkle_root": self.merkle_root.hex(),
                "prev_hash": self.prev_hash.hex(),
                "recorded_at": utc_iso_ms(self.recorded_at_ms),
                "shard": self.shard,
                "v": RECORD_VERSION,
            }
        )

    def hash(self) -> bytes:
        return hashlib.sha256(self.to_bytes()).digest()


@dataclass(frozen=True, slots=True)
class ChainHead:
    """Where a shard's ledger stands: the last batch and the last recorded sequence."""

    shard: int
    batch_no: int
    last_seq: int
    header_hash: bytes

    @classmethod
    def genesis(cls, shard: int) -> "ChainHead":
        return cls(shard=shard, batch_no=-1, last_seq=0, header_hash=GENESIS_HASH)


def seal_batch(
    head: ChainHead, first_seq: int, records: list[bytes], recorded_at_ms: int
) -> tuple[BatchHeader, list[bytes]]:
    """Build the next batch header over `records`; return it with the records' leaf hashes."""
    leaves = [leaf_hash(r) for r in records]
    header = BatchHeader(
        shard=head.shard,
        batch_no=head.batch_no + 1,
        first_seq=first_seq,
        last_seq=first_seq + len(records) - 1,
        merkle_root=root_hash(leaves),
        prev_hash=head.header_hash,
        recorded_at_ms=recorded_at_ms,
    )
    return header, leaves


CHAIN_EXTENSION = "posray-chain"


def chain_extension(batch_no: int, header_hash: bytes) -> str:
    """Checkpoint extension line binding the signed tree head to the batch-header chain head.

    "posray-chain <last batch number> <base64 header hash>": with it, the operator's signature
    covers the hash chain too, so rewriting and rehashing batch headers is detected.
    """
    return f"{CHAIN_EXTENSION} {batch_no} {base64.b64encode(header_hash).decode()}"


def parse_chain_extension(extensions: tuple[str, ...]) -> tuple[int, bytes] | None:
    """(batch number, header hash) from a checkpoint's extension lines, or None when absent."""
    for line in extensions:
        parts = line.split(" ")
        if len(parts) == 3 and parts[0] == CHAIN_EXTENSION and parts[1].isdigit():
            try:
                return int(parts[1]), base64.b64decode(parts[2], validate=True)
            except ValueError:
                return None
    return None


def advance(head: ChainHead, header: BatchHeader) -> ChainHead:
    """The chain head after `header` has been recorded."""
    return ChainHead(head.shard, header.batch_no, header.last_seq, header.hash())
