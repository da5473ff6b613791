"""`posray serve-config`: the Ray Serve config file (`serve deploy FILE`) for the current settings.

The file names the application builder deployments.app:build, which creates (or finds) the
detached IngestShard and LedgerWriter actors and returns the Serve app, so that `serve deploy`
alone brings up a complete posray on a running Ray cluster. posray's settings travel as the
application's `args`; Serve logs those args when it builds the app, so URLs carrying a password
are left out and must reach the cluster as POSRAY_* variables in the environment of every
`ray start` (or through ~/.pgpass). No working_dir is shipped: every node runs the installed
posray package (see cluster.yaml). Nothing here imports Ray.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from deployments.serve_args import CREDENTIAL_FIELDS
from posray.settings import Settings

APP_NAME = "posray"
IMPORT_PATH = "deployments.app:build"
INGRESS_DEPLOYMENT = "PosrayIngress"
# Meaningless inside the cluster (the builder runs there) or resolved into other fields.
NOT_ARGS = ("ray_address", "data_dir")
# As deployments.ingress.REPLICA_ENV (the config's ray_actor_options replace the code's): the
# replicas' uvicorn must not take X-Forwarded-For from HAProxy as the client's address.
REPLICA_ENV = {"FORWARDED_ALLOW_IPS": ""}


def carries_password(url: str) -> bool:
    """True for a URL or libpq keyword DSN holding a password."""
    if "password=" in url.lower():
        return True
    try:
        return urlsplit(url).password is not None
    except ValueError:
        return True  # unparseable: treat as secret


def application_args(settings: Settings) -> tuple[dict, list[str]]:
    """The builder's args for `settings`, and notes on the connection settings not written.

    Every setting with a value is written (explicit beats whatever the nodes' environment says),
    paths absolute, tuples as lists.
    """
    args, notes = {}, []
    for f in fields(Settings):
        value = getattr(settings, f.name)
        variable = f"POSRAY_{f.name.upper()}"
        if f.name in CREDENTIAL_FIELDS and value is None:
            notes.append(f"{f.name} is not set: set {variable} in the environment of every `ray start`")
        if f.name in NOT_ARGS or value is None:
            continue
        if f.name in CREDENTIAL_FIELDS and carries_password(value):
            notes.append(f"{f.name} carries a password and is not written: set {variable} "
                         "in the environment of every `ray start` (or use ~/.pgpass)")
            continue
        if isinstance(value, Path):
            value = str(value.resolve())
        elif isinstance(value, tuple):
            value = list(value)
        args[f.name] = value
    args["operator_seed_file"] = str(settings.seed_file.resolve())
    return args, notes


def render(settings: Settings) -> tuple[dict, list[str]]:
    """The Serve config (ServeDeploySchema) as a dict, and notes on connection settings not written."""
    args, notes = application_args(settings)
    config = {
        "proxy_location": "EveryNode",
        "http_options": {"host": settings.http_host, "port": settings.http_port},
        "logging_config": {"enable_access_log": False},
        "applications": [{
            "name": APP_NAME,
            "route_prefix": "/",
            "import_path": IMPORT_PATH,
            # No working_dir: the nodes import the installed posray package.
            "runtime_env": {},
            "args": args,
            "deployments": [{
                "name": INGRESS_DEPLOYMENT,
                "num_replicas": settings.replicas,
                "max_ongoing_requests": settings.replica_ongoing_requests_max,
                "ray_actor_options": {"num_cpus": 0, "runtime_env": {"env_vars": dict(REPLICA_ENV)}},
                "logging_config": {"enable_access_log": False},
            }],
        }],
    }
    return config, notes


def to_yaml(settings: Settings) -> str:
    config, notes = render(settings)
    head = [
        "# Ray Serve config for posray, written by `posray serve-config`.",
        "# Deploy on a running Ray cluster (started with the ingress and auth variables, see",
        "# cluster.yaml):  RAY_AUTH_MODE=token serve deploy THIS_FILE --address http://HEAD:8265",
        "# The builder creates or finds posray's actors, then the HTTP app.",
    ]
    head += [f"# {note}." for note in notes]
    return "\n".join(head) + "\n" + yaml.safe_dump(config, sort_keys=False, default_flow_style=None)


def add_parser(subparsers) -> None:
    """Register `serve-config` on the `posray` command's subparsers."""
    parser = subparsers.add_parser(
        "serve-config", help="write the Ray Serve config file (for `serve deploy`) of the current settings")
    parser.add_argument("--out", type=Path, help="write here instead of standard output")
    parser.set_defaults(func=cmd_serve_config)


def cmd_serve_config(args: argparse.Namespace) -> int:
    from posray.locate import deployment_settings

    settings = deployment_settings(args)
    text = to_yaml(settings)
    for note in application_args(settings)[1]:
        print(f"posray: {note}", file=sys.stderr)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text)
        print(f"wrote {args.out}: RAY_AUTH_MODE=token serve deploy {args.out} --address http://HEAD:8265",
              file=sys.stderr)
    return 0
