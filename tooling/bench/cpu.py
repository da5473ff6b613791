"""CPU time by role (Serve replicas, IngestShard, LedgerWriter, Redis, PostgreSQL ...) from /proc.

The bench runs on the machine it measures, so it can read every process's CPU time before and
after a run and divide by the documents accepted: microseconds of CPU per document and role,
the input of the scaling model. Only processes of this deployment count: the process trees of
its Ray (whose command lines name its temp dir), of its PostgreSQL (named by data dir or port)
and its Redis (named by port). The bench itself and its load generator workers do not count.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
ROLES = (  # (role, substring of the command line); the first match wins
    ("serve_replicas", "ray::ServeReplica"),
    ("ingest_shards", "ray::IngestShard"),
    ("ledger_writers", "ray::LedgerWriter"),
    ("haproxy", "haproxy"),
    ("redis", "valkey-server"),
    ("redis", "redis-server"),
    ("postgres", "postgres"),
)


def ray_temp_dir(data_dir: Path) -> Path:
    """The private Ray temp dir `posray up` uses for `data_dir` (deployments/launcher.py)."""
    digest = hashlib.sha256(str(Path(data_dir).resolve()).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"posray-ray-{digest}"


def markers_of(settings) -> list[str]:
    """Command-line substrings that root this deployment's process trees."""
    markers = [str(ray_temp_dir(settings.data_dir)), str(settings.data_dir.resolve())]
    for url in (settings.redis_url or "", settings.pg_dsn or ""):
        port = url.rsplit(":", 1)[-1].split("/", 1)[0]
        if port.isdigit() and port not in ("5432", "6379"):
            markers += [f"127.0.0.1:{port}", f"-p {port}"]
    return markers


def snapshot(markers: list[str], own_pid: int | None = None) -> dict[str, float]:
    """CPU seconds (user + system) per role over the process trees rooted at `markers`.

    Roles: see ROLES, and "ray_system" for the rest of Ray's tree (GCS, raylet, dashboard,
    Serve controller ...). This process and its descendants are left out.
    """
    table = dict(_processes())
    own = _descendants(table, {own_pid or os.getpid()})
    roots = {pid for pid, (_, cmd, _) in table.items() if any(m in cmd for m in markers)} - own
    out: dict[str, float] = {}
    for pid in _descendants(table, roots) - own:
        _, cmd, cpu_s = table[pid]
        role = _role(cmd)
        out[role] = out.get(role, 0.0) + cpu_s
    return out


def per_document_us(before: dict[str, float], after: dict[str, float], documents: int,
                    idle_per_s: dict[str, float] | None = None, window_s: float = 0.0) -> dict[str, float]:
    """Microseconds of CPU per document and role between two snapshots.

    Args:
        idle_per_s: each role's CPU seconds per second with no load (Ray's agents, Serve's
            controller, health checks, metrics); `window_s` of it is subtracted so that what
            remains is what the documents cost.

    Processes that restarted in between count from zero; a role never goes below zero.
    """
    if documents <= 0:
        return {}
    idle = idle_per_s or {}
    roles = sorted(set(before) | set(after))
    used = {r: after.get(r, 0.0) - before.get(r, 0.0) - idle.get(r, 0.0) * window_s for r in roles}
    return {r: round(max(0.0, u) / documents * 1e6, 1) for r, u in used.items()}


def idle_rate(markers: list[str], seconds: float = 3.0) -> dict[str, float]:
    """CPU seconds per second and role while nothing is sent (blocks for `seconds`)."""
    import time

    before, started = snapshot(markers), time.monotonic()
    time.sleep(seconds)
    after, elapsed = snapshot(markers), time.monotonic() - started
    return {r: max(0.0, after.get(r, 0.0) - before.get(r, 0.0)) / elapsed for r in set(before) | set(after)}


def _role(cmd: str) -> str:
    for role, needle in ROLES:
        if needle in cmd:
            return role
    return "ray_system"


def _descendants(table: dict, roots: set[int]) -> set[int]:
    found = set(roots)
    while True:
        more = {pid for pid, (ppid, _, _) in table.items() if ppid in found} - found
        if not more:
            return found
        found |= more


def _processes():
    """(pid, (parent pid, command line, CPU seconds)) of every readable process."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # After the command name: state ppid ... utime (14th field) stime (15th) in clock ticks.
        yield int(entry.name), (int(fields[1]), cmd, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S)


UTILIZATION_TARGET = 0.6  # plan cores for 60 % busy: headroom for bursts, GC, failover
NODE_CORES = 16
REFERENCE_RATES = {"sustained": 15_000, "peak": 70_000}


def scaling_model(cpu_us: dict[str, float], rates: dict[str, int] = REFERENCE_RATES) -> dict:
    """Cores (and actors, Redis instances, nodes) per role for each reference rate.

    Args:
        cpu_us: microseconds of CPU per document and role, measured on this machine.

    Single-threaded roles need one process per core they use: IngestShard and LedgerWriter
    actors, Serve replicas, and Redis instances (Redis runs commands on one thread).
    """
    out = {}
    for name, rate in rates.items():
        cores = {role: rate * us / 1e6 / UTILIZATION_TARGET for role, us in cpu_us.items()}
        total = sum(cores.values())
        out[name] = {
            "docs_per_s": rate,
            "cores_by_role": {r: round(c, 1) for r, c in sorted(cores.items())},
            "serve_replicas": _ceil(cores.get("serve_replicas", 0) + cores.get("haproxy", 0)),
            "ingest_actors": _ceil(cores.get("ingest_shards", 0)),
            "ledger_actors": _ceil(cores.get("ledger_writers", 0)),
            "redis_instances": _ceil(cores.get("redis", 0)),
            "postgres_cores": round(cores.get("postgres", 0), 1),
            "total_cores": round(total, 1),
            "nodes_of_16_cores": _ceil(total / NODE_CORES),
        }
    return out


def _ceil(value: float) -> int:
    return max(1, int(-(-round(value, 6) // 1)))
