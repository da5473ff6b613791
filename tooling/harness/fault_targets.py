"""The Ray side of `posray faults`: a private local Ray running posray, and the pids to kill -9."""

from __future__ import annotations

import os
import signal

import ray
from ray import serve

from actors.placement import ingest_name, ledger_name
from deployments import launcher
from deployments.ingress import APP_NAME
from tooling.embedded import free_port
from posray.settings import Settings

SERVE_NAMESPACE = "serve"
REPLICA_PREFIX = f"SERVE_REPLICA::{APP_NAME}#PosrayIngress#"
CALL_TIMEOUT_S = 30
INIT_ATTEMPTS = 3  # Ray gives a starting node 30 s, which a crowded machine can miss


def start(settings: Settings) -> None:
    """Start a Ray cluster owned by this process (never touching others) and deploy posray.

    The ingress environment of `posray up` is set before Ray starts; HAProxy's stats and
    metrics ports are private so that a `posray up` on the same machine keeps its own.
    """
    os.environ.update(launcher.INGRESS_ENV)
    os.environ.update(launcher.AUTH_ENV)
    launcher.use_own_token(settings)  # else ray.init would write a token into ~/.ray
    os.environ["RAY_SERVE_HAPROXY_STATS_PORT"] = str(free_port())
    os.environ["RAY_SERVE_HAPROXY_METRICS_PORT"] = str(free_port())
    os.environ["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"] = "1"
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    for attempt in range(1, INIT_ATTEMPTS + 1):
        try:
            ray.init(address="local", namespace=settings.ray_namespace, include_dashboard=False,
                     log_to_driver=False, num_cpus=2)
            break
        except Exception:
            ray.shutdown()
            if attempt == INIT_ATTEMPTS:
                raise
    launcher.deploy(settings)


def stop() -> None:
    """Shut Serve and the Ray cluster this process started down (its processes only)."""
    try:
        if ray.is_initialized():
            serve.shutdown()
    finally:
        ray.shutdown()


def actor_pid(settings: Settings, kind: str, index: int = 0) -> int:
    """The process id of IngestShard (`kind` "ingest") or LedgerWriter ("ledger") number `index`."""
    name = (ingest_name if kind == "ingest" else ledger_name)(settings.key_prefix, index)
    actor = ray.get_actor(name, namespace=settings.ray_namespace)
    return ray.get(actor.pid.remote(), timeout=CALL_TIMEOUT_S)


def replica_pids() -> list[int]:
    """The process ids of the posray Serve replicas of this cluster, in name order."""
    names = sorted(entry["name"] for entry in ray.util.list_named_actors(all_namespaces=True)
                   if entry["namespace"] == SERVE_NAMESPACE and entry["name"].startswith(REPLICA_PREFIX))
    pids = []
    for name in names:
        try:
            handle = ray.get_actor(name, namespace=SERVE_NAMESPACE)
            pids.append(ray.get(handle.__ray_call__.remote(_own_pid), timeout=CALL_TIMEOUT_S))
        except (ValueError, ray.exceptions.RayError):
            continue  # a replica that is stopping or was just replaced
    return pids


def _own_pid(_actor) -> int:
    return os.getpid()


def kill_actor(settings: Settings, kind: str, index: int = 0) -> int:
    """kill -9 an IngestShard or LedgerWriter process; return its pid."""
    pid = actor_pid(settings, kind, index)
    os.kill(pid, signal.SIGKILL)
    return pid


def kill_replica() -> int:
    """kill -9 the first posray Serve replica; return its pid."""
    pids = replica_pids()
    if not pids:
        raise RuntimeError("no live posray Serve replica to kill")
    os.kill(pids[0], signal.SIGKILL)
    return pids[0]
