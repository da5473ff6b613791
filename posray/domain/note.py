"""C2SP signed notes with Ed25519 keys (c2sp.org/signed-note) and tlog checkpoints on them.

A signed note is a text ending in a newline, a blank line, then one or more lines
"— <key name> <base64(4-byte key ID || signature)>". The signature covers the text including
its final newline; the text is separated from the signatures by the last blank line, so the
text itself may contain blank lines. A checkpoint (c2sp.org/tlog-checkpoint) is a note whose
text is the origin, the tree size and the base64 root hash, one per line, then optional
extension lines. Parsing follows golang.org/x/mod/sumdb/note wherever the spec leaves room.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from posray.domain.errors import PosrayError

ALG_ED25519 = 0x01  # the spec's signature type byte for Ed25519
SEED_BYTES = 32
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
KEY_HASH_BYTES = 4
ROOT_HASH_BYTES = 32  # an RFC 6962 SHA-256 root
SIGNATURES_MAX = 100  # sumdb/note's cap; the spec requires accepting at least 16
NOTE_BYTES_MAX = 1 << 20
TREE_SIZE_MAX = (1 << 64) - 1  # tree sizes are uint64 throughout the tlog ecosystem

_SIGNATURE_PREFIX = "\u2014 "  # em dash, space
_SIGNATURE_PREFIX_BYTES = _SIGNATURE_PREFIX.encode()
# Unicode White_Space, the set Go's unicode.IsSpace tests: names must contain none of it.
_WHITE_SPACE = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
)
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")  # ASCII controls other than newline
_HEX8 = re.compile("[0-9a-fA-F]{8}")
_DECIMAL = re.compile("[0-9]+")


class NoteError(PosrayError, ValueError):
    """A note, checkpoint or key text that is malformed, not signed by the key, or badly signed."""


def key_hash(name: str, public_key: bytes) -> bytes:
    """The spec's Ed25519 key ID: SHA-256(key name || 0x0A || 0x01 || public key)[:4]."""
    data = name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key
    return hashlib.sha256(data).digest()[:KEY_HASH_BYTES]


def _is_valid_name(name: object) -> bool:
    """Key names are non-empty UTF-8 with neither Unicode spaces nor plus signs."""
    if not isinstance(name, str) or not name or "+" in name or _WHITE_SPACE.intersection(name):
        return False
    try:
        name.encode()
    except UnicodeEncodeError:  # lone surrogates are not UTF-8
        return False
    return True


