"""Witnesses: cosignature/v1 (c2sp.org/tlog-cosignature), the add-checkpoint protocol and the witness's
decisions (c2sp.org/tlog-witness), the witness service's lock and persistence, and posray's submissions."""

from __future__ import annotations

import asyncio
import base64
import hashlib

import pytest

from posray.adapters.memory_witness import MemoryWitnessState
from posray.domain.cosignature import (
    Cosigner, CosignatureVerifier, cosignature_timestamp, count_cosignatures, signed_message, with_signatures,
)
from posray.domain.merkle import EMPTY_ROOT, consistency_proof, leaf_hash, root_hash
from posray.domain.note import Checkpoint, NoteError, NoteSigner, NoteVerifier, sign_checkpoint
from posray.domain.witness import (
    SIZE_CONTENT_TYPE, AddCheckpoint, WitnessRequestError, decide, format_add_checkpoint, origin_of,
    parse_add_checkpoint,
)
from posray.services.witness import Witness

LOG = NoteSigner("log.example/log", b"L" * 32)
OTHER_LOG = NoteSigner("log.example/log", b"M" * 32)  # same name, another key
ORIGIN = "log.example/log/3"
KEYS = {ORIGIN: [NoteVerifier.from_verifier_key(LOG.verifier_key())]}
WITNESS = Cosigner("witness.example/w1", b"W" * 32)
NOW = 1_790_000_000
LEAVES = [leaf_hash(f"record {i}".encode()) for i in range(40)]
FORKED = [leaf_hash(f"another record {i}".encode()) for i in range(40)]

# c2sp.org/tlog-witness, "add-checkpoint": the example request body.
SPEC_REQUEST = (
    "old 20852014\n"
    "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n"
    "jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n"
    "5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n"
    "/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n"
    "\n"
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    "\n"
    "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
    "— example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2Wks+49/V6267UEjw6QUXTS5Rovnzv++qbSzm9Q=\n"
)
# c2sp.org/tlog-cosignature: the example cosignature line and its signed message (time 1679315147).
SPEC_COSIGNATURE = ("— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2o"
                    "yin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n")
SPEC_BODY = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
SPEC_MESSAGE = "cosignature/v1\ntime 1679315147\n" + SPEC_BODY
# transparency-dev/formats note tests: a native cosignature/v1 verifier key, a cosignature's timestamp.
REMORA_VKEY = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
FORMATS_COSIGNATURE = ("— w ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWWOworDcFiEBYJX"
                       "ORmnFBOBA==\n")


def note(size: int, leaves=LEAVES, signer=LOG, origin=ORIGIN, root: bytes | None = None) -> str:
    root = root if root is not None else root_hash(leaves[:size])
    return sign_checkpoint(signer, Checkpoint(origin, size, root, ("posray-chain 1 AAAA",)))


def request(old: int, size: int, leaves=LEAVES, proof_leaves=None, **kwargs) -> AddCheckpoint:
    proof = consistency_proof(old, (proof_leaves or leaves)[:size]) if 0 < old < size else []
    return AddCheckpoint(old, tuple(proof), note(size, leaves, **kwargs))


def cosigned(size: int, leaves=LEAVES):
    return decide(request(0, size, leaves), KEYS[ORIGIN], None, WITNESS, NOW).state


