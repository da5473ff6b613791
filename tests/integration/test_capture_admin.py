"""When capture and the ledger disagree: conflicts, release, reconcile, rebind, offline loads (real servers).

No Ray: the capture service, the recorder and the CLI functions run in the test's process, as
the IngestShard, the LedgerWriter and the operator would run them.
"""

from __future__ import annotations

import asyncio
import json
from datetime import date

import pytest

from posray.adapters.pg import create_pool
from posray.adapters.pg_fences import PgFences
from posray.adapters.pg_ledger import PgLedger
from posray.adapters.redis_capture import RedisCapture, connect
from posray.adapters.redis_keys import fence_key
from posray.adapters.redis_stream import StreamEntry
from posray.services.loading import load_into_ledger
from posray.synthetic.generator import GeneratorConfig
from tooling.cli import main
from posray.domain.errors import LedgerConflict, LedgerLive, NotFenced, ReceiptLost
from posray.domain.keys import terminal_key
from posray.services.capture import append_batch
from posray.services.capture_admin import capture_status, rebind, release
from posray.services.fencing import ShardFences
from posray.services.lookup import by_code
from posray.services.recording import ShardRecorder
from posray.settings import Settings
from tests.conftest import _admin, private_database
from tests.documents import make_document, submission_of
from tests.integration.support import IDEMPOTENCY_TTL_S, SHARD_COUNT, backends, fresh_terminal, now_ms

SMALL_HISTORY = GeneratorConfig(seed=5, merchants=2, start=date(2026, 3, 2), days=2, documents=150, shard_count=4)


class _ForeignStream:
    """A writer that records documents from somewhere other than this capture store."""

    async def ensure_group(self, shard: int) -> None:
        return None

    async def acknowledge(self, shard: int, entry_ids, recorded_height: int) -> None:
        return None

    async def report_recorded(self, shard: int, recorded_height: int) -> None:
        return None


async def _foreign_record(ledger: PgLedger, code_key, shard: int, seq: int, canonical: bytes) -> None:
    """Another writer records `canonical` at (shard, seq), through the same ledger adapter."""
    writer = ShardRecorder(shard, _ForeignStream(), ledger, code_key, 1000, 0)
    await writer.resync()
    assert await writer.record([StreamEntry(b"%d-0" % seq, seq, now_ms(), (canonical,))]) == 1


def _submissions(keys, terminal_id: str, counters, seed=None):
    key = terminal_key(keys.terminal_master, terminal_id, 1)
    return [submission_of(make_document(terminal_id, c, key, seed=seed), SHARD_COUNT) for c in counters]


