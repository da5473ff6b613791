"""The receipt lottery over a real PostgreSQL ledger: eligibility, reproducibility, refusals, CLI.

The module records into a database of its own, so shard numbers and timestamps are fully
controlled: receipts are written through the ledger's own code path (record_bytes, seal_batch,
PgLedger.append_batch) with chosen accepted_at values, and checkpoints signed by a NoteSigner
are stored with chosen creation times.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone

import asyncpg
import pytest

from posray.adapters.pg import apply_schema, create_pool
from posray.adapters.pg_ledger import EntryRow, PgLedger
from posray.adapters.pg_lottery import PgLottery
from tooling.cli import main
from posray.domain import tlog
from posray.domain.chain import record_bytes, seal_batch
from posray.domain.chain import record_code
from posray.domain.codes import make_code
from posray.domain.errors import LedgerCorrupted
from posray.domain.note import Checkpoint, NoteSigner, NoteVerifier, sign_checkpoint
from posray.domain.transaction import canonical_document, document_hash
from tooling.lottery_cli import parse_moment
from posray.services import proofs
from posray.services.lottery import DrawRefused, draw_winners
from tooling.simulator import make_document
from tests.conftest import PG_ADMIN_DSN, run

LOG_NAME = "lottery.test/log"
A = (parse_moment("2026-10-01"), parse_moment("2026-11-01"))  # the period drawn in most tests
B = (parse_moment("2026-11-01"), parse_moment("2026-11-15"))  # shard 1 lacks a late checkpoint
LATER = parse_moment("2026-11-26T00:00:00Z")  # "now" for the draws
WINNERS = 10


def at(text: str) -> int:
    return parse_moment(text)


def spread(first: str, last: str, count: int) -> list[int]:
    """`count` accepted_at values from `first` to `last` included, evenly spaced."""
    a, b = at(first), at(last)
    return [a + (b - a) * i // (count - 1) for i in range(count)]


async def record(ledger: PgLedger, code_key, shard: int, accepted: list[int]) -> None:
    """Append one batch of documents accepted at `accepted`, exactly as a ShardRecorder would."""
    head = await ledger.head(shard)
    rows = []
    for i, accepted_ms in enumerate(accepted):
        seq = head.last_seq + 1 + i
        issued = datetime.fromtimestamp(accepted_ms // 1000 - 5, tz=timezone.utc).isoformat()
        doc = make_document(f"T-LOT-{shard}", seq, bytes(32), issued_at=issued)
        canonical = canonical_document(doc)
        record_ = record_bytes(shard, seq, make_code(code_key, shard, seq, document_hash(canonical)), accepted_ms,
                               canonical)
        rows.append(EntryRow(seq, doc["terminal_id"], seq, (accepted_ms // 1000 - 5) * 1000,
                             accepted_ms, doc["total_minor"], record_))
    header, leaves = seal_batch(head, head.last_seq + 1, [r.record for r in rows], max(accepted) + 50)
    size = head.last_seq
    older = await ledger.stored_hashes(shard, tlog.append_keys(size, size + len(leaves)))
    await ledger.append_batch(header, rows, leaves, tlog.appended_nodes(size, leaves, older))


async def checkpoint(ledger: PgLedger, signer: NoteSigner, shard: int, created: str) -> int:
    """Sign and store a checkpoint of the shard's whole log, created at `created`."""
    size = (await ledger.head(shard)).last_seq
    root = await proofs.tree_root(ledger, shard, size)
    note = sign_checkpoint(signer, Checkpoint(f"{LOG_NAME}/{shard}", size, root))
    await ledger.add_checkpoint(shard, size, root, note, at(created))
    return size


