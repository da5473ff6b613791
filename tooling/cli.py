"""The `posray` command: up, down, status, demo, terminals (add, import, revoke), token, merchants, capture, serve-config.

Ray is imported only by the commands that need it (through deployments.launcher), so the
operator's terminal commands work without Ray installed on the operator's machine. Every
command finds its deployment's data folder from any directory (posray/locate.py), and every
failure ends in one line on stderr, never a traceback (tooling/cli_errors.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from posray import locate, ray_auth
from posray.settings import Settings

STATE_FILE = locate.STATE_FILE
# Settings `posray up` deployed with; later commands (status, demo, audit, ...) must agree.
DEPLOYED = ("shard_count", "key_prefix", "ray_namespace", "http_host", "http_port",
            "public_base_url", "ingest_actors", "ledger_actors", "log_name",
            "redis_sentinels", "redis_master", "capture_replicas_min")


def _save_state(settings: Settings, **values) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / STATE_FILE).write_text(json.dumps(values, indent=2))


def _remember(settings: Settings) -> None:
    """Let later commands find this deployment from any directory (a note, not a failure, if not)."""
    try:
        pointer = locate.remember(settings.data_dir)
    except OSError as e:
        print(f"(could not write {locate.pointer_file()}: {e.strerror}; elsewhere use "
              f"POSRAY_DATA_DIR={settings.data_dir})", file=sys.stderr)
        return
    print(f"commands run from other folders find this deployment through {pointer}")


def cmd_up(args) -> int:
    """Start (or join) everything; if a step fails, stop what this call started and exit 1."""
    from posray.adapters.keyfile import create_seed

    # Unlike the other commands, `up` never follows the pointer: it starts in ./.posray unless told.
    data_dir = Path(args.data_dir or os.environ.get("POSRAY_DATA_DIR") or locate.DEFAULT_DATA_DIR).resolve()
    settings = Settings.from_env().replace(data_dir=data_dir)
    if args.shards:
        settings = settings.replace(shard_count=args.shards)
    if getattr(args, "replicated", False):
        settings = settings.replace(embedded_replicas=max(1, settings.embedded_replicas))
    if create_seed(settings.seed_file):
        print(f"created the operator seed {settings.seed_file} (mode 600; back it up, never share it)")
    _remember(settings)
    try:
        settings, address = _bring_up(settings)
    except Exception as e:
        from tooling.cli_errors import describe

        print(f"posray up failed: {describe(e)[0]}", file=sys.stderr)
        print("stopping what it started ...")
        cmd_down(argparse.Namespace(**{**vars(args), "data_dir": str(settings.data_dir)}))
        return 1
    print(f"posray is up: HTTP on http://{settings.http_host}:{settings.http_port} "
          f"({settings.shard_count} shards, Ray at {address}, dashboard http://127.0.0.1:{settings.dashboard_port})")
    print(f"operator token: `posray token` (derived from {settings.seed_file})")
    return 0


async def _schema_and_layout(settings: Settings) -> None:
    """Apply the schema; record the shard count, or refuse one the ledger was not created with."""
    from posray.adapters.pg import apply_schema, check_layout, create_pool

    await apply_schema(settings.pg_dsn)
    pool = await create_pool(settings.pg_dsn, size_max=1)
    try:
        await check_layout(pool, settings.shard_count)
    finally:
        await pool.close()


def _bring_up(settings: Settings) -> tuple[Settings, str]:
    """Embedded servers where no URL is configured, the schema, Ray, the actors and Serve.

    The state file is written after every step that starts something, so that `posray down`
    stops it even if this process dies half-way.
    """
    from tooling import embedded
    from posray.adapters.pg import ensure_database

    state: dict = {}
    if settings.redis_url is None and not settings.redis_sentinels and settings.embedded_replicas:
        settings = _start_replicated_redis(settings, state)
    if settings.redis_url is None and not settings.redis_sentinels:
        info = embedded.start_redis(settings.data_dir / "redis")
        settings = settings.replace(redis_url=info.url)
        state.update(redis_url=info.url, embedded_redis=True)
        _save_state(settings, **state)
        print(f"embedded Redis (AOF, appendfsync always) at {info.url}")
    if settings.pg_dsn is None:
        info = embedded.start_postgres(settings.data_dir / "postgres")
        state["embedded_postgres"] = True
        _save_state(settings, **state)
        dsn = asyncio.run(ensure_database(info.url, "posray"))
        settings = settings.replace(pg_dsn=dsn)
        print(f"embedded PostgreSQL at {dsn}")
    asyncio.run(_schema_and_layout(settings))
    if settings.ray_address is None:  # a Ray of our own: its token exists before any driver looks
        ray_auth.create_token(settings.data_dir)
    ray_auth.use_deployment_token(settings.data_dir)
    from deployments import launcher

    if settings.ray_address and not launcher.reachable(settings.ray_address):
        raise ConnectionError(f"no Ray answers at {settings.ray_address} (POSRAY_RAY_ADDRESS)")
    address = settings.ray_address or launcher.start_local_ray(settings)
    state.update(redis_url=settings.redis_url, pg_dsn=settings.pg_dsn,
                 deployed={k: getattr(settings, k) for k in DEPLOYED},
                 ray_address=address, started_ray=settings.ray_address is None)
    _save_state(settings, **state)
    launcher.connect(address, settings)
    launcher.deploy(settings)
    return settings, address


def _start_replicated_redis(settings: Settings, state: dict) -> Settings:
    """An embedded primary, replicas and three sentinels; capture waits for one replica's AOF."""
    from tooling import embedded

    state["embedded_redis_set"] = True
    _save_state(settings, **state)  # before starting: `posray down` stops a half-started set
    rs = embedded.start_replicated(settings.data_dir / "redis-set", settings.embedded_replicas)
    replicas_min = settings.capture_replicas_min if "POSRAY_CAPTURE_REPLICAS_MIN" in os.environ else 1
    settings = settings.replace(**rs.settings_changes(replicas_min))
    print(f"embedded replicated Redis: primary + {settings.embedded_replicas} replica(s), sentinels "
          f"{settings.redis_sentinels} (master {settings.redis_master!r}); acknowledged after "
          f"{replicas_min} replica(s) fsynced (WAITAOF)")
    return settings


