"""Use case `check`: validate and authenticate documents at the HTTP edge.

Runs in every Serve replica, before any Ray call: wire types (pydantic), business rules,
terminal status and MAC. One result per document, in order: a Submission or the rejection.
"""

from __future__ import annotations

import time

from posray.domain.errors import DocumentRejected, PosrayError, Unauthenticated
from posray.domain.terminal_mac import canonical_mac_matches
from posray.domain.transaction import (
    Rules,
    Submission,
    canonical_document,
    check_document,
    document_hash,
    shard_of,
)
from posray.services.batcher import IngestBatcher
from posray.services.terminals import TerminalDirectory
from posray.wire import validate_document


class Intake:
    """Checks documents for one replica; holds the terminal directory."""

    def __init__(self, rules: Rules, directory: TerminalDirectory, shard_count: int):
        self._rules = rules
        self._directory = directory
        self._shard_count = shard_count

    async def check(self, documents: list) -> list[Submission | DocumentRejected]:
        """Validate and authenticate each document; never raises for a bad document."""
        now_ms = int(time.time() * 1000)
        results: list = []
        for doc in documents:
            try:
                validate_document(doc)
                check_document(doc, self._rules, now_ms)
                results.append(doc)
            except DocumentRejected as e:
                results.append(e)
        ids = {d["terminal_id"] for d in results if isinstance(d, dict)}
        terminals = await self._directory.resolve(ids) if ids else {}
        return [
            r if isinstance(r, DocumentRejected) else self._authenticate(r, terminals)
            for r in results
        ]

    def _authenticate(self, doc: dict, terminals: dict) -> Submission | DocumentRejected:
        found = terminals.get(doc["terminal_id"])
        if found is None:
            return Unauthenticated("terminal_id", "is not a registered terminal")
        row, key = found
        if not row.active:
            return Unauthenticated("terminal_id", "is revoked")
        canonical = canonical_document(doc)
        if not canonical_mac_matches(key, canonical, doc["mac"]):
            return Unauthenticated("mac", "does not match the document and the terminal's key")
        return Submission(
            terminal_id=doc["terminal_id"],
            counter=doc["counter"],
            shard=shard_of(doc["terminal_id"], self._shard_count),
            document_hash=document_hash(canonical),
            canonical=canonical,
        )


async def accept(intake: Intake, batcher: IngestBatcher, documents: list) -> list:
    """Use case `accept`: check documents, then capture the valid ones (micro-batched per shard).

    Returns:
        One result per document, in order: Accepted, or the PosrayError that refused it.
    """
    results = await intake.check(documents)
    valid = [i for i, r in enumerate(results) if not isinstance(r, PosrayError)]
    if valid:
        captured = await batcher.submit([results[i] for i in valid])
        for i, result in zip(valid, captured):
            results[i] = result
    return results
