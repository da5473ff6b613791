"""posray submits its checkpoints to witnesses and publishes their cosignatures (in-memory ledger,
witnesses in process)."""

from __future__ import annotations

import asyncio

from posray.adapters.memory_ledger import MemoryLedger, MemoryLedgerState
from posray.adapters.memory_tiles import MemoryTiles
from posray.adapters.memory_witness import MemoryWitnessState
from posray.domain import tlog
from posray.domain.cosignature import Cosigner, CosignatureVerifier, count_cosignatures
from posray.domain.errors import Unavailable
from posray.domain.note import Checkpoint, NoteSigner, NoteVerifier, sign_checkpoint
from posray.services import proofs, tiles
from posray.services.witness import Witness
from posray.services.witnessing import WitnessConfig, keep_witnessing, submit, witness_round
from tests.contract.support import append, subs

SHARD = 2
SIGNER = NoteSigner("log.example/log", b"k" * 32)
ORIGIN = f"log.example/log/{SHARD}"
DOCS = subs("T-witness", range(1, 301))
FORK_DOCS = subs("T-witness-fork", range(1, 301))
COSIGNERS = [Cosigner(f"witness.example/w{n}", bytes([n]) * 32) for n in (1, 2)]


class Log:
    def __init__(self, docs=DOCS):
        self.ledger = MemoryLedger(MemoryLedgerState())
        self.docs, self.size = docs, 0

    async def grow(self, to: int) -> None:
        while self.size < to:
            take = min(50, to - self.size)
            await append(self.ledger, await self.ledger.head(SHARD), self.docs[self.size:self.size + take], 1_700_000_000_000)
            self.size += take
        root = tlog.range_hash(0, to, await self.ledger.stored_hashes(SHARD, tlog.range_keys(0, to)))
        await self.ledger.add_checkpoint(SHARD, to, root, sign_checkpoint(SIGNER, Checkpoint(ORIGIN, to, root)), 0)


class InProcess:
    """WitnessClient straight into Witness services, by URL; `down` ones are unreachable."""

    def __init__(self, witnesses: dict[str, Witness]):
        self.witnesses, self.down, self.requests = witnesses, set(), []

    async def add_checkpoint(self, url: str, body: bytes) -> tuple[int, bytes]:
        if url in self.down:
            raise Unavailable(f"POST {url}/add-checkpoint: ConnectError")
        self.requests.append((url, body.split(b"\n", 1)[0].decode()))
        answer = await self.witnesses[url].add_checkpoint(body)
        return answer.status, answer.body


def setup(states=None):
    states = states or [MemoryWitnessState() for _ in COSIGNERS]
    keys = {ORIGIN: [NoteVerifier.from_verifier_key(SIGNER.verifier_key())]}
    witnesses = {f"http://w{n}": Witness(c, keys, s) for n, (c, s) in enumerate(zip(COSIGNERS, states))}
    configs = [WitnessConfig.parse(url, w.cosigner.verifier_key()) for url, w in witnesses.items()]
    return InProcess(witnesses), configs, states


def run(coro):
    return asyncio.run(coro)


def verifiers():
    return [CosignatureVerifier.from_verifier_key(c.verifier_key()) for c in COSIGNERS]


