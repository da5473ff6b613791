"""Receipt codes: 20 printable characters that name (shard, seq) and cannot be guessed.

Layout (Crockford base32, 5 bits per character):
    19 body characters = 95 bits = 56-bit Feistel-encrypted (shard:16 | seq:40)
                                   || 39-bit tag = keyed BLAKE2b(shard, seq, document hash)
    1 check character  = weighted sum over GF(32) of the body, weights α^1..α^19 (catches
                         any single typo and any swap of two characters; Luhn mod 32
                         missed the swap 0Z <-> Z0)
The Feistel permutation makes codes unique (a bijection of shard and sequence) without
revealing volumes; the tag, a MAC under the operator's code key over the place AND the
SHA-256 of the document, makes a valid-looking code unguessable (one chance in 2**39 per try)
and binds it to its document: a code resolves only to the document it was issued for, even if
another document ever came to sit at its (shard, seq). Ledger records of version 1 carry codes
whose tag covered (shard, seq) only (`legacy_code`). Parsing accepts lower case, hyphens and
spaces, and the usual misreadings I/L -> 1 and O -> 0.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from dataclasses import dataclass

from posray.domain.errors import CodeMalformed

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
_VALUE.update({"I": 1, "L": 1, "O": 0})
CODE_LENGTH = 20
SHARD_BITS = 16
SEQ_BITS = 40
TAG_BITS = 39
SHARD_MAX = (1 << SHARD_BITS) - 1
SEQ_MAX = (1 << SEQ_BITS) - 1
_HALF_BITS = (SHARD_BITS + SEQ_BITS) // 2
_HALF_MASK = (1 << _HALF_BITS) - 1
_ROUNDS = 4
_GF32_POLY = 0b100101


@dataclass(frozen=True, slots=True)
class CodeKey:
    """The operator's secret for codes (32 bytes); never printed."""

    secret: bytes

    def __repr__(self) -> str:
        return "CodeKey(<secret>)"


_ROUND_LABELS = tuple(b"posray-code-round" + bytes([r]) for r in range(_ROUNDS))
_TAG_LABEL = b"posray-code-tag"
# One Horner step of the check character: _STEP[t] = t·α reduced modulo x^5 + x^2 + 1.
_STEP = tuple((t << 1) ^ (_GF32_POLY if t & 16 else 0) for t in range(32))
# Two digits at a time: their characters, and two Horner steps (index: total << 10 | pair).
_PAIR_DIGITS = tuple(ALPHABET[v >> 5] + ALPHABET[v & 31] for v in range(1024))
_PAIR_STEP = tuple(_STEP[_STEP[t ^ (v >> 5)] ^ (v & 31)] for t in range(32) for v in range(1024))
_PAIR_SHIFTS = tuple(range(80, -1, -10))


@functools.lru_cache(maxsize=16)
def _keyed_states(secret: bytes) -> dict[bytes, "hashlib._Hash"]:
    """Per label, BLAKE2b keyed with `secret` that has absorbed the label: copying one is
    several times cheaper than keying a new hash (the key costs a whole compression)."""
    states = {}
    for label in (*_ROUND_LABELS, _TAG_LABEL):
        state = hashlib.blake2b(key=secret, digest_size=8)
        state.update(label)
        states[label] = state
    return states


def _prf(key: CodeKey, label: bytes, value: int, bits: int) -> int:
    # Equal to blake2b(label + value, key=secret, digest_size=8): hashing is incremental.
    digest = _keyed_states(key.secret)[label].copy()
    digest.update(value.to_bytes(8, "big"))
    return int.from_bytes(digest.digest(), "big") >> (64 - bits)


def _permute(key: CodeKey, block: int, inverse: bool = False) -> int:
    left, right = block >> _HALF_BITS, block & _HALF_MASK
    rounds = range(_ROUNDS - 1, -1, -1) if inverse else range(_ROUNDS)
    for r in rounds:
        label = _ROUND_LABELS[r]
        if inverse:
            left, right = right ^ _prf(key, label, left, _HALF_BITS), left
        else:
            left, right = right, left ^ _prf(key, label, right, _HALF_BITS)
    return (left << _HALF_BITS) | right


def _tag(key: CodeKey, block: int, document_hash: bytes | None) -> int:
    if document_hash is None:  # version-1 records: the tag covered the place only
        return _prf(key, _TAG_LABEL, block, TAG_BITS)
    digest = _keyed_states(key.secret)[_TAG_LABEL].copy()
    digest.update(block.to_bytes(8, "big"))
    digest.update(document_hash)
    return int.from_bytes(digest.digest(), "big") >> (64 - TAG_BITS)