def _env(monkeypatch, tmp_path, redis_url: str, dsn: str, prefix: str, seed_file) -> None:
    """The operator's shell: posray's settings from POSRAY_* only, no `posray up` state."""
    monkeypatch.setenv("POSRAY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("POSRAY_REDIS_URL", redis_url)
    monkeypatch.setenv("POSRAY_PG_DSN", dsn)
    monkeypatch.setenv("POSRAY_KEY_PREFIX", prefix)
    monkeypatch.setenv("POSRAY_OPERATOR_SEED_FILE", str(seed_file))
    monkeypatch.setenv("POSRAY_SHARD_COUNT", "4")


async def _conflicted(b, keys, shard: int, terminal_id: str):
    """Capture counters 1..3 (seqs 1..3), let a foreign writer take seq 1, stop recording on it."""
    accepted = await append_batch(b.capture, b.fences, keys, shard, _submissions(keys, terminal_id, [1, 2, 3]))
    assert [a.seq for a in accepted] == [1, 2, 3]
    foreign = _submissions(keys, terminal_id, [90], seed="foreign")[0]
    await _foreign_record(b.ledger, keys.code, shard, 1, foreign.canonical)
    recorder = b.recorder(shard, keys.code)
    with pytest.raises(LedgerConflict) as stopped:
        await recorder.step()
    assert stopped.value.seqs == (1,)
    return accepted, recorder


class TestRelease:
    def test_a_released_conflict_stays_lost_and_recording_resumes(self, redis_url, schema_dsn, key_prefix, keys):
        terminal_id, shard = fresh_terminal()

        async def main_():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                accepted, recorder = await _conflicted(b, keys, shard, terminal_id)
                lookup = lambda code: by_code(b.ledger, b.capture, b.fence_ledger, keys.code, code)  # noqa: E731
                with pytest.raises(ReceiptLost):
                    await lookup(accepted[0].code)
                # Capture fenced itself again; a retry of the stopped shard does not unfence it again.
                await b.fences.refence(shard, b.fences.current(shard), "the store lost its fence")
                await recorder.resync()
                with pytest.raises(LedgerConflict):
                    await recorder.step()
                assert await b.redis.exists(fence_key(b.prefix, shard))
                status = {r.shard: r for r in await capture_status(b.fence_ledger, b.ledger, [shard])}[shard]
                assert status.conflicts_unreleased == (1,)

                released = await release(b.fence_ledger, shard, "test-operator")
                assert [seq for seq, _ in released] == [1]
                assert await release(b.fence_ledger, shard, "test-operator") == []
                await recorder.resync()  # what the LedgerWriter does after its back-off
                assert await recorder.step() == 2

                later = await append_batch(b.capture, b.fences, keys, shard, _submissions(keys, terminal_id, [4, 5]))
                assert [a.seq for a in later] == [4, 5]
                assert await recorder.step() == 2
                with pytest.raises(ReceiptLost):
                    await lookup(accepted[0].code)
                found = [await lookup(a.code) for a in (accepted[1], accepted[2], *later)]
                status = {r.shard: r for r in await capture_status(b.fence_ledger, b.ledger, [shard])}[shard]
                return found, later, status

        found, later, status = asyncio.run(main_())
        assert [r["status"] for r in found] == ["recorded"] * 4
        assert [r["seq"] for r in found] == [2, 3, 4, 5]
        assert found[-1]["code"] == later[-1].code
        assert (status.ledger_seq, status.conflicts_unreleased, status.conflicts_released) == (5, (), (1,))

    def test_the_release_command_prints_what_it_released(self, redis_url, schema_dsn, key_prefix, keys, seed_file,
                                                         monkeypatch, tmp_path, capsys):
        terminal_id, shard = fresh_terminal()

        async def conflict():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                await _conflicted(b, keys, shard, terminal_id)

        asyncio.run(conflict())
        _env(monkeypatch, tmp_path, redis_url, schema_dsn, key_prefix, seed_file)
        assert main(["capture", "release", str(shard), "--by", "alice"]) == 0
        out = capsys.readouterr().out
        assert f"shard {shard}: released 1 conflict(s) (by alice)" in out and "seq 1 " in out
        assert main(["capture", "status", "--shards", str(shard), "--json"]) == 0
        row = json.loads(capsys.readouterr().out)["shards"][0]
        assert (row["shard"], row["conflicts_unreleased"], row["conflicts_released"]) == (shard, [], [1])
        assert row["fence"]["store"] == f"{redis_url}#{key_prefix}"


class TestReconcile:
    def test_a_conflict_is_listed_and_the_reconciliation_exits_one(self, redis_url, schema_dsn, key_prefix, keys,
                                                                    seed_file, monkeypatch, tmp_path, capsys):
        terminal_id, shard = fresh_terminal()

        async def conflict():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                accepted, _ = await _conflicted(b, keys, shard, terminal_id)
                return accepted

        accepted = asyncio.run(conflict())
        _env(monkeypatch, tmp_path, redis_url, schema_dsn, key_prefix, seed_file)
        assert main(["audit", "--reconcile", "--shards", str(shard), "--json", "--scan-count", "2"]) == 1
        report = json.loads(capsys.readouterr().out)
        assert report["ok"] is False
        assert report["keys_scanned"] == 3  # seq 1 is recorded (by the foreign writer), 2 and 3 are not
        assert (report["keys_checked"], report["keys_pending"]) == (1, 2)
        [mismatch] = report["mismatches"]
        assert (mismatch["seq"], mismatch["counter"], mismatch["conflict"]) == (1, 1, "unreleased")
        assert [(c["seq"], c["released"]) for c in report["conflicts"]] == [(1, False)]
        assert accepted[0].seq == 1
        assert main(["audit", "--reconcile", "--shards", str(shard)]) == 1
        assert "reconcile FAILED" in capsys.readouterr().out

    def test_a_clean_ledger_reconciles_and_exits_zero(self, redis_url, schema_dsn, key_prefix, keys, seed_file,
                                                      monkeypatch, tmp_path, capsys):
        terminal_id, shard = fresh_terminal()

        async def record():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                await append_batch(b.capture, b.fences, keys, shard, _submissions(keys, terminal_id, range(1, 8)))
                await b.record_all(shard, keys.code)
                await append_batch(b.capture, b.fences, keys, shard, _submissions(keys, terminal_id, [8, 9]))

        asyncio.run(record())
        _env(monkeypatch, tmp_path, redis_url, schema_dsn, key_prefix, seed_file)
        assert main(["audit", "--reconcile", "--shards", str(shard), "--json", "--scan-count", "3"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert (report["keys_scanned"], report["keys_checked"], report["keys_pending"]) == (9, 7, 2)
        assert report["mismatches"] == report["losses"] == report["conflicts"] == []


class TestGenerate:
    def test_generate_refuses_a_fenced_ledger_and_writes_nothing(self, run_id, redis_url, key_prefix, seed_file):
        with private_database(f"posray_{run_id}_fenced") as dsn:
            async def fence_and_count():
                async with backends(redis_url, dsn, key_prefix) as b:
                    await b.fences.ensure(0)
                    return await b.pool.fetchval("SELECT count(*) FROM ledger_entries")

            assert asyncio.run(fence_and_count()) == 0
            with pytest.raises(LedgerLive, match="the ledger is live"):
                load_into_ledger(dsn, seed_file, SMALL_HISTORY, settings=Settings())
            with pytest.raises(LedgerLive):
                load_into_ledger(dsn, seed_file, SMALL_HISTORY, settings=Settings(), workers=2)

            async def written():
                pool = await create_pool(dsn, size_max=1)
                try:
                    return [await pool.fetchval(f"SELECT count(*) FROM {t}") for t in ("ledger_entries", "terminals")]
                finally:
                    await pool.close()

            assert asyncio.run(written()) == [0, 0]

    def test_generate_loads_an_unfenced_ledger(self, run_id, seed_file):
        with private_database(f"posray_{run_id}_offline") as dsn:
            summary = load_into_ledger(dsn, seed_file, SMALL_HISTORY, settings=Settings())
            assert summary.documents > 0

    def test_the_command_names_another_database_and_creates_it(self, run_id, redis_url, key_prefix, seed_file,
                                                                monkeypatch, tmp_path, capsys):
        with private_database(f"posray_{run_id}_live") as live:
            async def fence():
                async with backends(redis_url, live, key_prefix) as b:
                    await b.fences.ensure(0)

            asyncio.run(fence())
            _env(monkeypatch, tmp_path, redis_url, live, key_prefix, seed_file)
            args = ["--documents", "150", "--days", "2", "--merchants", "2", "--shards", "4"]
            assert main(["analytics", "generate", *args]) == 2
            [line] = capsys.readouterr().err.strip().splitlines()
            assert "the ledger is live" in line and "/posray_history" in line
            history = f"{live.rsplit('/', 1)[0]}/posray_{run_id}_history"
            try:
                assert main(["analytics", "generate", "--dsn", history, *args]) == 0
                assert "created the ledger database" in capsys.readouterr().out
            finally:
                asyncio.run(_admin(f'DROP DATABASE IF EXISTS "posray_{run_id}_history" WITH (FORCE)'))


class TestRebind:
    def test_another_store_is_refused_until_rebind_then_captures(self, redis_url, schema_dsn, key_prefix, keys):
        terminal_id, shard = fresh_terminal()
        other_prefix = f"{key_prefix}:moved"

        async def main_():
            async with backends(redis_url, schema_dsn, key_prefix) as old:
                await append_batch(old.capture, old.fences, keys, shard, _submissions(keys, terminal_id, [1, 2]))
                await old.record_all(shard, keys.code)
                held = old.fences.current(shard)
                client = connect(redis_url)
                try:
                    moved = RedisCapture(client, other_prefix, IDEMPOTENCY_TTL_S, 1_000_000)
                    running = ShardFences(moved, old.fence_ledger, "store-b", 1000)  # the new IngestShard
                    subs = _submissions(keys, terminal_id, [3])
                    with pytest.raises(NotFenced, match="capture rebind"):
                        await append_batch(moved, running, keys, shard, subs)
                    [done] = await rebind(moved, old.fence_ledger, "store-b", 1000, [shard])
                    again = await rebind(moved, old.fence_ledger, "store-b", 1000, [shard])
                    accepted = await append_batch(moved, running, keys, shard, subs)
                    with pytest.raises(NotFenced):  # the old store cannot fence itself back silently
                        await old.fences.refence(shard, held, "test")
                    losses = await old.fence_ledger.losses(shard)
                finally:
                    await client.aclose()
                    await _drop_keys(redis_url, other_prefix)
                return done, again, accepted, losses

        done, again, accepted, losses = asyncio.run(main_())
        assert (done.outcome, done.previous_store, done.fence.floor) == ("rebound", f"{redis_url}#{key_prefix}", 2)
        assert again[0].outcome == "already this store's"
        assert [a.seq for a in accepted] == [3]
        # What the old store may have handed out beyond the ledger is recorded once, by the rebind.
        assert [(x.lost_from, x.lost_to, x.exact) for x in losses] == [(3, 1000, False)]

    def test_rebind_refuses_without_yes_in_one_line(self, redis_url, schema_dsn, key_prefix, seed_file,
                                                     monkeypatch, tmp_path, capsys):
        _env(monkeypatch, tmp_path, redis_url, schema_dsn, key_prefix, seed_file)
        assert main(["capture", "rebind"]) == 2
        [line] = capsys.readouterr().err.strip().splitlines()
        assert "--yes" in line and "two stores" in line


async def _drop_keys(redis_url: str, prefix: str) -> None:
    client = connect(redis_url)
    try:
        async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            await client.delete(key)
    finally:
        await client.aclose()


def test_fences_of_a_live_ledger_are_read_back_by_shard(redis_url, schema_dsn, key_prefix):
    _, shard = fresh_terminal()

    async def main_():
        async with backends(redis_url, schema_dsn, key_prefix) as b:
            fence = await b.fences.ensure(shard)
            latest = (await PgFences(b.pool).latest([shard]))[shard]
            return fence, latest

    fence, latest = asyncio.run(main_())
    assert (latest.epoch, latest.floor, latest.reserved) == (fence.epoch, fence.floor, fence.reserved)
