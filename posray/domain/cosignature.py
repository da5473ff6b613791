"""Witness cosignatures of checkpoints, C2SP tlog-cosignature "cosignature/v1" with Ed25519.

A cosignature is a note signature line "— <witness name> <base64(key ID || timestamp || sig)>"
added to a log's checkpoint: the key ID is SHA-256(name || 0x0A || 0x04 || public key)[:4]
(signature type 0x04 of c2sp.org/signed-note), the timestamp a big-endian uint64 of POSIX
seconds, and the Ed25519 signature covers "cosignature/v1\\ntime <timestamp>\\n" followed by the
checkpoint's whole note text. It states that, at that time, this was the largest checkpoint of the
log the witness had seen, consistent with everything it had seen before. The witness's verifier
key is "<name>+<key ID hex>+<base64(0x04 || public key)>".
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from posray.domain.note import (
    KEY_HASH_BYTES, PUBLIC_KEY_BYTES, SEED_BYTES, SIGNATURE_BYTES, NoteError, is_valid_name,
    parse_verifier_key, split_note,
)

ALG_COSIGNATURE_V1 = 0x04  # signed-note's type byte for timestamped Ed25519 checkpoint cosignatures
HEADER = b"cosignature/v1\n"
TIMESTAMP_BYTES = 8
TIMESTAMP_MAX = (1 << 63) - 1
COSIGNATURE_BYTES = KEY_HASH_BYTES + TIMESTAMP_BYTES + SIGNATURE_BYTES  # 76, decoded
_DASH = "\u2014 "


def key_id(name: str, public_key: bytes) -> bytes:
    """SHA-256(name || 0x0A || 0x04 || 32-byte Ed25519 public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ALG_COSIGNATURE_V1]) + public_key).digest()[:KEY_HASH_BYTES]


def signed_message(note_text: str | bytes, timestamp: int) -> bytes:
    """What a cosigner signs: the header line, the time line, then the checkpoint's note text."""
    text = note_text.encode() if isinstance(note_text, str) else note_text
    return HEADER + f"time {timestamp}\n".encode() + text


def _check_name(name: str) -> None:
    if not is_valid_name(name):
        raise NoteError(f"invalid witness name {name!r}: empty, or contains a space or '+'")


class Cosigner:
    """A witness's Ed25519 cosignature/v1 key under its name; its repr never shows the seed."""

    __slots__ = ("name", "public_key", "key_id", "_private_key")

    def __init__(self, name: str, seed: bytes):
        _check_name(name)
        if not isinstance(seed, (bytes, bytearray)) or len(seed) != SEED_BYTES:
            raise NoteError(f"an Ed25519 seed must be {SEED_BYTES} bytes")
        self._private_key = Ed25519PrivateKey.from_private_bytes(bytes(seed))
        self.name = name
        self.public_key = self._private_key.public_key().public_bytes_raw()
        self.key_id = key_id(name, self.public_key)

    def __repr__(self) -> str:
        return f"Cosigner(name={self.name!r}, key_id={self.key_id.hex()}, <secret>)"

    def verifier_key(self) -> str:
        """"<name>+<key ID hex>+<base64(0x04 || public key)>"."""
        return CosignatureVerifier(self.name, self.public_key).verifier_key()

    def cosign(self, note_text: str, timestamp: int) -> str:
        """The signature line (with its newline) cosigning a checkpoint's note text at `timestamp`.

        Raises:
            NoteError: a timestamp of zero or beyond 2^63 - 1 (the witness API forbids zero).
        """
        if not isinstance(timestamp, int) or not 0 < timestamp <= TIMESTAMP_MAX:
            raise NoteError(f"a cosignature timestamp must be 1 .. 2^63-1, not {timestamp!r}")
        signature = self._private_key.sign(signed_message(note_text, timestamp))
        blob = self.key_id + struct.pack(">Q", timestamp) + signature
        return f"{_DASH}{self.name} {base64.b64encode(blob).decode()}\n"


@dataclass(frozen=True, slots=True)
class Cosigned:
    """A verified cosignature: who, when, and its signature line."""

    witness: str
    timestamp: int
    line: str


