"""Starting and stopping posray on Ray: the local Ray head, the actors and the Serve app.

Used by `posray up/down/status` and by the end-to-end tests. The local head is started with
`ray start --head` so that it outlives the CLI, with Serve's fastest ingress configuration
(HAProxy + throughput-optimized mode) in its environment: those variables must be set before
Ray starts, on every node (see docs/operations.md and cluster.yaml).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import signal
import socket
import stat
import tempfile
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import ray
from ray import serve

from actors.ingest_shard import IngestShard
from actors.ledger_writer import LedgerWriter
from actors.placement import ingest_name, ledger_name, owned_shards
from deployments import haproxy_guard
from deployments.ingress import APP_NAME, build_app
from posray import ray_auth
from posray.settings import Settings

log = logging.getLogger("posray.launcher")

# Serve's fastest ingress on this kind of machine (../shared/RAY-NOTES.md): HAProxy in front
# of replicas, handlers on the replica event loop. Must be in the environment of `ray start`.
INGRESS_ENV = {
    "RAY_SERVE_ENABLE_HA_PROXY": "1",
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    # HAProxy's own per-request metrics cost 15-25% of throughput; posray exports its own.
    "RAY_SERVE_HAPROXY_METRICS_ENABLED": "0",
    # A replica killed mid-request closes its connection without an answer; HAProxy then
    # answered a bare 500. posray's POSTs are idempotent, so let HAProxy replay them on
    # another replica (bodies up to its 16 KB buffer; larger batches are resent by terminals).
    "RAY_SERVE_HAPROXY_RETRY_ON": "conn-failure empty-response",
    # Replicas drain for 30 s by default on shutdown; terminals retry, 2 s is plenty.
    "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "2",
    # A client silent for this long mid-request is dropped (Serve's default: 3600 s). The whole
    # request head and first body buffer must come within haproxy_guard.HTTP_REQUEST_TIMEOUT_S.
    "RAY_SERVE_HAPROXY_TIMEOUT_CLIENT_S": "30",
}
# Ray without authentication lets anyone who reaches its ports run code (CVE-2023-48022):
# token auth on, for the head, the workers and every driver. A Ray that posray starts uses the
# deployment's own token file (posray/ray_auth.py); a joined cluster, the operator's.
AUTH_ENV = {"RAY_AUTH_MODE": "token"}
READY_TIMEOUT_S = 120



def free_port() -> int:
    """A TCP port on 127.0.0.1 free right now (for HAProxy's stats and metrics of a local Ray)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

def ray_env(settings: Settings | None = None) -> dict[str, str]:
    """The environment a Ray node of posray is started with (with settings: its own token)."""
    env = dict(os.environ)
    env.update(INGRESS_ENV)
    env.update(AUTH_ENV)
    if settings is not None and ray_auth.token_path(settings.data_dir).is_file():
        env.pop("RAY_AUTH_TOKEN", None)  # Ray would prefer it to the deployment's file
        env.update(ray_auth.auth_env(settings.data_dir))
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    return env


def use_own_token(settings: Settings) -> None:
    """Create the deployment's Ray token if needed and make this process and its children use it.

    For a Ray that posray starts itself: without a token, `ray start --head` refuses to run
    under token auth, and `ray.init(address="local")` would write one into ~/.ray.
    """
    ray_auth.create_token(settings.data_dir)
    ray_auth.use_deployment_token(settings.data_dir)


def haproxy_env(key: str) -> dict[str, str]:
    """HAProxy files and ports of one local Ray instance, so that two never share them.

    Serve's defaults put every instance's HAProxy config, admin socket and server state under
    /tmp/haproxy-serve and bind stats and metrics to 8404 and 9101: a second posray (or a test
    cluster) on the same machine would rewrite the first one's config or fail to start. The
    folder name stays short: Serve adds a 56-character folder per node, and a Unix socket path
    has at most 107 bytes. Variables already set in the environment win.
    """
    private_dir = _private_folder(Path(tempfile.gettempdir()) / f"phx-{key}")
    real_haproxy = (os.environ.get("POSRAY_HAPROXY_REAL_BINARY")
                    or os.environ.get("RAY_SERVE_HAPROXY_BINARY_PATH") or haproxy_guard.bundled_haproxy())
    env = {
        "POSRAY_HAPROXY_REAL_BINARY": real_haproxy,
        # Serve runs this instead of HAProxy: it hardens the generated config (haproxy_guard.py).
        "RAY_SERVE_HAPROXY_BINARY_PATH": str(haproxy_guard.write_launcher(private_dir, real_haproxy)),
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(private_dir / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(private_dir / "admin.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(private_dir),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(private_dir / "server-state"),
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": str(private_dir / "metrics.sock"),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(free_port()),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(free_port()),
    }
    guarded = ("RAY_SERVE_HAPROXY_BINARY_PATH", "POSRAY_HAPROXY_REAL_BINARY")
    return {k: v for k, v in env.items() if k not in os.environ or k in guarded}


def _private_folder(folder: Path) -> Path:
    """`folder`, created mode 700 and checked to be ours: the HAProxy admin socket lives in it.

    Raises:
        RuntimeError: it exists but belongs to another user, is a symlink or is open to others.
    """
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise RuntimeError(f"{folder} is not a folder of this user: refusing to put HAProxy's admin socket there")
    if info.st_mode & 0o077:
        folder.chmod(0o700)
    return folder


def start_local_ray(settings: Settings) -> str:
    """Start a local Ray head (if none is running from this data dir) and return its address.

    The head gets the deployment's own token (created here if needed); a driver in this process
    then calls use_own_token() before connecting.
    """
    ray_auth.create_token(settings.data_dir)
    state = settings.data_dir / "ray.json"
    if state.exists():
        address = json.loads(state.read_text())["address"]
        if reachable(address):
            return address
    ray_bin = Path(sys.executable).with_name("ray")
    cmd = [str(ray_bin if ray_bin.exists() else shutil.which("ray")), "start", "--head",
           "--port=0", "--dashboard-host=127.0.0.1", f"--dashboard-port={settings.dashboard_port}",
           "--disable-usage-stats",
           # Ray's fixed defaults (10001, 52365) would collide with another Ray on this machine.
           f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}",
           f"--temp-dir={ray_temp_dir(settings)}"]
    env = {**ray_env(settings), **haproxy_env(ray_temp_dir(settings).name.rsplit("-", 1)[1])}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    if out.returncode != 0:
        stop_local_ray(settings)  # a head that half started (GCS up, raylet late) must not linger
        raise RuntimeError(f"`ray start --head` failed:\n{out.stderr[-2000:]}")
    address = _address_from(out.stdout + out.stderr)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"address": address}))
    return address