async def build_ledger(dsn: str, code_key, signer: NoteSigner) -> None:
    """Three shards around periods A (October) and B (1-15 November 2026); see each step."""
    pool = await create_pool(dsn)
    ledger = PgLedger(pool)
    try:
        # Shard 0: before A, A with both edges, checkpoints before and too soon after A's end.
        await record(ledger, code_key, 0, spread("2026-09-20", "2026-09-30", 4))
        await checkpoint(ledger, signer, 0, "2026-09-30T12:00:00Z")
        await record(ledger, code_key, 0, spread("2026-10-01T00:00:00Z", "2026-10-20", 20))
        await checkpoint(ledger, signer, 0, "2026-10-20T01:00:00Z")
        await record(ledger, code_key, 0, spread("2026-10-21", "2026-10-31T23:59:59.999Z", 12))
        await checkpoint(ledger, signer, 0, "2026-11-01T00:00:30Z")  # within the settle delay
        await record(ledger, code_key, 0, spread("2026-11-01T00:00:00Z", "2026-11-01T00:01:00Z", 5))
        await checkpoint(ledger, signer, 0, "2026-11-01T00:01:30Z")  # A's drawing checkpoint
        await record(ledger, code_key, 0, spread("2026-11-02", "2026-11-14T23:59:59Z", 10))
        await record(ledger, code_key, 0, spread("2026-11-15T00:00:05Z", "2026-11-15T00:00:40Z", 3))
        await checkpoint(ledger, signer, 0, "2026-11-15T00:02:00Z")  # B's drawing checkpoint
        # Shard 1: A, then a receipt accepted in A but recorded after A's drawing checkpoint.
        await record(ledger, code_key, 1, spread("2026-10-02", "2026-10-31T23:59:59Z", 26))
        await record(ledger, code_key, 1, spread("2026-11-01T00:00:20Z", "2026-11-01T00:03:00Z", 3))
        await checkpoint(ledger, signer, 1, "2026-11-01T00:05:00Z")  # A's drawing checkpoint
        await record(ledger, code_key, 1, [at("2026-10-31T23:59:58.500Z")])  # late for A
        await record(ledger, code_key, 1, spread("2026-11-03", "2026-11-14", 6))
        await checkpoint(ledger, signer, 1, "2026-11-15T00:00:30Z")  # too soon for B
        # Shard 2: receipts only before A, and no checkpoint after it.
        await record(ledger, code_key, 2, spread("2026-09-01", "2026-09-29", 3))
        await checkpoint(ledger, signer, 2, "2026-09-30T00:00:00Z")
    finally:
        await pool.close()


@pytest.fixture(scope="module")
def signer(keys) -> NoteSigner:
    return NoteSigner(LOG_NAME, keys.signing_seed)


@pytest.fixture(scope="module")
def lottery_dsn(run_id, keys, signer):
    """A database of this module's own, with the ledger above; dropped afterwards."""
    name = f"posray_lottery_{run_id}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    run(admin(f'CREATE DATABASE "{name}"'))
    dsn = f"{PG_ADMIN_DSN.rsplit('/', 1)[0]}/{name}"
    try:
        run(apply_schema(dsn))
        run(build_ledger(dsn, keys.code, signer))
        yield dsn
    finally:
        run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def draw_in(dsn: str, keys, period, winners: int, now_ms: int = LATER, verifier=None):
    async def go():
        pool = await create_pool(dsn)
        try:
            return await draw_winners(PgLottery(pool), keys.code, *period, winners, now_ms, verifier)
        finally:
            await pool.close()

    return run(go())


def fetch(dsn: str, sql: str, *args) -> list[asyncpg.Record]:
    async def go():
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    return run(go())


def moment(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, tz=timezone.utc)


