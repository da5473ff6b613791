"""Ledger records and the hash chain of batch headers."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from posray.domain.canonical import canonical_bytes
from posray.domain.chain import (
    GENESIS_HASH,
    RECORD_VERSION,
    BatchHeader,
    ChainHead,
    advance,
    record_bytes,
    seal_batch,
)
from posray.domain.merkle import leaf_hash, root_hash
from posray.domain.transaction import utc_iso_ms
from tests.unit.conftest import ISSUED_AT_MS

CODE = "0123456789ABCDEFGHJK"


HEADER_CHANGES = [
    {"shard": 3},
    {"batch_no": 8},
    {"first_seq": 101},
    {"last_seq": 198},
    {"merkle_root": hashlib.sha256(b"other root").digest()},
    {"prev_hash": hashlib.sha256(b"other prev").digest()},
    {"recorded_at_ms": ISSUED_AT_MS + 1},
]


def documents(make_document) -> list[dict]:
    tricky = make_document()
    tricky["items"][0]["name"] = 'Brötchen "groß" \\ 😀 \u2028 \n tab\t'
    return [
        make_document(),
        make_document(((1000, 1, 0),) * 40, methods=("cash", "card", "mobile")),
        make_document(type="refund", refers_to="ABCD-EFGH-JKMN-PQRS-TV"),
        tricky,
    ]


def records(count: int) -> list[bytes]:
    return [b'{"n":%d}' % n for n in range(count)]


class TestRecordBytes:
    @pytest.mark.parametrize("accepted_at_ms", [0, ISSUED_AT_MS + 1, ISSUED_AT_MS + 999])
    def test_a_record_is_the_canonical_json_of_its_members(self, make_document, accepted_at_ms):
        for n, document in enumerate(documents(make_document)):
            record = record_bytes(3, 1000 + n, CODE, accepted_at_ms, canonical_bytes(document))
            expected = {
                "accepted_at": utc_iso_ms(accepted_at_ms),
                "code": CODE,
                "document": document,
                "seq": 1000 + n,
                "shard": 3,
                "v": RECORD_VERSION,
            }
            assert record == canonical_bytes(expected)
            assert record == canonical_bytes(json.loads(record))

    def test_a_record_embeds_the_document_bytes_unchanged(self, make_document):
        canonical = canonical_bytes(make_document())
        assert canonical in record_bytes(0, 1, CODE, 0, canonical)


class TestSealBatch:
    def test_the_merkle_root_covers_the_leaf_hashes_of_the_records(self):
        header, leaves = seal_batch(ChainHead.genesis(2), 1, records(11), ISSUED_AT_MS)
        assert leaves == [hashlib.sha256(b"\x00" + r).digest() for r in records(11)]
        assert header.merkle_root == root_hash([leaf_hash(r) for r in records(11)])

    def test_the_first_batch_links_to_the_all_zero_genesis_hash(self):
        head = ChainHead.genesis(5)
        header, _ = seal_batch(head, 1, records(3), ISSUED_AT_MS)
        assert GENESIS_HASH == bytes(32)
        assert (head.header_hash, head.batch_no, head.last_seq) == (bytes(32), -1, 0)
        assert (header.prev_hash, header.batch_no, header.shard) == (bytes(32), 0, 5)

    def test_the_header_spans_the_records_sequence_numbers(self):
        header, _ = seal_batch(ChainHead.genesis(0), 41, records(10), ISSUED_AT_MS)
        assert (header.first_seq, header.last_seq, header.size) == (41, 50, 10)

    def test_advance_links_the_next_batch_to_the_previous_header(self):
        head = ChainHead.genesis(1)
        first, _ = seal_batch(head, 1, records(4), ISSUED_AT_MS)
        head = advance(head, first)
        assert (head.shard, head.batch_no, head.last_seq) == (1, 0, 4)
        assert head.header_hash == first.hash()
        second, _ = seal_batch(head, head.last_seq + 1, records(2), ISSUED_AT_MS + 200)
        assert second.prev_hash == first.hash()
        assert (second.batch_no, second.first_seq, second.last_seq) == (1, 5, 6)
        assert advance(head, second).header_hash == second.hash() != first.hash()

    def test_a_changed_record_changes_the_root(self):
        header, _ = seal_batch(ChainHead.genesis(0), 1, records(6), 0)
        tampered = records(6)
        tampered[4] = b'{"n":40}'
        assert seal_batch(ChainHead.genesis(0), 1, tampered, 0)[0].merkle_root != header.merkle_root


class TestHeaderHash:
    HEADER = BatchHeader(
        shard=2,
        batch_no=7,
        first_seq=100,
        last_seq=199,
        merkle_root=hashlib.sha256(b"root").digest(),
        prev_hash=hashlib.sha256(b"prev").digest(),
        recorded_at_ms=ISSUED_AT_MS,
    )

    def test_the_header_hash_is_sha256_of_its_canonical_json(self):
        body = json.loads(self.HEADER.to_bytes())
        assert body == {
            "batch_no": 7,
            "first_seq": 100,
            "last_seq": 199,
            "merkle_root": hashlib.sha256(b"root").hexdigest(),
            "prev_hash": hashlib.sha256(b"prev").hexdigest(),
            "recorded_at": "2026-11-26T09:15:00.000Z",
            "shard": 2,
            "v": RECORD_VERSION,
        }
        assert self.HEADER.to_bytes() == canonical_bytes(body)
        assert self.HEADER.hash() == hashlib.sha256(self.HEADER.to_bytes()).digest()

    @pytest.mark.parametrize("change", HEADER_CHANGES)
    def test_changing_any_field_changes_the_hash(self, change):
        assert dataclasses.replace(self.HEADER, **change).hash() != self.HEADER.hash()

    def test_the_change_cases_cover_every_header_field(self):
        changed = {name for change in HEADER_CHANGES for name in change}
        assert changed == {f.name for f in dataclasses.fields(BatchHeader)}