def _b64decode(text: str | bytes) -> bytes | None:
    """Standard base64 (RFC 4648 §4) in its one canonical spelling, or None."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    canonical = base64.b64encode(raw)
    return raw if canonical == (text.encode() if isinstance(text, str) else text) else None


def _verifier_key_text(name: str, public_key: bytes, alg: int = ALG_ED25519) -> str:
    encoded = base64.b64encode(bytes([alg]) + public_key).decode()
    key_id = hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + public_key).digest()[:KEY_HASH_BYTES]
    return f"{name}+{key_id.hex()}+{encoded}"


def parse_verifier_key(text: str) -> tuple[str, int, bytes]:
    """Split a verifier key "<name>+<8 hex key ID>+<base64(type || key)>" into (name, type, key).

    The key ID must be SHA-256(name || 0x0A || type || key)[:4], as posray's keys and the
    C2SP cosignature keys compute it.

    Raises:
        NoteError: malformed text, or a key ID that does not match the name, type and key.
    """
    if not isinstance(text, str):
        raise NoteError("malformed verifier key: not text")
    name, _, rest = text.partition("+")
    hash_hex, _, key_b64 = rest.partition("+")
    key = _b64decode(key_b64)
    if not _HEX8.fullmatch(hash_hex) or key is None or len(key) < 2 or not _is_valid_name(name):
        raise NoteError(f"malformed verifier key {text!r}")
    if bytes.fromhex(hash_hex) != hashlib.sha256(name.encode() + b"\n" + key).digest()[:4]:
        raise NoteError(f"verifier key {text!r}: the key ID does not match the name and key")
    return name, key[0], key[1:]


def is_valid_name(name: object) -> bool:
    """A note key name: non-empty UTF-8 with neither Unicode spaces nor plus signs."""
    return _is_valid_name(name)


def parse_checkpoint_text(text: str) -> Checkpoint:
    """Parse a checkpoint's note text (origin, size, root, extensions; ending in a newline).

    Only for text whose signature was verified first (or that is about to be signed).

    Raises:
        NoteError: a malformed checkpoint text.
    """
    if not text.endswith("\n"):
        raise NoteError("malformed checkpoint: the text does not end in a newline")
    return _parse_checkpoint(text)


class NoteSigner:
    """Signs notes with one Ed25519 key under one key name; its repr never shows the seed."""

    __slots__ = ("name", "public_key", "key_hash", "_private_key")

    def __init__(self, name: str, seed: bytes):
        if not _is_valid_name(name):
            raise NoteError(f"invalid key name {name!r}: empty, or contains a space or '+'")
        if not isinstance(seed, (bytes, bytearray)) or len(seed) != SEED_BYTES:
            raise NoteError(f"an Ed25519 seed must be {SEED_BYTES} bytes")
        self._private_key = Ed25519PrivateKey.from_private_bytes(bytes(seed))
        self.name = name
        self.public_key = self._private_key.public_key().public_bytes_raw()
        self.key_hash = key_hash(name, self.public_key)

    def __repr__(self) -> str:
        return f"NoteSigner(name={self.name!r}, key_hash={self.key_hash.hex()}, <secret>)"

    def verifier_key(self) -> str:
        """The public verifier key text "<name>+<8 hex key ID>+<base64(0x01 || key)>"."""
        return _verifier_key_text(self.name, self.public_key)

    def sign(self, body: str) -> str:
        """Sign `body` and return the whole signed note: body, blank line, signature line.

        Raises:
            NoteError: the body is empty, lacks its final newline, is not UTF-8, holds a
                control character other than newline, or makes the note too long.
        """
        if not isinstance(body, str) or not body.endswith("\n"):
            raise NoteError("malformed note text: it must be non-empty and end in a newline")
        if _CONTROL.search(body):
            raise NoteError("malformed note text: control character other than newline")
        try:
            text = body.encode()
        except UnicodeEncodeError:
            raise NoteError("malformed note text: not valid UTF-8") from None
        signature = base64.b64encode(self.key_hash + self._private_key.sign(text)).decode()
        note = f"{body}\n{_SIGNATURE_PREFIX}{self.name} {signature}\n"
        if len(note.encode()) > NOTE_BYTES_MAX:
            raise NoteError(f"malformed note text: the signed note exceeds {NOTE_BYTES_MAX} bytes")
        return note


class NoteVerifier:
    """Verifies notes signed by one Ed25519 key, identified by its key name and key ID."""

    __slots__ = ("name", "public_key", "key_hash", "_public_key")

    def __init__(self, name: str, public_key: bytes):
        if not _is_valid_name(name):
            raise NoteError(f"invalid key name {name!r}: empty, or contains a space or '+'")
        if not isinstance(public_key, (bytes, bytearray)) or len(public_key) != PUBLIC_KEY_BYTES:
            raise NoteError(f"an Ed25519 public key must be {PUBLIC_KEY_BYTES} bytes")
        self.name = name
        self.public_key = bytes(public_key)
        self.key_hash = key_hash(name, self.public_key)
        self._public_key = Ed25519PublicKey.from_public_bytes(self.public_key)

    def __repr__(self) -> str:
        return f"NoteVerifier({self.verifier_key()!r})"

    @classmethod
    def from_verifier_key(cls, text: str) -> NoteVerifier:
        """Parse a verifier key "<name>+<8 hex key ID>+<base64(0x01 || 32-byte key)>".

        Raises:
            NoteError: malformed text, a key ID that does not match the name and key, or a
                signature type other than Ed25519.
        """
        name, alg, key = parse_verifier_key(text)
        if alg != ALG_ED25519:
            raise NoteError(f"verifier key {text!r}: unknown signature type {alg:#04x}")
        if len(key) != PUBLIC_KEY_BYTES:
            raise NoteError(f"malformed verifier key {text!r}: wrong Ed25519 key length")
        return cls(name, key)

    def verifier_key(self) -> str:
        """The verifier key text this verifier parses from."""
        return _verifier_key_text(self.name, self.public_key)

    def verify(self, note_text: str) -> str:
        """Return the text of `note_text` once a signature by this key verifies on it.

        Signature lines of other keys (another name or another key ID) are ignored. The first
        line of this key decides, as in sumdb/note: a failing signature rejects the note.

        Raises:
            NoteError: "malformed note: ...", "unknown key: ..." (no signature line of this
                key) or "bad signature: ..." (the line of this key does not verify).
        """
        text, signatures = split_note(note_text)
        key_id = f"{self.name}+{self.key_hash.hex()}"
        for name, hash_, signature in signatures:
            if name != self.name or hash_ != self.key_hash:
                continue
            if len(signature) != SIGNATURE_BYTES:
                raise NoteError(f"bad signature: wrong signature length for key {key_id}")
            try:
                self._public_key.verify(signature, text)
            except InvalidSignature:
                raise NoteError(f"bad signature: invalid signature for key {key_id}") from None
            return text.decode()
        raise NoteError(f"unknown key: the note has no signature by key {key_id}")


def split_note(note_text: str) -> tuple[bytes, list[tuple[str, bytes, bytes]]]:
    """Split a signed note into its text (bytes) and its (key name, key ID, signature) triples.

    Raises:
        NoteError: "malformed note: ..." (no blank line, no or malformed signature lines, ...).
    """
    if not isinstance(note_text, str):
        raise NoteError("malformed note: not text")
    try:
        message = note_text.encode()
    except UnicodeEncodeError:
        raise NoteError("malformed note: not valid UTF-8") from None
    if len(message) > NOTE_BYTES_MAX:
        raise NoteError(f"malformed note: longer than {NOTE_BYTES_MAX} bytes")
    if _CONTROL.search(note_text):
        raise NoteError("malformed note: control character other than newline")
    split = message.rfind(b"\n\n")
    if split < 0:
        raise NoteError("malformed note: no blank line before the signatures")
    text, block = message[: split + 1], message[split + 2 :]
    if not block or not block.endswith(b"\n"):
        raise NoteError("malformed note: no signature line, or the last lacks its newline")
    lines = block[:-1].split(b"\n")
    if len(lines) > SIGNATURES_MAX:
        raise NoteError(f"malformed note: more than {SIGNATURES_MAX} signatures")
    return text, [_parse_signature_line(line) for line in lines]


def _parse_signature_line(line: bytes) -> tuple[str, bytes, bytes]:
    if not line.startswith(_SIGNATURE_PREFIX_BYTES):
        raise NoteError("malformed note: a signature line does not start with an em dash, space")
    name, _, encoded = line[len(_SIGNATURE_PREFIX_BYTES) :].decode().partition(" ")
    raw = _b64decode(encoded)
    if not _is_valid_name(name):
        raise NoteError(f"malformed note: invalid key name {name!r} in a signature line")
    if raw is None or len(raw) <= KEY_HASH_BYTES:
        raise NoteError(f"malformed note: bad base64 signature for key name {name!r}")
    return name, raw[:KEY_HASH_BYTES], raw[KEY_HASH_BYTES:]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A transparency log's signed tree head: origin, tree size, root hash, extension lines."""

    origin: str
    tree_size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "extensions", tuple(self.extensions))
        labelled = [("origin", self.origin)] + [("extension line", e) for e in self.extensions]
        for label, line in labelled:
            if not isinstance(line, str) or not line or "\n" in line or _CONTROL.search(line):
                raise NoteError(f"malformed checkpoint: {label} {line!r} is empty or not one line")
        size = self.tree_size
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= TREE_SIZE_MAX:
            raise NoteError(f"malformed checkpoint: tree size {size!r} is not a uint64")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != ROOT_HASH_BYTES:
            raise NoteError(f"malformed checkpoint: the root hash must be {ROOT_HASH_BYTES} bytes")

    def body(self) -> str:
        """The note text: origin, size, base64 root hash, extensions, each ending in newline."""
        lines = (self.origin, str(self.tree_size), base64.b64encode(self.root_hash).decode())
        return "".join(f"{line}\n" for line in (*lines, *self.extensions))