def cmd_down(args) -> int:
    from tooling import embedded

    settings = locate.deployment_settings(args)
    state_path = settings.data_dir / STATE_FILE
    state = locate.load_state(settings.data_dir)
    if not state:
        print(f"nothing to stop: no posray was brought up from {settings.data_dir}")
        return 0
    if state.get("ray_address"):
        from deployments import launcher

        try:
            if not launcher.reachable(state["ray_address"]):
                raise ConnectionError(f"no Ray answers at {state['ray_address']}")
            launcher.connect(state["ray_address"], settings)
            launcher.undeploy(settings)
            from ray import serve
            serve.shutdown()
        except Exception as e:
            print(f"(Ray: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")
        if state.get("started_ray"):
            launcher.stop_local_ray(settings, state["ray_address"])
            print("stopped the local Ray")
    if state.get("embedded_redis"):
        embedded.stop_redis(settings.data_dir / "redis")
        print("stopped the embedded Redis")
    if state.get("embedded_redis_set"):
        embedded.stop_replicated(settings.data_dir / "redis-set")
        print("stopped the embedded replicated Redis (sentinels, primary, replicas)")
    if state.get("embedded_postgres"):
        embedded.stop_postgres(settings.data_dir / "postgres")
        print("stopped the embedded PostgreSQL")
    state_path.unlink(missing_ok=True)
    return 0


def cmd_scale(args) -> int:
    """Move the logical shards to a new number of IngestShard / LedgerWriter actors."""
    settings = locate.deployment_settings(args)
    state_path = settings.data_dir / STATE_FILE
    if not state_path.exists():
        locate.require(settings.replace(ray_address=None), "ray_address")
    counts = (args.ingest_actors or settings.ingest_actors, args.ledger_actors or settings.ledger_actors)
    if not all(1 <= n <= settings.shard_count for n in counts):
        print(f"posray scale: actors must be between 1 and the shard count ({settings.shard_count})",
              file=sys.stderr)
        return 2
    from deployments import launcher

    if not launcher.reachable(settings.ray_address):
        raise ConnectionError(f"no Ray answers at {settings.ray_address}")
    launcher.connect(settings.ray_address, settings)
    new = launcher.rescale(settings, *counts)
    state = json.loads(state_path.read_text())
    state["deployed"] = {k: getattr(new, k) for k in DEPLOYED}
    _save_state(new, **state)
    print(f"{new.shard_count} logical shards now on {new.ingest_actors} IngestShard and "
          f"{new.ledger_actors} LedgerWriter actors")
    return 0


