"""`posray witness`: run an independent witness of posray's logs (c2sp.org/tlog-witness).

    posray witness init DIR --name NAME      create the witness's key (mode 600); print its verifier key
    posray witness key DIR                   print the verifier key again (the key itself never)
    posray witness add-log DIR VKEY (--origin O ... | --shards 0-7)
                                             witness logs signed by VKEY: these origins, or the shards
                                             <key name>/<shard> of a posray deployment
    posray witness serve DIR [--host H] [--port P]
                                             answer add-checkpoint (uvicorn, no Ray)

Give operators the verifier key: they set POSRAY_WITNESSES=<url>=<verifier key> and verifiers
pass it to `posray verify-receipt --witness-key`.
"""

from __future__ import annotations

import sys
from pathlib import Path

DEFAULT_PORT = 7380


def add_parser(subparsers) -> None:
    """Register `posray witness ...` on the `posray` parser."""
    from jobs.audit import parse_shards

    witness = subparsers.add_parser("witness", help="run an independent witness that cosigns checkpoints")
    actions = witness.add_subparsers(dest="witness_action", required=True)
    init = actions.add_parser("init", help="create a witness key in DIR and print its verifier key")
    init.add_argument("dir", type=Path, metavar="DIR")
    init.add_argument("--name", required=True, help="the witness's key name, e.g. witness.example.org/w1")
    init.set_defaults(func=cmd_init)
    key = actions.add_parser("key", help="print the witness's verifier key")
    key.add_argument("dir", type=Path, metavar="DIR")
    key.set_defaults(func=cmd_key)
    add = actions.add_parser("add-log", help="witness a log: its verifier key and origins")
    add.add_argument("dir", type=Path, metavar="DIR")
    add.add_argument("verifier_key", metavar="VKEY", help="the log's note verifier key")
    add.add_argument("--origin", action="append", default=[], help="an origin signed by that key (repeatable)")
    add.add_argument("--shards", type=parse_shards, help="posray shards: origins <key name>/<shard>, e.g. 0-7")
    add.set_defaults(func=cmd_add_log)
    serve = actions.add_parser("serve", help="answer POST /add-checkpoint until stopped")
    serve.add_argument("dir", type=Path, metavar="DIR")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve.set_defaults(func=cmd_serve)


def cmd_init(args) -> int:
    from posray.adapters.witness_files import WitnessFiles
    from posray.domain.cosignature import Cosigner

    files = WitnessFiles(args.dir)
    Cosigner(args.name, b"\0" * 32)  # refuses an invalid name before anything is written
    created = files.create(args.name)
    name, seed = files.identity()
    if not created:
        print(f"{args.dir} already holds the witness {name}; its key is unchanged", file=sys.stderr)
    print(Cosigner(name, seed).verifier_key())
    return 0


def cmd_key(args) -> int:
    from posray.adapters.witness_files import WitnessFiles
    from posray.domain.cosignature import Cosigner

    print(Cosigner(*WitnessFiles(args.dir).identity()).verifier_key())
    return 0


def cmd_add_log(args) -> int:
    from posray.adapters.witness_files import WitnessFiles
    from posray.domain.note import NoteVerifier

    key = NoteVerifier.from_verifier_key(args.verifier_key)  # raises NoteError on a bad key
    origins = list(args.origin) + [f"{key.name}/{shard}" for shard in args.shards or []]
    if not origins:
        print("posray witness add-log: give --origin or --shards", file=sys.stderr)
        return 2
    files = WitnessFiles(args.dir)
    files.identity()  # a witness must be there
    added = files.add_logs([(origin, args.verifier_key) for origin in origins])
    print(f"{added} log(s) added; {len(files.logs())} witnessed")
    return 0


def load_witness(directory: Path):
    """The Witness of a folder: its key, the logs of logs.txt, its saved state."""
    from posray.adapters.witness_files import WitnessFiles
    from posray.domain.cosignature import Cosigner
    from posray.domain.note import NoteVerifier
    from posray.services.witness import Witness

    files = WitnessFiles(directory)
    logs: dict[str, list[NoteVerifier]] = {}
    for origin, key in files.logs():
        logs.setdefault(origin, []).append(NoteVerifier.from_verifier_key(key))
    return Witness(Cosigner(*files.identity()), logs, files)


def cmd_serve(args) -> int:
    import logging

    import uvicorn

    from tooling.witness_server import WitnessApp

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    witness = load_witness(args.dir)
    print(f"witness {witness.cosigner.verifier_key()} on http://{args.host}:{args.port}/add-checkpoint", flush=True)
    uvicorn.run(WitnessApp(witness), host=args.host, port=args.port, log_level="warning", lifespan="on")
    return 0
