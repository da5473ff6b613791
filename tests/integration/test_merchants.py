"""The merchant API's adapter and use cases against real PostgreSQL: each merchant reads its own data only."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

import asyncpg
import orjson
import pytest

from deployments.api.errors import status_of
from posray.adapters.pg import apply_schema, create_pool
from posray.adapters.pg_merchants import PgMerchants
from posray.domain.codes import make_code
from posray.domain.transaction import canonical_document, document_hash
from posray.domain.errors import Forbidden, InvalidDocument, NotFound, Unauthenticated
from posray.domain.keys import terminal_key
from posray.domain.merchant_token import issue_token as make_token
from posray.services import merchants as service
from posray.services.terminals import register
from tests.conftest import private_database
from tests.documents import make_document, submission_of
from tests.integration.support import SHARD_COUNT, backends, fresh_terminal

DAY1, DAY2 = date(2026, 3, 10), date(2026, 3, 11)
CURSOR_KEY = service.cursor_key_of(bytes(32))
TYPES = {"sale": "sales", "refund": "refunds", "correction": "corrections"}


def epoch_ms(day: date, hour: int = 0, minute: int = 0, second: int = 0, ms: int = 0) -> int:
    moment = datetime(day.year, day.month, day.day, hour, minute, second, ms * 1000, tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


# Per terminal: batches of (accepted_at epoch ms, number of documents, currency).
PLAN = {
    "A1": [(epoch_ms(DAY1, 9), 7, "EUR"), (epoch_ms(DAY1, 23, 59, 59, 999), 2, "EUR"),
           (epoch_ms(DAY2, 0), 3, "EUR")],
    "A2": [(epoch_ms(DAY1, 12), 5, "EUR"), (epoch_ms(DAY1, 13), 2, "USD"), (epoch_ms(DAY2, 8), 1, "EUR")],
    "B1": [(epoch_ms(DAY1, 10), 4, "EUR"), (epoch_ms(DAY2, 10), 2, "EUR")],
}


@dataclass
class World:
    """Two merchants, their terminals and every document recorded for them."""

    merchant_a: str
    merchant_b: str
    terminals: dict[str, str]  # plan name -> terminal id
    docs: list[tuple[str, date, dict]] = field(default_factory=list)  # (merchant, UTC day, document)

    def of(self, merchant: str, day: date | None = None) -> list[dict]:
        return [d for m, d_day, d in self.docs if m == merchant and (day is None or d_day == day)]


def doc_type(counter: int) -> str:
    return "refund" if counter % 5 == 0 else "correction" if counter % 7 == 0 else "sale"


async def _record(b, keys, world: World) -> None:
    for name, batches in PLAN.items():
        terminal_id, shard = world.terminals[name], None
        merchant = world.merchant_a if name.startswith("A") else world.merchant_b
        await register(b.terminals, keys.terminal_master, terminal_id, merchant, label=f"till {name}")
        key = terminal_key(keys.terminal_master, terminal_id, 1)
        counter = 0
        for accepted_ms, count, currency in batches:
            docs = []
            for _ in range(count):
                counter += 1
                docs.append(make_document(terminal_id, counter, key, doc_type=doc_type(counter),
                                          currency=currency))
            subs = [submission_of(d, SHARD_COUNT) for d in docs]
            shard = subs[0].shard
            await b.append(shard, accepted_ms, subs)
            day = datetime.fromtimestamp(accepted_ms / 1000, timezone.utc).date()
            world.docs += [(merchant, day, d) for d in docs]
        await b.record_all(shard, keys.code)


@pytest.fixture(scope="module")
def world(redis_url, schema_dsn, keys, run_id):
    tag = secrets.token_hex(4)
    terminals = {name: fresh_terminal(f"{name}-{tag}")[0] for name in PLAN}
    built = World(f"MA-{tag}", f"MB-{tag}", terminals)
    prefix = f"posray-test:{run_id}:merchants-{tag}"

    async def main():
        async with backends(redis_url, schema_dsn, prefix) as b:
            await _record(b, keys, built)
            async for key in b.redis.scan_iter(match=f"{prefix}:*", count=1000):
                await b.redis.delete(key)

    asyncio.run(main())
    return built


def using(dsn: str, work):
    """Run `work(PgMerchants)` on a fresh pool bound to this call's event loop."""
    async def main():
        pool = await create_pool(dsn, size_max=2)
        try:
            return await work(PgMerchants(pool))
        finally:
            await pool.close()

    return asyncio.run(main())


def all_pages(dsn: str, merchant: str, day: date, limit: int, terminal_id: str | None = None) -> list[dict]:
    async def work(merchants):
        pages, after = [], None
        for _ in range(1000):
            page = await service.list_documents(merchants, merchant, day, terminal_id, after, limit,
                                                cursor_key=CURSOR_KEY)
            pages.append(page)
            after = page["next"]
            if after is None:
                return pages
        raise AssertionError("pagination does not end")

    return using(dsn, work)