def cmd_status(args) -> int:
    from posray.services.status import gather_status

    settings = locate.deployment_settings(args)
    locate.require(settings, "redis_url", "pg_dsn")
    report = asyncio.run(gather_status(settings))
    if getattr(args, "json", False):
        print(json.dumps(report, indent=2))
        return 0
    if settings.ray_address:
        try:
            from deployments import launcher

            if not launcher.reachable(settings.ray_address):
                raise ConnectionError(settings.ray_address)
            launcher.connect(settings.ray_address, settings)
            for shard, view in launcher.ledger_status(settings).items():
                report["shards"][shard]["writer_error"] = view.get("error")
        except Exception as e:
            print(f"(Ray not reachable: {type(e).__name__})")
    print(f"terminals: {report['terminals']}")
    print(f"log verifier key: {_verifier_key(settings)}")
    print(f"{'shard':>5} {'captured':>10} {'backlog':>8} {'recorded':>10} {'batches':>8} "
          f"{'lag s':>7} {'ckpt age s':>10}  writer")
    for shard, row in sorted(report["shards"].items()):
        print(f"{shard:>5} {row['captured']:>10} {row['backlog']:>8} {row['recorded']:>10} "
              f"{row['batches']:>8} {row['ledger_lag_s']:>7.1f} {row['checkpoint_age_s']:>10.1f}  "
              f"{row.get('writer_error') or 'ok'}")
    totals = report["totals"]
    print(f"total captured {totals['captured']}, recorded {totals['recorded']}, backlog {totals['backlog']}")
    for shard, row in sorted(report["shards"].items()):
        if row["conflicts_unreleased"]:
            print(f"shard {shard}: recording STOPPED by {row['conflicts_unreleased']} conflicting captured "
                  f"document(s); see `posray audit --reconcile`, then `posray capture release {shard}`")
        if row["lost_sequences"]:
            print(f"shard {shard}: {row['lost_sequences']} acknowledged sequence(s) lost by a capture store "
                  f"(answered 410; `posray capture status`)")
    return 0


def _verifier_key(settings: Settings) -> str:
    from posray.adapters.keyfile import load_keys
    from posray.domain.note import NoteSigner

    return NoteSigner(settings.log_key_name, load_keys(settings.seed_file).signing_seed).verifier_key()


def cmd_token(args) -> int:
    from posray.adapters.keyfile import load_keys

    print(load_keys(locate.deployment_settings(args).seed_file).api_token)
    return 0


def cmd_terminals(args) -> int:
    from posray.progress import Progress
    from posray.services.terminal_admin import run_terminal_command

    settings = locate.deployment_settings(args)
    locate.require(settings, "pg_dsn")
    return asyncio.run(run_terminal_command(settings, args, progress_for=Progress))


def cmd_demo(args) -> int:
    from tooling.demo import run_demo

    settings = locate.deployment_settings(args)
    return run_demo(settings, args.url or f"http://{settings.http_host}:{settings.http_port}",
                    terminals=args.terminals, sales=args.sales)


