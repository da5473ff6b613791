"""Use case `add_checkpoint` of a witness (c2sp.org/tlog-witness): check, persist, then cosign.

One Witness serves every log it is configured for. The check of a request against the stored
state and the update of that state happen under one lock, and the new state is on disk before
the answer leaves: otherwise two requests could both pass against the same old size and the
smaller one could roll the state back after the larger one was cosigned (the spec's race).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import Callable

from posray.domain.cosignature import Cosigner
from posray.domain.note import NoteVerifier
from posray.domain.witness import Answer, LogState, WitnessRequestError, decide, origin_of, parse_add_checkpoint
from posray.services.ports import WitnessState

log = logging.getLogger(__name__)


class Witness:
    """A witness: its key, the logs it witnesses (origin → trusted keys), its persisted state."""

    def __init__(self, cosigner: Cosigner, logs: dict[str, list[NoteVerifier]], store: WitnessState,
                 clock: Callable[[], float] = time.time):
        self.cosigner = cosigner
        self._logs = {origin: list(keys) for origin, keys in logs.items()}
        self._store = store
        self._clock = clock
        self._states = store.load()
        self._lock = asyncio.Lock()

    def size(self, origin: str) -> int:
        """The size of the latest checkpoint cosigned for `origin` (0: none)."""
        state = self._states.get(origin)
        return state.tree_size if state else 0

    async def add_checkpoint(self, body: bytes) -> Answer:
        """Answer one add-checkpoint request; a 200's new state is durably saved first.

        Raises:
            OSError: the state could not be saved (nothing was cosigned; the caller answers 500).
        """
        try:
            request = parse_add_checkpoint(body)
            origin = origin_of(request.note)
        except WitnessRequestError as e:
            return Answer(400, f"{e}\n".encode())
        async with self._lock:
            answer = decide(request, self._logs.get(origin), self._states.get(origin), self.cosigner,
                            int(self._clock()))
            if answer.state is not None:
                states = {**self._states, origin: answer.state}
                await asyncio.to_thread(self._store.save, states)
                self._states = states
        if answer.status in (409, 422):  # a valid signature on something inconsistent: keep a trace
            log.warning("witness: %s %s for %s (old %d): %s", answer.status, "conflict" if answer.status == 409
                        else "REFUSED", origin, request.old_size, answer.body.decode(errors="replace").strip())
        return answer

    def checkpoint(self, origin_hash_hex: str) -> str | None:
        """The latest cosigned checkpoint of the log whose SHA-256(origin) is `origin_hash_hex`."""
        for origin, state in self._states.items():
            if hashlib.sha256(origin.encode()).hexdigest() == origin_hash_hex:
                return state.note
        return None
