"""`posray audit` against real PostgreSQL: an intact ledger verifies, every superuser tamper is found.

A module fixture records two shards (with a signed checkpoint after every batch) into a database
of its own; each test audits a fresh copy of it (CREATE DATABASE ... TEMPLATE), tampered as a
database superuser would: triggers off (session_replication_role = replica), rows edited directly.
Each tamper must be reported by the audit at the right shard and place, and must make the proof
of an affected receipt fail for a customer who kept the checkpoint signed before the tamper.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import io
import json
import re
from dataclasses import dataclass
from typing import Awaitable, Callable

import asyncpg
import orjson
import pytest

from jobs.audit import build_parser, run_audit
from posray.adapters.pg import apply_schema
from posray.domain import tlog
from posray.domain.canonical import canonical_bytes
from posray.domain.chain import BatchHeader
from posray.domain.errors import NotFound
from posray.domain.keys import terminal_key
from posray.domain.merkle import leaf_hash, root_hash, verify_inclusion
from posray.domain.note import Checkpoint, NoteSigner, NoteVerifier, sign_checkpoint
from posray.domain.receipt_proof import verify_receipt_bundle
from posray.services import proofs
from posray.services.lookup import _recorded as lookup_recorded, by_code, proof_bundle
from posray.services.recording import ShardRecorder
from posray.settings import Settings
from tests.conftest import PG_ADMIN_DSN, _admin
from tests.documents import make_document, submission_of
from tests.integration.support import SHARD_COUNT, backends, fresh_terminal, now_ms

DOCS, BYSTANDER_DOCS, BATCH_MAX = 300, 60, 25  # batch k holds seqs 25k+1 .. 25k+25
BATCHES, NODES = 12, 300 // 16 + 300 // 256  # stored log nodes: level 4 and level 8


@dataclass(frozen=True)
class Recorded:
    """The recorded template database and what the customer kept before any tamper."""

    dsn_of: Callable[[str], str]
    template: str
    target: int
    bystander: int
    settings: Settings
    verifier: NoteVerifier
    saved_size: int
    saved_note: str
    codes: dict  # seq of the target shard -> the code its terminal printed


async def _record(dsn, redis_url, prefix, keys, settings, signer) -> tuple[int, int]:
    """Capture and record DOCS documents into one shard and BYSTANDER_DOCS into another."""
    shards = []
    async with backends(redis_url, dsn, prefix) as b:
        for count in (DOCS, BYSTANDER_DOCS):
            terminal_id, shard = fresh_terminal("AUDIT")
            key = terminal_key(keys.terminal_master, terminal_id, 1)
            subs = [submission_of(make_document(terminal_id, c, key), SHARD_COUNT) for c in range(1, count + 1)]
            for i in range(0, count, BATCH_MAX):  # one stream entry per call: batches of BATCH_MAX
                await b.append(shard, now_ms(), subs[i:i + BATCH_MAX])
            origin = settings.log_origin(shard)
            recorder = ShardRecorder(
                shard, b.stream, b.ledger, keys.code, BATCH_MAX, wait_ms=5, checkpoint_interval_s=0,
                sign=lambda size, root, ext, o=origin: sign_checkpoint(signer, Checkpoint(o, size, root, ext)))
            for _ in range(100):
                if not await b.stream.backlog(shard):
                    break
                await recorder.step()
            shards.append(shard)
    return shards[0], shards[1]


@pytest.fixture(scope="module")
def recorded(redis_url, run_id, keys, seed_file):
    base = PG_ADMIN_DSN.rsplit("/", 1)[0]
    template = f"posray_audit_{run_id}"
    prefix = f"posray-test:{run_id}:audit"
    settings = Settings(pg_dsn=f"{base}/{template}", operator_seed_file=seed_file)
    signer = NoteSigner(settings.log_key_name, keys.signing_seed)

    async def setup():
        await _admin(f'CREATE DATABASE "{template}"')
        await apply_schema(settings.pg_dsn)
        target, bystander = await _record(settings.pg_dsn, redis_url, prefix, keys, settings, signer)
        conn = await asyncpg.connect(settings.pg_dsn)
        size, note = await conn.fetchrow(
            "SELECT tree_size, note FROM checkpoints WHERE shard = $1 ORDER BY tree_size DESC LIMIT 1", target)
        rows = await conn.fetch("SELECT seq, record FROM ledger_entries WHERE shard = $1", target)
        await conn.close()
        codes = {r["seq"]: orjson.loads(r["record"])["code"] for r in rows}
        return target, bystander, size, note, codes

    async def teardown():
        await _admin(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(redis_url)
        async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            await client.delete(key)
        await client.aclose()

    try:
        target, bystander, size, note, codes = asyncio.run(setup())
        verifier = NoteVerifier(signer.name, signer.public_key)
        yield Recorded(lambda name: f"{base}/{name}", template, target, bystander, settings, verifier, size, note,
                       codes)
    finally:
        asyncio.run(teardown())


@pytest.fixture
def copy_dsn(recorded, request):
    """A fresh copy of the recorded database for one test, dropped afterwards."""
    name = f"{recorded.template}_{re.sub(r'[^a-z0-9]+', '_', request.node.name.lower())[-20:]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}" TEMPLATE "{recorded.template}"'))
    yield recorded.dsn_of(name)
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def audit(recorded: Recorded, dsn: str, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_audit(recorded.settings.replace(pg_dsn=dsn), build_parser().parse_args(list(argv)), out, err)
    return code, out.getvalue(), err.getvalue()


def audit_json(recorded: Recorded, dsn: str) -> tuple[int, dict]:
    code, out, _ = audit(recorded, dsn, "--json", "--page-rows", "64")
    report = json.loads(out)
    return code, {s["shard"]: s for s in report["shards"]}


# --- the customer's side -------------------------------------------------------------------------

def batch_proof_holds(ledger: dict) -> bool:
    """The receipt's batch part: its header hashes to header_hash and includes the record."""
    header_ok = hashlib.sha256(canonical_bytes(ledger["header"])).hexdigest() == ledger["header_hash"]
    path = [bytes.fromhex(h) for h in ledger["inclusion_proof"]]
    root = bytes.fromhex(ledger["header"]["merkle_root"])
    leaf = leaf_hash(ledger["record"].encode())
    return header_ok and verify_inclusion(leaf, ledger["leaf_index"], ledger["batch_size"], path, root)