class TestCosignatures:
    def test_the_signed_message_is_the_specs_example(self):
        assert signed_message(SPEC_BODY, 1679315147).decode() == SPEC_MESSAGE

    def test_timestamps_of_published_cosignatures(self):
        assert cosignature_timestamp(SPEC_COSIGNATURE) == 1679315147
        assert cosignature_timestamp(FORMATS_COSIGNATURE) == 1727964367

    def test_a_published_cosignature_key_parses_with_its_key_id(self):
        verifier = CosignatureVerifier.from_verifier_key(REMORA_VKEY)
        raw = base64.b64decode(REMORA_VKEY.split("+")[2])
        assert verifier.label == "remora.n621.de+da77ade7" and verifier.public_key == raw[1:]
        assert hashlib.sha256(b"remora.n621.de\n\x04" + raw[1:]).digest()[:4].hex() == "da77ade7"
        assert verifier.verifier_key() == REMORA_VKEY

    def test_a_plain_ed25519_note_key_is_not_a_cosignature_key(self):
        with pytest.raises(NoteError, match="not a cosignature/v1 key"):
            CosignatureVerifier.from_verifier_key(LOG.verifier_key())

    def test_a_cosignature_verifies_and_covers_the_whole_body_and_time(self):
        text = note(10)
        line = WITNESS.cosign(text.split("\n\n")[0] + "\n", NOW)
        verifier = CosignatureVerifier.from_verifier_key(WITNESS.verifier_key())
        found = verifier.verify(with_signatures(text, [line]))
        assert (found.timestamp, found.line) == (NOW, line) and cosignature_timestamp(line) == NOW
        assert base64.b64decode(line.split()[2])[:4] == verifier.key_id
        other = note(10, root=b"\1" * 32)
        with pytest.raises(NoteError, match="bad signature"):
            verifier.verify(with_signatures(other, [line]))  # a cosignature moved onto another checkpoint

    def test_log_verifiers_ignore_cosignatures_and_cosignatures_of_unknown_keys_are_ignored(self):
        text = note(10)
        line = WITNESS.cosign(text.split("\n\n")[0] + "\n", NOW)
        assert KEYS[ORIGIN][0].verify(with_signatures(text, [line]))  # the log's key still verifies
        stranger = CosignatureVerifier.from_verifier_key(Cosigner("witness.example/w1", b"X" * 32).verifier_key())
        good, failed = count_cosignatures(with_signatures(text, [line]), [stranger])
        assert good == [] and "unknown key" in failed[0]

    def test_the_timestamp_must_not_be_zero(self):
        with pytest.raises(NoteError):
            WITNESS.cosign(SPEC_BODY, 0)

    def test_appending_a_line_twice_keeps_one(self):
        text = note(3)
        line = WITNESS.cosign(text.split("\n\n")[0] + "\n", NOW)
        assert with_signatures(with_signatures(text, [line]), [line]) == text + line


class TestRequests:
    def test_the_specs_example_request_parses(self):
        parsed = parse_add_checkpoint(SPEC_REQUEST.encode())
        assert parsed.old_size == 20852014 and len(parsed.proof) == 4
        assert parsed.proof[0] == base64.b64decode("PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=")
        assert origin_of(parsed.note) == "example.com/behind-the-sofa"
        assert format_add_checkpoint(parsed.old_size, list(parsed.proof), parsed.note) == SPEC_REQUEST.encode()

    def test_an_unknown_log_is_a_404_even_for_the_specs_example(self):
        assert decide(parse_add_checkpoint(SPEC_REQUEST.encode()), None, None, WITNESS, NOW).status == 404

    @pytest.mark.parametrize("body", [
        b"old 01\n\n" + note(3).encode(), b"old -1\n\n" + note(3).encode(), b"old 3\n" + note(3).encode(),
        b"new 3\n\n" + note(3).encode(), b"old 3\nnot base64\n\n" + note(3).encode(),
        b"old 3\n" + base64.b64encode(b"short") + b"\n\n" + note(3).encode(),
        b"old 3\n" + (base64.b64encode(b"h" * 32) + b"\n") * 64 + b"\n" + note(3).encode(),
        b"old 3\n\n\xff", b"old 99999999999999999999999\n\n" + note(3).encode()])
    def test_malformed_requests_are_refused(self, body):
        with pytest.raises(WitnessRequestError):
            parse_add_checkpoint(body)