class TestEligibility:
    def test_the_eligible_receipts_are_the_period_under_each_shards_first_settled_checkpoint(
        self, lottery_dsn, keys
    ):
        result = draw_in(lottery_dsn, keys, A, WINNERS)
        parts = {p.shard: p for p in result.shards}
        assert sorted(parts) == [0, 1]  # shard 2 recorded nothing in the period
        assert (parts[0].in_period, parts[0].eligible, parts[0].late) == (32, 32, 0)
        assert (parts[1].in_period, parts[1].eligible, parts[1].late) == (27, 26, 1)
        assert parts[0].checkpoint.created_at_ms == at("2026-11-01T00:01:30Z")
        assert parts[1].checkpoint.created_at_ms == at("2026-11-01T00:05:00Z")
        assert result.eligible == 58

    def test_winners_are_distinct_receipts_accepted_in_the_period_and_covered_by_the_checkpoint(
        self, lottery_dsn, keys
    ):
        result = draw_in(lottery_dsn, keys, A, WINNERS)
        sizes = {p.shard: p.checkpoint.tree_size for p in result.shards}
        assert [w.rank for w in result.winners] == list(range(1, WINNERS + 1))
        assert len({(w.shard, w.seq) for w in result.winners}) == WINNERS
        assert len({w.code for w in result.winners}) == WINNERS
        for w in result.winners:
            (row,) = fetch(lottery_dsn, "SELECT accepted_at, record FROM ledger_entries WHERE shard = $1"
                           " AND seq = $2", w.shard, w.seq)
            assert moment(A[0]) <= row["accepted_at"] < moment(A[1])
            assert w.seq <= sizes[w.shard]
            assert w.code == record_code(keys.code, w.shard, w.seq, bytes(row["record"]))

    def test_asking_for_more_winners_than_eligible_receipts_makes_every_eligible_receipt_win(
        self, lottery_dsn, keys
    ):
        result = draw_in(lottery_dsn, keys, A, 100)
        rows = fetch(lottery_dsn, "SELECT shard, seq FROM ledger_entries WHERE accepted_at >= $1"
                     " AND accepted_at < $2 AND NOT (shard = 1 AND seq = 30) ORDER BY shard, seq",
                     moment(A[0]), moment(A[1]))
        assert [(w.shard, w.seq) for w in result.winners] == [(r["shard"], r["seq"]) for r in rows]


class TestReproducibility:
    def test_the_same_period_draws_the_same_winners_from_the_same_statement(self, lottery_dsn, keys):
        first, second = draw_in(lottery_dsn, keys, A, WINNERS), draw_in(lottery_dsn, keys, A, WINNERS)
        assert first == second
        assert first.seed == hashlib.sha256(first.statement).digest()

    def test_an_independent_implementation_of_the_documented_rule_picks_the_same_winners(
        self, lottery_dsn, keys
    ):
        result = draw_in(lottery_dsn, keys, A, WINNERS)
        statement, winners = independent_draw(lottery_dsn, "2026-10-01T00:00:00.000Z",
                                              "2026-11-01T00:00:00.000Z", WINNERS)
        assert statement == result.statement
        assert winners == [(w.shard, w.seq) for w in result.winners]

    def test_notes_that_the_operators_key_did_not_sign_stop_the_draw(self, lottery_dsn, keys):
        stranger = NoteSigner(LOG_NAME, bytes(32))
        with pytest.raises(LedgerCorrupted, match="unknown key|bad signature"):
            draw_in(lottery_dsn, keys, A, WINNERS,
                    verifier=NoteVerifier.from_verifier_key(stranger.verifier_key()))


def independent_draw(dsn: str, start: str, end: str, winners: int):
    """docs/lottery.md's rule from raw rows, without posray's lottery code."""
    lo, hi = datetime.fromisoformat(start), datetime.fromisoformat(end)
    entries = fetch(dsn, "SELECT shard, seq, accepted_at FROM ledger_entries ORDER BY shard, seq")
    in_period = [(e["shard"], e["seq"]) for e in entries if lo <= e["accepted_at"] < hi]
    lines = ["posray-lottery-v1", f"from {start}", f"to {end}", f"winners {winners}", "settle_s 60"]
    eligible = []
    for shard in sorted({s for s, _ in in_period}):
        cps = fetch(dsn, "SELECT tree_size, note, created_at FROM checkpoints WHERE shard = $1", shard)
        cp = min((c for c in cps if c["created_at"] >= hi + timedelta(seconds=60)),
                 key=lambda c: (c["created_at"], c["tree_size"]))
        mine = [(s, q) for s, q in in_period if s == shard and q <= cp["tree_size"]]
        eligible += mine
        lines.append(f"shard {shard} eligible {len(mine)} tree_size {cp['tree_size']} note_sha256 "
                     + hashlib.sha256(cp["note"].encode("utf-8")).hexdigest())
    statement = ("\n".join(lines) + "\n").encode()
    seed, count, picked = hashlib.sha256(statement).digest(), len(eligible), []
    while len(picked) < min(winners, count):
        i = len(picked)
        for counter in range(10_000):
            digest = hashlib.sha256(seed + i.to_bytes(8, "big") + counter.to_bytes(8, "big")).digest()
            x = int.from_bytes(digest, "big")
            if x < 2**256 - 2**256 % count and x % count not in picked:
                picked.append(x % count)
                break
    return statement, [eligible[i] for i in picked]