async def customer_detects(recorded: Recorded, keys, dsn: str, redis_url: str, seq: int,
                           tree_size: int, note: str | None, lying: bool = False) -> str | None:
    """What a customer holding receipt `seq` finds wrong (None: the receipt verifies).

    The log proof is fetched for `tree_size` and checked against `note` (the checkpoint the
    customer kept) or, when None, against the checkpoint the server serves. posray's server
    refuses a code whose place holds another document; a `lying` server serves whatever row is
    at the code's place anyway, and the customer's own checks must still fail.
    """
    code = recorded.codes[seq]
    async with backends(redis_url, dsn, "posray-test:audit-customer") as b:
        try:
            if lying:
                entry = await b.ledger.entry(recorded.target, seq)
                if entry is None:
                    return "not found: no row at the code's place"
                bundle = {"code": code, "record": entry.record.decode(), "leaf_hash": entry.leaf_hash.hex(),
                          **await proofs.inclusion(b.ledger, entry.shard, entry.seq, tree_size)}
            else:
                bundle = await proof_bundle(b.ledger, b.fence_ledger, keys.code, code, tree_size)
        except NotFound as e:
            return f"not found: {e}"
        if note is not None:
            bundle["checkpoint"] = note
        checks = verify_receipt_bundle(bundle, recorded.verifier, code, recorded.settings.log_key_name)
        failed = [c.name for c in checks if not c.ok]
        if failed:
            return "log proof: " + ", ".join(failed)
        if lying:
            entry = await b.ledger.entry(recorded.target, seq)
            receipt = {"ledger": (await lookup_recorded(b.ledger, entry))["ledger"]}
        else:
            receipt = await by_code(b.ledger, b.capture, b.fence_ledger, keys.code, code)
        return None if batch_proof_holds(receipt["ledger"]) else "batch proof"


# --- tampering as a superuser --------------------------------------------------------------------

@contextlib.asynccontextmanager
async def superuser(dsn: str):
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET session_replication_role = replica")  # no user trigger fires
        yield conn
    finally:
        await conn.close()


def raise_total(record: bytes, by: int) -> bytes:
    found = re.findall(rb'"total_minor":(\d+)', record)
    assert len(found) == 1
    return re.sub(rb'"total_minor":(\d+)', lambda m: b'"total_minor":%d' % (int(m[1]) + by), record)


async def change_amount(conn, shard, seq=17):
    record = bytes(await conn.fetchval("SELECT record FROM ledger_entries WHERE shard = $1 AND seq = $2", shard, seq))
    await conn.execute("UPDATE ledger_entries SET record = $3, total_minor = total_minor + 100"
                       " WHERE shard = $1 AND seq = $2", shard, seq, raise_total(record, 100))


async def delete_document(conn, shard):
    await conn.execute("DELETE FROM ledger_entries WHERE shard = $1 AND seq = 40", shard)


