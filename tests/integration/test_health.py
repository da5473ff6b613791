"""What operators watch, read from real Redis and PostgreSQL: backlogs, lag, checkpoint age."""

from __future__ import annotations

import asyncio

from posray.domain.keys import terminal_key
from posray.services.recording import ShardRecorder
from tests.documents import make_document, submission_of
from tests.integration.support import SHARD_COUNT, backends, fresh_shard, fresh_terminal, now_ms


def signer(size, root, extensions) -> str:
    return f"note {size}"


async def capture(b, keys, terminal_id: str, shard: int, counters, accepted_at_ms: int) -> None:
    key = terminal_key(keys.terminal_master, terminal_id, 1)
    subs = [submission_of(make_document(terminal_id, c, key), SHARD_COUNT) for c in counters]
    await b.append(shard, accepted_at_ms, subs)


class TestStreamFigures:
    def test_backlogs_and_the_oldest_pending_acknowledgement_are_read_per_shard(
        self, redis_url, schema_dsn, key_prefix, keys
    ):
        terminal_id, shard = fresh_terminal()
        empty = fresh_shard()

        async def main():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                await b.stream.ping()
                await capture(b, keys, terminal_id, shard, range(1, 4), 1_700_000_000_000)
                await capture(b, keys, terminal_id, shard, range(4, 6), 1_700_000_005_000)
                return (await b.stream.backlogs([shard, empty]), await b.stream.oldest_accepted_ms(shard),
                        await b.stream.oldest_accepted_ms(empty))

        backlogs, oldest, none = asyncio.run(main())
        assert backlogs == {shard: 5, empty: 0}
        assert (oldest, none) == (1_700_000_000_000, None)


class TestCheckpointFigures:
    def test_latest_checkpoints_read_size_and_signing_time_or_the_first_batch_time(
        self, redis_url, schema_dsn, key_prefix, keys
    ):
        terminal_id, shard = fresh_terminal()
        untouched = fresh_shard()

        async def main():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                await b.ledger.ping()
                await capture(b, keys, terminal_id, shard, range(1, 11), now_ms())
                recorder = ShardRecorder(shard, b.stream, b.ledger, keys.code, 1000, wait_ms=5,
                                         sign=signer, checkpoint_interval_s=3600)
                await recorder.resync()
                await recorder.record(await b.stream.read(shard, 1000, None, pending=False))
                unsigned = await b.ledger.latest_checkpoints([shard, untouched])
                first_batch_ms = (await b.batch_rows(shard))[0]["recorded_at"].timestamp() * 1000
                age_unsigned = recorder.checkpoint_age_s(now_ms() + 5000)
                await recorder.checkpoint_if_due(force=True)
                signed = await b.ledger.latest_checkpoints([shard])
                return unsigned, first_batch_ms, age_unsigned, signed, recorder.checkpoint_age_s(now_ms())

        unsigned, first_batch_ms, age_unsigned, signed, age_signed = asyncio.run(main())
        assert unsigned[untouched] == (0, None)
        assert unsigned[shard][0] == 0 and abs(unsigned[shard][1] - first_batch_ms) <= 1
        assert 5 <= age_unsigned < 10
        assert signed[shard][0] == 10 and abs(signed[shard][1] - now_ms()) < 10_000
        assert age_signed == 0.0

    def test_a_restarted_recorder_ages_unsigned_leaves_from_the_stored_checkpoint(
        self, redis_url, schema_dsn, key_prefix, keys
    ):
        terminal_id, shard = fresh_terminal()

        async def main():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                await capture(b, keys, terminal_id, shard, range(1, 6), now_ms())
                first = ShardRecorder(shard, b.stream, b.ledger, keys.code, 1000, wait_ms=5,
                                      sign=signer, checkpoint_interval_s=0)
                await first.step()
                await capture(b, keys, terminal_id, shard, range(6, 9), now_ms())
                second = ShardRecorder(shard, b.stream, b.ledger, keys.code, 1000, wait_ms=5,
                                       sign=signer, checkpoint_interval_s=3600)
                await second.resync()
                await second.record(await b.stream.read(shard, 1000, None, pending=False))
                signed_size, signed_ms = (await b.ledger.latest_checkpoints([shard]))[shard]
                return signed_size, second.checkpoint_age_s(signed_ms + 7000)

        signed_size, age = asyncio.run(main())
        assert (signed_size, age) == (5, 7.0)


class TestObservingBatches:
    def test_every_committed_batch_is_reported_with_its_size_and_lag(
        self, redis_url, schema_dsn, key_prefix, keys
    ):
        terminal_id, shard = fresh_terminal()
        seen = []

        async def main():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                await capture(b, keys, terminal_id, shard, range(1, 8), now_ms() - 2000)
                recorder = ShardRecorder(shard, b.stream, b.ledger, keys.code, 1000, wait_ms=5,
                                         observe=seen.append)
                await recorder.step()

        asyncio.run(main())
        (batch,) = seen
        assert (batch.shard, batch.documents) == (shard, 7)
        assert 2000 <= batch.lag_ms_max < 12_000
