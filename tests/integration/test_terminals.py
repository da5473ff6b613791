"""Terminals: registration, bulk import, the hot-path directory and the intake check (real PG)."""

from __future__ import annotations

import asyncio
import secrets
import time

import asyncpg
import pytest

from deployments.api.errors import status_of
from posray.adapters.pg_terminals import PgTerminals
from posray.domain.errors import DocumentRejected, InvalidDocument, Unauthenticated
from posray.domain.keys import terminal_key
from posray.domain.transaction import Rules, Submission
from posray.services.intake import Intake
from posray.services.terminals import TerminalDirectory, read_import_file, register
from tests.documents import make_document, resign, submission_of
from tests.integration.support import SHARD_COUNT, backends

VAT_RATES = frozenset((0, 500, 1000, 1300, 2000))


def unique(stem: str) -> str:
    return f"{stem}-{secrets.token_hex(5)}"


class CountingTerminals(PgTerminals):
    """The real adapter, counting the lookups the directory sends to PostgreSQL."""

    def __init__(self, pool):
        super().__init__(pool)
        self.queries: list[list[str]] = []

    async def get_many(self, terminal_ids):
        self.queries.append(sorted(terminal_ids))
        return await super().get_many(terminal_ids)


class TestRegister:
    def test_register_returns_the_derived_key_and_creates_an_unknown_merchant(
        self, redis_url, schema_dsn, key_prefix, keys
    ):
        terminal_id, merchant_id = unique("T"), unique("M")

        async def main():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                registered = await register(
                    b.terminals, keys.terminal_master, terminal_id, merchant_id, label="till 1",
                    merchant_name="Corner Shop",
                )
                merchant = await b.pool.fetchrow(
                    "SELECT name FROM merchants WHERE merchant_id = $1", merchant_id
                )
                rows = await b.terminals.get_many([terminal_id])
                return registered, merchant, rows

        registered, merchant, rows = asyncio.run(main())
        assert registered.key_hex == terminal_key(keys.terminal_master, terminal_id, 1).hex()
        assert (registered.terminal_id, registered.merchant_id, registered.key_version) == (
            terminal_id, merchant_id, 1,
        )
        assert registered.key_hex not in repr(registered)
        assert merchant["name"] == "Corner Shop"
        assert rows[terminal_id].active and rows[terminal_id].merchant_id == merchant_id

    def test_a_second_registration_of_the_same_id_is_a_409(self, redis_url, schema_dsn, key_prefix, keys):
        terminal_id, merchant_id = unique("T"), unique("M")

        async def main():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                await register(b.terminals, keys.terminal_master, terminal_id, merchant_id)
                with pytest.raises(DocumentRejected) as error:
                    await register(b.terminals, keys.terminal_master, terminal_id, unique("M"))
                owner = await b.pool.fetchval(
                    "SELECT merchant_id FROM terminals WHERE terminal_id = $1", terminal_id
                )
                return error.value, owner

        error, owner = asyncio.run(main())
        assert status_of(error) == 409
        assert error.field == "terminal_id"
        assert owner == merchant_id