async def swap_documents(conn, shard):
    await conn.execute(
        "UPDATE ledger_entries e SET record = o.record, leaf_hash = o.leaf_hash FROM ledger_entries o"
        " WHERE e.shard = $1 AND o.shard = $1 AND (e.seq, o.seq) IN ((60, 61), (61, 60))", shard)


async def alter_merkle_root(conn, shard):
    await conn.execute("UPDATE ledger_batches SET merkle_root = sha256(merkle_root)"
                       " WHERE shard = $1 AND batch_no = 3", shard)


async def alter_recorded_at(conn, shard):
    await conn.execute("UPDATE ledger_batches SET recorded_at = recorded_at - interval '1 hour'"
                       " WHERE shard = $1 AND batch_no = 3", shard)


async def rehash_batch(conn, shard, batch_no):
    """Recompute a batch's merkle_root and header_hash from what is stored now."""
    leaves = [bytes(r[0]) for r in await conn.fetch(
        "SELECT leaf_hash FROM ledger_entries WHERE shard = $1 AND batch_no = $2 ORDER BY seq", shard, batch_no)]
    b = await conn.fetchrow("SELECT * FROM ledger_batches WHERE shard = $1 AND batch_no = $2", shard, batch_no)
    header = BatchHeader(shard, batch_no, b["first_seq"], b["last_seq"], root_hash(leaves),
                         bytes(b["prev_hash"]), round(b["recorded_at"].timestamp() * 1000))
    await conn.execute("UPDATE ledger_batches SET merkle_root = $3, header_hash = $4"
                       " WHERE shard = $1 AND batch_no = $2", shard, batch_no, header.merkle_root, header.hash())


async def alter_recorded_at_and_rehash(conn, shard):
    await alter_recorded_at(conn, shard)
    await rehash_batch(conn, shard, 3)


async def rewrite_chain_from(conn, shard, batch_no):
    """Alter a header, then rehash it and relink every later header: a self-consistent chain."""
    await alter_recorded_at(conn, shard)
    last = await conn.fetchval("SELECT max(batch_no) FROM ledger_batches WHERE shard = $1", shard)
    for number in range(batch_no, last + 1):
        if number > batch_no:
            prev = await conn.fetchval("SELECT header_hash FROM ledger_batches WHERE shard = $1 AND batch_no = $2",
                                       shard, number - 1)
            await conn.execute("UPDATE ledger_batches SET prev_hash = $3 WHERE shard = $1 AND batch_no = $2",
                               shard, number, prev)
        await rehash_batch(conn, shard, number)