class TestRefusals:
    def test_a_period_is_drawn_only_once_every_shard_in_it_has_a_checkpoint_after_it(
        self, lottery_dsn, keys, signer
    ):
        with pytest.raises(DrawRefused, match=r"shard\(s\) 1 have receipts in the period"):
            draw_in(lottery_dsn, keys, B, 3)

        async def shard_1_grows():
            pool = await create_pool(lottery_dsn)
            try:
                ledger = PgLedger(pool)
                await record(ledger, keys.code, 1, [at("2026-11-15T00:01:10Z")])
                await checkpoint(ledger, signer, 1, "2026-11-15T00:01:15Z")
            finally:
                await pool.close()

        run(shard_1_grows())
        result = draw_in(lottery_dsn, keys, B, 3)
        assert [p.shard for p in result.shards] == [0, 1] and len(result.winners) == 3

    def test_a_period_that_closed_less_than_the_settle_delay_ago_is_refused(self, lottery_dsn, keys):
        with pytest.raises(DrawRefused, match="wait until"):
            draw_in(lottery_dsn, keys, A, 3, now_ms=A[1] + 59_000)

    def test_a_period_without_receipts_is_refused(self, lottery_dsn, keys):
        with pytest.raises(DrawRefused, match="no receipt"):
            draw_in(lottery_dsn, keys, (at("2026-06-01"), at("2026-07-01")), 3)


class TestCommand:
    @pytest.fixture
    def env(self, monkeypatch, tmp_path, lottery_dsn, seed_file):
        monkeypatch.setenv("POSRAY_PG_DSN", lottery_dsn)
        monkeypatch.setenv("POSRAY_OPERATOR_SEED_FILE", str(seed_file))
        monkeypatch.setenv("POSRAY_LOG_NAME", LOG_NAME)
        monkeypatch.setenv("POSRAY_PUBLIC_BASE_URL", "https://receipts.example")
        return ["--data-dir", str(tmp_path), "lottery", "draw"]

    def test_the_command_prints_the_winners_and_how_to_reproduce_them_as_json(
        self, env, lottery_dsn, keys, capsys
    ):
        assert main(env + ["--from", "2026-10-01", "--to", "2026-11-01T01:00+01:00",
                           "--winners", str(WINNERS), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        expected = draw_in(lottery_dsn, keys, A, WINNERS)
        assert [w["code"] for w in report["winners"]] == [w.code for w in expected.winners]
        assert report["seed"] == expected.seed.hex() and report["eligible"] == 58
        assert report["statement"].encode() == expected.statement
        assert report["winners"][0]["proof_url"].startswith("https://receipts.example/v1/receipts/")
        assert [s["checkpoint"]["tree_size"] for s in report["shards"]] == [
            p.checkpoint.tree_size for p in expected.shards]
        assert len(report["how_to_reproduce"]) >= 5

    def test_the_command_explains_a_refusal_and_exits_with_1(self, env, capsys):
        assert main(env + ["--from", "2026-06-01", "--to", "2026-07-01", "--winners", "3"]) == 1
        assert "no receipt" in capsys.readouterr().err

    def test_the_text_output_lists_the_winners_and_the_statement(self, env, capsys):
        assert main(env + ["--from", "2026-10-01", "--to", "2026-11-01", "--winners", "2"]) == 0
        out = capsys.readouterr().out
        assert "posray-lottery-v1" in out and "1 recorded after the checkpoint" in out
        assert out.count("shard 0 eligible 32") == 1 and "how to reproduce:" in out
