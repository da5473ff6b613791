"""The one error tree of posray; adapters translate driver errors into it.

    PosrayError
    ├── DocumentRejected          one document refused; carries HTTP status, field, reason
    │   ├── InvalidDocument       422/400: malformed, wrong type, inconsistent totals ...
    │   ├── Unauthenticated       401: unknown or revoked terminal, bad MAC
    │   └── DocumentConflict      409: another document was accepted under the same counter
    ├── CodeMalformed             400: a receipt code that cannot be a code (length, check char)
    ├── NotFound                  404: no such receipt / terminal / merchant
    ├── Forbidden                 403: valid credentials that do not cover what was asked for
    ├── Overloaded                503 + Retry-After: a bounded queue or backlog is full
    ├── ReceiptLost               410: an acknowledged receipt that the capture store lost
    ├── Unavailable               503 + Retry-After: Redis, PostgreSQL or an actor is unreachable
    │   └── NotFenced             503 + Retry-After: the capture store is not fenced against the ledger
    │       └── StoreRestarted    503 + Retry-After: the capture store restarted or failed over (scripts gone)
    ├── LedgerCorrupted           the stored ledger contradicts itself (gap, chain break, bad hash)
    ├── LedgerConflict            a captured (shard, seq) is recorded with another document: recording stops
    └── LedgerLive                an offline load (generated history) was pointed at a ledger capture is fenced against
"""

from __future__ import annotations


class PosrayError(Exception):
    """Root of every error posray raises on purpose."""

    status = 500

    def to_json(self) -> dict:
        return {"error": type(self).__name__, "detail": str(self)}


class DocumentRejected(PosrayError):
    """One document is refused; `field` names the offending member (dotted path)."""

    status = 422
    kind = "invalid"

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    def __reduce__(self):  # picklable across Ray calls despite the two-argument constructor
        return (type(self), (self.field, self.reason))

    def to_json(self) -> dict:
        return {"error": self.kind, "field": self.field, "reason": self.reason}


class InvalidDocument(DocumentRejected):
    """The document is malformed or its numbers do not add up."""

    def __init__(self, field: str, reason: str, status: int = 422):
        super().__init__(field, reason)
        self.status = status

    def __reduce__(self):
        return (type(self), (self.field, self.reason, self.status))


class Unauthenticated(DocumentRejected):
    """The terminal is unknown or revoked, or the MAC does not verify."""

    status = 401
    kind = "unauthenticated"


class DocumentConflict(DocumentRejected):
    """A different document was already accepted under this (terminal_id, counter)."""

    status = 409
    kind = "conflict"


class CodeMalformed(PosrayError):
    """The text cannot be a receipt code (wrong length, alphabet or check character)."""

    status = 400

    def to_json(self) -> dict:
        return {"error": "malformed_code", "field": "code", "reason": str(self)}


class NotFound(PosrayError):
    """No receipt, terminal or merchant matches."""

    status = 404

    def to_json(self) -> dict:
        return {"error": "not_found", "reason": str(self)}


class Forbidden(PosrayError):
    """The caller is authenticated but the resource is not its own (says nothing of whether it exists)."""

    status = 403

    def to_json(self) -> dict:
        return {"error": "forbidden", "reason": str(self)}


class Overloaded(PosrayError):
    """A bounded queue or backlog is full; the client should retry after `retry_after_s`."""

    status = 503

    def __init__(self, reason: str, retry_after_s: int = 1):
        super().__init__(reason)
        self.retry_after_s = retry_after_s

    def __reduce__(self):
        return (type(self), (str(self), self.retry_after_s))

    def to_json(self) -> dict:
        return {"error": "overloaded", "reason": str(self), "retry_after_s": self.retry_after_s}


class ReceiptLost(PosrayError):
    """The code was acknowledged but its document never reached the ledger: the capture store lost it."""

    status = 410

    def to_json(self) -> dict:
        return {"error": "receipt_lost", "reason": str(self)}


class Unavailable(PosrayError):
    """A backing service (Redis, PostgreSQL, an actor) cannot be reached right now."""

    status = 503

    def __init__(self, reason: str, retry_after_s: int = 2):
        super().__init__(reason)
        self.retry_after_s = retry_after_s

    def __reduce__(self):
        return (type(self), (str(self), self.retry_after_s))

    def to_json(self) -> dict:
        return {"error": "unavailable", "reason": str(self), "retry_after_s": self.retry_after_s}


class LedgerCorrupted(PosrayError):
    """The ledger contradicts itself: a sequence gap, a broken chain link or a wrong hash."""

    def to_json(self) -> dict:
        return {"error": "ledger_corrupted", "reason": str(self)}


class NotFenced(Unavailable):
    """The capture store is not (or no longer) fenced against the ledger: capture refuses until it is."""

    def to_json(self) -> dict:
        return {"error": "not_fenced", "reason": str(self), "retry_after_s": self.retry_after_s}


class StoreRestarted(NotFenced):
    """The capture store lost its scripts (restarted, failed over, flushed): re-fence every shard."""


class LedgerConflict(PosrayError):
    """A captured entry names a (shard, seq) the ledger holds with another document; never dropped."""

    def __init__(self, reason: str, shard: int = -1, seqs: tuple[int, ...] = ()):
        super().__init__(reason)
        self.shard = shard
        self.seqs = seqs

    def __reduce__(self):
        return (type(self), (str(self), self.shard, self.seqs))

    def to_json(self) -> dict:
        return {"error": "ledger_conflict", "reason": str(self)}


class LedgerLive(PosrayError):
    """An offline writer was pointed at a ledger a capture store is fenced against: it would take capture's sequences."""

    def to_json(self) -> dict:
        return {"error": "ledger_live", "reason": str(self)}