class TestImport:
    def test_a_hundred_thousand_terminals_import_in_under_twenty_seconds(
        self, redis_url, schema_dsn, key_prefix, tmp_path
    ):
        stem = secrets.token_hex(4)
        path = tmp_path / "terminals.csv"
        with open(path, "w") as out:
            out.write("terminal_id,merchant_id,label\n")
            for i in range(100_000):
                out.write(f"I{stem}-{i:06d},M{stem}-{i % 2000:04d},till {i % 7}\n")

        async def main():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                started = time.perf_counter()
                rows = read_import_file(path)
                imported = await b.terminals.import_terminals(rows)
                elapsed = time.perf_counter() - started
                stored = await b.pool.fetchval(
                    "SELECT count(*) FROM terminals WHERE terminal_id LIKE $1", f"I{stem}-%"
                )
                merchants = await b.pool.fetchval(
                    "SELECT count(*) FROM merchants WHERE merchant_id LIKE $1", f"M{stem}-%"
                )
                return imported, stored, merchants, elapsed

        imported, stored, merchants, elapsed = asyncio.run(main())
        print(f"imported 100000 terminals in {elapsed:.2f} s ({100_000 / elapsed:,.0f} rows/s)")
        assert imported == stored == 100_000
        assert merchants == 2000
        assert elapsed < 20

    def test_an_import_with_a_duplicate_registers_nothing(self, redis_url, schema_dsn, key_prefix, keys, tmp_path):
        taken, fresh = unique("T"), unique("T")
        path = tmp_path / "terminals.csv"
        path.write_text(f"{fresh},{unique('M')}\n{taken},{unique('M')}\n")

        async def main():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                await register(b.terminals, keys.terminal_master, taken, unique("M"))
                with pytest.raises(InvalidDocument) as error:
                    await b.terminals.import_terminals(read_import_file(path))
                return error.value, await b.terminals.get_many([fresh, taken])

        error, found = asyncio.run(main())
        assert status_of(error) == 409
        assert list(found) == [taken]

    @pytest.mark.parametrize(
        ("bad_line", "field"),
        [("just-one-field", "line 3"), ("a,b,c,d", "line 3"), ("-bad,M1", "line 3: terminal_id"),
         ("T9,bad merchant", "line 3: merchant_id")],
    )
    def test_a_malformed_line_is_named(self, tmp_path, bad_line, field):
        path = tmp_path / "terminals.csv"
        path.write_text(f"terminal_id,merchant_id\nT1,M1\n{bad_line}\nT2,M1\n")
        with pytest.raises(InvalidDocument) as error:
            read_import_file(path)
        assert error.value.field == field
        assert "line 3" in str(error.value)


class TestTerminalDirectory:
    def test_misses_take_one_query_and_hits_none(self, redis_url, schema_dsn, key_prefix, keys):
        known = [unique("T") for _ in range(3)]
        stranger = unique("X")

        async def main():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                for tid in known:
                    await register(b.terminals, keys.terminal_master, tid, unique("M"))
                counting = CountingTerminals(b.pool)
                directory = TerminalDirectory(counting, keys.terminal_master, size_max=100)
                await directory.start()
                first = await directory.resolve(set(known) | {stranger})
                second = await directory.resolve(set(known[:2]) | {stranger})
                return first, second, counting.queries

        first, second, queries = asyncio.run(main())
        assert queries == [sorted(known + [stranger])]
        assert first[stranger] is None and second[stranger] is None
        for tid in known:
            row, key = first[tid]
            assert row.terminal_id == tid and row.active
            assert key == terminal_key(keys.terminal_master, tid, row.key_version)
        assert second[known[0]] == first[known[0]]

    def test_a_revocation_reaches_the_cache_on_refresh(self, redis_url, schema_dsn, key_prefix, keys):
        terminal_id = unique("T")

        async def main():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                await register(b.terminals, keys.terminal_master, terminal_id, unique("M"))
                counting = CountingTerminals(b.pool)
                directory = TerminalDirectory(counting, keys.terminal_master, size_max=100)
                await directory.start()
                before = (await directory.resolve({terminal_id}))[terminal_id][0].active
                await b.terminals.revoke(terminal_id)
                seen = await directory.refresh()
                after = (await directory.resolve({terminal_id}))[terminal_id][0].active
                return before, seen, after, len(counting.queries)

        before, seen, after, queries = asyncio.run(main())
        assert before is True
        assert seen >= 1
        assert after is False
        assert queries == 1  # the revocation came from the change feed, not a new lookup

    def test_a_revocation_behind_a_bulk_import_reaches_the_cache_in_one_refresh(
        self, redis_url, schema_dsn, key_prefix, keys
    ):
        terminal_id, stem = unique("T"), secrets.token_hex(4)
        imported = [(f"B{stem}-{i:05d}", f"M{stem}", None) for i in range(12_000)]

        async def main():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                await register(b.terminals, keys.terminal_master, terminal_id, unique("M"))
                directory = TerminalDirectory(b.terminals, keys.terminal_master, size_max=100)
                await directory.start()
                await directory.resolve({terminal_id})
                await b.terminals.import_terminals(imported)
                await b.terminals.revoke(terminal_id)
                seen = await directory.refresh()  # one poll interval
                return seen, (await directory.resolve({terminal_id}))[terminal_id][0].active

        seen, active = asyncio.run(main())
        assert seen >= 12_001
        assert active is False

    def test_a_revocation_committed_after_a_later_change_is_not_skipped(
        self, redis_url, schema_dsn, key_prefix, keys
    ):
        slow, fast = unique("T"), unique("T")

        async def main():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                for tid in (slow, fast):
                    await register(b.terminals, keys.terminal_master, tid, unique("M"))
                directory = TerminalDirectory(b.terminals, keys.terminal_master, size_max=100)
                await directory.start()
                await directory.resolve({slow, fast})
                # Another session holds a row lock on `slow`, so its revocation waits to commit.
                blocker = await asyncpg.connect(schema_dsn)
                holding = blocker.transaction()
                await holding.start()
                await blocker.execute("SELECT 1 FROM terminals WHERE terminal_id = $1 FOR UPDATE", slow)
                revoking_slow = asyncio.create_task(b.terminals.revoke(slow))
                await asyncio.sleep(0.2)
                revoking_fast = asyncio.create_task(b.terminals.revoke(fast))
                await asyncio.sleep(0.2)
                await directory.refresh()  # a poll lands while `slow` is still in flight
                await holding.commit()
                await blocker.close()
                await asyncio.wait_for(asyncio.gather(revoking_slow, revoking_fast), 10)
                await directory.refresh()
                found = await directory.resolve({slow, fast})
                return found[slow][0].active, found[fast][0].active

        assert asyncio.run(main()) == (False, False)

    def test_the_cache_stays_within_its_maximum(self, redis_url, schema_dsn, key_prefix, keys):
        known = [unique("T") for _ in range(6)]

        async def main():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                for tid in known:
                    await register(b.terminals, keys.terminal_master, tid, unique("M"))
                counting = CountingTerminals(b.pool)
                directory = TerminalDirectory(counting, keys.terminal_master, size_max=3)
                sizes = []
                for tid in known:
                    await directory.resolve({tid})
                    sizes.append(len(directory))
                await directory.resolve({known[-1]})  # most recent: still cached
                hits = len(counting.queries)
                await directory.resolve({known[0]})  # least recent: evicted long ago
                return sizes, hits, len(counting.queries)

        sizes, hits, queries = asyncio.run(main())
        assert sizes == [1, 2, 3, 3, 3, 3]
        assert hits == 6
        assert queries == 7