def key_of(doc: dict) -> tuple[str, int]:
    return doc["terminal_id"], doc["counter"]


class TestDocuments:
    def test_merchant_a_sees_all_and_only_its_documents_of_the_day(self, world, schema_dsn, keys):
        (page,) = all_pages(schema_dsn, world.merchant_a, DAY1, 1000)
        assert sorted(map(key_of, page["documents"])) == sorted(map(key_of, world.of(world.merchant_a, DAY1)))
        assert len(page["documents"]) == 16
        assert page["next"] is None and page["merchant_id"] == world.merchant_a
        by_key = {key_of(d): d for d in world.of(world.merchant_a, DAY1)}
        for got in page["documents"]:
            assert got["document"] == orjson.loads(orjson.dumps(by_key[key_of(got)]))
            assert got["code"] == make_code(keys.code, got["shard"], got["seq"], document_hash(canonical_document(got["document"])))
            assert got["total_minor"] == got["document"]["total_minor"]
            assert got["accepted_at"].startswith("2026-03-10T")

    def test_merchant_b_sees_none_of_merchant_a_documents(self, world, schema_dsn):
        (page,) = all_pages(schema_dsn, world.merchant_b, DAY1, 1000)
        assert {d["terminal_id"] for d in page["documents"]} == {world.terminals["B1"]}
        assert len(page["documents"]) == 4

    def test_the_last_millisecond_of_a_day_belongs_to_that_day(self, world, schema_dsn):
        day1 = all_pages(schema_dsn, world.merchant_a, DAY1, 1000)[0]["documents"]
        day2 = all_pages(schema_dsn, world.merchant_a, DAY2, 1000)[0]["documents"]
        assert sum(d["accepted_at"] == "2026-03-10T23:59:59.999Z" for d in day1) == 2
        assert sum(d["accepted_at"] == "2026-03-11T00:00:00.000Z" for d in day2) == 3
        assert len(day2) == 4

    @pytest.mark.parametrize("limit", [1, 2, 3, 16, 17])
    def test_pagination_returns_every_document_exactly_once_in_order(self, world, schema_dsn, limit):
        pages = all_pages(schema_dsn, world.merchant_a, DAY1, limit)
        got = [d for p in pages for d in p["documents"]]
        assert sorted(map(key_of, got)) == sorted(map(key_of, world.of(world.merchant_a, DAY1)))
        assert len(set(map(key_of, got))) == len(got) == 16
        assert all(len(p["documents"]) == limit for p in pages[:-1])
        assert len(pages) == -(-16 // limit)
        order = [(d["terminal_id"], d["accepted_at"], d["shard"], d["seq"]) for d in got]
        assert order == sorted(order)

    def test_a_terminal_filter_narrows_to_that_terminal(self, world, schema_dsn):
        pages = all_pages(schema_dsn, world.merchant_a, DAY1, 3, world.terminals["A2"])
        got = [d for p in pages for d in p["documents"]]
        assert {d["terminal_id"] for d in got} == {world.terminals["A2"]} and len(got) == 7

    @pytest.mark.parametrize("terminal", ["B1", "nobody"])
    def test_another_merchants_terminal_or_an_unknown_one_is_forbidden_alike(self, world, schema_dsn, terminal):
        terminal_id = world.terminals.get(terminal, f"T-nobody-{secrets.token_hex(3)}")

        async def work(merchants):
            with pytest.raises(Forbidden) as error:
                await service.list_documents(merchants, world.merchant_a, DAY1, terminal_id,
                                             cursor_key=CURSOR_KEY)
            return error.value

        error = using(schema_dsn, work)
        assert status_of(error) == 403
        assert error.to_json() == {"error": "forbidden",
                                   "reason": "terminal_id is not one of this merchant's terminals"}

    @pytest.mark.parametrize(("limit", "after"), [(0, None), (1001, None), (10, "garbage!")])
    def test_a_limit_out_of_bounds_or_a_bad_cursor_is_a_400(self, world, schema_dsn, limit, after):
        async def work(merchants):
            with pytest.raises(InvalidDocument) as error:
                await service.list_documents(merchants, world.merchant_a, DAY1, None, after, limit,
                                             cursor_key=CURSOR_KEY)
            return error.value

        assert status_of(using(schema_dsn, work)) == 400


def expected_summary(world: World, merchant: str) -> dict:
    """The summary computed here, from the documents as built, independently of SQL."""
    out: dict = {}
    for m, day, doc in world.docs:
        if m != merchant:
            continue
        entry = out.setdefault((day.isoformat(), doc["currency"]), {"documents": 0, "vat": {}})
        group = TYPES[doc["type"]]
        entry["documents"] += 1
        count, gross = entry.get(group, (0, 0))
        entry[group] = (count + 1, gross + doc["total_minor"])
        for line in doc["vat"]:
            sums = entry["vat"].setdefault(line["rate_bp"], {})
            g, v = sums.get(group, (0, 0))
            sums[group] = (g + line["gross_minor"], v + line["vat_minor"])
    return out


def comparable(days: list[dict]) -> dict:
    out = {}
    for e in days:
        entry = {"documents": e["documents"], "vat": {}}
        for group in TYPES.values():
            if e[group]["count"]:
                entry[group] = (e[group]["count"], e[group]["gross_minor"])
        for line in e["vat"]:
            entry["vat"][line["rate_bp"]] = {
                g: (line[f"{g}_gross_minor"], line[f"{g}_vat_minor"])
                for g in TYPES.values() if line[f"{g}_gross_minor"] or line[f"{g}_vat_minor"]}
        out[(e["date"], e["currency"])] = entry
    return out


class TestSummary:
    def test_the_summary_equals_sums_computed_from_the_documents(self, world, schema_dsn):
        summary = using(schema_dsn, lambda m: service.summarize(m, world.merchant_a, DAY1, DAY2))
        assert (summary["from"], summary["to"]) == ("2026-03-10", "2026-03-11")
        assert comparable(summary["days"]) == expected_summary(world, world.merchant_a)
        assert {(d["date"], d["currency"]) for d in summary["days"]} == {
            ("2026-03-10", "EUR"), ("2026-03-10", "USD"), ("2026-03-11", "EUR")}
        for e in summary["days"]:
            assert e["net_gross_minor"] == e["sales"]["gross_minor"] - e["refunds"]["gross_minor"]
            assert e["net_vat_minor"] == sum(l["sales_vat_minor"] - l["refunds_vat_minor"] for l in e["vat"])

    def test_the_summary_of_one_day_leaves_the_others_out(self, world, schema_dsn):
        summary = using(schema_dsn, lambda m: service.summarize(m, world.merchant_b, DAY2, DAY2))
        ((day, currency),) = [(d["date"], d["currency"]) for d in summary["days"]]
        assert (day, currency) == ("2026-03-11", "EUR")
        assert summary["days"][0]["documents"] == 2

    @pytest.mark.parametrize(("first", "last"), [(DAY2, DAY1), (DAY1, DAY1 + timedelta(days=92))])
    def test_a_reversed_or_too_long_range_is_a_400(self, world, schema_dsn, first, last):
        async def work(merchants):
            with pytest.raises(InvalidDocument) as error:
                await service.summarize(merchants, world.merchant_a, first, last)
            return error.value

        assert status_of(using(schema_dsn, work)) == 400

    def test_ninety_two_days_are_allowed(self, world, schema_dsn):
        summary = using(schema_dsn, lambda m: service.summarize(m, world.merchant_a, DAY1 - timedelta(days=91), DAY1))
        assert [d["date"] for d in summary["days"]] == ["2026-03-10", "2026-03-10"]


class TestTerminals:
    def test_a_merchant_lists_its_own_terminals_with_their_status(self, world, schema_dsn):
        async def work(merchants):
            async with backends_for(schema_dsn) as terminals:
                await terminals.revoke(world.terminals["A2"])
            return await service.list_terminals(merchants, world.merchant_a)

        listed = using(schema_dsn, work)
        assert [t["terminal_id"] for t in listed["terminals"]] == sorted([world.terminals["A1"], world.terminals["A2"]])
        by_id = {t["terminal_id"]: t for t in listed["terminals"]}
        assert by_id[world.terminals["A1"]]["status"] == "active" and by_id[world.terminals["A1"]]["revoked_at"] is None
        assert by_id[world.terminals["A2"]]["status"] == "revoked" and by_id[world.terminals["A2"]]["revoked_at"]
        assert by_id[world.terminals["A1"]]["label"] == "till A1"
        assert listed["truncated"] is False


def backends_for(dsn: str):
    from contextlib import asynccontextmanager

    from posray.adapters.pg_terminals import PgTerminals

    @asynccontextmanager
    async def opened():
        pool = await create_pool(dsn, size_max=1)
        try:
            yield PgTerminals(pool)
        finally:
            await pool.close()

    return opened()


class TestTokens:
    def test_a_token_authenticates_its_merchant_until_revoked(self, world, schema_dsn, keys):
        async def work(merchants):
            issued = await service.issue_token(merchants, keys.merchant_token, world.merchant_b)
            before = await service.authenticate(merchants, keys.merchant_token, issued.token)
            version = await service.revoke_tokens(merchants, world.merchant_b)
            with pytest.raises(Unauthenticated) as revoked:
                await service.authenticate(merchants, keys.merchant_token, issued.token)
            fresh = await service.issue_token(merchants, keys.merchant_token, world.merchant_b)
            after = await service.authenticate(merchants, keys.merchant_token, fresh.token)
            return issued, before, version, revoked.value, fresh, after

        issued, before, version, revoked, fresh, after = using(schema_dsn, work)
        assert before == after == world.merchant_b
        assert version == issued.version + 1 == fresh.version
        assert status_of(revoked) == 401 and issued.token not in str(revoked.to_json())
        assert issued.token not in repr(issued)

    @pytest.mark.parametrize("token", ["", "pm_x", "forged"])
    def test_missing_forged_or_unknown_merchant_tokens_are_refused_alike(self, world, schema_dsn, keys, token):
        unknown = make_token(keys.merchant_token, f"M-ghost-{secrets.token_hex(3)}", 1)

        async def work(merchants):
            errors = []
            for candidate in (token, unknown):
                with pytest.raises(Unauthenticated) as error:
                    await service.authenticate(merchants, keys.merchant_token, candidate)
                errors.append(error.value.to_json())
            return errors

        first, second = using(schema_dsn, work)
        assert first == second

    def test_a_token_for_an_unregistered_merchant_is_not_issued(self, schema_dsn, keys):
        async def work(merchants):
            with pytest.raises(NotFound):
                await service.issue_token(merchants, keys.merchant_token, "M-never-registered")
            with pytest.raises(NotFound):
                await service.revoke_tokens(merchants, "M-never-registered")

        using(schema_dsn, work)


def test_a_version_2_database_gains_token_versions_and_indexes(run_id):
    from importlib import resources

    full = resources.files("posray.adapters").joinpath("schema.sql").read_text()
    version_2 = full.split("-- Version 3", 1)[0]

    async def main(dsn):
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(version_2)
            await conn.execute("INSERT INTO merchants (merchant_id, name) VALUES ('old', 'Old Shop')")
            await apply_schema(dsn)
            await apply_schema(dsn)  # idempotent
            version = await conn.fetchval("SELECT token_version FROM merchants WHERE merchant_id = 'old'")
            versions = [r[0] for r in await conn.fetch("SELECT version FROM posray_schema ORDER BY version")]
            indexes = {r[0] for r in await conn.fetch("SELECT indexname FROM pg_indexes")}
            return version, versions, indexes
        finally:
            await conn.close()

    with private_database(f"posray_{run_id}_v2", schema=False) as dsn:
        version, versions, indexes = asyncio.run(main(dsn))
    assert version == 1
    assert versions == [1, 2, 3, 4, 5, 6, 7, 8]  # every later version is applied too
    assert {"terminals_merchant", "ledger_entries_terminal_accepted"} <= indexes


def test_texts_with_nul_or_escaped_backslashes_do_not_break_the_summary(redis_url, schema_dsn, keys, run_id):
    tag = secrets.token_hex(4)
    terminal_id, shard = fresh_terminal(f"C-{tag}")
    merchant = f"MC-{tag}"
    names = ["nul\x00here", "back\\u0000slash", "\\\x00", "plain \\\\ text"]
    prefix = f"posray-test:{run_id}:merchants-{tag}"

    async def main():
        async with backends(redis_url, schema_dsn, prefix) as b:
            await register(b.terminals, keys.terminal_master, terminal_id, merchant)
            key = terminal_key(keys.terminal_master, terminal_id, 1)
            docs = [make_document(terminal_id, n + 1, key, items=[{"name": name, "qty_milli": 1000,
                    "unit_price_minor": 100 * (n + 1), "vat_rate_bp": 2000}]) for n, name in enumerate(names)]
            await b.append(shard, epoch_ms(DAY1, 10), [submission_of(d, SHARD_COUNT) for d in docs])
            await b.record_all(shard, keys.code)
            async for k in b.redis.scan_iter(match=f"{prefix}:*", count=1000):
                await b.redis.delete(k)
            merchants = PgMerchants(b.pool)
            return (docs, await service.summarize(merchants, merchant, DAY1, DAY1),
                    await service.list_documents(merchants, merchant, DAY1, cursor_key=CURSOR_KEY))

    docs, summary, page = asyncio.run(main())
    (entry,) = summary["days"]
    assert entry["sales"] == {"count": 4, "gross_minor": sum(d["total_minor"] for d in docs)}
    assert entry["vat"][0]["sales_vat_minor"] == sum(d["vat"][0]["vat_minor"] for d in docs)
    assert sorted(d["document"]["items"][0]["name"] for d in page["documents"]) == sorted(names)
