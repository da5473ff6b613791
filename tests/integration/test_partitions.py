"""The ledger partitioned by day (schema version 7): partitions made ahead, append-only on every
partition, (shard, seq) unique across days, and the migration of a populated version-6 ledger."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta, timezone
from importlib import resources

import asyncpg
import orjson
import pytest

from posray.adapters.pg import apply_schema
from posray.domain.keys import terminal_key
from posray.services.lookup import by_code, by_fields, proof_bundle
from posray.settings import Settings
from tests.conftest import private_database
from tests.documents import make_document, submission_of
from tests.integration.support import SHARD_COUNT, backends, fresh_terminal, now_ms, record_days

SCHEMA = resources.files("posray.adapters").joinpath("schema.sql").read_text()
SCHEMA_V6 = SCHEMA.split("-- Version 7:", 1)[0]


def utc_today() -> date:
    return datetime.now(timezone.utc).date()


def partition(day: date) -> str:
    return f"ledger_entries_{day:%Y%m%d}"


class TestPartitionsAhead:
    def test_apply_schema_leaves_yesterday_to_a_week_ahead_attached(self, schema_dsn):
        async def main():
            conn = await asyncpg.connect(schema_dsn)
            try:
                return {r[0] for r in await conn.fetch(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                    " WHERE i.inhparent = 'ledger_entries'::regclass")}
            finally:
                await conn.close()

        attached = asyncio.run(main())
        assert {partition(utc_today() + timedelta(days=d)) for d in range(-1, 8)} <= attached

    def test_the_writer_creates_the_partition_of_its_day_before_its_first_batch(
        self, redis_url, schema_dsn, key_prefix, keys, seed_file, monkeypatch
    ):
        terminal_id, shard = fresh_terminal("PART")
        day = utc_today() + timedelta(days=40)
        settings = Settings(pg_dsn=schema_dsn, operator_seed_file=seed_file)

        async def main():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                await record_days(b, keys, settings, terminal_id, shard, [40], 10, monkeypatch)
                placed = await b.pool.fetch(f"SELECT seq FROM {partition(day)} WHERE shard = $1 ORDER BY seq", shard)
                ahead = await b.pool.fetchval("SELECT to_regclass($1) IS NOT NULL", partition(day + timedelta(days=7)))
                record = (await b.ledger.entry(shard, 4)).record
                return [r["seq"] for r in placed], ahead, orjson.loads(record)["code"], b

        seqs, ahead, code, _ = asyncio.run(main())
        assert seqs == list(range(1, 11)) and ahead
        assert code


@pytest.mark.parametrize("sql", [
    "UPDATE {part} SET total_minor = total_minor + 1 WHERE shard = $1",
    "DELETE FROM {part} WHERE shard = $1",
    "TRUNCATE {part}",
], ids=["update", "delete", "truncate"])
def test_a_partition_itself_refuses_changes(redis_url, schema_dsn, key_prefix, keys, sql):
    terminal_id, shard = fresh_terminal("PART")
    key = terminal_key(keys.terminal_master, terminal_id, 1)
    subs = [submission_of(make_document(terminal_id, c, key), SHARD_COUNT) for c in range(1, 4)]

    async def main():
        async with backends(redis_url, schema_dsn, key_prefix) as b:
            await b.append(shard, now_ms(), subs)
            await b.record_all(shard, keys.code)
            part = partition(await b.pool.fetchval(
                "SELECT recorded_on FROM ledger_batches WHERE shard = $1", shard))
            statement = sql.format(part=part)
            async with b.pool.acquire() as conn:
                with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                    await (conn.execute(statement, shard) if "$1" in statement else conn.execute(statement))
            return await b.pool.fetchval(f"SELECT count(*) FROM {part} WHERE shard = $1", shard)

    assert asyncio.run(main()) == 3


class TestOneSequenceOneRow:
    """(shard, seq) stays unique across partitions: batches may not overlap, rows stay in their batch."""

    def test_a_batch_overlapping_the_recorded_sequences_is_refused(self, redis_url, schema_dsn, key_prefix, keys):
        terminal_id, shard = fresh_terminal("PART")
        key = terminal_key(keys.terminal_master, terminal_id, 1)
        subs = [submission_of(make_document(terminal_id, c, key), SHARD_COUNT) for c in range(1, 6)]

        async def main():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                await b.append(shard, now_ms(), subs)
                await b.record_all(shard, keys.code)
                with pytest.raises(asyncpg.UniqueViolationError, match="already holds up to 5"):
                    await b.pool.execute(
                        "INSERT INTO ledger_batches (shard, batch_no, first_seq, last_seq, merkle_root,"
                        " prev_hash, header_hash, recorded_at) VALUES ($1, 99, 5, 6, '', '', '', now() + interval '3 days')",
                        shard)

        asyncio.run(main())

    def test_a_row_outside_its_batch_or_its_day_is_refused(self, redis_url, schema_dsn, key_prefix, keys):
        terminal_id, shard = fresh_terminal("PART")
        key = terminal_key(keys.terminal_master, terminal_id, 1)
        subs = [submission_of(make_document(terminal_id, c, key), SHARD_COUNT) for c in range(1, 4)]

        async def main():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                await b.append(shard, now_ms(), subs)
                await b.record_all(shard, keys.code)
                row = await b.pool.fetchrow("SELECT * FROM ledger_entries WHERE shard = $1 AND seq = 2", shard)
                copy = dict(row)
                for change in ({"recorded_on": row["recorded_on"] + timedelta(days=1)}, {"seq": 4}):
                    values = copy | change
                    with pytest.raises(asyncpg.CheckViolationError, match="outside its sequences or its day"):
                        await b.pool.execute(
                            f"INSERT INTO ledger_entries ({', '.join(values)}) VALUES"
                            f" ({', '.join(f'${i}' for i in range(1, len(values) + 1))})", *values.values())
                return await b.pool.fetchval("SELECT count(*) FROM ledger_entries WHERE shard = $1", shard)

        assert asyncio.run(main()) == 3


def _lookups(b, keys, terminal_id, shard, codes: dict[int, str], docs: dict[int, dict]):
    """Every receipt by code, by printed fields and with its proof bundle, as a customer sees them."""

    async def read():
        out = {}
        for seq, code in sorted(codes.items()):
            doc = docs[seq]
            out[seq] = (
                await by_code(b.ledger, b.capture, b.fence_ledger, keys.code, code),
                await by_fields(b.ledger, b.capture, keys.code, SHARD_COUNT, terminal_id, doc["counter"],
                                date.fromisoformat(doc["issued_at"][:10]), doc["total_minor"]),
                await proof_bundle(b.ledger, b.fence_ledger, keys.code, code),
            )
        return out

    return read()


def test_a_populated_version_6_ledger_migrates_with_rows_proofs_and_lookups_unchanged(
    redis_url, run_id, key_prefix, keys, seed_file, monkeypatch
):
    """Recorded over three days into a version-7 ledger (the source), copied table by table into a
    version-6 schema, migrated by apply_schema: the rows are those of version 6 (plus their day),
    and every lookup and proof answers as it did from the source."""
    terminal_id, shard = fresh_terminal("MIGRATE")
    tables = ("merchants", "terminals", "ledger_batches", "ledger_entries", "tlog_nodes", "checkpoints")
    with private_database(f"posray_t_{run_id}_mig_src") as src, \
            private_database(f"posray_t_{run_id}_mig_v6", schema=False) as old:
        settings = Settings(pg_dsn=src, operator_seed_file=seed_file)

        async def populate():
            async with backends(redis_url, src, key_prefix) as b:
                await record_days(b, keys, settings, terminal_id, shard, [-2, -1, 0], 40, monkeypatch)
                rows = await b.pool.fetch("SELECT seq, record FROM ledger_entries WHERE shard = $1", shard)
                records = {r["seq"]: orjson.loads(r["record"]) for r in rows}
                codes = {seq: rec["code"] for seq, rec in records.items()}
                docs = {seq: rec["document"] for seq, rec in records.items()}
                before = await _lookups(b, keys, terminal_id, shard, codes, docs)
                conn = await asyncpg.connect(old)
                try:
                    await conn.execute(SCHEMA_V6)
                    for table in tables:
                        columns = [c for c in (await conn.fetch(
                            "SELECT column_name FROM information_schema.columns WHERE table_name = $1"
                            " ORDER BY ordinal_position", table))]
                        names = [c["column_name"] for c in columns]
                        data = await b.pool.fetch(f"SELECT {', '.join(names)} FROM {table}")
                        await conn.copy_records_to_table(table, records=[tuple(r) for r in data], columns=names)
                    v6_rows = await conn.fetch("SELECT * FROM ledger_entries ORDER BY shard, seq")
                    kind = await conn.fetchval("SELECT relkind::text FROM pg_class WHERE relname = 'ledger_entries'")
                finally:
                    await conn.close()
                return codes, docs, before, v6_rows, kind

        codes, docs, before, v6_rows, kind = asyncio.run(populate())
        assert kind == "r" and len(v6_rows) >= 120

        async def migrate_and_read():
            await apply_schema(old)
            async with backends(redis_url, old, key_prefix) as b:
                rows = await b.pool.fetch("SELECT * FROM ledger_entries ORDER BY shard, seq")
                days = await b.pool.fetch(
                    "SELECT tableoid::regclass::text AS part, count(*) AS n FROM ledger_entries"
                    " WHERE shard = $1 GROUP BY 1 ORDER BY 1", shard)
                after = await _lookups(b, keys, terminal_id, shard, codes, docs)
                version = await b.pool.fetchval("SELECT max(version) FROM posray_schema")
                kind = await b.pool.fetchval("SELECT relkind::text FROM pg_class WHERE relname = 'ledger_entries'")
                return rows, days, after, version, kind

        rows, days, after, version, kind = asyncio.run(migrate_and_read())
    assert version >= 7 and kind == "p"  # version 7 partitions; later versions follow it
    assert [tuple(r)[:-1] for r in rows] == [tuple(r) for r in v6_rows]
    assert [(r["part"], r["n"]) for r in days] == [
        (partition(utc_today() + timedelta(days=d)), 40) for d in (-2, -1, 0)]
    assert after == before
    assert all(receipt["status"] == "recorded" for receipt, _, _ in after.values())
