"""The Ledger port: PgLedger and MemoryLedger under the same assertions."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from posray.domain import tlog
from posray.domain.chain import ChainHead, advance
from posray.domain.errors import LedgerRace
from posray.domain.merkle import root_hash
from tests.contract.support import append, row, sealed, subs
from tests.integration.support import fresh_terminal

T0 = 1_700_000_000_000


class TestEmpty:
    def test_a_shard_never_recorded_is_at_genesis_with_nothing_to_read(self, stores):
        terminal_id, shard = fresh_terminal()

        async def main():
            async with stores() as s:
                return (await s.ledger.head(shard), shard in await s.ledger.heights(),
                        await s.ledger.latest_checkpoints([shard]), await s.ledger.checkpoint(shard),
                        await s.ledger.entry(shard, 1), await s.ledger.records(shard, [1, 2]),
                        await s.ledger.batch_leaves(shard, 0), await s.ledger.find_by_fields(terminal_id, 1),
                        await s.ledger.stored_hashes(shard, {(0, 0), (4, 0)}))

        assert asyncio.run(main()) == (ChainHead.genesis(shard), False, {shard: (0, None)}, None, None, {}, [],
                                       [], {})


class TestAppend:
    def test_batches_advance_the_head_and_their_entries_read_back(self, stores):
        terminal_id, shard = fresh_terminal()
        docs = subs(terminal_id, range(1, 21))

        async def main():
            async with stores() as s:
                await s.ledger.ping()
                head = await s.ledger.head(shard)
                first, rows1, leaves1 = await append(s.ledger, head, docs[:12], T0)
                second, rows2, leaves2 = await append(s.ledger, advance(head, first), docs[12:], T0 + 1)
                return (first, second, rows1 + rows2, leaves1 + leaves2, await s.ledger.head(shard),
                        (await s.ledger.heights())[shard], await s.ledger.entry(shard, 14),
                        await s.ledger.records(shard, [3, 14, 99]), await s.ledger.batch_leaves(shard, 1),
                        await s.ledger.find_by_fields(terminal_id, 14),
                        await s.ledger.stored_hashes(shard, tlog.range_keys(0, 20)))

        first, second, rows, leaves, head, height, entry, records, batch_leaves, found, stored = asyncio.run(main())
        assert head == ChainHead(shard, 1, 20, second.hash())
        assert height == (2, 20)
        assert (entry.shard, entry.seq, entry.batch_no, entry.leaf_index, entry.merchant_id) == (shard, 14, 1, 1, None)
        assert (entry.record, entry.leaf_hash, entry.header, entry.header_hash) == (
            rows[13].record, leaves[13], second, second.hash())
        assert records == {3: rows[2].record, 14: rows[13].record}
        assert batch_leaves == leaves[12:]
        issued = datetime.fromtimestamp(rows[13].issued_at_ms / 1000, tz=timezone.utc)
        assert found == [(shard, 14, rows[13].total_minor, issued)]
        assert tlog.range_hash(0, 20, stored) == root_hash(leaves)

    def test_a_batch_number_already_recorded_is_refused_and_nothing_of_it_is_written(self, stores):
        terminal_id, shard = fresh_terminal()
        docs = subs(terminal_id, range(1, 6))

        async def main():
            async with stores() as s:
                head = await s.ledger.head(shard)
                await append(s.ledger, head, docs[:2], T0)
                rows = [row(shard, 3 + i, d, T0) for i, d in enumerate(docs[2:])]
                header, leaves, nodes = await sealed(s.ledger, head, rows, T0 + 1)  # batch 0 again
                with pytest.raises(LedgerRace, match="already recorded"):
                    await s.ledger.append_batch(header, rows, leaves, nodes)
                return await s.ledger.head(shard), await s.ledger.records(shard, [1, 2, 3, 4, 5])

        head, records = asyncio.run(main())
        assert (head.batch_no, head.last_seq) == (0, 2)
        assert sorted(records) == [1, 2]

    def test_a_sequence_already_recorded_is_refused_under_a_new_batch_number(self, stores):
        terminal_id, shard = fresh_terminal()
        docs = subs(terminal_id, range(1, 5))

        async def main():
            async with stores() as s:
                head = await s.ledger.head(shard)
                first, rows, _ = await append(s.ledger, head, docs[:2], T0)
                overlapping = [row(shard, 2 + i, d, T0) for i, d in enumerate(docs[2:])]  # seqs 2, 3
                header, leaves, _ = await sealed(s.ledger, ChainHead(shard, 0, 1, first.hash()), overlapping, T0 + 1)
                with pytest.raises(LedgerRace, match="already recorded"):
                    await s.ledger.append_batch(header, overlapping, leaves)
                return (await s.ledger.head(shard), await s.ledger.records(shard, [1, 2, 3]), rows,
                        await s.ledger.batch_leaves(shard, 1))

        head, records, rows, leaves = asyncio.run(main())
        assert (head.batch_no, head.last_seq) == (0, 2)
        assert records == {1: rows[0].record, 2: rows[1].record}
        assert leaves == []


class TestCheckpoints:
    def test_checkpoints_are_stored_once_per_size_and_the_latest_is_found(self, stores):
        terminal_id, shard = fresh_terminal()

        async def main():
            async with stores() as s:
                await append(s.ledger, await s.ledger.head(shard), subs(terminal_id, range(1, 4)), T0)
                unsigned = await s.ledger.latest_checkpoints([shard])
                await s.ledger.add_checkpoint(shard, 2, b"r" * 32, "note 2", T0 + 10)
                await s.ledger.add_checkpoint(shard, 3, b"s" * 32, "note 3", T0 + 20)
                await s.ledger.add_checkpoint(shard, 3, b"t" * 32, "another note 3", T0 + 30)
                return (unsigned, await s.ledger.latest_checkpoints([shard]), await s.ledger.checkpoint(shard),
                        await s.ledger.checkpoint(shard, 2), await s.ledger.checkpoint(shard, 1))

        unsigned, signed, latest, at_two, at_one = asyncio.run(main())
        assert unsigned == {shard: (0, T0)}  # never signed: waiting since the first batch
        assert signed == {shard: (3, T0 + 20)}
        assert latest == (3, b"s" * 32, "note 3")
        assert at_two == (2, b"r" * 32, "note 2")
        assert at_one is None


class TestCosignatures:
    def test_cosignatures_are_stored_once_per_witness_and_size_and_pick_the_published_checkpoint(self, stores):
        terminal_id, shard = fresh_terminal()

        async def main():
            async with stores() as s:
                await append(s.ledger, await s.ledger.head(shard), subs(terminal_id, range(1, 4)), T0)
                for size in (1, 2, 3):
                    await s.ledger.add_checkpoint(shard, size, bytes([size]) * 32, f"note {size}", T0)
                await s.ledger.add_cosignature(shard, 1, "w1+00000001", "line 1 by w1\n", T0)
                await s.ledger.add_cosignature(shard, 1, "w2+00000002", "line 1 by w2\n", T0)
                await s.ledger.add_cosignature(shard, 2, "w1+00000001", "line 2 by w1\n", T0)
                await s.ledger.add_cosignature(shard, 2, "w1+00000001", "another line\n", T0)  # ignored
                return ([await s.ledger.checkpoint(shard, cosigned_min=k) for k in (0, 1, 2, 3)],
                        await s.ledger.cosignatures(shard, 1), await s.ledger.cosignatures(shard, 2),
                        await s.ledger.cosignatures(shard, 3), await s.ledger.cosigned_size(shard, "w1+00000001"),
                        await s.ledger.cosigned_size(shard, "w2+00000002"), await s.ledger.cosigned_size(shard, "w3"))

        published, at_one, at_two, at_three, w1, w2, w3 = asyncio.run(main())
        assert [p and p[0] for p in published] == [3, 2, 1, None]
        assert at_one == ["line 1 by w1\n", "line 1 by w2\n"] and at_two == ["line 2 by w1\n"] and at_three == []
        assert (w1, w2, w3) == (2, 1, 0)


class TestRanges:
    def test_hash_and_record_ranges_read_in_order_up_to_the_first_missing(self, stores):
        terminal_id, shard = fresh_terminal()
        docs = subs(terminal_id, range(1, 301))

        async def main():
            async with stores() as s:
                head = await s.ledger.head(shard)
                first, rows1, leaves1 = await append(s.ledger, head, docs[:200], T0)
                _, rows2, leaves2 = await append(s.ledger, advance(head, first), docs[200:], T0 + 1)
                read = s.ledger.hash_range
                return (rows1 + rows2, leaves1 + leaves2,
                        [await read(shard, 0, 0, 256), await read(shard, 0, 256, 256), await read(shard, 0, 300, 5),
                         await read(shard, 4, 0, 256), await read(shard, 8, 0, 256), await read(shard, 8, 1, 1),
                         await read(shard, 0, 10, 3)],
                        [await s.ledger.record_range(shard, 1, 256), await s.ledger.record_range(shard, 257, 256),
                         await s.ledger.record_range(shard, 301, 2), await s.ledger.record_range(shard, 299, 5)])

        rows, leaves, hashes, records = asyncio.run(main())
        level0, level0_rest, beyond, level4, level8, level8_missing, middle = hashes
        assert level0 == leaves[:256] and level0_rest == leaves[256:] and beyond == [] and middle == leaves[10:13]
        assert level4 == [root_hash(leaves[i:i + 16]) for i in range(0, 288, 16)]
        assert level8 == [root_hash(leaves[:256])] and level8_missing == []
        assert records[0] == [r.record for r in rows[:256]] and records[1] == [r.record for r in rows[256:]]
        assert records[2] == [] and records[3] == [r.record for r in rows[298:]]