def _check_char(body: str) -> str:
    # Horner evaluation of sum(value_i * α^(19 - i)) in GF(2^5) modulo x^5 + x^2 + 1. Distinct
    # nonzero weights make every substitution and every transposition change the sum.
    total = 0
    for char in body:
        total = _STEP[total ^ _VALUE[char]]
    return ALPHABET[total]


def make_code(key: CodeKey, shard: int, seq: int, document_hash: bytes) -> str:
    """Return the 20-character receipt code of the document (SHA-256 `document_hash`) at `seq` in `shard`."""
    if len(document_hash) != 32:
        raise ValueError("a receipt code binds a 32-byte SHA-256 document hash")
    return _make(key, shard, seq, document_hash)


def legacy_code(key: CodeKey, shard: int, seq: int) -> str:
    """The code of a version-1 ledger record, whose tag did not cover the document."""
    return _make(key, shard, seq, None)


def _make(key: CodeKey, shard: int, seq: int, document_hash: bytes | None) -> str:
    if not (0 <= shard <= SHARD_MAX and 0 <= seq <= SEQ_MAX):
        raise ValueError("shard or sequence out of the code's range")
    block = (shard << SEQ_BITS) | seq
    return _encode((_permute(key, block) << TAG_BITS) | _tag(key, block, document_hash))


def _encode(number: int) -> str:
    """The 95-bit number as 19 Crockford digits (most significant first) + the check character.

    Two digits per table lookup, and the check character's Horner steps two at a time: the
    same arithmetic as `_check_char` (which parsing uses), several times faster than base32.
    """
    first = number >> 90
    parts = [ALPHABET[first]]
    total = _STEP[first]
    for shift in _PAIR_SHIFTS:
        pair = (number >> shift) & 1023
        parts.append(_PAIR_DIGITS[pair])
        total = _PAIR_STEP[(total << 10) | pair]
    parts.append(ALPHABET[total])
    return "".join(parts)


def normalize_code(text: str) -> str:
    """Upper-case, drop separators, map misreadings; check length, alphabet and check char.

    Raises:
        CodeMalformed: the text cannot be a receipt code.
    """
    cleaned = text.strip().upper().replace("-", "").replace(" ", "")
    if len(cleaned) != CODE_LENGTH:
        raise CodeMalformed(f"a receipt code has {CODE_LENGTH} characters, got {len(cleaned)}")
    bad = [c for c in cleaned if c not in _VALUE]
    if bad:
        raise CodeMalformed(f"character {bad[0]!r} is not used in receipt codes")
    canonical = "".join(ALPHABET[_VALUE[c]] for c in cleaned)
    if _check_char(canonical[:-1]) != canonical[-1]:
        raise CodeMalformed("check character does not match: the code was mistyped")
    return canonical


@dataclass(frozen=True, slots=True)
class CodePlace:
    """Where a well-formed code points: (shard, seq), and its tag, not yet checked."""

    code: str
    shard: int
    seq: int
    tag: int


def locate_code(key: CodeKey, text: str) -> CodePlace:
    """Normalize a code and decrypt the place it names; its tag is checked by `binds`.

    Every well-formed code names some place: only the document found there can prove (through
    `binds`) that the code was issued for it.

    Raises:
        CodeMalformed: the text cannot be a receipt code.
    """
    canonical = normalize_code(text)
    number = 0
    for char in canonical[:-1]:
        number = (number << 5) | _VALUE[char]
    block = _permute(key, number >> TAG_BITS, inverse=True)
    return CodePlace(canonical, block >> SEQ_BITS, block & SEQ_MAX, number & ((1 << TAG_BITS) - 1))


def binds(key: CodeKey, place: CodePlace, document_hash: bytes | None) -> bool:
    """True when the code was issued for the document with this SHA-256 at its place.

    `document_hash` None checks a version-1 code (the tag covered the place only).
    """
    block = (place.shard << SEQ_BITS) | place.seq
    return hmac.compare_digest(
        _tag(key, block, document_hash).to_bytes(5, "big"), place.tag.to_bytes(5, "big")
    )


def display_code(code: str) -> str:
    """Group a code in fours for printing: ABCD-EFGH-JKMN-PQRS-TVWX."""
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))
