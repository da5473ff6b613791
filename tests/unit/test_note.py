"""C2SP signed notes and tlog checkpoints, including the published sumdb/note test vectors."""

from __future__ import annotations

import base64
import hashlib

import pytest

from posray.domain.keys import OperatorKeys
from posray.domain.merkle import leaf_hash, root_hash
from posray.domain.note import (
    Checkpoint,
    NoteError,
    NoteSigner,
    NoteVerifier,
    key_hash,
    open_checkpoint,
    sign_checkpoint,
)

# Published vectors of golang.org/x/mod/sumdb/note (note.go docs and note_test.go).
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
)
PETER_NOTE = TEXT + "\n" + PETER_SIG

ORIGIN = "posray.example/shard/0"
BODY = "line one\nline two\n"


def _insert(text: str, at: int, extra: str) -> str:
    """Insert `extra` at byte offset `at` of `text`, as Go's byte slicing does."""
    raw = text.encode()
    return (raw[:at] + extra.encode() + raw[at:]).decode()


def _peter_seed() -> bytes:
    encoded = base64.b64decode(PETER_SKEY.split("+", 4)[4])
    assert encoded[0] == 0x01
    return encoded[1:]


@pytest.fixture
def signer() -> NoteSigner:
    return NoteSigner(ORIGIN, OperatorKeys.from_seed(bytes(range(32))).signing_seed)


@pytest.fixture
def verifier(signer) -> NoteVerifier:
    return NoteVerifier.from_verifier_key(signer.verifier_key())


