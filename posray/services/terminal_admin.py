"""The `posray terminals ...` commands: register, bulk import (COPY), revoke, count."""

from __future__ import annotations

import sys
import time
from contextlib import nullcontext
from typing import Callable, ContextManager

from posray.adapters.keyfile import load_keys
from posray.adapters.pg import create_pool
from posray.adapters.pg_terminals import PgTerminals
from posray.domain.errors import PosrayError
from posray.services.terminals import read_import_file, register, write_keys_file
from posray.settings import Settings


# What a command passes to show a long step's progress: (label, total, unit) -> a context
# manager yielding the step's callback (done so far -> None). The core never draws it itself.
ProgressFor = Callable[[str, int, str], ContextManager[Callable[[int], None]]]


async def run_terminal_command(settings: Settings, args, progress_for: ProgressFor | None = None) -> int:
    """Run `posray terminals ACTION`; `progress_for` shows the steps of a bulk import."""
    keys = load_keys(settings.seed_file)
    pool = await create_pool(settings.pg_dsn, size_max=2)
    terminals = PgTerminals(pool)
    try:
        if args.action == "add":
            reg = await register(terminals, keys.terminal_master, args.terminal_id, args.merchant, args.label)
            print(f"registered {reg.terminal_id} (merchant {reg.merchant_id}, key version {reg.key_version})")
            print(f"terminal key (provision it into the terminal; it is not shown again): {reg.key_hex}")
        elif args.action == "import":
            started = time.perf_counter()
            rows = read_import_file(args.file)
            with _step(progress_for, "import (COPY)", len(rows)) as tick:
                count = await terminals.import_terminals(rows, progress=tick)
            elapsed = time.perf_counter() - started
            print(f"imported {count} terminals in {elapsed:.1f} s ({count / max(elapsed, 1e-9):,.0f}/s)")
            if args.keys_out:
                with _step(progress_for, "terminal keys", len(rows)) as tick:
                    write_keys_file(args.keys_out, keys.terminal_master, rows, progress=tick)
                print(f"wrote their keys to {args.keys_out} (mode 600)")
        elif args.action == "revoke":
            row = await terminals.revoke(args.terminal_id)
            print(f"revoked {row.terminal_id}; documents are refused within a few seconds")
        elif args.action == "count":
            print(await terminals.count())
        return 0
    except PosrayError as e:
        print(f"posray terminals {args.action}: {e}", file=sys.stderr)
        return 1
    finally:
        await pool.close()


def _step(progress_for: ProgressFor | None, label: str, total: int) -> ContextManager:
    return progress_for(label, total, "terminals") if progress_for is not None else nullcontext(None)
