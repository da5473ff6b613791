"""`posray audit`: recompute every hash of the ledger, verify every checkpoint, report divergences.

The work itself is the Ray job jobs.audit, imported only when the command runs, so the rest of
the CLI never imports Ray; without --ray or a Ray address the job runs in this process.
`posray audit --reconcile` checks the capture store against the ledger instead
(jobs/reconcile.py).
"""

from __future__ import annotations

from jobs.audit import add_arguments


def add_parser(subparsers) -> None:
    """Register `audit` on the `posray` command's subparsers."""
    audit = subparsers.add_parser(
        "audit", help="recompute every ledger hash and checkpoint; exit 1 on any divergence")
    add_arguments(audit)
    audit.set_defaults(func=cmd_audit)


def cmd_audit(args) -> int:
    from jobs.audit import run_audit
    from posray.locate import deployment_settings

    return run_audit(deployment_settings(args), args)
