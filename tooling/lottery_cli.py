"""`posray lottery draw`: draw winning receipts of a period and say how anyone can recompute it."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import datetime, timezone

from posray.domain.codes import display_code
from posray.domain.lottery import RULE, WINNERS_MAX
from posray.domain.transaction import utc_iso_ms


def add_parser(subparsers) -> None:
    """Register `lottery draw --from ISO --to ISO --winners N [--json]` on the `posray` parser."""
    lottery = subparsers.add_parser("lottery", help="receipt lottery draws anyone can recompute")
    actions = lottery.add_subparsers(dest="lottery_action", required=True)
    draw = actions.add_parser(
        "draw", help="draw winning receipts among those accepted in [--from, --to)",
        description="Eligible: receipts whose accepted_at (server clock, UTC) is in [--from, --to);"
        " randomness: SHA-256 of a statement binding the period and the first checkpoints signed"
        " 60 s or more after --to. The rule is in docs/lottery.md.")
    draw.add_argument("--from", dest="start_ms", required=True, type=parse_moment, metavar="ISO",
                      help="period start, included: ISO 8601, UTC unless an offset is given")
    draw.add_argument("--to", dest="end_ms", required=True, type=parse_moment, metavar="ISO",
                      help="period end, excluded: ISO 8601, UTC unless an offset is given")
    draw.add_argument("--winners", required=True, type=_winner_count, metavar="N", help=f"1..{WINNERS_MAX}")
    draw.add_argument("--json", action="store_true", help="print the result as JSON")
    draw.set_defaults(func=cmd_lottery_draw)


def parse_moment(text: str) -> int:
    """ISO 8601 date or date-time (UTC when no offset is given) as epoch milliseconds.

    Raises:
        argparse.ArgumentTypeError: not ISO 8601, or finer than a millisecond.
    """
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date or date-time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    if moment.microsecond % 1000:
        raise argparse.ArgumentTypeError(f"{text!r}: the ledger keeps milliseconds, not finer")
    delta = moment - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _winner_count(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= WINNERS_MAX:
        raise argparse.ArgumentTypeError(f"the number of winners must be 1..{WINNERS_MAX}")
    return int(text)


def cmd_lottery_draw(args) -> int:
    """Run the draw; 0 with the result, 1 when refused or unreachable, 2 on configuration errors."""
    from posray.locate import deployment_settings

    settings = deployment_settings(args)
    if settings.pg_dsn is None:
        print("posray lottery: no PostgreSQL configured (run `posray up` or set POSRAY_PG_DSN)",
              file=sys.stderr)
        return 2
    return asyncio.run(_draw(settings, args))


async def _draw(settings, args) -> int:
    from posray.adapters.keyfile import KeyFileError, load_keys
    from posray.adapters.pg import create_pool
    from posray.adapters.pg_lottery import PgLottery
    from posray.domain.errors import PosrayError, Unavailable
    from posray.domain.note import NoteSigner, NoteVerifier
    from posray.services.lottery import DrawRefused, draw_winners

    try:
        keys = load_keys(settings.seed_file)
    except KeyFileError as e:
        print(f"posray lottery: {e}", file=sys.stderr)
        return 2
    key_text = NoteSigner(settings.log_key_name, keys.signing_seed).verifier_key()
    try:
        pool = await create_pool(settings.pg_dsn, size_max=2)
        try:
            result = await draw_winners(PgLottery(pool), keys.code, args.start_ms, args.end_ms,
                                        args.winners, int(time.time() * 1000),
                                        NoteVerifier.from_verifier_key(key_text))
        finally:
            await pool.close()
    except Unavailable:
        raise  # posray's one handler says what to do about it
    except (DrawRefused, PosrayError, ValueError) as e:
        print(f"posray lottery: refused: {e}", file=sys.stderr)
        return 1
    report = draw_report(result, settings.public_base_url, key_text)
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


def draw_report(result, base_url: str, verifier_key: str) -> dict:
    """The draw as JSON: winners, eligible counts, checkpoints, statement, seed, how to reproduce."""
    base = base_url.rstrip("/")
    sizes = {p.shard: p.checkpoint.tree_size for p in result.shards}
    return {
        "rule": RULE,
        "period": {"from": utc_iso_ms(result.start_ms), "to": utc_iso_ms(result.end_ms)},
        "winners_requested": result.winners_requested,
        "settle_s": result.settle_s,
        "eligible": result.eligible,
        "winners": [
            {"rank": w.rank, "code": w.code, "shard": w.shard, "seq": w.seq, "index": w.index,
             "accepted_at": utc_iso_ms(w.accepted_at_ms),
             "proof_url": f"{base}/v1/receipts/{w.code}/proof?tree_size={sizes[w.shard]}"}
            for w in result.winners
        ],
        "shards": [
            {"shard": p.shard, "in_period": p.in_period, "eligible": p.eligible, "late": p.late,
             "checkpoint": {
                 "tree_size": p.checkpoint.tree_size,
                 "created_at": utc_iso_ms(p.checkpoint.created_at_ms),
                 "url": f"{base}/v1/log/{p.shard}/checkpoint?tree_size={p.checkpoint.tree_size}",
                 "note": p.checkpoint.note}}
            for p in result.shards
        ],
        "verifier_key": verifier_key,
        "statement": result.statement.decode(),
        "seed": result.seed.hex(),
        "how_to_reproduce": reproduce_steps(result, base, verifier_key),
    }


def reproduce_steps(result, base: str, verifier_key: str) -> list[str]:
    """The steps an outsider follows to recompute the draw from public data."""
    settled = utc_iso_ms(result.end_ms + result.settle_s * 1000)
    return [
        f"1. For each shard line of the statement, fetch {base}/v1/log/<shard>/checkpoint?tree_size="
        f"<tree_size>, verify its signature with the operator key {verifier_key}, and check that"
        " SHA-256 of the note (UTF-8, as served) is the line's note_sha256. Each must be the"
        f" shard's first checkpoint published at or after {settled}.",
        "2. SHA-256 of the statement text (every line ending in a newline) is the seed.",
        f"3. Run the draw of docs/lottery.md (Python, hashlib only) with eligible={result.eligible},"
        f" winners={result.winners_requested} and the seed: it gives the winners' indexes, in rank order.",
        "4. Indexes count through the shards in ascending order, each shard taking `eligible`"
        " consecutive indexes; inside a shard, rank r is its r-th eligible document (0-based) by seq.",
        f"5. {base}/v1/receipts/<code>/proof?tree_size=<its shard's tree_size> proves a winning"
        " receipt is in the checkpointed log; the record in it shows accepted_at in the period.",
        "6. Auditors with ledger access recompute each shard's eligible count: documents with"
        " from <= accepted_at < to and seq <= tree_size, and the (shard, seq) of each index.",
    ]


def render(report: dict) -> str:
    """The report as text for a terminal."""
    lines = [f"{report['rule']}: receipts accepted in [{report['period']['from']},"
             f" {report['period']['to']}), {report['winners_requested']} winner(s) requested",
             f"eligible receipts: {report['eligible']}"]
    for s in report["shards"]:
        cp = s["checkpoint"]
        late = f", {s['late']} recorded after the checkpoint (not eligible)" if s["late"] else ""
        lines.append(f"  shard {s['shard']}: {s['eligible']} eligible{late}; checkpoint tree_size"
                     f" {cp['tree_size']} created {cp['created_at']}")
    lines.append("winners:")
    lines += [f"  {w['rank']:>4}. {display_code(w['code'])}  shard {w['shard']} seq {w['seq']}"
              f"  accepted {w['accepted_at']}  (index {w['index']})" for w in report["winners"]]
    lines += ["statement:"] + [f"  {line}" for line in report["statement"].splitlines()]
    lines += [f"seed: {report['seed']}", "how to reproduce:"]
    lines += [f"  {step}" for step in report["how_to_reproduce"]]
    return "\n".join(lines)
