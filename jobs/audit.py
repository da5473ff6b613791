"""Ray job `audit`: audit every shard of the ledger, one Ray task per shard, or in this process.

    python -m jobs.audit [--shards 0,2-5] [--json] [--ray | --address ADDRESS] [--key VERIFIER_KEY]
    ray job submit --address http://HEAD:8265 -- python -m jobs.audit --address auto

Progress lines go to stderr, the report to stdout; the exit status is 1 when any shard diverges.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass

from posray import ray_auth
from posray.adapters.keyfile import KeyFileError, load_keys
from posray.adapters.pg import create_pool
from posray.adapters.pg_audit import PgAuditSource
from posray.adapters.tile_http import tile_source
from posray.domain.errors import PosrayError, Unavailable
from posray.domain.note import NoteError, NoteSigner, NoteVerifier
from posray.locate import NoDeployment
from posray.progress import Progress
from posray.services.audit import ShardAudit, audit_shard
from posray.services.audit_archive import ArchivedRows
from posray.settings import Settings, SettingsError

PROGRESS_INTERVAL_S = 2.0


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
    parser.add_argument("--tiles", metavar="DIR_OR_URL",
                        help="the tiles archive that detached days are audited against (default: POSRAY_TILES_ARCHIVE)")
    parser.add_argument("--reconcile", action="store_true",
                        help="instead of the hash audit: check the capture store's idempotency keys against "
                             "the ledger and list fence losses and conflicts; exit 1 if any receipt was lost")
    parser.add_argument("--scan-count", type=int, default=1000,
                        help="with --reconcile: keys per Redis SCAN page (bounds each Redis call)")


@dataclass(frozen=True, slots=True)
class AuditPlan:
    """What every shard's task needs: where the ledger is and the operator's public key."""

    settings: Settings
    verifier_key: str
    with_codes: bool
    page_rows: int
    tiles_archive: str | None = None  # where detached days' records are read back from


def _print_done(shard: int, result: ShardAudit, elapsed_s: float, err) -> None:
    verdict = "ok" if result.ok else f"DIVERGED: {result.first_divergence.what}"
    if result.archived:
        verdict += f" ({result.archived} from the tiles archive)"
    print(f"audit shard {shard}: {result.documents} documents in {elapsed_s:.1f} s "
          f"({result.documents / max(elapsed_s, 1e-6):.0f}/s), {verdict}", file=err, flush=True)


async def audit_shards(plan: AuditPlan, shards: list[int], err=None) -> list[ShardAudit]:
    """Audit `shards` one after another through one small pool, each in its own snapshot."""
    err = err or sys.stderr
    verifier = NoteVerifier.from_verifier_key(plan.verifier_key)
    code_key = load_keys(plan.settings.seed_file).code if plan.with_codes else None
    pool = await create_pool(plan.settings.pg_dsn, size_max=2)
    archive = tile_source(plan.tiles_archive) if plan.tiles_archive else None
    results = []
    try:
        source = PgAuditSource(pool)
        for shard in shards:
            started = time.monotonic()
            # A bar on a terminal; in a Ray task or a log, a line at most every PROGRESS_INTERVAL_S.
            with Progress(f"audit shard {shard}", unit="documents", stream=err, interval_s=PROGRESS_INTERVAL_S,
                          end_line=False) as tick:
                async with source.snapshot() as snapshot:
                    reader = ArchivedRows(snapshot, archive)  # detached days: from the tiles archive
                    result = await audit_shard(reader, shard, verifier, plan.settings.log_origin(shard),
                                               code_key, plan.page_rows, tick)
            _print_done(shard, result, time.monotonic() - started, err)
            results.append(result)
    finally:
        await pool.close()
    return results


def audit_one(plan: AuditPlan, shard: int) -> ShardAudit:
    """The body of one shard's Ray task."""
    return asyncio.run(audit_shards(plan, [shard]))[0]


async def _ledger_shards(settings: Settings) -> list[int]:
    pool = await create_pool(settings.pg_dsn, size_max=1)
    try:
        return await PgAuditSource(pool).shards()
    finally:
        await pool.close()


