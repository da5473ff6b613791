"""Use case record (ShardRecorder) on the in-memory capture store and ledger (no servers)."""

from __future__ import annotations

import asyncio

import pytest

from posray.domain.chain import GENESIS_HASH, chain_extension, record_document
from posray.domain.errors import LedgerConflict, StreamGap
from posray.domain.fence import Fence
from posray.domain.merkle import root_hash
from posray.domain.note import Checkpoint, NoteSigner, NoteVerifier, open_checkpoint, sign_checkpoint
from posray.domain.transaction import document_hash
from posray.services.capture import append_batch
from posray.services.recording import BatchRecorded
from tests.unit.memory_world import KEYS, World, doc, docs, now_ms

TERMINAL = "T-rec"
SHARD = doc(TERMINAL, 1).shard


async def _capture(w: World, counters, call_size: int = 50) -> dict[int, bytes]:
    """Capture in calls of `call_size` (one stream entry each); canonical documents by seq."""
    subs, by_seq = docs(TERMINAL, counters), {}
    for i in range(0, len(subs), call_size):
        for sub, out in zip(subs[i:i + call_size], await append_batch(w.capture, w.fences, KEYS, SHARD,
                                                                      subs[i:i + call_size])):
            by_seq[out.seq] = sub.canonical
    return by_seq


def _assert_chained(w: World, captured: dict[int, bytes]) -> None:
    """Every captured document recorded once, as sent, in batches chained from genesis."""
    entries, batches = w.db.entries[SHARD], w.db.batches[SHARD]
    assert sorted(entries) == sorted(captured) == list(range(1, len(captured) + 1))
    assert {seq: record_document(e.row.record) for seq, e in entries.items()} == captured
    prev, next_seq = GENESIS_HASH, 1
    for number in range(len(batches)):
        header, header_hash = batches[number]
        assert (header.batch_no, header.first_seq, header.prev_hash) == (number, next_seq, prev)
        leaves = [entries[s].leaf_hash for s in range(header.first_seq, header.last_seq + 1)]
        assert header.merkle_root == root_hash(leaves) and header_hash == header.hash()
        prev, next_seq = header_hash, header.last_seq + 1


class CrashBeforeAck:
    """The stream, except that the process 'dies' when it would acknowledge."""

    def __init__(self, stream):
        self._stream = stream

    def __getattr__(self, name):
        return getattr(self._stream, name)

    async def acknowledge(self, shard, entry_ids, recorded_height):
        raise ConnectionAbortedError("the writer died")


class TestRecord:
    def test_a_backlog_is_recorded_once_in_bounded_chained_batches_and_the_stream_emptied(self):
        w = World()
        seen: list[BatchRecorded] = []

        async def main():
            captured = await _capture(w, range(1, 101), call_size=10)
            recorder = w.recorder(SHARD, batch_max=25, observe=seen.append)
            steps = []
            while await w.stream.backlog(SHARD) and len(steps) < 20:
                steps.append(await recorder.step())
            return captured, steps, recorder.head

        captured, steps, head = asyncio.run(main())
        assert sum(steps) == 100 and max(steps) <= 25
        _assert_chained(w, captured)
        assert (head.last_seq, head.batch_no) == (100, len(w.db.batches[SHARD]) - 1)
        assert (w.store.documents(SHARD), w.store.delivered_unacknowledged(SHARD)) == (0, 0)
        assert sum(b.documents for b in seen) == 100 and {b.shard for b in seen} == {SHARD}

    def test_entries_redelivered_after_a_crash_before_the_ack_are_only_acknowledged(self):
        w = World()

        async def main():
            captured = await _capture(w, range(1, 31))
            doomed = w.recorder(SHARD, stream=CrashBeforeAck(w.stream))
            with pytest.raises(ConnectionAbortedError):
                await doomed.step()
            left = (w.store.documents(SHARD), w.store.delivered_unacknowledged(SHARD))
            captured |= await _capture(w, range(31, 41))
            survivor = w.recorder(SHARD)  # a restarted writer: resyncs from the ledger
            first = await survivor.step()
            while await w.stream.backlog(SHARD):
                await survivor.step()
            return captured, left, first

        captured, left, first = asyncio.run(main())
        assert left == (30, 1)
        assert first == 0, "the redelivered entry is acknowledged, not written again"
        assert [(h.first_seq, h.last_seq) for h, _ in w.db.batches[SHARD].values()] == [(1, 30), (31, 40)]
        _assert_chained(w, captured)
        assert (w.store.documents(SHARD), w.store.delivered_unacknowledged(SHARD)) == (0, 0)

    def test_a_missing_sequence_stops_recording_before_the_gap_for_good(self):
        w = World()

        async def main():
            await _capture(w, range(1, 21), call_size=1)
            assert w.store.delete_entry(SHARD, 12)
            recorder = w.recorder(SHARD, batch_max=5)
            assert [await recorder.step(), await recorder.step()] == [5, 5]
            with pytest.raises(StreamGap, match="sequence 12 is missing"):
                await recorder.step()
            with pytest.raises(StreamGap):
                await recorder.step()  # still stuck: it never skips the hole
            await recorder.resync()  # as the writer's loop does after a failure
            with pytest.raises(StreamGap, match="sequence 12 is missing"):
                await recorder.step()
            with pytest.raises(StreamGap):
                await w.record_all(SHARD)

        asyncio.run(main())
        assert sorted(w.db.entries[SHARD]) == list(range(1, 11))


