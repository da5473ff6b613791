"""The application builder `serve deploy` imports (import_path deployments.app:build).

Serve calls `build(args)` in a task on the cluster with the config file's `args` (written by
`posray serve-config`). It creates or finds posray's detached actors first, so that a
`serve deploy` alone brings up a complete posray; redeploying finds the running actors.
"""

from __future__ import annotations

from deployments.ingress import build_app
from deployments.launcher import ensure_actors
from deployments.serve_args import settings_from_args


def build(args: dict):
    """The posray Serve application for the config's args (defaults < node's POSRAY_* < args)."""
    settings = settings_from_args(args)
    ensure_actors(settings)
    return build_app(settings)
