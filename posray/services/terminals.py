"""Use cases around terminals: register, import in bulk, revoke, and the hot-path directory.

The directory is the bounded cache the HTTP edge consults for every document: one query per
batch of cache misses, and a change feed polled every few seconds so that a revocation takes
effect everywhere within `revocation_poll_s`.
"""

from __future__ import annotations

import csv
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from posray.adapters.pg_terminals import PgTerminals, TerminalRow
from posray.domain.errors import InvalidRequest
from posray.domain.keys import terminal_key

KEYS_PROGRESS_EVERY = 10_000
TERMINAL_ID_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_UNKNOWN_TTL_S = 2.0
_CHANGES_PAGE = 10_000


@dataclass(frozen=True, slots=True)
class Registered:
    """A newly registered terminal and its secret key (shown once, to the operator)."""

    terminal_id: str
    merchant_id: str
    key_version: int
    key_hex: str

    def __repr__(self) -> str:
        return f"Registered({self.terminal_id!r}, merchant={self.merchant_id!r}, key=<secret>)"


def check_terminal_id(terminal_id: str, field: str = "terminal_id") -> None:
    ok = 1 <= len(terminal_id) <= 32 and set(terminal_id) <= TERMINAL_ID_CHARS
    if not ok or not terminal_id[0].isalnum():
        raise InvalidRequest(field, "1-32 characters of A-Z a-z 0-9 _ . -, starting alphanumeric")


async def register(
    terminals: PgTerminals, master: bytes, terminal_id: str, merchant_id: str,
    label: str | None = None, merchant_name: str | None = None,
) -> Registered:
    """Register a terminal (and its merchant if new); return its key once."""
    check_terminal_id(terminal_id)
    check_terminal_id(merchant_id, "merchant_id")
    await terminals.add_merchant(merchant_id, merchant_name or merchant_id)
    row = await terminals.add_terminal(terminal_id, merchant_id, label)
    key = terminal_key(master, row.terminal_id, row.key_version)
    return Registered(row.terminal_id, row.merchant_id, row.key_version, key.hex())


async def revoke(terminals: PgTerminals, terminal_id: str) -> TerminalRow:
    """Revoke a terminal (idempotent); its documents are refused within the directory's poll.

    Raises:
        NotFound: no such terminal.
    """
    return await terminals.revoke(terminal_id)


def read_import_file(path: Path, rows_max: int = 20_000_000) -> list[tuple[str, str, str | None]]:
    """Read a CSV of terminal_id,merchant_id[,label] (header line optional).

    Raises:
        InvalidRequest: a line is malformed (names the line).
    """
    rows: list[tuple[str, str, str | None]] = []
    with open(path, newline="") as handle:
        for line_no, fields in enumerate(csv.reader(handle), start=1):
            if not fields or (line_no == 1 and fields[0].strip().lower() == "terminal_id"):
                continue
            if len(fields) not in (2, 3) or len(rows) >= rows_max:
                raise InvalidRequest(f"line {line_no}", "expected terminal_id,merchant_id[,label]")
            terminal_id, merchant_id = fields[0].strip(), fields[1].strip()
            check_terminal_id(terminal_id, f"line {line_no}: terminal_id")
            check_terminal_id(merchant_id, f"line {line_no}: merchant_id")
            rows.append((terminal_id, merchant_id, fields[2] if len(fields) == 3 else None))
    return rows


def write_keys_file(path: Path, master: bytes, rows: list[tuple[str, str, str | None]],
                    progress: Callable[[int], None] | None = None) -> None:
    """Write terminal_id,key_hex for provisioning, readable by the owner only; `progress` is
    called with the keys written so far every KEYS_PROGRESS_EVERY keys and at the end."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", opener=lambda p, f: __import__("os").open(p, f, 0o600)) as out:
        out.write("terminal_id,key_hex\n")
        for n, (terminal_id, _, _) in enumerate(rows, start=1):
            out.write(f"{terminal_id},{terminal_key(master, terminal_id, 1).hex()}\n")
            if progress is not None and n % KEYS_PROGRESS_EVERY == 0:
                progress(n)
    if progress is not None:
        progress(len(rows))


class TerminalDirectory:
    """Bounded LRU of terminals for authentication; refreshed from the change feed."""

    def __init__(self, terminals: PgTerminals, master: bytes, size_max: int):
        self._terminals = terminals
        self._master = master
        self._size_max = size_max
        self._cache: OrderedDict[str, tuple[TerminalRow | None, bytes | None, float]] = OrderedDict()
        self._revision = 0

    async def start(self) -> None:
        self._revision = await self._terminals.current_revision()

    async def resolve(self, terminal_ids: set[str]) -> dict[str, tuple[TerminalRow, bytes] | None]:
        """(row, derived key) per terminal id, or None when unknown; one query for misses."""
        now = time.monotonic()
        found: dict[str, tuple[TerminalRow, bytes] | None] = {}
        missing: list[str] = []
        for tid in terminal_ids:
            hit = self._cache.get(tid)
            if hit is None or (hit[0] is None and now - hit[2] > _UNKNOWN_TTL_S):
                missing.append(tid)
                continue
            self._cache.move_to_end(tid)
            found[tid] = None if hit[0] is None else (hit[0], hit[1])
        if missing:
            rows = await self._terminals.get_many(missing)
            for tid in missing:
                found[tid] = self._store(tid, rows.get(tid), now)
        return found

    def _store(self, tid: str, row: TerminalRow | None, now: float):
        key = None if row is None else terminal_key(self._master, tid, row.key_version)
        self._cache[tid] = (row, key, now)
        self._cache.move_to_end(tid)
        while len(self._cache) > self._size_max:
            self._cache.popitem(last=False)
        return None if row is None else (row, key)

    async def refresh(self, pages_max: int = 1000) -> int:
        """Apply terminal changes since the last poll; return how many were seen.

        Reads the whole feed (up to `pages_max` pages), so a revocation queued behind a bulk
        import still takes effect within one poll instead of one poll per page.
        """
        seen = 0
        for _ in range(pages_max):
            changes = await self._terminals.changes_since(self._revision, _CHANGES_PAGE)
            now = time.monotonic()
            for row in changes:
                if row.terminal_id in self._cache:
                    self._store(row.terminal_id, row, now)
                self._revision = max(self._revision, row.revision)
            seen += len(changes)
            if len(changes) < _CHANGES_PAGE:
                break
        return seen

    def __len__(self) -> int:
        return len(self._cache)