def sign_checkpoint(signer: NoteSigner, checkpoint: Checkpoint) -> str:
    """The checkpoint as a note signed by `signer` (whose name SHOULD be the origin)."""
    return signer.sign(checkpoint.body())


def open_checkpoint(
    verifier: NoteVerifier, note_text: str, origin: str | None = None
) -> Checkpoint:
    """Verify a signed checkpoint, then parse its text; the text is not read before.

    Args:
        verifier: the log's key.
        note_text: the signed note.
        origin: when given, the origin line the checkpoint must carry.

    Raises:
        NoteError: anything `NoteVerifier.verify` raises, a malformed checkpoint text (lines,
            size, leading zeros, root hash, empty extension line), or "wrong origin: ...".
    """
    checkpoint = _parse_checkpoint(verifier.verify(note_text))
    if origin is not None and checkpoint.origin != origin:
        raise NoteError(f"wrong origin: checkpoint for {checkpoint.origin!r}, not {origin!r}")
    return checkpoint


def _parse_checkpoint(text: str) -> Checkpoint:
    lines = text[:-1].split("\n")  # a verified note text always ends in a newline
    if len(lines) < 3:
        raise NoteError("malformed checkpoint: fewer than three lines")
    origin, size_text, hash_text, *extensions = lines
    if not origin:
        raise NoteError("malformed checkpoint: empty origin line")
    if not _DECIMAL.fullmatch(size_text):
        raise NoteError(f"malformed checkpoint: tree size {size_text!r} is not ASCII decimal")
    if size_text != "0" and size_text.startswith("0"):
        raise NoteError(f"malformed checkpoint: tree size {size_text!r} has leading zeros")
    if int(size_text) > TREE_SIZE_MAX:
        raise NoteError(f"malformed checkpoint: tree size {size_text} exceeds uint64")
    root = _b64decode(hash_text)
    if root is None or len(root) != ROOT_HASH_BYTES:
        raise NoteError(f"malformed checkpoint: root hash {hash_text!r} is not base64 of 32 bytes")
    if not all(extensions):
        raise NoteError("malformed checkpoint: empty extension line")
    return Checkpoint(origin, int(size_text), root, tuple(extensions))
