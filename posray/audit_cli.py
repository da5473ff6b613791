"""`posray audit`: recompute every hash of the ledger, verify every checkpoint, report divergences.

The work itself is the Ray job jobs.audit, imported only when the command runs, so the rest of
the CLI never imports Ray; without --ray or a Ray address the job runs in this process.
`posray audit --reconcile` checks the capture store against the ledger instead
(posray/reconcile_cli.py).
"""

from __future__ import annotations

import argparse

SHARDS_MAX = 1 << 16  # receipt codes name 16-bit shards


def parse_shards(text: str) -> list[int]:
    """Shard numbers from "3", "0,2,5-7" (ranges inclusive), sorted and without repeats.

    Raises:
        argparse.ArgumentTypeError: not such a list, or a shard outside 0..65535.
    """
    shards: set[int] = set()
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            low, _, high = part.partition("-")
            first, last = int(low), int(high or low)
            if not 0 <= first <= last < SHARDS_MAX:
                raise ValueError(part)
            shards.update(range(first, last + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a shard list like 0,2,5-7") from None
    if not shards:
        raise argparse.ArgumentTypeError("no shard given")
    return sorted(shards)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the audit, shared by `posray audit` and `python -m jobs.audit`."""
    parser.add_argument("--shards", type=parse_shards,
                        help="shards to audit, e.g. 0,2,5-7 (default: every shard in the ledger)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--ray", action="store_true",
                        help="one Ray task per shard (on the cluster of `posray up`, else a local Ray)")
    parser.add_argument("--address", help="Ray address to run the shards on (also RAY_ADDRESS)")
    parser.add_argument("--key", help="the operator's note verifier key, for auditors without the seed "
                                      "(receipt codes are then not recomputed)")
    parser.add_argument("--page-rows", type=int, default=5000, help="ledger rows read per query")
    parser.add_argument("--reconcile", action="store_true",
                        help="instead of the hash audit: check the capture store's idempotency keys against "
                             "the ledger and list fence losses and conflicts; exit 1 if any receipt was lost")
    parser.add_argument("--scan-count", type=int, default=1000,
                        help="with --reconcile: keys per Redis SCAN page (bounds each Redis call)")


def add_parser(subparsers) -> None:
    """Register `audit` on the `posray` command's subparsers."""
    audit = subparsers.add_parser(
        "audit", help="recompute every ledger hash and checkpoint; exit 1 on any divergence")
    add_arguments(audit)
    audit.set_defaults(func=cmd_audit)


def cmd_audit(args) -> int:
    from jobs.audit import run_audit
    from posray.cli import _settings

    return run_audit(_settings(args), args)
