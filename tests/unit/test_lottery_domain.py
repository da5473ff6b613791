"""The lottery rule: statement, seed and draw; docs/lottery.md's example and code agree with it."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from pathlib import Path

import pytest

from posray.domain import lottery
from posray.domain.lottery import (
    ShardCommitment,
    candidate,
    draw,
    locate,
    note_sha256,
    seed_of,
    statement_bytes,
    uniform_index,
)
from posray.domain.note import Checkpoint, NoteSigner, NoteVerifier, open_checkpoint, sign_checkpoint
from tooling.lottery_cli import parse_moment

DOC = Path(__file__).resolve().parents[2] / "docs" / "lottery.md"
_BLOCK = re.compile(r"<!-- example:([\w-]+) -->\s*\n```[\w-]*\n(.*?)\n```", re.DOTALL)
OCTOBER = (parse_moment("2026-10-01"), parse_moment("2026-11-01"))


def seed(n: int) -> bytes:
    return hashlib.sha256(b"seed %d" % n).digest()


class TestDraw:
    def test_the_same_seed_draws_the_same_winners_and_another_seed_others(self):
        assert draw(1000, 10, seed(1)) == draw(1000, 10, seed(1))
        assert draw(1000, 10, seed(1)) != draw(1000, 10, seed(2))

    def test_winners_are_distinct_indexes_of_the_eligible_list(self):
        for n in range(50):
            winners = draw(40, 39, seed(n))
            assert len(winners) == len(set(winners)) == 39
            assert all(0 <= w < 40 for w in winners)

    def test_more_winners_than_eligible_receipts_means_everyone_wins_in_order(self):
        assert draw(5, 5, seed(0)) == draw(5, 9, seed(0)) == [0, 1, 2, 3, 4]
        assert draw(0, 3, seed(0)) == []
        assert draw(7, 0, seed(0)) == []

    def test_a_shorter_draw_is_a_prefix_of_a_longer_one(self):
        assert draw(500, 20, seed(3))[:5] == draw(500, 5, seed(3))

    def test_every_index_wins_about_equally_often_over_many_seeds(self):
        counts, firsts = Counter(), Counter()
        for n in range(3000):
            winners = draw(7, 3, seed(n))
            counts.update(winners)
            firsts[winners[0]] += 1
        for index in range(7):  # expected 1286 and 429; ~5 standard deviations of slack
            assert abs(counts[index] - 3000 * 3 / 7) < 130
            assert abs(firsts[index] - 3000 / 7) < 100

    def test_negative_counts_are_refused(self):
        with pytest.raises(ValueError):
            draw(-1, 1, seed(0))
        with pytest.raises(ValueError):
            draw(3, -1, seed(0))


class TestRejectionSampling:
    def test_for_three_receipts_only_the_top_value_is_rejected(self):
        top = (1 << 256) - 1  # 2**256 mod 3 == 1: exactly one value is biased
        assert uniform_index(top, 3) is None
        assert uniform_index(top - 1, 3) == 2  # 2**256 - 2 is the largest accepted value

    @pytest.mark.parametrize("count", range(1, 17))
    def test_accepted_values_give_every_index_equally_often(self, count):
        bits = 4  # all 16 values of a 4-bit draw, enumerated
        accepted = [uniform_index(v, count, bits) for v in range(16)]
        tally = Counter(a for a in accepted if a is not None)
        assert set(tally) == set(range(count)) and len(set(tally.values())) == 1
        assert accepted.count(None) == 16 % count

    def test_a_rejected_value_moves_on_to_the_next_counter(self, monkeypatch):
        tried = []

        def fake(seed_bytes, winner, counter):
            tried.append((winner, counter))
            return (1 << 256) - 1 if counter == 0 else 3 * winner + counter  # top: rejected

        monkeypatch.setattr(lottery, "candidate", fake)
        assert draw(3, 2, b"s") == [1, 2]  # winner 0: 1 % 3; winner 1: 4 % 3 == 1 taken, 5 % 3
        assert tried == [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2)]

    def test_candidates_hash_the_seed_winner_and_counter_big_endian(self):
        digest = hashlib.sha256(b"s" + (2).to_bytes(8, "big") + (5).to_bytes(8, "big")).digest()
        assert candidate(b"s", 2, 5) == int.from_bytes(digest, "big")


class TestStatement:
    def test_the_statement_is_one_line_per_field_and_per_shard(self):
        shards = [ShardCommitment(0, 5, 12, bytes(32)), ShardCommitment(3, 1, 2, b"\xff" * 32)]
        text = statement_bytes(*OCTOBER, 2, shards).decode()
        assert text.splitlines() == [
            "posray-lottery-v1", "from 2026-10-01T00:00:00.000Z", "to 2026-11-01T00:00:00.000Z",
            "winners 2", "settle_s 60",
            f"shard 0 eligible 5 tree_size 12 note_sha256 {'00' * 32}",
            f"shard 3 eligible 1 tree_size 2 note_sha256 {'ff' * 32}",
        ]
        assert text.endswith("\n") and seed_of(text.encode()) == hashlib.sha256(text.encode()).digest()

    def test_shards_out_of_order_or_an_empty_period_are_refused(self):
        a, b = ShardCommitment(1, 1, 1, bytes(32)), ShardCommitment(2, 1, 1, bytes(32))
        with pytest.raises(ValueError):
            statement_bytes(*OCTOBER, 1, [b, a])
        with pytest.raises(ValueError):
            statement_bytes(*OCTOBER, 1, [a, a])
        with pytest.raises(ValueError):
            statement_bytes(OCTOBER[1], OCTOBER[0], 1, [a])

    def test_indexes_run_through_the_shards_in_statement_order(self):
        shards = [ShardCommitment(0, 2, 9, bytes(32)), ShardCommitment(4, 0, 9, bytes(32)),
                  ShardCommitment(7, 3, 9, bytes(32))]
        assert [locate(i, shards) for i in range(5)] == [(0, 0), (0, 1), (7, 0), (7, 1), (7, 2)]
        with pytest.raises(IndexError):
            locate(5, shards)


class TestDocumentedExample:
    @pytest.fixture(scope="class")
    def blocks(self) -> dict[str, str]:
        return dict(_BLOCK.findall(DOC.read_text(encoding="utf-8")))

    @pytest.fixture(scope="class")
    def notes(self, blocks) -> list[tuple[int, int, int, str]]:
        return [(0, 5, 12, blocks["note-0"] + "\n"), (2, 4, 9, blocks["note-2"] + "\n")]

    def test_the_example_notes_are_checkpoints_signed_by_the_example_key(self, notes):
        signer = NoteSigner("lottery.example/log", bytes(range(32)))
        assert signer.verifier_key() in DOC.read_text(encoding="utf-8")
        verifier = NoteVerifier.from_verifier_key(signer.verifier_key())
        for shard, _, size, note in notes:
            opened = open_checkpoint(verifier, note, f"lottery.example/log/{shard}")
            assert opened.tree_size == size
            assert sign_checkpoint(signer, Checkpoint(opened.origin, size, opened.root_hash)) == note

    def test_the_statement_seed_and_winners_are_what_posray_computes(self, blocks, notes):
        shards = [ShardCommitment(s, e, t, note_sha256(n)) for s, e, t, n in notes]
        statement = statement_bytes(*OCTOBER, 3, shards)
        assert statement == (blocks["statement"] + "\n").encode()
        assert seed_of(statement).hex() == blocks["seed"].strip()
        assert draw(9, 3, seed_of(statement)) == [int(w) for w in blocks["winners"].split()]

    def test_the_documented_python_reproduces_posray_on_the_example_and_at_random(self, blocks, notes):
        namespace: dict = {}
        exec(compile(blocks["reproduce"], "docs/lottery.md", "exec"), namespace)
        text = namespace["statement"]("2026-10-01T00:00:00.000Z", "2026-11-01T00:00:00.000Z", 3, notes)
        assert text == (blocks["statement"] + "\n").encode()
        for count, winners, n in [(9, 3, 0), (3, 2, 1), (1, 1, 2), (50, 49, 3), (10**6, 25, 4), (4, 9, 5)]:
            assert namespace["draw"](count, winners, seed(n)) == draw(count, winners, seed(n))