def _address_from(text: str) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    for line in text.splitlines():
        if "ray start --address=" in line:
            return line.split("--address=")[1].strip().strip("'\"")
    raise RuntimeError(f"could not find the Ray address in `ray start` output:\n{text[-1500:]}")


def reachable(address: str) -> bool:
    host, _, port = address.rpartition(":")
    import socket
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


def ray_temp_dir(settings: Settings) -> Path:
    """A short, private Ray temp dir per data dir, so `posray down` stops only its own Ray."""
    digest = hashlib.sha256(str(settings.data_dir.resolve()).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"posray-ray-{digest}"


def stop_local_ray(settings: Settings, address: str | None = None, timeout_s: float = 30) -> int:
    """Stop the Ray head `posray up` started (and only it); return how many processes got a signal.

    `ray stop` would stop every Ray instance on the machine. Instead: the processes whose
    command line names this data dir's Ray temp dir (GCS, raylet, ...) or its address (the
    client server), and all their descendants (workers, agents, HAProxy), collected before any
    signal so that none escapes by being re-parented.
    """
    marker = str(ray_temp_dir(settings))
    table = {pid: (ppid, cmd) for pid, ppid, cmd in _processes()}
    roots = {pid for pid, (_, cmd) in table.items()
             if marker in cmd or (address and f"--address={address}" in cmd)}
    roots.discard(os.getpid())
    pids = set(roots)
    grew = True
    while grew:
        children = {pid for pid, (ppid, _) in table.items() if ppid in pids} - pids - {os.getpid()}
        pids |= children
        grew = bool(children)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout_s / 2
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.2)
    (settings.data_dir / "ray.json").unlink(missing_ok=True)
    return len(pids)