def cmd_verify(args) -> int:
    from tooling.verify_cli import run_verify

    settings = locate.deployment_settings(args)
    key = args.key_file.read_text().strip() if args.key_file else args.key
    base_url = args.url or f"http://{settings.http_host}:{settings.http_port}"
    witnesses = (args.witness_key, args.witnesses)
    if args.tiles:
        from tooling.verify_cli import run_verify_tiles

        return run_verify_tiles(args.code, args.tiles, base_url, key, args.save, args.shard, args.seq, witnesses)
    return run_verify(args.code, base_url, args.proof_file, key, args.save, witnesses)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="posray", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="folder for keys, state and embedded servers (POSRAY_DATA_DIR)")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start Ray, Redis, PostgreSQL (embedded unless configured) and the app")
    up.add_argument("--shards", type=int, help="logical shard count (fixed at setup)")
    up.add_argument("--replicated", action="store_true",
                    help="embedded Redis as primary + replica + 3 sentinels, acks after WAITAOF "
                         "(POSRAY_EMBEDDED_REPLICAS)")
    up.set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop everything `posray up` started").set_defaults(func=cmd_down)
    scale = sub.add_parser("scale", help="move the logical shards to more (or fewer) actors")
    scale.add_argument("--ingest-actors", type=int, help="IngestShard actors (default: unchanged)")
    scale.add_argument("--ledger-actors", type=int, help="LedgerWriter actors (default: unchanged)")
    scale.set_defaults(func=cmd_scale)
    status = sub.add_parser("status", help="shards, stream backlogs and ledger heights")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)
    sub.add_parser("token", help="print the operator API token").set_defaults(func=cmd_token)
    demo = sub.add_parser("demo", help="register terminals, send sales, look a receipt up")
    demo.add_argument("--url", help="base URL of the API (default from settings)")
    demo.add_argument("--terminals", type=int, default=3)
    demo.add_argument("--sales", type=int, default=20)
    demo.set_defaults(func=cmd_demo)
    verify = sub.add_parser("verify-receipt", help="verify a receipt against a signed checkpoint")
    verify.add_argument("code")
    verify.add_argument("--url", help="base URL of the API (default from settings)")
    verify.add_argument("--proof-file", type=Path, help="verify a saved proof bundle instead of fetching one")
    verify.add_argument("--key", help="the operator's note verifier key (name+hash+key)")
    verify.add_argument("--key-file", type=Path, help="file holding the verifier key")
    verify.add_argument("--save", type=Path, help="save the fetched proof bundle here")
    verify.add_argument("--tiles", metavar="URL_OR_DIR",
                        help="verify from C2SP tiles alone: a base URL (e.g. https://host/tlog) or an export "
                             "directory holding <shard>/checkpoint and <shard>/tile/...")
    verify.add_argument("--shard", type=int, help="with --tiles: the receipt's shard (else asked of the API)")
    verify.add_argument("--seq", type=int, help="with --tiles: the receipt's sequence (else asked of the API)")
    verify.add_argument("--witnesses", type=int, default=0, metavar="K",
                        help="require K valid witness cosignatures on the checkpoint (c2sp.org/tlog-cosignature)")
    verify.add_argument("--witness-key", action="append", default=[], metavar="VKEY",
                        help="a witness's verifier key (repeatable; K distinct ones at least)")
    verify.set_defaults(func=cmd_verify)
    terminals = sub.add_parser("terminals", help="register, import and revoke terminals")
    tsub = terminals.add_subparsers(dest="action", required=True)
    add = tsub.add_parser("add", help="register one terminal and print its key once")
    add.add_argument("terminal_id")
    add.add_argument("--merchant", required=True)
    add.add_argument("--label")
    imp = tsub.add_parser("import", help="bulk-register terminals from a CSV (terminal_id,merchant_id[,label])")
    imp.add_argument("file", type=Path)
    imp.add_argument("--keys-out", type=Path, help="write terminal_id,key_hex here (mode 600)")
    rev = tsub.add_parser("revoke", help="revoke a terminal")
    rev.add_argument("terminal_id")
    tsub.add_parser("count", help="how many terminals are registered")
    terminals.set_defaults(func=cmd_terminals)
    from tooling.merchant_cli import add_parser as add_merchants_parser

    add_merchants_parser(sub)
    from tooling.lottery_cli import add_parser as add_lottery_parser

    add_lottery_parser(sub)
    from tooling.audit_cli import add_parser as add_audit_parser

    add_audit_parser(sub)
    from tooling.tiles_cli import add_parser as add_tiles_parser

    add_tiles_parser(sub)
    from tooling.witness_cli import add_parser as add_witness_parser

    add_witness_parser(sub)
    from tooling.capture_cli import add_parser as add_capture_parser

    add_capture_parser(sub)
    from tooling.analytics_cli import add_parser as add_analytics_parser

    add_analytics_parser(sub)
    from tooling.ledger_cli import add_parser as add_ledger_parser

    add_ledger_parser(sub)
    from tooling.bench.cli import add_parser as add_bench_parser

    add_bench_parser(sub)
    from tooling.bench.suite import add_parser as add_suite_parser

    add_suite_parser(sub)
    from tooling.bench.ledger_size import add_parser as add_ledger_size_parser

    add_ledger_size_parser(sub)
    __import__("tooling.faults_cli").faults_cli.add_parser(sub)
    from tooling.serve_config import add_parser as add_serve_config_parser

    add_serve_config_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; any failure becomes one line on stderr (tooling/cli_errors.py)."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # the one handler: what is wrong and what to do, never a traceback
        from tooling.cli_errors import report

        return report(_command_name(args), e)


def _command_name(args) -> str:
    """`status`, `merchants token`, `analytics fiscal`: the words the operator typed."""
    words = [args.command]
    for name in ("action", "ledger_action", "merchant_action", "analytics_command", "lottery_action",
                 "capture_action", "tiles_action", "witness_action"):
        if isinstance(getattr(args, name, None), str):
            words.append(getattr(args, name))
    return " ".join(words)


if __name__ == "__main__":
    sys.exit(main())
