"""The Ray hop between a Serve replica and an IngestShard: how submissions and results travel.

One call carries many documents on every batch, so the encoding is plain tuples (a tuple
pickles about twenty times cheaper than a dataclass): Submission fields out, Accepted fields or
the PosrayError that refused a document back. Used in exactly two places: the replica's side
(deployments/ingress.py, `_send`) and the actor's (actors/ingest_shard.py, `append`).
"""

from __future__ import annotations

from posray.domain.errors import PosrayError
from posray.domain.transaction import Submission
from posray.services.capture import Accepted

SubmissionWire = tuple  # Submission's fields, in order
ResultWire = tuple | PosrayError  # Accepted's fields, in order, or the refusal


def send_submissions(submissions: list[Submission]) -> list[SubmissionWire]:
    """The replica's side, outbound."""
    return [tuple(s) for s in submissions]


def receive_submissions(wire: list[SubmissionWire]) -> list[Submission]:
    """The actor's side, inbound."""
    make = Submission._make
    return [make(fields) for fields in wire]


def send_results(results: list[Accepted | PosrayError]) -> list[ResultWire]:
    """The actor's side, outbound."""
    return [(r.code, r.shard, r.seq, r.accepted_at_ms, r.fiscal_sign, r.duplicate)
            if isinstance(r, Accepted) else r for r in results]


def receive_results(wire: list[ResultWire]) -> list[Accepted | PosrayError]:
    """The replica's side, inbound."""
    return [Accepted(*r) if isinstance(r, tuple) else r for r in wire]