class CosignatureVerifier:
    """Verifies one witness's cosignature/v1 lines on checkpoints."""

    __slots__ = ("name", "public_key", "key_id", "_public_key")

    def __init__(self, name: str, public_key: bytes):
        _check_name(name)
        if not isinstance(public_key, (bytes, bytearray)) or len(public_key) != PUBLIC_KEY_BYTES:
            raise NoteError(f"an Ed25519 public key must be {PUBLIC_KEY_BYTES} bytes")
        self.name = name
        self.public_key = bytes(public_key)
        self.key_id = key_id(name, self.public_key)
        self._public_key = Ed25519PublicKey.from_public_bytes(self.public_key)

    def __repr__(self) -> str:
        return f"CosignatureVerifier({self.verifier_key()!r})"

    @property
    def label(self) -> str:
        """"<name>+<key ID hex>": how posray names a witness key (its cosignatures' table key)."""
        return f"{self.name}+{self.key_id.hex()}"

    @classmethod
    def from_verifier_key(cls, text: str) -> CosignatureVerifier:
        """Parse "<name>+<key ID hex>+<base64(0x04 || 32-byte key)>".

        Raises:
            NoteError: malformed, a key ID that does not match, or another signature type.
        """
        name, alg, key = parse_verifier_key(text)
        if alg != ALG_COSIGNATURE_V1:
            raise NoteError(f"verifier key {text!r}: signature type {alg:#04x} is not a cosignature/v1 "
                            f"key ({ALG_COSIGNATURE_V1:#04x})")
        if len(key) != PUBLIC_KEY_BYTES:
            raise NoteError(f"malformed verifier key {text!r}: wrong Ed25519 key length")
        return cls(name, key)

    def verifier_key(self) -> str:
        encoded = base64.b64encode(bytes([ALG_COSIGNATURE_V1]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def verify(self, note_text: str) -> Cosigned:
        """The first cosignature of this key on `note_text`, verified.

        Lines of other keys (another name or key ID) are ignored; a line of this key that does
        not verify rejects the note (c2sp.org/signed-note).

        Raises:
            NoteError: "malformed note: ...", "unknown key: ..." (no line of this key) or
                "bad signature: ..." (its line does not verify).
        """
        text, signatures = split_note(note_text)
        for name, hash_, blob in signatures:
            if name != self.name or hash_ != self.key_id:
                continue
            if len(blob) != TIMESTAMP_BYTES + SIGNATURE_BYTES:
                raise NoteError(f"bad signature: wrong cosignature length for witness {self.label}")
            (timestamp,) = struct.unpack(">Q", blob[:TIMESTAMP_BYTES])
            try:
                self._public_key.verify(blob[TIMESTAMP_BYTES:], signed_message(text, timestamp))
            except InvalidSignature:
                raise NoteError(f"bad signature: invalid cosignature by witness {self.label}") from None
            line = f"{_DASH}{name} {base64.b64encode(hash_ + blob).decode()}\n"
            return Cosigned(self.label, timestamp, line)
        raise NoteError(f"unknown key: the note has no cosignature by witness {self.label}")


def cosignature_timestamp(line: str) -> int:
    """The timestamp of a cosignature/v1 signature line (not verified).

    Raises:
        NoteError: not a signature line of the cosignature/v1 length.
    """
    _, _, encoded = line.rstrip("\n").removeprefix(_DASH).partition(" ")
    try:
        blob = base64.b64decode(encoded, validate=True)
    except ValueError:
        raise NoteError(f"malformed cosignature line {line!r}") from None
    if len(blob) != COSIGNATURE_BYTES:
        raise NoteError(f"malformed cosignature line {line!r}: {len(blob)} bytes, not {COSIGNATURE_BYTES}")
    return struct.unpack(">Q", blob[KEY_HASH_BYTES:KEY_HASH_BYTES + TIMESTAMP_BYTES])[0]


def with_signatures(note_text: str, lines: list[str]) -> str:
    """`note_text` with more signature lines appended (each ending in a newline), none twice.

    A note with extra signature lines stays valid for verifiers that only know the log's key:
    they ignore lines of keys they do not know.
    """
    present = set(note_text.split("\n"))
    extra = [line for line in dict.fromkeys(lines) if line.rstrip("\n") not in present]
    return note_text + "".join(extra)


def count_cosignatures(note_text: str, verifiers: list[CosignatureVerifier]) -> tuple[list[Cosigned], list[str]]:
    """The verified cosignatures on a note of distinct witness keys, and why the others failed."""
    good: list[Cosigned] = []
    failed: list[str] = []
    for verifier in {v.label: v for v in verifiers}.values():
        try:
            good.append(verifier.verify(note_text))
        except NoteError as e:
            failed.append(str(e))
    return good, failed
