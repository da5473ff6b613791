"""The PostgreSQL roles of docs/operations.md: posray works as the INSERT-only role, changes are refused.

Runs the documented GRANT block itself (between the posray-grants markers) against this run's
database, with role names unique to the run, then does posray's work as that role.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from pathlib import Path

import asyncpg
import pytest

from posray.adapters.pg import apply_schema
from posray.domain.keys import terminal_key
from tests.conftest import PG_ADMIN_DSN
from tests.documents import make_document, submission_of
from tests.integration.support import SHARD_COUNT, backends, fresh_terminal, now_ms

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
LEDGER_TABLES = ("ledger_batches", "ledger_entries", "tlog_nodes", "checkpoints", "witness_cosignatures")


def documented_grants(app: str, reader: str, database: str) -> str:
    text = DOC.read_text()
    block = text.split("-- posray-grants:begin", 1)[1].split("-- posray-grants:end", 1)[0]
    block = re.sub(r"\bposray_app\b", app, block)
    block = re.sub(r"\bposray_reader\b", reader, block)
    return re.sub(r"\bDATABASE posray\b", f'DATABASE "{database}"', block)


def as_role(dsn: str, role: str) -> str:
    scheme, rest = dsn.split("://", 1)
    return f"{scheme}://{role}@{rest.split('@', 1)[1]}"


@pytest.fixture(scope="module")
def roles(schema_dsn):
    suffix = secrets.token_hex(4)
    app, reader = f"posray_app_{suffix}", f"posray_reader_{suffix}"

    async def run(dsn, sql):
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(schema_dsn, documented_grants(app, reader, schema_dsn.rsplit("/", 1)[1])))
    yield as_role(schema_dsn, app), as_role(schema_dsn, reader)
    for role in (app, reader):
        asyncio.run(run(schema_dsn, f"DROP OWNED BY {role}"))
        asyncio.run(run(PG_ADMIN_DSN, f"DROP ROLE {role}"))


def test_posray_registers_captures_records_and_revokes_as_the_app_role(roles, redis_url, key_prefix, keys):
    app_dsn, _ = roles
    terminal_id, shard = fresh_terminal("T-role")

    async def main():
        async with backends(redis_url, app_dsn, key_prefix) as b:
            await b.terminals.add_merchant("m-role", "m-role")
            await b.terminals.add_terminal(terminal_id, "m-role", None)
            key = terminal_key(keys.terminal_master, terminal_id, 1)
            subs = [submission_of(make_document(terminal_id, c, key), SHARD_COUNT) for c in range(1, 6)]
            await b.append(shard, now_ms(), subs)
            recorded = await b.record_all(shard, keys.code)
            head = await b.ledger.head(shard)
            await b.ledger.add_checkpoint(shard, 5, b"\0" * 32, "note", now_ms())
            await b.ledger.add_checkpoint(shard, 5, b"\0" * 32, "note", now_ms())  # ON CONFLICT
            await b.ledger.add_cosignature(shard, 5, "w+00000000", "line\n", now_ms())
            await b.ledger.add_cosignature(shard, 5, "w+00000000", "line\n", now_ms())  # ON CONFLICT
            assert await b.ledger.cosigned_size(shard, "w+00000000") == 5
            revoked = await b.terminals.revoke(terminal_id)
            imported = await b.terminals.import_terminals([(f"{terminal_id}-{n}", "m-role-2", None) for n in range(3)])
            return recorded, head, revoked, imported

    recorded, head, revoked, imported = asyncio.run(main())
    assert recorded == 5 and head.last_seq == 5 and imported == 3
    assert not revoked.active


@pytest.mark.parametrize("table", LEDGER_TABLES)
@pytest.mark.parametrize("statement", ["UPDATE {t} SET shard = shard", "DELETE FROM {t}", "TRUNCATE {t}"])
def test_every_change_to_the_ledger_is_refused_by_permission(roles, table, statement):
    app_dsn, _ = roles

    async def main():
        conn = await asyncpg.connect(app_dsn)
        try:
            await conn.execute(statement.format(t=table))
        finally:
            await conn.close()

    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
        asyncio.run(main())


@pytest.mark.parametrize("sql", ["UPDATE terminals SET key_version = key_version + 1",
                                 "UPDATE terminals SET merchant_id = merchant_id",
                                 "DELETE FROM terminals", "DROP TRIGGER ledger_entries_no_change ON ledger_entries"])
def test_the_app_role_cannot_rekey_delete_or_unguard(roles, sql):
    app_dsn, _ = roles

    async def main():
        conn = await asyncpg.connect(app_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        asyncio.run(main())


def test_the_app_role_cannot_apply_the_schema(roles):
    app_dsn, _ = roles
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        asyncio.run(apply_schema(app_dsn))


def test_the_reader_reads_and_writes_nothing(roles):
    _, reader_dsn = roles

    async def main():
        conn = await asyncpg.connect(reader_dsn)
        try:
            count = await conn.fetchval("SELECT count(*) FROM ledger_entries")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("INSERT INTO merchants (merchant_id, name) VALUES ('x', 'x')")
            return count
        finally:
            await conn.close()

    assert asyncio.run(main()) >= 0


def test_the_app_role_revokes_merchant_tokens_and_changes_nothing_else_of_a_merchant(roles):
    from posray.adapters.pg import create_pool
    from posray.adapters.pg_merchants import PgMerchants

    app_dsn, _ = roles
    merchant_id = f"m-role-{secrets.token_hex(3)}"

    async def main():
        pool = await create_pool(app_dsn, size_max=1)
        try:
            await pool.execute("INSERT INTO merchants (merchant_id, name) VALUES ($1, $1)", merchant_id)
            version = await PgMerchants(pool).bump_token_version(merchant_id)
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await pool.execute("UPDATE merchants SET name = 'x' WHERE merchant_id = $1", merchant_id)
            return version
        finally:
            await pool.close()

    assert asyncio.run(main()) == 2
