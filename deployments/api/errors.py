"""How the HTTP edge answers posray's errors: the one place an error class gets its status.

An error's class decides its status (the nearest class in its MRO that is listed below), whether
the answer carries Retry-After (from the error's `retry_after_s`), and whether the client may
read it at all: an error not `shown` is logged and answered as a bare 500 "internal", so that
nothing of the operator's setup leaks (a key file's path, a settings value).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import orjson

from posray.domain.errors import (
    AlreadyRegistered,
    AuditDivergence,
    CodeMalformed,
    DocumentConflict,
    DocumentRejected,
    Forbidden,
    InvalidDocument,
    InvalidRequest,
    LedgerConflict,
    LedgerLive,
    LedgerCorrupted,
    LedgerRace,
    NotFenced,
    StoreRestarted,
    NotFound,
    OperatorOnly,
    Overloaded,
    PosrayError,
    RateLimited,
    ReceiptLost,
    RetryLater,
    SetupError,
    StreamGap,
    TooLarge,
    Unauthenticated,
    Unavailable,
)

log = logging.getLogger("posray.http")
JSON = [(b"content-type", b"application/json")]
INTERNAL = (500, b'{"error":"internal","reason":"unexpected server error"}', JSON)


@dataclass(frozen=True, slots=True)
class Answer:
    """How one class of error is answered."""

    status: int
    shown: bool = True  # False: answered as INTERNAL and logged, the error itself never shown
    retry_after: bool = False  # a Retry-After header with the error's retry_after_s
    headers: tuple[tuple[bytes, bytes], ...] = ()  # e.g. the challenge of a 401


ANSWERS: dict[type[PosrayError], Answer] = {
    PosrayError: Answer(500, shown=False),
    DocumentRejected: Answer(422),
    InvalidDocument: Answer(422),
    InvalidRequest: Answer(400),
    TooLarge: Answer(413),
    AlreadyRegistered: Answer(409),
    Unauthenticated: Answer(401),
    DocumentConflict: Answer(409),
    CodeMalformed: Answer(400),
    NotFound: Answer(404),
    Forbidden: Answer(403),
    OperatorOnly: Answer(401, headers=((b"www-authenticate", b"Bearer"),)),
    RetryLater: Answer(503, retry_after=True),
    RateLimited: Answer(429, retry_after=True),
    Overloaded: Answer(503, retry_after=True),
    Unavailable: Answer(503, retry_after=True),
    NotFenced: Answer(503, retry_after=True),
    StoreRestarted: Answer(503, retry_after=True),
    ReceiptLost: Answer(410),
    LedgerCorrupted: Answer(500),
    LedgerRace: Answer(500),
    StreamGap: Answer(500),
    AuditDivergence: Answer(500),
    LedgerConflict: Answer(500),
    LedgerLive: Answer(500, shown=False),  # an offline tool's refusal; never reaches the edge
    SetupError: Answer(500, shown=False),
}


@functools.cache
def answer_of(kind: type[PosrayError]) -> Answer:
    """The answer to errors of class `kind`: the one of its nearest listed ancestor."""
    for klass in kind.__mro__:
        found = ANSWERS.get(klass)
        if found is not None:
            return found
    raise TypeError(f"{kind.__name__} is not a PosrayError")


def status_of(error: PosrayError) -> int:
    """The HTTP status an error is answered with."""
    return answer_of(type(error)).status


def shown(error: BaseException) -> bool:
    """Whether a client may read this error (its JSON and message)."""
    return isinstance(error, PosrayError) and answer_of(type(error)).shown


def render(error: PosrayError, headers: list = JSON) -> tuple[int, bytes, list]:
    """(status, JSON body, headers) of a shown error; `headers` come first (content type ...)."""
    answer = answer_of(type(error))
    out = headers
    if answer.retry_after:
        out = out + [(b"retry-after", str(error.retry_after_s).encode())]
    if answer.headers:
        out = out + list(answer.headers)
    return answer.status, orjson.dumps(error.to_json()), out


def failed(error: BaseException, method: str, path: str) -> tuple[int, bytes, list]:
    """The answer to any exception out of a handler: rendered when shown, else logged and INTERNAL."""
    if shown(error):
        return render(error)
    # never leak internals (or secrets) to the client
    log.error("unexpected error on %s %s", method, path, exc_info=error)
    return INTERNAL