async def hide_edit(conn, shard, seq=30):
    """Edit a record, then recompute its leaf hash, its batch's root and its header hash."""
    await change_amount(conn, shard, seq)
    record = bytes(await conn.fetchval("SELECT record FROM ledger_entries WHERE shard = $1 AND seq = $2", shard, seq))
    await conn.execute("UPDATE ledger_entries SET leaf_hash = $3 WHERE shard = $1 AND seq = $2",
                       shard, seq, leaf_hash(record))
    await rehash_batch(conn, shard, (seq - 1) // BATCH_MAX)


async def hide_edit_and_rebuild_log(conn, shard):
    """As hide_edit, and recompute every stored log subtree too: only the signatures are left."""
    await hide_edit(conn, shard)
    leaves = [bytes(r[0]) for r in await conn.fetch(
        "SELECT leaf_hash FROM ledger_entries WHERE shard = $1 ORDER BY seq", shard)]
    for (level, idx), value in tlog.appended_nodes(0, leaves, {}).items():
        await conn.execute("UPDATE tlog_nodes SET hash = $4 WHERE shard = $1 AND level = $2 AND idx = $3",
                           shard, level, idx, value)


async def truncate_tail(conn, shard):
    """Drop the last two batches with their rows and log nodes; the checkpoints stay."""
    await conn.execute("DELETE FROM ledger_entries WHERE shard = $1 AND seq > 250", shard)
    await conn.execute("DELETE FROM ledger_batches WHERE shard = $1 AND first_seq > 250", shard)
    await conn.execute("DELETE FROM tlog_nodes WHERE shard = $1 AND (idx + 1) << level > 250", shard)


async def delete_last_rows(conn, shard):
    await conn.execute("DELETE FROM ledger_entries WHERE shard = $1 AND seq > 275", shard)


async def delete_last_header(conn, shard):
    await conn.execute("DELETE FROM ledger_batches WHERE shard = $1 AND batch_no = 11", shard)


async def forge_checkpoint(conn, shard):
    """Put another root into the signed note of size 100 without the operator's key."""
    note = await conn.fetchval("SELECT note FROM checkpoints WHERE shard = $1 AND tree_size = 100", shard)
    origin, size, _, *rest = note.split("\n")
    forged = "\n".join([origin, size, base64.b64encode(bytes(32)).decode(), *rest])
    await conn.execute("UPDATE checkpoints SET note = $2, root_hash = $3 WHERE shard = $1 AND tree_size = 100",
                       shard, forged, bytes(32))


@dataclass(frozen=True)
class Tamper:
    apply: Callable[..., Awaitable[None]]
    kind: str
    seq: int
    batch_no: int | None
    what: str
    customer_seq: int
    customer_finds: str  # what the customer's check reports, by its start
    customer_size: int | None = None  # tree size of the customer's proof (None: the saved checkpoint)


TAMPERS = {
    "an amount changed in the record and its column": Tamper(
        change_amount, "leaf_hash", 17, 0, "leaf hash of seq 17 does not match its record", 17, "log proof: leaf"),
    "a document deleted": Tamper(delete_document, "sequence_missing", 40, 1, "sequence 40 missing", 40, "not found"),
    "two documents swapped": Tamper(
        swap_documents, "record_position", 60, 2, "record of seq 60 names shard {shard} seq 61", 60,
        "log proof: code, position"),
    "a batch merkle_root altered": Tamper(
        alter_merkle_root, "batch_header_hash", 76, 3, "batch 3 header_hash does not match its header", 80,
        "batch proof"),
    "a batch recorded_at altered": Tamper(
        alter_recorded_at, "batch_header_hash", 76, 3, "batch 3 header_hash does not match its header", 80,
        "batch proof"),
    # With the operator's code key the audit sees at once that the edited record's code does not
    # bind its new document; TestAuditorWithoutTheSeed checks what the hashes alone reveal.
    "an edit hidden by recomputing leaf, batch root and header": Tamper(
        hide_edit, "record_code", 30, 1, "record of seq 30 carries code", 30, "log proof: inclusion"),
    "an edit hidden by recomputing every hash, log nodes too": Tamper(
        hide_edit_and_rebuild_log, "record_code", 30, 1, "record of seq 30 carries code", 30, "log proof: tree head"),
    "the tail truncated, checkpoints kept": Tamper(
        truncate_tail, "checkpoint_beyond_log", 251, None,
        "checkpoint at size 275 claims 275 leaves, the log holds only 250 (tail truncated)", 10, "not found"),
    "the rows of the last batch deleted": Tamper(
        delete_last_rows, "batch_without_documents", 276, 11,
        "batch 11 (seqs 276..300) has no documents: the rows end at seq 275", 290, "not found"),
    "the last batch header deleted": Tamper(
        delete_last_header, "document_without_batch", 276, None,
        "document seq 276 has no batch (the batches end at seq 275)", 290, "not found"),
    "a checkpoint note forged": Tamper(
        forge_checkpoint, "checkpoint_note", 100, None, "checkpoint at size 100: bad signature", 90,
        "log proof: checkpoint", customer_size=100),
}


class TestAuditorWithoutTheSeed:
    """An auditor holding only the log's public key (no code key) still finds hidden edits by hashes."""

    @pytest.mark.parametrize("tamper, kind, seq, what", [
        (hide_edit, "tlog_node", 32, "tlog node (level 4, index 1) differs from the recomputed subtree hash"),
        (hide_edit_and_rebuild_log, "checkpoint_root", 50, "checkpoint at size 50: root differs from the recomputed tree"),
    ])
    def test_a_hidden_edit_is_found_from_the_log_hashes_and_signatures(self, recorded, copy_dsn, tamper, kind,
                                                                        seq, what, tmp_path):
        async def apply():
            async with superuser(copy_dsn) as conn:
                await tamper(conn, recorded.target)

        asyncio.run(apply())
        out, err = io.StringIO(), io.StringIO()
        settings = recorded.settings.replace(pg_dsn=copy_dsn, operator_seed_file=tmp_path / "no-seed")
        argv = ["--json", "--page-rows", "64", "--key", recorded.verifier.verifier_key()]
        code = run_audit(settings, build_parser().parse_args(argv), out, err)
        out = out.getvalue()
        divergence = {s["shard"]: s for s in json.loads(out)["shards"]}[recorded.target]["first_divergence"]
        assert code == 1
        assert (divergence["kind"], divergence["seq"]) == (kind, seq)
        assert divergence["what"].startswith(what)


class TestIntactLedger:
    def test_every_shard_verifies_and_the_audit_exits_zero(self, recorded, copy_dsn):
        code, shards = audit_json(recorded, copy_dsn)
        assert code == 0
        assert shards[recorded.target] == {
            "shard": recorded.target, "documents": DOCS, "batches": BATCHES, "checkpoints": BATCHES,
            "nodes": NODES, "first_divergence": None, "archived": 0, "archived_days": []}
        assert shards[recorded.bystander]["documents"] == BYSTANDER_DOCS
        assert shards[recorded.bystander]["first_divergence"] is None

    def test_a_customer_verifies_every_kind_of_receipt_before_any_tamper(self, recorded, copy_dsn, keys, redis_url):
        for seq in (1, 30, 80, 250, 300):
            found = asyncio.run(customer_detects(recorded, keys, copy_dsn, redis_url, seq,
                                                 recorded.saved_size, recorded.saved_note))
            assert found is None, seq

    def test_the_table_names_each_shard_and_says_ok(self, recorded, copy_dsn):
        code, out, err = audit(recorded, copy_dsn, "--shards", f"{recorded.target},{recorded.bystander}")
        assert code == 0
        assert f"audit shard {recorded.target}: {DOCS} documents" in err
        assert out.splitlines()[-1].startswith("audit ok: every hash verified (360 documents, 2 shards")


class TestTampering:
    @pytest.mark.parametrize("name", list(TAMPERS))
    def test_the_audit_and_the_customer_both_detect(self, recorded, copy_dsn, keys, redis_url, name):
        tamper = TAMPERS[name]

        async def apply():
            async with superuser(copy_dsn) as conn:
                await tamper.apply(conn, recorded.target)

        asyncio.run(apply())
        code, shards = audit_json(recorded, copy_dsn)
        assert code == 1
        assert shards[recorded.bystander]["first_divergence"] is None
        divergence = shards[recorded.target]["first_divergence"]
        assert (divergence["shard"], divergence["kind"], divergence["seq"], divergence["batch_no"]) == (
            recorded.target, tamper.kind, tamper.seq, tamper.batch_no)
        assert divergence["what"].startswith(tamper.what.format(shard=recorded.target))
        size = tamper.customer_size or recorded.saved_size
        note = None if tamper.customer_size else recorded.saved_note
        found = asyncio.run(customer_detects(recorded, keys, copy_dsn, redis_url, tamper.customer_seq, size, note))
        assert found is not None, "posray served a tampered receipt as genuine"
        lied = asyncio.run(customer_detects(recorded, keys, copy_dsn, redis_url, tamper.customer_seq, size, note,
                                            lying=True))
        assert lied is not None and lied.startswith(tamper.customer_finds), lied

    def test_a_rehashed_batch_header_breaks_the_next_link(self, recorded, copy_dsn):
        # The customer's receipt proof does not cover batch headers; the audit finds the broken link
        # (and, had the attacker relinked every later header, the signed chain head).
        async def apply():
            async with superuser(copy_dsn) as conn:
                await alter_recorded_at_and_rehash(conn, recorded.target)

        asyncio.run(apply())
        code, shards = audit_json(recorded, copy_dsn)
        assert code == 1
        # The checkpoint signed right after batch 3 already carries batch 3's true header hash.
        assert shards[recorded.target]["first_divergence"] == {
            "shard": recorded.target, "kind": "checkpoint_chain", "seq": 100, "batch_no": None,
            "what": "checkpoint at size 100: signed chain head is batch 3, the recomputed chain ends at "
                    "batch 3 with another header hash"}

    def test_a_rewritten_self_consistent_header_chain_contradicts_the_signed_chain_head(self, recorded, copy_dsn):
        async def apply():
            async with superuser(copy_dsn) as conn:
                await rewrite_chain_from(conn, recorded.target, 3)

        asyncio.run(apply())
        code, shards = audit_json(recorded, copy_dsn)
        assert code == 1
        divergence = shards[recorded.target]["first_divergence"]
        assert divergence["kind"] == "checkpoint_chain", divergence

    def test_the_table_shows_the_divergence_and_the_audit_exits_one(self, recorded, copy_dsn):
        async def apply():
            async with superuser(copy_dsn) as conn:
                await change_amount(conn, recorded.target)

        asyncio.run(apply())
        code, out, _ = audit(recorded, copy_dsn)
        print(out)
        assert code == 1
        line = next(x for x in out.splitlines() if x.split()[0] == str(recorded.target))
        assert "DIVERGED [leaf_hash] leaf hash of seq 17 does not match its record" in line
        assert out.splitlines()[-1].startswith("audit FAILED: 1 of 2 shards diverge")