def _run_on_ray(plan: AuditPlan, shards: list[int], address: str | None, err) -> list[ShardAudit]:
    """One task per shard; audits only read, so a task lost with its node is simply retried."""
    ray_auth.require_token_auth()
    import ray

    started = not ray.is_initialized()
    if started:
        address = address or plan.settings.ray_address or "local"
        ray_auth.for_local_ray(address, plan.settings.data_dir)
        ray.init(address=address, namespace=plan.settings.ray_namespace)
    try:
        task = ray.remote(num_cpus=1, max_retries=2)(audit_one)
        pending = {task.remote(plan, shard): shard for shard in shards}
        results = []
        with Progress("audit", total=len(shards), unit="shards", stream=err, interval_s=PROGRESS_INTERVAL_S) as tick:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1, timeout=PROGRESS_INTERVAL_S)
                for ref in done:
                    pending.pop(ref)
                    results.append(ray.get(ref))
                tick(len(results))
        return sorted(results, key=lambda r: r.shard)
    finally:
        if started:
            ray.shutdown()


def _plan(settings: Settings, args) -> AuditPlan:
    """The verifier key from --key or from the operator's seed; codes are checked when the seed is here."""
    try:
        signer = NoteSigner(settings.log_key_name, load_keys(settings.seed_file).signing_seed)
    except KeyFileError:
        if not args.key:
            raise
        signer = None
    key = args.key or signer.verifier_key()
    NoteVerifier.from_verifier_key(key)  # fail early on a malformed key
    tiles = getattr(args, "tiles", None) or settings.tiles_archive
    return AuditPlan(settings, key, signer is not None, args.page_rows, tiles)


def run_audit(settings: Settings, args, out=None, err=None) -> int:
    """Audit the shards `args` name (all by default); print the report; 0 ok, 1 divergence, 2 unusable."""
    out, err = out or sys.stdout, err or sys.stderr
    if getattr(args, "reconcile", False):
        from jobs.reconcile import run_reconcile

        return run_reconcile(settings, args, out, err)
    if settings.pg_dsn is None:
        print("posray audit: no ledger configured (POSRAY_PG_DSN, or run `posray up`)", file=err)
        return 2
    try:
        plan = _plan(settings, args)
        shards = args.shards or asyncio.run(_ledger_shards(settings))
    except (KeyFileError, NoteError, PosrayError) as e:
        hint = "; is posray up (`posray status`)? else check POSRAY_PG_DSN" if isinstance(e, Unavailable) else ""
        print(f"posray audit: {e}{hint}", file=err)
        return 2
    start = time.monotonic()
    address = args.address or os.environ.get("RAY_ADDRESS")
    if address or args.ray:
        results = _run_on_ray(plan, shards, address, err)
    else:
        results = asyncio.run(audit_shards(plan, shards, err))
    _report(results, time.monotonic() - start, args.json, out)
    return 0 if all(r.ok for r in results) else 1


def _report(results: list[ShardAudit], elapsed_s: float, as_json: bool, out) -> None:
    documents = sum(r.documents for r in results)
    failed = [r for r in results if not r.ok]
    if as_json:
        print(json.dumps({"ok": not failed, "documents": documents, "elapsed_s": round(elapsed_s, 3),
                          "shards": [r.to_json() for r in results]}, indent=2), file=out)
        return
    print(f"{'shard':>5} {'documents':>10} {'batches':>8} {'checkpoints':>11} {'nodes':>7}  result", file=out)
    for r in results:
        d = r.first_divergence
        result = "ok" if d is None else f"DIVERGED [{d.kind}] {d.what}"
        if r.archived:
            result += (f" ({r.archived} documents of detached days {', '.join(r.archived_days)} verified "
                       "from the tiles archive)" if d is None else "")
        print(f"{r.shard:>5} {r.documents:>10} {r.batches:>8} {r.checkpoints:>11} {r.nodes:>7}  {result}",
              file=out)
    verdict = f"FAILED: {len(failed)} of {len(results)} shards diverge" if failed else "ok: every hash verified"
    archived = sum(r.archived for r in results)
    from_archive = f", {archived} of them from the tiles archive" if archived else ""
    print(f"audit {verdict} ({documents} documents{from_archive}, {len(results)} shards, {elapsed_s:.1f} s)",
          file=out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m jobs.audit", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run_audit(Settings.from_env(), args)
    except (SettingsError, NoDeployment) as e:
        print(f"posray audit: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
