"""The Ray driver of the multi-node test: runs inside the head node's namespace, obeys stdin.

A process outside every Ray node cannot be a Ray driver (a driver needs a raylet on its own
address), so the test (on the host) starts this script with `ip netns exec <head> python -m
tests.cluster.multinode_driver` and sends it one JSON command per line; each answer is one line
on stdout starting with ANSWER_PREFIX (Ray may print other lines).

Commands ({"op": ...}):
    connect {address, namespace}        ray.init as a driver of the cluster
    deploy {settings: {...}}            deployments.launcher.deploy (actors, then the Serve app)
    actors {wait_s}                     {actor name: pid or "ExceptionName"}, all asked at once
    nodes                               [{ip, alive}] as the GCS sees them
    ledger_status                       deployments.launcher.ledger_status
    exit
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from pathlib import Path

import orjson

ANSWER_PREFIX = "@@posray-driver "


def _settings(values: dict):
    from posray.settings import Settings

    values = dict(values)
    for name in ("data_dir", "operator_seed_file"):
        if values.get(name) is not None:
            values[name] = Path(values[name])
    if values.get("vat_rates_bp") is not None:
        values["vat_rates_bp"] = tuple(values["vat_rates_bp"])
    return Settings(**values)


class Driver:
    def __init__(self):
        self.settings = None

    def connect(self, address: str, namespace: str) -> dict:
        import ray

        ray.init(address=address, namespace=namespace, log_to_driver=False)
        return {"node_ip": ray.util.get_node_ip_address()}

    def deploy(self, settings: dict) -> dict:
        from deployments import launcher

        self.settings = _settings(settings)
        started = time.monotonic()
        for attempt in (1, 2):  # deploy is idempotent: a second try finds what the first made
            try:
                launcher.deploy(self.settings)
                break
            except Exception as e:
                if attempt == 2:
                    raise
                print(f"deploy failed, retrying: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        return {"deploy_s": round(time.monotonic() - started, 2), "attempts": attempt}

    def actors(self, wait_s: float = 2.0) -> dict:
        import ray

        from actors.placement import ingest_name, ledger_name

        s = self.settings
        names = [ingest_name(s.key_prefix, i) for i in range(s.ingest_actors)]
        names += [ledger_name(s.key_prefix, i) for i in range(s.ledger_actors)]
        refs, out = {}, {}
        for name in names:
            try:
                actor = ray.get_actor(name, namespace=s.ray_namespace)
                # ping first: an IngestShard answers it only once Redis and PostgreSQL are usable.
                refs[name] = (actor.ping.remote(), actor.pid.remote())
            except Exception as e:
                out[name] = type(e).__name__
        deadline = time.monotonic() + wait_s
        for name, (ping, pid) in refs.items():
            try:
                ray.get(ping, timeout=max(0.01, deadline - time.monotonic()))
                out[name] = ray.get(pid, timeout=max(0.01, deadline - time.monotonic()))
            except Exception as e:
                out[name] = type(e).__name__
        return out

    def nodes(self) -> list:
        import ray

        return [{"ip": n["NodeManagerAddress"], "alive": bool(n["Alive"])} for n in ray.nodes()]

    def ledger_status(self) -> dict:
        from deployments import launcher

        return {str(k): v for k, v in launcher.ledger_status(self.settings).items()}


def main() -> None:
    driver = Driver()
    out = sys.stdout
    for line in sys.stdin:
        if not line.strip():
            continue
        command = orjson.loads(line)
        op = command.pop("op")
        if op == "exit":
            break
        try:
            answer = {"ok": True, "value": getattr(driver, op)(**command)}
        except Exception as e:
            answer = {"ok": False, "error": f"{type(e).__name__}: {e}",
                      "traceback": traceback.format_exc()[-3000:]}
        out.write(ANSWER_PREFIX + orjson.dumps(answer, default=str).decode() + "\n")
        out.flush()
    os._exit(0)  # skip Ray's slow shutdown: the cluster outlives this driver


if __name__ == "__main__":
    main()