class TestConflicts:
    async def _reissue_seq_1(self, w: World) -> bytes:
        """Record seq 1, then let a store that lost everything hand out seq 1 to another document."""
        await _capture(w, [1])
        await w.record_all(SHARD)
        w.store.lose_shard(SHARD)
        foreign = Fence(SHARD, 99, 0, 100)
        assert await w.capture.install(SHARD, 0, foreign, 0)
        other = doc(TERMINAL, 1, seed="another sale")
        await w.capture.append(SHARD, now_ms(), [other], foreign)
        return other.canonical

    def test_another_document_at_a_recorded_place_stops_the_shard_unfences_and_records_the_conflict(self):
        w = World()

        async def main():
            other = await self._reissue_seq_1(w)
            recorder = w.recorder(SHARD)
            with pytest.raises(LedgerConflict) as stopped:
                await recorder.step()
            unfenced = (await w.capture.state(SHARD)).epoch
            assert await w.capture.install(SHARD, (await w.capture.state(SHARD)).counter, Fence(SHARD, 100, 1, 100), 1)
            with pytest.raises(LedgerConflict):
                await w.recorder(SHARD).step()  # stopped still, but capture is not unfenced again
            return other, stopped.value, unfenced, await w.fence_ledger.conflicts(SHARD)

        other, stopped, unfenced, conflicts = asyncio.run(main())
        assert (stopped.shard, stopped.seqs) == (SHARD, (1,))
        assert unfenced is None
        assert (w.store.shard(SHARD).fence or "").startswith("100:")
        assert [(c.seq, c.document_hash, c.document, c.released) for c in conflicts] == [
            (1, document_hash(other), other, False)]
        assert len(w.db.entries[SHARD]) == 1 and w.store.delivered_unacknowledged(SHARD) == 1

    def test_released_conflicts_are_acknowledged_as_lost_and_recording_goes_on(self):
        w = World()

        async def main():
            await self._reissue_seq_1(w)
            with pytest.raises(LedgerConflict):
                await w.recorder(SHARD).step()
            released = await w.fence_ledger.release_conflicts(SHARD, "operator")
            recorder = w.recorder(SHARD)
            acknowledged = await recorder.step()
            later = await append_batch(w.capture, w.fences, KEYS, SHARD, [doc(TERMINAL, 2)])
            while await w.stream.backlog(SHARD):
                await recorder.step()
            return released, acknowledged, later

        released, acknowledged, later = asyncio.run(main())
        assert [seq for seq, _ in released] == [1]
        assert acknowledged == 0
        assert later[0].seq == 2 and sorted(w.db.entries[SHARD]) == [1, 2]
        assert record_document(w.db.entries[SHARD][1].row.record) == doc(TERMINAL, 1).canonical
        assert w.store.delivered_unacknowledged(SHARD) == 0


class TestCheckpoints:
    def test_a_checkpoint_of_the_grown_log_is_signed_with_the_chain_head(self):
        w = World()
        signer = NoteSigner("posray.test/log", KEYS.signing_seed)
        origin = f"posray.test/log/{SHARD}"

        def sign(size, root, extensions):
            return sign_checkpoint(signer, Checkpoint(origin, size, root, extensions))

        async def main():
            await _capture(w, range(1, 21), call_size=7)
            recorder = w.recorder(SHARD, sign=sign, checkpoint_interval_s=0)
            while await w.stream.backlog(SHARD):
                await recorder.step()
            unchanged = await recorder.checkpoint_if_due()
            return recorder.head, await w.ledger.checkpoint(SHARD), unchanged, recorder.checkpoint_age_s(now_ms())

        head, (size, root, note), unchanged, age_s = asyncio.run(main())
        checkpoint = open_checkpoint(NoteVerifier(signer.name, signer.public_key), note, origin)
        leaves = [w.db.entries[SHARD][s].leaf_hash for s in range(1, 21)]
        assert (size, checkpoint.tree_size) == (20, 20)
        assert root == checkpoint.root_hash == root_hash(leaves)
        assert checkpoint.extensions == (chain_extension(head.batch_no, head.header_hash),)
        assert unchanged is False, "nothing grew since: no second checkpoint"
        assert age_s == 0