class TestSubmitting:
    def test_an_honest_log_is_cosigned_by_every_witness_and_published_with_the_checkpoint(self):
        log, (client, configs, _) = Log(), setup()

        async def main():
            await log.grow(100)
            first = await witness_round(log.ledger, client, configs, [SHARD])
            await log.grow(250)
            second = await witness_round(log.ledger, client, configs, [SHARD])
            again = await witness_round(log.ledger, client, configs, [SHARD])
            return first, second, again, await proofs.checkpoint_note(log.ledger, SHARD)

        first, second, again, published = run(main())
        assert all(r.cosigned for r in first + second + again)
        assert [r[1] for r in client.requests] == ["old 0", "old 0", "old 100", "old 100"]  # proofs from 100
        good, failed = count_cosignatures(published, verifiers())
        assert len(good) == 2 and not failed and published.startswith(f"{ORIGIN}\n250\n")
        assert NoteVerifier.from_verifier_key(SIGNER.verifier_key()).verify(published)  # still the log's note

    def test_a_witness_ahead_of_what_posray_stored_is_caught_up_after_its_409(self):
        log, (client, configs, states) = Log(), setup()

        async def main():
            await log.grow(100)
            await submit(log.ledger, client, configs[0], SHARD)
            forgetful = Log()  # the same log's ledger restored without its cosignatures table
            await forgetful.grow(100)
            await forgetful.grow(150)
            return await submit(forgetful.ledger, client, configs[0], SHARD)

        result = run(main())
        assert result.cosigned and result.tree_size == 150
        assert [r[1] for r in client.requests] == ["old 0", "old 0", "old 100"]

    def test_a_fork_is_refused_and_gets_no_cosignature(self):
        honest, fork, (client, configs, _) = Log(), Log(FORK_DOCS), setup()

        async def main():
            await honest.grow(100)
            await witness_round(honest.ledger, client, configs, [SHARD])
            await fork.grow(100)
            same_size = await submit(fork.ledger, client, configs[0], SHARD)
            await fork.grow(200)
            larger = await submit(fork.ledger, client, configs[0], SHARD)
            return same_size, larger, await proofs.checkpoint_note(fork.ledger, SHARD)

        same_size, larger, published = run(main())
        assert not same_size.cosigned and "422" in same_size.detail
        assert not larger.cosigned and "422" in larger.detail
        assert count_cosignatures(published, verifiers())[0] == []

    def test_a_witness_that_is_down_fails_alone(self):
        log, (client, configs, _) = Log(), setup()
        client.down.add(configs[1].url)

        async def main():
            await log.grow(60)
            return await witness_round(log.ledger, client, configs, [SHARD])

        results = {r.witness: r for r in run(main())}
        assert results[configs[0].verifier.label].cosigned
        assert "Unavailable" in results[configs[1].verifier.label].detail


class TestPublishing:
    def test_a_quorum_publishes_the_latest_checkpoint_with_enough_cosignatures(self):
        log, (client, configs, _) = Log(), setup()

        async def main():
            await log.grow(100)
            await witness_round(log.ledger, client, configs, [SHARD])
            await log.grow(120)
            await submit(log.ledger, client, configs[0], SHARD)
            await log.grow(130)  # not cosigned at all
            return [await proofs.published_checkpoint(log.ledger, SHARD, cosigned_min=k) for k in (0, 1, 2)]

        sizes = [found[0] for found in run(main())]
        assert sizes == [130, 120, 100]

    def test_the_tile_export_rewrites_the_checkpoint_when_cosignatures_arrive(self):
        log, (client, configs, _) = Log(), setup()
        sink = MemoryTiles()

        async def main():
            await log.grow(100)
            await tiles.export(log.ledger, sink, SHARD, ORIGIN)
            before = sink.files[f"{SHARD}/checkpoint"]
            await witness_round(log.ledger, client, configs, [SHARD])
            done = await tiles.export(log.ledger, sink, SHARD, ORIGIN)
            return before, done

        before, done = run(main())
        after = sink.files[f"{SHARD}/checkpoint"].decode()
        assert done.written == 1 and after.startswith(before.decode())
        assert len(count_cosignatures(after, verifiers())[0]) == 2


class TestLoop:
    def test_the_loop_keeps_going_through_failures(self):
        log, (client, configs, _) = Log(), setup()
        rounds = []

        async def sleep(_):
            rounds.append(1)
            if len(rounds) == 1:
                client.down.clear()
                await log.grow(80)
            if len(rounds) == 3:
                raise asyncio.CancelledError

        async def main():
            await log.grow(50)
            client.down.add(configs[0].url)
            try:
                await keep_witnessing(log.ledger, client, configs, [SHARD], 1.0, sleep=sleep)
            except asyncio.CancelledError:
                pass
            return await log.ledger.cosigned_size(SHARD, configs[0].verifier.label)

        assert run(main()) == 80


class TestSettings:
    def test_witnesses_are_url_key_pairs_and_the_quorum_fits_them(self):
        import pytest

        from posray.settings import Settings, SettingsError, witness_list

        key = COSIGNERS[0].verifier_key()
        env = {"POSRAY_WITNESSES": f"https://w.example/a={key}, ", "POSRAY_WITNESS_QUORUM": "1"}
        settings = Settings.from_env(env)
        assert witness_list(settings.witnesses) == (("https://w.example/a", key),) and settings.witness_quorum == 1
        for bad in ({"POSRAY_WITNESSES": f"w.example={key}"}, {"POSRAY_WITNESSES": f"https://w={SIGNER.verifier_key()}"},
                    {"POSRAY_WITNESSES": f"https://a={key},https://b={key}"}, {"POSRAY_WITNESS_QUORUM": "1"}):
            with pytest.raises(SettingsError, match="POSRAY_WITNESS"):
                Settings.from_env(bad)