class TestPublishedVectors:
    def test_our_verifier_accepts_the_published_note_with_the_published_key(self):
        assert NoteVerifier.from_verifier_key(PETER_VKEY).verify(PETER_NOTE) == TEXT

    def test_signing_with_the_published_key_reproduces_the_published_note_byte_for_byte(self):
        signer = NoteSigner("PeterNeumann", _peter_seed())
        assert signer.sign(TEXT) == PETER_NOTE
        assert signer.verifier_key() == PETER_VKEY
        assert signer.key_hash == bytes.fromhex("c74f20a3")

    def test_the_doubly_signed_note_verifies_under_each_key(self):
        note = TEXT + "\n" + PETER_SIG + ENOCH_SIG
        assert NoteVerifier.from_verifier_key(PETER_VKEY).verify(note) == TEXT
        assert NoteVerifier.from_verifier_key(ENOCH_VKEY).verify(note) == TEXT

    def test_repeated_and_foreign_corrupt_signatures_do_not_matter(self):
        corrupt_enoch = _insert(ENOCH_SIG, 60, "ABCD")
        note = TEXT + "\n" + PETER_SIG + PETER_SIG + ENOCH_SIG + ENOCH_SIG + corrupt_enoch
        assert NoteVerifier.from_verifier_key(PETER_VKEY).verify(note) == TEXT

    def test_a_corrupt_signature_of_the_known_key_is_a_bad_signature(self):
        note = TEXT + "\n" + _insert(PETER_SIG, 60, "ABCD")
        with pytest.raises(NoteError, match="^bad signature: .*PeterNeumann\\+c74f20a3"):
            NoteVerifier.from_verifier_key(PETER_VKEY).verify(note)

    @pytest.mark.parametrize(
        "message",
        [
            TEXT,
            TEXT + "\n",
            TEXT + "\n" + PETER_SIG[:-1],
            "\x01" + TEXT + "\n" + PETER_SIG,
            "\udcff" + TEXT + "\n" + PETER_SIG,  # the str spelling of a stray 0xff byte
            TEXT + "\n" + "— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=",
            TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
            TEXT + "\n" + PETER_SIG * 101,
        ],
    )
    def test_the_published_malformed_messages_are_malformed(self, message):
        with pytest.raises(NoteError, match="^malformed note"):
            NoteVerifier.from_verifier_key(PETER_VKEY).verify(message)

    def test_another_name_or_key_id_is_an_unknown_key(self):
        verifier = NoteVerifier.from_verifier_key(PETER_VKEY)
        for sig in (PETER_SIG.replace("PeterNeumann", "CarmenSandiego"), PETER_SIG.replace("x08g", "xxxx")):
            with pytest.raises(NoteError, match="^unknown key"):
                verifier.verify(TEXT + "\n" + sig)

    def test_every_mangling_of_the_published_verifier_key_is_refused(self):
        raw = PETER_VKEY.encode()
        manglings = {raw[i:j] for i in range(len(raw)) for j in range(i + 1, len(raw) + 1)}
        manglings |= {raw[:i] + bytes([raw[i] + 1]) + raw[i + 1 :] for i in range(len(raw))}
        manglings.discard(raw)
        for mangled in manglings:
            with pytest.raises(NoteError):
                NoteVerifier.from_verifier_key(mangled.decode())

    @pytest.mark.parametrize(
        "vkey",
        [
            # wrong key length and unknown algorithm, each with an adjusted key hash
            "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
            "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        ],
    )
    def test_the_published_bad_verifier_keys_are_refused(self, vkey):
        with pytest.raises(NoteError):
            NoteVerifier.from_verifier_key(vkey)


class TestKeys:
    def test_key_hash_is_the_first_four_bytes_of_sha256_over_name_newline_type_key(self, signer):
        expected = hashlib.sha256(ORIGIN.encode() + b"\x0a" + b"\x01" + signer.public_key).digest()[:4]
        assert signer.key_hash == expected == key_hash(ORIGIN, signer.public_key)

    def test_the_verifier_key_text_is_name_hex_hash_and_base64_type_and_key(self, signer):
        expected = f"{ORIGIN}+{signer.key_hash.hex()}+" + base64.b64encode(b"\x01" + signer.public_key).decode()
        assert signer.verifier_key() == expected

    def test_the_verifier_key_round_trips(self, signer, verifier):
        assert (verifier.name, verifier.key_hash, verifier.public_key) == (
            signer.name,
            signer.key_hash,
            signer.public_key,
        )
        assert verifier.verifier_key() == signer.verifier_key()

    def test_the_signer_repr_hides_the_seed(self):
        seed = bytes(range(100, 132))
        signer = NoteSigner(ORIGIN, seed)
        text = repr(signer)
        for spelling in (seed.hex(), base64.b64encode(seed).decode(), repr(seed)):
            assert spelling not in text
        assert not hasattr(signer, "__dict__")
        assert all(getattr(signer, slot) != seed for slot in ("name", "public_key", "key_hash"))

    @pytest.mark.parametrize("name", ["", "a b", "a+b", "tab\there", "nbsp\xa0here", "ideographic\u3000space"])
    def test_invalid_key_names_are_refused(self, name):
        with pytest.raises(NoteError, match="invalid key name"):
            NoteSigner(name, bytes(32))

    def test_a_seed_must_be_32_bytes(self):
        with pytest.raises(NoteError):
            NoteSigner(ORIGIN, bytes(31))


class TestSignedNotes:
    def test_a_signed_note_is_body_blank_line_and_one_signature_line(self, signer):
        note = signer.sign(BODY)
        head, line = note.split("\n\n")
        assert head + "\n" == BODY
        assert line.startswith("\u2014 " + ORIGIN + " ") and line.endswith("\n")
        raw = base64.b64decode(line[len("\u2014 " + ORIGIN + " ") : -1])
        assert raw[:4] == signer.key_hash and len(raw) == 4 + 64

    def test_round_trip(self, signer, verifier):
        assert verifier.verify(signer.sign(BODY)) == BODY

    def test_a_body_may_contain_blank_lines(self, signer, verifier):
        body = "first\n\nafter a blank line\n\n"
        assert verifier.verify(signer.sign(body)) == body

    def test_tampering_with_any_body_character_is_detected(self, signer, verifier):
        note = signer.sign(BODY)
        for i, char in enumerate(BODY):
            tampered = note[:i] + ("x" if char == "\n" else chr(ord(char) ^ 1)) + note[i + 1 :]
            with pytest.raises(NoteError):
                verifier.verify(tampered)
            if char != "\n":
                with pytest.raises(NoteError, match="^bad signature"):
                    verifier.verify(tampered)

    def test_a_verifier_for_another_key_under_the_same_name_does_not_accept(self, signer):
        other = NoteVerifier.from_verifier_key(NoteSigner(ORIGIN, bytes(32)).verifier_key())
        with pytest.raises(NoteError, match="^unknown key"):
            other.verify(signer.sign(BODY))

    def test_a_forged_line_carrying_our_name_and_key_id_is_a_bad_signature(self, signer, verifier):
        forger = NoteSigner(ORIGIN, bytes(32))
        body, line = forger.sign(BODY).split("\n\n")
        raw = base64.b64decode(line.split(" ")[2])
        forged = f"{body}\n\n\u2014 {ORIGIN} {base64.b64encode(signer.key_hash + raw[4:]).decode()}\n"
        with pytest.raises(NoteError, match="^bad signature"):
            verifier.verify(forged)

    def test_signature_lines_of_other_keys_are_ignored(self, signer, verifier):
        witness = NoteSigner("witness.example/w1", bytes(32))
        same_name_other_key = NoteSigner(ORIGIN, bytes(32))
        ours = signer.sign(BODY).split("\n\n")[1]
        theirs = witness.sign(BODY).split("\n\n")[1] + same_name_other_key.sign(BODY).split("\n\n")[1]
        note = BODY + "\n" + theirs + ours
        assert verifier.verify(note) == BODY
        assert NoteVerifier.from_verifier_key(witness.verifier_key()).verify(note) == BODY

    def test_a_note_without_our_signature_is_an_unknown_key(self, verifier):
        witness = NoteSigner("witness.example/w1", bytes(32))
        with pytest.raises(NoteError, match="^unknown key"):
            verifier.verify(witness.sign(BODY))

    def test_malformed_notes_are_refused(self, signer, verifier):
        note = signer.sign(BODY)
        body, line = note.split("\n\n")
        name_and_b64 = line[len("\u2014 ") : -1]
        malformed = [
            note.replace("\n\n", "\n"),  # no blank line
            note[:-1],  # no final newline
            body + "\n\n",  # no signature line
            body + "\n\n\u2014 " + ORIGIN + " not*base64\n",
            body + "\n\n\u2014 " + ORIGIN + " " + name_and_b64.split(" ")[1].rstrip("=") + "\n",  # no padding
            body + "\n\n\u2014 " + ORIGIN + " AAAAAA==\n",  # key ID but no signature
            body + "\n\n\u2014 " + ORIGIN + "\n",  # no signature at all
            body + "\n\n-- " + name_and_b64 + "\n",  # ASCII dashes
            body + "\n\n\u2013 " + name_and_b64 + "\n",  # en dash
            body + "\n\n\u2014" + name_and_b64 + "\n",  # no space after the dash
            note.replace("line one", "line\tone"),
            note.replace("\n", "\r\n"),
            12345,
        ]
        for message in malformed:
            with pytest.raises(NoteError, match="^malformed note"):
                verifier.verify(message)

    @pytest.mark.parametrize("body", ["", "no final newline", "tab\there\n", "nul\x00\n", "\udc80\n"])
    def test_signing_refuses_bodies_that_cannot_be_notes(self, signer, body):
        with pytest.raises(NoteError, match="^malformed note text"):
            signer.sign(body)


ROOT = root_hash([leaf_hash(b"a"), leaf_hash(b"b"), leaf_hash(b"c")])
ROOT_B64 = base64.b64encode(ROOT).decode()


class TestCheckpoints:
    def test_the_body_is_origin_size_and_base64_root_one_per_line(self):
        assert Checkpoint(ORIGIN, 3, ROOT).body() == f"{ORIGIN}\n3\n{ROOT_B64}\n"
        assert Checkpoint(ORIGIN, 3, ROOT, ("ext one", "ext two")).body() == (
            f"{ORIGIN}\n3\n{ROOT_B64}\next one\next two\n"
        )

    def test_round_trip(self, signer, verifier):
        for checkpoint in (
            Checkpoint(ORIGIN, 3, ROOT),
            Checkpoint(ORIGIN, 0, hashlib.sha256(b"").digest()),
            Checkpoint(ORIGIN, (1 << 64) - 1, ROOT, ("an extension",)),
        ):
            note = sign_checkpoint(signer, checkpoint)
            assert open_checkpoint(verifier, note) == checkpoint
            assert open_checkpoint(verifier, note, origin=ORIGIN) == checkpoint

    def test_the_c2sp_example_checkpoint_parses_once_signed(self, verifier, signer):
        body = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
        checkpoint = open_checkpoint(verifier, signer.sign(body))
        assert (checkpoint.origin, checkpoint.tree_size) == ("example.com/behind-the-sofa", 20852163)
        assert checkpoint.body() == body

    def test_a_wrong_origin_is_refused(self, signer, verifier):
        note = sign_checkpoint(signer, Checkpoint(ORIGIN, 3, ROOT))
        with pytest.raises(NoteError, match="^wrong origin"):
            open_checkpoint(verifier, note, origin="posray.example/shard/1")

    def test_a_tampered_checkpoint_is_a_bad_signature(self, signer, verifier):
        note = sign_checkpoint(signer, Checkpoint(ORIGIN, 3, ROOT))
        with pytest.raises(NoteError, match="^bad signature"):
            open_checkpoint(verifier, note.replace("\n3\n", "\n4\n"))

    def test_another_key_is_refused(self, signer):
        other = NoteVerifier.from_verifier_key(NoteSigner(ORIGIN, bytes(32)).verifier_key())
        with pytest.raises(NoteError, match="^unknown key"):
            open_checkpoint(other, sign_checkpoint(signer, Checkpoint(ORIGIN, 3, ROOT)))

    @pytest.mark.parametrize(
        "body, reason",
        [
            (f"{ORIGIN}\n3\n", "fewer than three lines"),
            (f"\n3\n{ROOT_B64}\n", "empty origin"),
            (f"{ORIGIN}\n03\n{ROOT_B64}\n", "leading zeros"),
            (f"{ORIGIN}\n00\n{ROOT_B64}\n", "leading zeros"),
            (f"{ORIGIN}\n-3\n{ROOT_B64}\n", "not ASCII decimal"),
            (f"{ORIGIN}\n+3\n{ROOT_B64}\n", "not ASCII decimal"),
            (f"{ORIGIN}\n 3\n{ROOT_B64}\n", "not ASCII decimal"),
            (f"{ORIGIN}\n3.0\n{ROOT_B64}\n", "not ASCII decimal"),
            (f"{ORIGIN}\n1_000\n{ROOT_B64}\n", "not ASCII decimal"),
            (f"{ORIGIN}\n\u0663\n{ROOT_B64}\n", "not ASCII decimal"),
            (f"{ORIGIN}\n\n{ROOT_B64}\n", "not ASCII decimal"),
            (f"{ORIGIN}\n{1 << 64}\n{ROOT_B64}\n", "exceeds uint64"),
            (f"{ORIGIN}\n3\n{ROOT_B64.rstrip('=')}\n", "root hash"),
            (f"{ORIGIN}\n3\n{base64.b64encode(ROOT[:31]).decode()}\n", "root hash"),
            (f"{ORIGIN}\n3\n{ROOT.hex()}\n", "root hash"),
            (f"{ORIGIN}\n3\n{base64.urlsafe_b64encode(bytes([0xFF] * 32)).decode()}\n", "root hash"),
            (f"{ORIGIN}\n3\n{ROOT_B64}\n\nextension\n", "empty extension line"),
        ],
    )
    def test_malformed_checkpoint_texts_are_refused_with_a_reason(self, signer, verifier, body, reason):
        with pytest.raises(NoteError, match=f"^malformed checkpoint: .*{reason}"):
            open_checkpoint(verifier, signer.sign(body))

    @pytest.mark.parametrize(
        "fields",
        [
            ("", 3, ROOT),
            ("two\nlines", 3, ROOT),
            (ORIGIN, -1, ROOT),
            (ORIGIN, 1 << 64, ROOT),
            (ORIGIN, True, ROOT),
            (ORIGIN, 3, ROOT[:31]),
            (ORIGIN, 3, ROOT, ("",)),
            (ORIGIN, 3, ROOT, ("a\nb",)),
        ],
    )
    def test_a_checkpoint_that_cannot_be_written_is_refused_at_construction(self, fields):
        with pytest.raises(NoteError, match="^malformed checkpoint"):
            Checkpoint(*fields)
