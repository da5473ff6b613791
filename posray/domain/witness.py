"""The C2SP tlog-witness protocol: the add-checkpoint request, its answers, the witness's decision.

A log POSTs to `<witness>/add-checkpoint` the body "old <size>\\n", up to 63 base64 consistency
proof lines, an empty line, then its signed checkpoint. The witness keeps, per log origin, the
latest checkpoint it cosigned (size and root hash) and answers:

    200  cosignature line(s)        the checkpoint extends what it cosigned before (or is the first)
    400  malformed request          also: old size larger than the checkpoint's
    403  bad or missing signature   no valid signature by a key it trusts for the origin
    404  unknown log                the origin is not one it witnesses
    409  "<its size>\\n"            old size is not the size it last cosigned (text/x.tlog.size)
    422  inconsistent               bad consistency proof, a size-0 tree with another root,
                                    the same size with another root, a proof after old 0

`decide` is that decision as a pure function of the request, the witness's state of the log,
its trusted keys and the time; the caller persists the new state before it answers 200.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from posray.domain.cosignature import Cosigner
from posray.domain.merkle import EMPTY_ROOT, verify_consistency
from posray.domain.note import (
    ROOT_HASH_BYTES, TREE_SIZE_MAX, Checkpoint, NoteError, NoteVerifier, parse_checkpoint_text, split_note,
)

PROOF_LINES_MAX = 63
REQUEST_BYTES_MAX = 64 * 1024  # 63 proof lines and a checkpoint with a few dozen signatures
SIZE_CONTENT_TYPE = "text/x.tlog.size"
TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"
_OLD = re.compile(r"old (0|[1-9][0-9]*)")


class WitnessRequestError(NoteError):
    """An add-checkpoint request that is not well-formed (answered 400)."""


@dataclass(frozen=True, slots=True)
class AddCheckpoint:
    """An add-checkpoint request: the old size, the consistency proof, the signed checkpoint."""

    old_size: int
    proof: tuple[bytes, ...]
    note: str


@dataclass(frozen=True, slots=True)
class LogState:
    """What a witness remembers of one log: the latest checkpoint it cosigned."""

    origin: str
    tree_size: int
    root_hash: bytes
    note: str  # that checkpoint with the log's signature(s) and the witness's cosignature


@dataclass(frozen=True, slots=True)
class Answer:
    """The witness's HTTP answer; `state` is set when it cosigned (persist it before answering)."""

    status: int
    body: bytes
    content_type: str = TEXT_CONTENT_TYPE
    state: LogState | None = None


def format_add_checkpoint(old_size: int, proof: list[bytes], note: str) -> bytes:
    """The request body of add-checkpoint."""
    lines = [f"old {old_size}"] + [base64.b64encode(h).decode() for h in proof]
    return ("\n".join(lines) + "\n\n" + note).encode()


def parse_add_checkpoint(body: bytes) -> AddCheckpoint:
    """Parse an add-checkpoint body: "old N", proof lines, an empty line, the checkpoint note.

    Raises:
        WitnessRequestError: anything that is not exactly that.
    """
    if len(body) > REQUEST_BYTES_MAX:
        raise WitnessRequestError(f"request longer than {REQUEST_BYTES_MAX} bytes")
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise WitnessRequestError("request is not UTF-8") from None
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise WitnessRequestError("no empty line before the checkpoint")
    lines = head.split("\n")
    found = _OLD.fullmatch(lines[0])
    if not found or int(found[1]) > TREE_SIZE_MAX:
        raise WitnessRequestError(f"the first line must be 'old <size>', not {lines[0][:40]!r}")
    if len(lines) - 1 > PROOF_LINES_MAX:
        raise WitnessRequestError(f"more than {PROOF_LINES_MAX} consistency proof lines")
    proof = tuple(_hash(line) for line in lines[1:])
    return AddCheckpoint(int(found[1]), proof, note)


def _hash(line: str) -> bytes:
    try:
        raw = base64.b64decode(line, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != ROOT_HASH_BYTES or base64.b64encode(raw).decode() != line:
        raise WitnessRequestError(f"consistency proof line {line[:48]!r} is not base64 of 32 bytes")
    return raw


def origin_of(note: str) -> str:
    """The origin line of a checkpoint note, read before its signature is verified (to pick keys).

    Raises:
        WitnessRequestError: the note has no text or signature block.
    """
    try:
        text, _ = split_note(note)
    except NoteError as e:
        raise WitnessRequestError(str(e)) from None
    return text.decode().split("\n", 1)[0]


def decide(request: AddCheckpoint, keys: list[NoteVerifier] | None, state: LogState | None,
           cosigner: Cosigner, now_s: int) -> Answer:
    """The witness's answer to one add-checkpoint request (c2sp.org/tlog-witness).

    Args:
        request: the parsed request.
        keys: the log's trusted keys, None when the witness does not witness the origin.
        state: the latest checkpoint the witness cosigned for the origin, None if none.
        cosigner: the witness's key.
        now_s: the time of the cosignature, POSIX seconds.
    """
    if keys is None:
        return Answer(404, b"unknown log\n")
    checkpoint, text, refusal = _verified(request.note, keys)
    if refusal is not None:
        return refusal
    if request.old_size > checkpoint.tree_size:
        return Answer(400, b"old size is larger than the checkpoint's\n")
    known_size = state.tree_size if state else 0
    if request.old_size != known_size:
        return Answer(409, f"{known_size}\n".encode(), SIZE_CONTENT_TYPE)
    if checkpoint.tree_size == 0 and checkpoint.root_hash != EMPTY_ROOT:
        return Answer(422, b"a tree of size 0 must have the empty tree's root\n")
    if request.old_size == 0:
        if request.proof:
            return Answer(422, b"no consistency proof is needed from size 0\n")
    elif not verify_consistency(request.old_size, checkpoint.tree_size, list(request.proof),
                                state.root_hash, checkpoint.root_hash):
        return Answer(422, b"the consistency proof does not verify from the cosigned checkpoint\n")
    line = cosigner.cosign(text, now_s)
    new_state = LogState(checkpoint.origin, checkpoint.tree_size, checkpoint.root_hash, request.note + line)
    return Answer(200, line.encode(), state=new_state)


def _verified(note: str, keys: list[NoteVerifier]) -> tuple[Checkpoint | None, str | None, Answer | None]:
    """The checkpoint and its text once a trusted key's signature verifies on it (a failing
    signature of a trusted key refuses the note); else the 403 or 400 answer."""
    text = None
    for key in keys:
        try:
            text = key.verify(note)
        except NoteError as e:
            if str(e).startswith("malformed"):
                return None, None, Answer(400, f"{e}\n".encode())
            if str(e).startswith("bad signature"):
                return None, None, Answer(403, f"{e}\n".encode())
    if text is None:
        return None, None, Answer(403, b"no signature by a key trusted for this log\n")
    try:
        return parse_checkpoint_text(text), text, None
    except NoteError as e:
        return None, None, Answer(400, f"{e}\n".encode())