class TestIntake:
    def test_each_document_gets_its_own_result_in_order(self, redis_url, schema_dsn, key_prefix, keys):
        good, revoked, stranger = unique("T"), unique("T"), unique("X")

        def key_of(tid):
            return terminal_key(keys.terminal_master, tid, 1)

        valid = make_document(good, 1, key_of(good))
        bad_mac = make_document(good, 2, terminal_key(keys.terminal_master, good, 2))
        unknown = make_document(stranger, 1, key_of(stranger))
        from_revoked = make_document(revoked, 1, key_of(revoked))
        wrong_total = resign(make_document(good, 3, key_of(good)), key_of(good))
        wrong_total["total_minor"] += 1
        wrong_total = resign(wrong_total, key_of(good))
        wrong_type = resign(make_document(good, 4, key_of(good)) | {"counter": "4"}, key_of(good))
        batch = [valid, bad_mac, unknown, from_revoked, wrong_total, wrong_type, valid]

        async def main():
            async with backends(redis_url, schema_dsn, key_prefix) as b:
                for tid in (good, revoked):
                    await register(b.terminals, keys.terminal_master, tid, unique("M"))
                await b.terminals.revoke(revoked)
                directory = TerminalDirectory(b.terminals, keys.terminal_master, size_max=100)
                await directory.start()
                intake = Intake(Rules(VAT_RATES), directory, SHARD_COUNT)
                return await intake.check(batch)

        results = asyncio.run(main())
        assert len(results) == len(batch)
        assert results[0] == results[6] == submission_of(valid, SHARD_COUNT)
        assert isinstance(results[0], Submission)
        expected = [
            (Unauthenticated, "mac", 401),
            (Unauthenticated, "terminal_id", 401),
            (Unauthenticated, "terminal_id", 401),
            (InvalidDocument, "total_minor", 422),
            (InvalidDocument, "counter", 422),
        ]
        got = [(type(r), r.field, status_of(r)) for r in results[1:6]]
        assert got == expected
        assert "registered" in results[2].reason
        assert "revoked" in results[3].reason
