"""The one error tree of posray; adapters translate driver errors into it.

Errors say what went wrong, never how to answer it: the HTTP edge maps each class to a status
(deployments/api/errors.py). Classes marked (module) are defined where their concept lives and
subclass this tree; every other class is defined here.

    PosrayError
    ├── DocumentRejected          one document (or request) refused; carries field and reason
    │   ├── InvalidDocument       malformed, wrong type, inconsistent totals ...
    │   │   ├── InvalidRequest    the request around the documents: a query parameter, the JSON body
    │   │   ├── TooLarge          a body or a batch over its limit
    │   │   └── AlreadyRegistered a terminal id that is registered already
    │   ├── Unauthenticated       unknown or revoked terminal, bad MAC, bad merchant token
    │   └── DocumentConflict      another document was accepted under the same counter
    ├── CodeMalformed             a receipt code that cannot be a code (length, check char)
    ├── NotFound                  no such receipt / terminal / merchant / route
    ├── Forbidden                 valid credentials that do not cover what was asked for
    ├── OperatorOnly              an operator route called without the operator's token
    ├── RetryLater                refused for now: retry after `retry_after_s` seconds
    │   ├── RateLimited           a client address has used up its budget of public requests
    │   ├── Overloaded            a bounded queue or backlog is full
    │   └── Unavailable           Redis, PostgreSQL or an actor is unreachable
    │       └── NotFenced         the capture store is not fenced against the ledger
    │           └── StoreRestarted the capture store lost its scripts (restarted, failed over): re-fence all
    ├── ReceiptLost               an acknowledged receipt that the capture store lost
    ├── LedgerCorrupted           the stored ledger contradicts itself
    │   ├── LedgerRace            another writer recorded the same batch or sequence (a unique key)
    │   ├── StreamGap             the captured stream skips a sequence: recording stops there
    │   └── AuditDivergence       stored bytes contradict their hash, chain, signature or place
    ├── LedgerConflict            a captured (shard, seq) is recorded with another document: recording stops
    ├── LedgerLive                an offline load (generated history) aimed at a ledger capture is fenced against
    ├── NoteError                 (domain/note.py) a note, checkpoint or key text malformed or badly signed
    │   └── WitnessRequestError   (domain/witness.py) an add-checkpoint request that is not well-formed
    ├── TileError                 (domain/tiles.py) a tile path, tile or entry bundle not as tlog-tiles says
    ├── StoreMismatch             (domain/fence.py) a shard's capture store is another store
    ├── DrawRefused               (services/lottery.py) a lottery draw cannot run (yet)
    ├── EnginesDisagree           (analytics/bench.py) two query engines gave different results
    └── SetupError                the operator's configuration or environment is wrong
        ├── SettingsError         (settings.py) a POSRAY_* variable of the wrong type or range
        ├── KeyFileError          (adapters/keyfile.py) the seed file is missing, malformed or exposed
        ├── NoDeployment          (locate.py) no deployment (or setting) where a command needs one
        ├── EmbeddedError         (embedded/common.py) an embedded server cannot start or stop
        ├── UnsafeConfig          (deployments/haproxy_guard.py) the HAProxy config cannot be hardened
        └── WitnessFolderError    (adapters/witness_files.py) a witness's folder, key or state is unusable

Errors cross Ray calls by pickle: a class whose constructor takes more than the message
defines __reduce__.
"""

from __future__ import annotations


class PosrayError(Exception):
    """Root of every error posray raises on purpose."""

    def to_json(self) -> dict:
        return {"error": type(self).__name__, "detail": str(self)}


class DocumentRejected(PosrayError):
    """One document is refused; `field` names the offending member (dotted path)."""

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


class InvalidRequest(InvalidDocument):
    """The request around the documents is wrong: a query parameter, the JSON body, an envelope member."""


class TooLarge(InvalidDocument):
    """A body or a batch is over its limit."""


class AlreadyRegistered(InvalidDocument):
    """The terminal id is registered already."""


class Unauthenticated(DocumentRejected):
    """The terminal is unknown or revoked, or the MAC (or a merchant token) does not verify."""

    kind = "unauthenticated"


class DocumentConflict(DocumentRejected):
    """A different document was already accepted under this (terminal_id, counter)."""

    kind = "conflict"


class CodeMalformed(PosrayError):
    """The text cannot be a receipt code (wrong length, alphabet or check character)."""

    def to_json(self) -> dict:
        return {"error": "malformed_code", "field": "code", "reason": str(self)}


class NotFound(PosrayError):
    """No receipt, terminal, merchant or route matches."""

    def to_json(self) -> dict:
        return {"error": "not_found", "reason": str(self)}


class Forbidden(PosrayError):
    """The caller is authenticated but the resource is not its own (says nothing of whether it exists)."""

    def to_json(self) -> dict:
        return {"error": "forbidden", "reason": str(self)}


class OperatorOnly(PosrayError):
    """An operator route was called without the operator's bearer token."""

    def to_json(self) -> dict:
        return {"error": "unauthorized", "reason": str(self)}


class RetryLater(PosrayError):
    """Refused for now: the client may try again after `retry_after_s` seconds."""

    error = "retry_later"

    def __init__(self, reason: str, retry_after_s: int = 1):
        super().__init__(reason)
        self.retry_after_s = retry_after_s

    def __reduce__(self):
        return (type(self), (str(self), self.retry_after_s))

    def to_json(self) -> dict:
        return {"error": self.error, "reason": str(self), "retry_after_s": self.retry_after_s}


class RateLimited(RetryLater):
    """The client address has used up its budget of public requests; retry after `retry_after_s`."""

    error = "rate_limited"


class Overloaded(RetryLater):
    """A bounded queue or backlog is full; the client should retry after `retry_after_s`."""

    error = "overloaded"


class ReceiptLost(PosrayError):
    """The code was acknowledged but its document never reached the ledger: the capture store lost it."""

    def to_json(self) -> dict:
        return {"error": "receipt_lost", "reason": str(self)}


class Unavailable(RetryLater):
    """A backing service (Redis, PostgreSQL, an actor) cannot be reached right now."""

    error = "unavailable"

    def __init__(self, reason: str, retry_after_s: int = 2):
        super().__init__(reason, retry_after_s)


class NotFenced(Unavailable):
    """The capture store is not (or no longer) fenced against the ledger: capture refuses until it is."""

    error = "not_fenced"


class LedgerCorrupted(PosrayError):
    """The ledger contradicts itself; one of the three subclasses says how."""

    def to_json(self) -> dict:
        return {"error": "ledger_corrupted", "reason": str(self)}


class LedgerRace(LedgerCorrupted):
    """Another writer recorded the same batch number or sequence first (a unique key refused it)."""


class StreamGap(LedgerCorrupted):
    """The captured stream skips a sequence the ledger needs next: recording stops there."""


class AuditDivergence(LedgerCorrupted):
    """Stored bytes contradict their leaf hash, chain, signed checkpoint or recorded place."""


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


class SetupError(PosrayError):
    """The operator's configuration or environment is wrong: a command cannot start until it is fixed."""


class LedgerLive(PosrayError):
    """An offline writer was pointed at a ledger a capture store is fenced against: it would take capture's sequences."""