def _processes():
    """(pid, parent pid, command line) of every process."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            yield int(entry.name), ppid, cmd


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def connect(address: str, settings: Settings) -> None:
    """Connect this process to Ray as a driver (RAY_AUTH_MODE must be set before `import ray`)."""
    if not ray.is_initialized():
        ray.init(address=address, namespace=settings.ray_namespace, log_to_driver=False)


def deploy(settings: Settings) -> None:
    """Create (or find) the actors, wait until they answer, then deploy the Serve app."""
    ensure_actors(settings)
    serve.start(http_options={"host": settings.http_host, "port": settings.http_port})
    serve.run(build_app(settings), name=APP_NAME, route_prefix="/", blocking=False)
    _wait_http(settings)


def ensure_actors(settings: Settings) -> None:
    """Create the detached IngestShard and LedgerWriter actors (or find them) and wait until they answer."""
    actors = []
    placement = {"scheduling_strategy": settings.actor_scheduling} if settings.actor_scheduling else {}
    kinds = ((IngestShard, settings.ingest_actors, ingest_name), (LedgerWriter, settings.ledger_actors, ledger_name))
    for actor_class, count, name in kinds:
        for index in range(count):
            actors.append(actor_class.options(
                name=name(settings.key_prefix, index), namespace=settings.ray_namespace,
                lifetime="detached", get_if_exists=True, **placement,
            ).remote(settings, owned_shards(index, count, settings.shard_count)))
    ray.get([a.ping.remote() for a in actors], timeout=READY_TIMEOUT_S)


def _wait_http(settings: Settings) -> None:
    import httpx

    url = f"http://{settings.http_host}:{settings.http_port}/healthz"
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the Serve app did not answer on {url}")


def rescale(settings: Settings, ingest_actors: int, ledger_actors: int) -> Settings:
    """Give the logical shards to a new number of actors; return the settings now deployed.

    Logical shards move between actors (and so between nodes); a terminal's shard never does,
    because shard_count stays. Idempotency keys and sequences live in Redis per logical shard
    and the chain heads in PostgreSQL, so they move with the shard: a new IngestShard raises
    its counters to the ledger's height, a new LedgerWriter resyncs from its chain head and
    takes over the shard's pending stream entries. The old actors go first (no two writers
    ever record one shard); requests in the gap get 503 + Retry-After, and the replicas are
    replaced with the new routing by a Serve update.
    """
    new = settings.replace(ingest_actors=ingest_actors, ledger_actors=ledger_actors)
    _kill_actors(settings)
    ensure_actors(new)
    serve.run(build_app(new), name=APP_NAME, route_prefix="/", blocking=False)
    _wait_http(new)
    return new


def _kill_actors(settings: Settings) -> None:
    """Kill posray's actors for good and wait until their names are free."""
    names = [ingest_name(settings.key_prefix, i) for i in range(settings.ingest_actors)]
    names += [ledger_name(settings.key_prefix, i) for i in range(settings.ledger_actors)]
    for name in names:
        try:
            ray.kill(ray.get_actor(name, namespace=settings.ray_namespace), no_restart=True)
        except ValueError:
            pass
    deadline = time.monotonic() + READY_TIMEOUT_S
    for name in names:
        while time.monotonic() < deadline:
            try:
                ray.get_actor(name, namespace=settings.ray_namespace)
            except ValueError:
                break
            time.sleep(0.1)


def undeploy(settings: Settings) -> None:
    """Delete the Serve app and kill posray's actors (their data stays in Redis/PostgreSQL)."""
    try:
        serve.delete(APP_NAME)
    except Exception as e:  # the app may not exist
        log.info("serve.delete: %s", e)
    _kill_actors(settings)


def ledger_status(settings: Settings) -> dict[int, dict]:
    """Per shard: the LedgerWriter's view (height, error)."""
    out: dict[int, dict] = {}
    for index in range(settings.ledger_actors):
        try:
            actor = ray.get_actor(ledger_name(settings.key_prefix, index), namespace=settings.ray_namespace)
            out.update(ray.get(actor.status.remote(), timeout=10))
        except Exception as e:
            for shard in owned_shards(index, settings.ledger_actors, settings.shard_count):
                out[shard] = {"error": f"ledger actor {index}: {type(e).__name__}"}
    return out