class TestDecisions:
    def test_the_first_checkpoint_of_a_log_is_cosigned_from_size_zero(self):
        answer = decide(request(0, 10), KEYS[ORIGIN], None, WITNESS, NOW)
        assert answer.status == 200 and answer.body.decode().startswith("— witness.example/w1 ")
        state = answer.state
        assert (state.origin, state.tree_size, state.root_hash) == (ORIGIN, 10, root_hash(LEAVES[:10]))
        verifier = CosignatureVerifier.from_verifier_key(WITNESS.verifier_key())
        assert verifier.verify(state.note).timestamp == NOW  # the stored note carries the cosignature

    @pytest.mark.parametrize("old, size", [(10, 17), (10, 10), (10, 40), (16, 33)])
    def test_a_consistent_extension_is_cosigned(self, old, size):
        answer = decide(request(old, size), KEYS[ORIGIN], cosigned(old), WITNESS, NOW)
        assert answer.status == 200 and answer.state.tree_size == size

    def test_an_old_size_other_than_the_cosigned_one_is_a_409_with_the_witness_size(self):
        answer = decide(request(5, 17), KEYS[ORIGIN], cosigned(10), WITNESS, NOW)
        assert (answer.status, answer.body, answer.content_type) == (409, b"10\n", SIZE_CONTENT_TYPE)
        assert answer.state is None
        assert decide(request(5, 17), KEYS[ORIGIN], None, WITNESS, NOW).body == b"0\n"

    def test_a_fork_at_a_larger_size_is_a_422(self):
        forked = request(10, 20, FORKED)  # consistent with the fork's size 10, not the cosigned one
        assert decide(forked, KEYS[ORIGIN], cosigned(10), WITNESS, NOW).status == 422

    def test_a_fork_at_the_same_size_is_a_422(self):
        assert decide(request(10, 10, FORKED), KEYS[ORIGIN], cosigned(10), WITNESS, NOW).status == 422

    def test_a_proof_that_does_not_verify_is_a_422(self):
        good = request(10, 20)
        bad = AddCheckpoint(10, (b"\0" * 32,) + good.proof[1:], good.note)
        assert decide(bad, KEYS[ORIGIN], cosigned(10), WITNESS, NOW).status == 422
        assert decide(AddCheckpoint(10, (), good.note), KEYS[ORIGIN], cosigned(10), WITNESS, NOW).status == 422

    def test_a_proof_from_size_zero_is_a_422(self):
        answer = decide(AddCheckpoint(0, (b"\0" * 32,), note(10)), KEYS[ORIGIN], None, WITNESS, NOW)
        assert answer.status == 422

    def test_an_empty_tree_must_have_the_empty_root(self):
        assert decide(AddCheckpoint(0, (), note(0, root=b"\1" * 32)), KEYS[ORIGIN], None, WITNESS, NOW).status == 422
        assert decide(AddCheckpoint(0, (), note(0, root=EMPTY_ROOT)), KEYS[ORIGIN], None, WITNESS, NOW).status == 200

    def test_an_old_size_beyond_the_checkpoint_is_a_400(self):
        assert decide(AddCheckpoint(12, (), note(10)), KEYS[ORIGIN], cosigned(12), WITNESS, NOW).status == 400

    def test_no_trusted_signature_is_a_403(self):
        answer = decide(request(0, 10, signer=OTHER_LOG), KEYS[ORIGIN], None, WITNESS, NOW)
        assert answer.status == 403

    def test_a_failing_signature_of_a_trusted_key_is_a_403(self):
        text = note(10)
        body, _, signature = text.partition("\n\n")
        tampered = body.replace("\n10\n", "\n11\n") + "\n\n" + signature
        assert decide(AddCheckpoint(0, (), tampered), KEYS[ORIGIN], None, WITNESS, NOW).status == 403


def run(coro):
    return asyncio.run(coro)


class TestWitnessService:
    def test_the_new_state_is_saved_before_the_answer_and_remembered_after_a_restart(self):
        store = MemoryWitnessState()
        witness = Witness(WITNESS, KEYS, store, clock=lambda: NOW)
        answer = run(witness.add_checkpoint(format_add_checkpoint(0, [], note(10))))
        assert answer.status == 200 and store.saves == 1 and store.saved[ORIGIN].tree_size == 10
        again = Witness(WITNESS, KEYS, store, clock=lambda: NOW)
        stale = run(again.add_checkpoint(format_add_checkpoint(0, [], note(12))))
        assert (stale.status, stale.body) == (409, b"10\n")
        origin_hash = hashlib.sha256(ORIGIN.encode()).hexdigest()
        assert again.checkpoint(origin_hash) == store.saved[ORIGIN].note and again.checkpoint("0" * 64) is None

    def test_nothing_is_cosigned_when_the_state_cannot_be_saved(self):
        store = MemoryWitnessState()
        witness = Witness(WITNESS, KEYS, store, clock=lambda: NOW)
        store.fail = OSError("disk full")
        with pytest.raises(OSError):
            run(witness.add_checkpoint(format_add_checkpoint(0, [], note(10))))
        store.fail = None
        assert witness.size(ORIGIN) == 0
        assert run(witness.add_checkpoint(format_add_checkpoint(0, [], note(10)))).status == 200

    def test_concurrent_requests_from_the_same_size_cannot_roll_the_state_back(self):
        store = MemoryWitnessState()
        witness = Witness(WITNESS, KEYS, store, clock=lambda: NOW)

        async def both():
            bodies = [format_add_checkpoint(0, [], note(size)) for size in (20, 10)]
            return await asyncio.gather(*(witness.add_checkpoint(b) for b in bodies))

        statuses = sorted(a.status for a in run(both()))
        assert statuses == [200, 409] and witness.size(ORIGIN) == 20 and store.saved[ORIGIN].tree_size == 20

    def test_a_malformed_request_is_a_400(self):
        witness = Witness(WITNESS, KEYS, MemoryWitnessState(), clock=lambda: NOW)
        assert run(witness.add_checkpoint(b"hello")).status == 400
