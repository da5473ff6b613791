"""posray on a real multi-node Ray cluster on one machine, under load, through node faults.

Topology (tests/cluster/netns.py builds the network; every name and the /24 are per run):

    host namespace: bridge 10.231.X.1, the load generator and the terminal probes
    namespace db      10.231.X.13: Valkey :6379 (AOF, appendfsync always), PostgreSQL :5432
    namespace head    10.231.X.10: ray start --head (GCS, Serve controller, HAProxy :8000),
                                   the Ray driver (tests/cluster/multinode_driver.py)
    namespace worker1 10.231.X.11: ray start --address=10.231.X.10:6379
    namespace worker2 10.231.X.12: ray start --address=10.231.X.10:6379

Every node is started with the environment `posray up` uses (deployments/launcher.py: INGRESS_ENV,
AUTH_ENV with a private token file) plus shortened GCS health checks. posray is deployed with
POSRAY_ACTOR_SCHEDULING=SPREAD semantics (Settings.actor_scheduling) so that IngestShard and
LedgerWriter actors land on the workers too. Two scenarios, each with its own open-loop load
(batches of BATCH documents through the head's HAProxy) and a probe sending one document every
PROBE_INTERVAL_S (to see status codes, Retry-After and latency of single requests):

    partition  the victim worker's link goes down for CUT_S seconds, then comes back
    node loss  kill -9 of every process of the victim's namespace (a machine losing power); Ray
               declares the node dead and restarts its actors on the surviving nodes

The victim is the worker SPREAD gave the most to lose: both actor kinds if possible, then a Serve
replica, then the most actors (Ray's SPREAD is best effort, so placement varies run to run).

After each load: every document that was sent but not acknowledged (503, lost connection) is resent
until acknowledged (a terminal's retry), the streams drain, and PostgreSQL must hold every
acknowledged document exactly once at its acknowledged (shard, seq), and nothing else.

Run: `python -m tests.cluster.test_multinode` (prints the results table) or
`pytest tests/cluster/test_multinode.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "token")

import orjson  # noqa: E402

from tests.cluster.netns import Netns  # noqa: E402
from tests.cluster.multinode_driver import ANSWER_PREFIX  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
NODES = ["head", "worker1", "worker2"]
WORKERS = NODES[1:]
HTTP_PORT = 8000  # inside the head namespace: no other process on the machine can hold it
GCS_PORT = 6379

# Load: open loop, RATE_RPS requests/s of BATCH documents each.
RATE_RPS = 20.0
BATCH = 10
CONNECTIONS = 48
TERMINALS = 500
PROBE_INTERVAL_S = 0.25
TERMINAL_TIMEOUT_S = 30.0  # a terminal gives up on an answer after this long (a "hang")
# Scenario timing (seconds from the start of each load).
FAULT_AT_S = 5.0
CUT_S = 10.0
TAIL_S = 8.0  # load goes on this long once the fault is over and everything answers again
PHASE_MAX_S = 45.0  # a phase's load stops by then, whatever happens
SLOW_S = 2.0  # an answer later than this (or twice the p99 before the fault) counts as impaired
RESEND_TIMEOUT_S = 90.0
DRAIN_TIMEOUT_S = 90.0

# GCS health checks of raylets: a dead node (connection refused) is declared dead after
# ~FAILURES x PERIOD (~5 s); an unreachable one after ~FAILURES x (TIMEOUT + PERIOD) (~20 s),
# so the 10 s partition is survived (Ray's defaults: 3 s, 10 s, 5 failures: 15 s and 65 s).
HEALTH_ENV = {
    "RAY_health_check_initial_delay_ms": "2000",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "3000",
    "RAY_health_check_failure_threshold": "5",
}


def _terminated(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def say_default(line: str) -> None:
    print(line, flush=True)


# -- Valkey and PostgreSQL in the "db" namespace -----------------------------------------------
# Their own namespace: fixed ports (nothing else listens there), reachable from the host and every
# Ray node through the bridge, and killed with everything else by Netns.teardown (or by the sweep
# of a later run, should this process be killed outright).

VALKEY_PORT, POSTGRES_PORT = 6379, 5432


class NetnsValkey:
    """A private Valkey (AOF, appendfsync always) in the db namespace."""

    def __init__(self, net: Netns, data_dir: Path):
        self.net, self.data_dir = net, data_dir
        self.host = net.address("db")

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{VALKEY_PORT}/0"

    def start(self) -> "NetnsValkey":
        from tooling.embedded import redis_binary

        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir / "valkey.conf"
        conf.write_text("\n".join([
            f"bind {self.host}", f"port {VALKEY_PORT}", "protected-mode no", f'dir "{self.data_dir}"',
            'save ""', "appendonly yes", "appendfsync always", f'logfile "{self.data_dir}/valkey.log"',
        ]) + "\n")
        self.proc = self.net.popen("db", [str(redis_binary()), str(conf)], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.host, VALKEY_PORT, 20, self.proc, "valkey")
        return self


class NetnsPostgres:
    """A private PostgreSQL (trust auth on the subnet, fsync off: throwaway) in the db namespace."""

    def __init__(self, net: Netns, data_dir: Path):
        self.net, self.data_dir = net, data_dir
        self.host = net.address("db")

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@{self.host}:{POSTGRES_PORT}/{database}"

    def start(self) -> "NetnsPostgres":
        from tooling.embedded import postgres_bin_dir

        bin_dir, pgdata = postgres_bin_dir(), self.data_dir / "pgdata"
        pgdata.mkdir(parents=True, exist_ok=True)
        pgdata.chmod(0o700)
        as_owner, drop = {}, []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            owner = pwd.getpwnam("postgres")
            os.chown(pgdata, owner.pw_uid, owner.pw_gid)
            as_owner = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
            drop = ["setpriv", f"--reuid={owner.pw_uid}", f"--regid={owner.pw_gid}", "--clear-groups"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        subprocess.run([str(bin_dir / "initdb"), "-D", str(pgdata), "-U", "postgres", "--auth=trust",
                        "-E", "UTF8", "--locale=C", "--no-instructions", "--no-sync"],
                       check=True, capture_output=True, env=env, cwd=pgdata, timeout=120, **as_owner)
        with open(pgdata / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all {self.net.subnet} trust\n")
        with open(self.data_dir / "postgres.log", "ab") as log:
            self.proc = self.net.popen(
                "db", [*drop, str(bin_dir / "postgres"), "-D", str(pgdata), "-p", str(POSTGRES_PORT),
                       "-k", "", "-c", f"listen_addresses={self.host}", "-c", "fsync=off",
                       "-c", "max_connections=300"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, cwd=pgdata)
        _wait_port(self.host, POSTGRES_PORT, 60, self.proc, "postgres")
        return self


def _wait_port(host: str, port: int, timeout_s: float, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}")
        with contextlib.suppress(OSError):
            socket.create_connection((host, port), timeout=0.5).close()
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not listen on {host}:{port} in {timeout_s} s")
        time.sleep(0.1)


# -- the Ray cluster and its driver -------------------------------------------------------------


class DriverClient:
    """The Ray driver process in the head namespace (tests/cluster/multinode_driver.py)."""

    def __init__(self, net: Netns, env: dict, log_path: Path):
        self._log = open(log_path, "ab")
        self._proc = net.popen("head", [sys.executable, "-u", "-m", "tests.cluster.multinode_driver"],
                               cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=self._log)
        self._lock = threading.Lock()

    def call(self, op: str, timeout_s: float = 60, **args):
        with self._lock:
            self._proc.stdin.write(orjson.dumps({"op": op, **args}) + b"\n")
            self._proc.stdin.flush()
            deadline = time.monotonic() + timeout_s
            while True:
                line = self._readline(deadline)
                if line.startswith(ANSWER_PREFIX.encode()):
                    answer = orjson.loads(line[len(ANSWER_PREFIX):])
                    if not answer["ok"]:
                        raise RuntimeError(f"driver {op}: {answer['error']}\n{answer.get('traceback', '')}")
                    return answer["value"]
                self._log.write(line)

    def _readline(self, deadline: float) -> bytes:
        import select

        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the driver did not answer in time")
            ready, _, _ = select.select([self._proc.stdout], [], [], remaining)
            if ready:
                line = self._proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"the driver exited (code {self._proc.poll()})")
                return line

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._proc.stdin.write(b'{"op":"exit"}\n')
            self._proc.stdin.flush()
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)
        self._log.close()


def ray_env(token_path: Path, haproxy_dir: Path) -> dict:
    """The environment of every Ray node and of the driver: `posray up`'s, private token, fast health checks."""
    from deployments import launcher

    env = launcher.ray_env()  # os.environ + INGRESS_ENV + AUTH_ENV
    # HAProxy's files in this run's folder (Serve's default, /tmp/haproxy-serve, outlives the run;
    # Serve adds a folder per node). Its ports need nothing: each node has its own namespace.
    env.update(RAY_SERVE_HAPROXY_CONFIG_FILE_LOC=str(haproxy_dir / "haproxy.cfg"),
               RAY_SERVE_HAPROXY_SOCKET_PATH=str(haproxy_dir / "admin.sock"),
               RAY_SERVE_HAPROXY_SERVER_STATE_BASE=str(haproxy_dir),
               RAY_SERVE_HAPROXY_SERVER_STATE_FILE=str(haproxy_dir / "server-state"),
               RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH=str(haproxy_dir / "metrics.sock"))
    for name in ("RAY_ADDRESS", "RAY_AUTH_TOKEN"):
        env.pop(name, None)
    env.update(HEALTH_ENV)
    # Serve kills a proxy that misses its ready check (5 s) or health checks (10 s): on a
    # machine shared with other heavy work, start-up alone can take that long.
    env.update(RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S="60", RAY_SERVE_PROXY_HEALTH_CHECK_TIMEOUT_S="30")

    env.update(RAY_AUTH_TOKEN_PATH=str(token_path), RAY_USAGE_STATS_ENABLED="0",
               RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S="1",
               PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""))
    return env


def ray_start(net: Netns, node: str, env: dict, temp_dir: Path, say=say_default, attempts: int = 3,
              joined=None) -> None:
    """`ray start` in the node's namespace; on failure, kill what it left there and try again.

    `ray start` gives the raylet 30 s to register with the GCS and the raylet gives its dashboard
    agent 15 s to report its ports (both hard-coded in Ray 2.60). On a 2-core machine shared with
    other heavy work either can run out: the raylet aborts, or `ray start` gives up while the
    raylet goes on and joins later; `joined()` (if given) tells whether it did, before anything
    is killed.
    """
    for attempt in range(1, attempts + 1):
        try:
            _ray_start(net, node, env, temp_dir)
            return
        except RuntimeError as e:
            reason = str(e).splitlines()[-1][:160]
            if joined is not None:
                deadline = time.monotonic() + 90
                while time.monotonic() < deadline and _runs(net, node, "raylet"):
                    if joined():
                        say(f"`ray start` on {node} gave up ({reason}), but the node joined later")
                        return
                    time.sleep(1)
            if attempt == attempts:
                raise
            say(f"`ray start` on {node} failed (attempt {attempt}), retrying: {reason}")
            net.kill_all(node)


def _runs(net: Netns, node: str, program: str) -> bool:
    for pid in net.pids(node):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip() == program:
                return True
    return False


def _ray_start(net: Netns, node: str, env: dict, temp_dir: Path) -> str:
    ray_bin = Path(sys.executable).with_name("ray")
    args = [str(ray_bin), "start", f"--node-ip-address={net.address(node)}", "--num-cpus=1",
            "--object-store-memory=100000000", f"--temp-dir={temp_dir}", "--disable-usage-stats"]
    if node == "head":
        args += ["--head", f"--port={GCS_PORT}", "--include-dashboard=false"]
    else:
        args += [f"--address={net.address('head')}:{GCS_PORT}"]
    out = net.run(node, args, env=env, capture_output=True, text=True, timeout=240)
    if out.returncode != 0:
        raise RuntimeError(f"`ray start` on {node} failed:\n{out.stdout[-1500:]}\n{out.stderr[-2500:]}")
    return out.stdout


# -- load, probes, resends ----------------------------------------------------------------------


@dataclass
class Probe:
    sent_s: float
    latency_s: float
    status: int  # 0: no HTTP answer
    kind: str  # "accepted", "http_503", "timeout", "disconnected", ...
    retry_after: str | None
    doc: int
    shard: int = -1
    seq: int = -1


@dataclass
class Phase:
    """One scenario's load and what came of it."""

    name: str
    first_doc: int
    next_doc: int = 0  # the first document of the next phase
    sent_documents: int = 0
    load: object = None
    recorder: object = None
    probes: list = field(default_factory=list)
    fault: dict = field(default_factory=dict)
    resend: dict = field(default_factory=dict)
    check: dict = field(default_factory=dict)
    acks: tuple = field(default_factory=lambda: (array("q"), array("q"), array("q")))


def _body(builder, i: int) -> bytes:
    return builder(i).split(b"\r\n\r\n", 1)[1]


async def probe_loop(client, single, first_doc: int, start: float, duration_s: float,
                     stop: asyncio.Event) -> list[Probe]:
    """One single-document POST every PROBE_INTERVAL_S (each in its own task: a hang shows as such)."""
    tasks, k = [], 0
    while not stop.is_set():
        due = start + k * PROBE_INTERVAL_S
        if due > start + duration_s:
            break
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        tasks.append(asyncio.ensure_future(_probe(client, single, k, first_doc + k, start)))
        k += 1
    return list(await asyncio.gather(*tasks))


async def _probe(client, single, k: int, doc: int, start: float) -> Probe:
    import httpx

    sent = time.monotonic()
    try:
        r = await client.post("/v1/transactions", content=_body(single, k),
                              headers={"content-type": "application/json"})
    except httpx.TimeoutException:
        return Probe(sent - start, time.monotonic() - sent, 0, "timeout", None, doc)
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
        # The connection closed without an answer (the load generator's "disconnected").
        return Probe(sent - start, time.monotonic() - sent, 0, "disconnected", None, doc)
    except httpx.ConnectError:
        return Probe(sent - start, time.monotonic() - sent, 0, "connect_error", None, doc)
    except httpx.HTTPError as e:
        return Probe(sent - start, time.monotonic() - sent, 0, type(e).__name__, None, doc)
    latency = time.monotonic() - sent
    if r.status_code == 200:
        body = r.json()
        if body.get("status") == "accepted":
            return Probe(sent - start, latency, 200, "accepted", None, doc, body["shard"], body["seq"])
        return Probe(sent - start, latency, 200, f"doc_{body.get('status_code')}", None, doc)
    return Probe(sent - start, latency, r.status_code, f"http_{r.status_code}",
                 r.headers.get("retry-after"), doc)


async def resend(client, series, docs: list[int], timeout_s: float) -> tuple[dict, list]:
    """Resend documents (a terminal's retry) until each is acknowledged; (figures, acks)."""
    from tooling.bench.workload import RequestBuilder

    builder = RequestBuilder(series, "x", 0, 1).open()
    pending, acks = list(docs), []
    figures = {"documents": len(docs), "rounds": 0, "answered_duplicate": 0, "refused_503": 0,
               "other": 0}
    deadline = time.monotonic() + timeout_s
    started = time.monotonic()
    while pending and time.monotonic() < deadline:
        figures["rounds"] += 1
        retry, wait_s = [], 0.0
        for at in range(0, len(pending), 100):
            chunk = pending[at:at + 100]
            body = b'{"documents":[' + b",".join(_body(builder, j) for j in chunk) + b"]}"
            try:
                r = await client.post("/v1/transactions/batch", content=body,
                                      headers={"content-type": "application/json"})
            except Exception:
                retry += chunk
                wait_s = 1.0
                continue
            if r.status_code != 200:
                figures["refused_503" if r.status_code == 503 else "other"] += len(chunk)
                retry += chunk
                wait_s = max(wait_s, min(float(r.headers.get("retry-after", 1)), 2.0))
                continue
            for j, result in zip(chunk, r.json()["results"]):
                if result["status"] == "accepted":
                    acks.append((j, result["shard"], result["seq"]))
                    figures["answered_duplicate"] += bool(result.get("duplicate"))
                else:
                    figures["refused_503" if result.get("status_code") == 503 else "other"] += 1
                    retry.append(j)
                    wait_s = max(wait_s, 0.5)
        pending = retry
        if pending:
            await asyncio.sleep(wait_s)
    figures["unacknowledged_at_end"] = len(pending)
    figures["took_s"] = round(time.monotonic() - started, 2)
    return figures, acks


# -- the run ------------------------------------------------------------------------------------


class MultiNodeRun:
    """Everything of one run; `run()` returns the results dict (see table())."""

    def __init__(self, say=say_default):
        self.say = say
        self.root = Path(tempfile.mkdtemp(prefix="prm", dir="/tmp"))  # short: Ray's socket paths
        self.root.chmod(0o755)  # PostgreSQL runs as user postgres
        self.net: Netns | None = None
        self.valkey: NetnsValkey | None = None
        self.postgres: NetnsPostgres | None = None
        self.driver: DriverClient | None = None
        self.results: dict = {"phases": {}}
        self.t0 = time.monotonic()

    def elapsed(self) -> float:
        return round(time.monotonic() - self.t0, 1)

    def log(self, line: str) -> None:
        self.say(f"[{self.elapsed():6.1f}s] {line}")

    # ---- set-up

    def run(self) -> dict:
        previous = None
        if threading.current_thread() is threading.main_thread():
            # A cancelled CI job sends SIGTERM: clean up as for any other failure.
            previous = signal.signal(signal.SIGTERM, _terminated)
        try:
            # Fail before the two minutes of set-up if the bench's modules do not import.
            import httpx  # noqa: F401

            import tooling.bench.ledger  # noqa: F401
            import tooling.bench.loadgen  # noqa: F401
            import tooling.bench.workload  # noqa: F401

            self._setup()
            asyncio.run(self._scenarios())
        finally:
            try:
                self._teardown()
            finally:
                if previous is not None:
                    signal.signal(signal.SIGTERM, previous)
        self.results["total_s"] = self.elapsed()
        return self.results

    def _setup(self) -> None:
        self.net = Netns([*NODES, "db"], cleanup_paths=[str(self.root)]).create()
        self.log(f"network {self.net.subnet}: host {self.net.host_address}, "
                 + ", ".join(f"{n} {self.net.address(n)} ({self.net.nodes[n].netns})" for n in self.net.nodes))
        self.valkey = NetnsValkey(self.net, self.root / "valkey").start()
        self.postgres = NetnsPostgres(self.net, self.root / "postgres").start()
        self.log(f"valkey {self.valkey.url}, postgresql {self.postgres.dsn()}")
        token = self.root / "auth_token"
        token.write_text(os.urandom(32).hex())
        token.chmod(0o600)
        (self.root / "hx").mkdir()
        self.env = ray_env(token, self.root / "hx")
        # Before Ray, not meanwhile: a raylet aborts if its dashboard agent (a Python process
        # importing for seconds) is not up within 15 s, so nothing of ours competes for the CPU.
        self._prepare_data()
        self.log("ray start --head in the head namespace ...")
        ray_started = time.monotonic()
        ray_start(self.net, "head", self.env, self.root / "r-head", self.log)
        self.driver = DriverClient(self.net, self.env, self.root / "driver.log")
        self.driver.call("connect", address=f"{self.net.address('head')}:{GCS_PORT}",
                         namespace=self.settings["ray_namespace"], timeout_s=180)
        for w in WORKERS:  # one after the other, for the same reason
            ray_start(self.net, w, self.env, self.root / f"r-{w}", self.log,
                      joined=lambda w=w: self._alive(self.net.address(w)))
        self._wait_nodes(len(NODES))
        self.results["ray_start_s"] = round(time.monotonic() - ray_started, 1)
        self.log("3 Ray nodes alive; deploying posray (actors SPREAD, then Serve) ...")
        deployed = self.driver.call("deploy", settings=self.settings, timeout_s=300)
        self.results["deploy_s"] = deployed["deploy_s"]
        self.placement_before = self.placement()
        self.results["placement_after_deploy"] = self.placement_before
        self.results["replicas_after_deploy"] = self.replicas()
        self.victim = self.results["victim"] = choose_victim(self.placement_before, self.results["replicas_after_deploy"])
        self.log(f"deployed in {deployed['deploy_s']} s; actors {self.placement_before}, "
                 f"Serve replicas {self.results['replicas_after_deploy']}; victim {self.victim}")

    def _prepare_data(self) -> None:
        """Operator seed, schema, settings, the signed documents and their terminals."""
        from posray.adapters.keyfile import create_seed, load_keys
        from posray.adapters.pg import apply_schema, create_pool, ensure_database
        from tooling.bench import workload

        seed = self.root / "keys" / "operator.seed"
        create_seed(seed)
        tag = self.net.tag
        head = self.net.address("head")
        dsn = asyncio.run(ensure_database(self.postgres.dsn(), "posray"))
        asyncio.run(apply_schema(dsn))
        self.settings = dict(
            redis_url=self.valkey.url, pg_dsn=dsn, data_dir=str(self.root / "posray"),
            operator_seed_file=str(seed), key_prefix=f"mn{tag}", ray_namespace=f"posray-mn{tag}",
            http_host="0.0.0.0", http_port=HTTP_PORT, public_base_url=f"http://{head}:{HTTP_PORT}",
            replicas=2, shard_count=6, ingest_actors=3, ledger_actors=3, actor_scheduling="SPREAD",
            ledger_batch_wait_ms=100)
        master = load_keys(seed).terminal_master
        total = 2 * (int(RATE_RPS * PHASE_MAX_S + 2) * BATCH + int(PHASE_MAX_S / PROBE_INTERVAL_S + 2))
        total += (-total) % TERMINALS
        self.series = workload.series_of(self.root / "bench-cache", workload.params_key(master, TERMINALS, total),
                                         0, TERMINALS, total)
        started = time.monotonic()
        workload.sign_series(self.series, master, 2, say=lambda line: None)
        signed_s = time.monotonic() - started

        async def import_terminals():
            pool = await create_pool(dsn, size_max=2)
            try:
                return await workload.import_terminals(pool, self.series)
            finally:
                await pool.close()

        asyncio.run(import_terminals())
        self.log(f"signed {total:,} documents of {TERMINALS} terminals in {signed_s:.1f} s, terminals imported")

    def _alive(self, ip: str) -> bool:
        return any(n["ip"] == ip and n["alive"] for n in self.driver.call("nodes"))

    def _wait_nodes(self, alive: int, timeout_s: float = 120) -> None:
        deadline = time.monotonic() + timeout_s
        while sum(n["alive"] for n in self.driver.call("nodes")) < alive:
            if time.monotonic() > deadline:
                raise RuntimeError(f"fewer than {alive} Ray nodes alive: {self.driver.call('nodes')}")
            time.sleep(0.5)

    def placement(self, timeout_s: float = 2.0) -> dict:
        """{actor name: node it runs on} (or the error of asking it)."""
        answers = self.driver.call("actors", timeout_s=timeout_s + 30, wait_s=timeout_s)
        out = {}
        for name, pid in answers.items():
            out[name] = (self.net.node_of_pid(pid) or "?") if isinstance(pid, int) else pid
        return out

    def replicas(self) -> dict:
        """Serve replicas per node, from the process titles in each namespace."""
        counts = {}
        for node in NODES:
            n = 0
            for pid in self.net.pids(node):
                with contextlib.suppress(OSError):
                    if b"ServeReplica" in Path(f"/proc/{pid}/cmdline").read_bytes():
                        n += 1
            counts[node] = n
        return counts

    def _teardown(self) -> None:
        if self.driver is not None:
            self.driver.close()
        if self.net is not None:
            # kill -9 of every process of every node (Ray, Valkey, PostgreSQL), then the
            # namespaces, the bridge and the run's folder
            self.net.teardown()
        shutil.rmtree(self.root, ignore_errors=True)

    # ---- scenarios

    async def _scenarios(self) -> None:
        import httpx

        from posray.adapters.pg import create_pool
        from tooling.bench.ledger import LedgerMonitor

        head = self.net.address("head")
        self.pool = await create_pool(self.settings["pg_dsn"], size_max=2)
        self.monitor = LedgerMonitor(self.valkey.url, self.settings["key_prefix"], self.settings["shard_count"])
        limits = httpx.Limits(max_connections=400, max_keepalive_connections=50)
        self.http = httpx.AsyncClient(base_url=f"http://{head}:{HTTP_PORT}", timeout=TERMINAL_TIMEOUT_S,
                                      limits=limits)
        try:
            partition = Phase("partition", 0)
            await self._phase(partition, self._partition)
            kill = Phase("node_loss", partition.next_doc)
            await self._phase(kill, self._kill)
            await self._final_check([partition, kill])
        finally:
            await self.http.aclose()
            await self.monitor.close()
            await self.pool.close()

    async def _phase(self, phase: Phase, fault) -> None:
        """Load + probes; the fault; TAIL_S more seconds of load; resend; drain; check."""
        from tooling.bench.loadgen import LoadPlan, run_load
        from tooling.bench.workload import AckRecorder, RequestBuilder

        head = self.net.address("head")
        requests = int(RATE_RPS * PHASE_MAX_S + 2)
        probes_first = phase.first_doc + requests * BATCH
        phase.next_doc = probes_first + int(PHASE_MAX_S / PROBE_INTERVAL_S + 2)
        builder = RequestBuilder(self.series, f"{head}:{HTTP_PORT}", phase.first_doc, BATCH).open()
        single = RequestBuilder(self.series, f"{head}:{HTTP_PORT}", probes_first, 1).open()
        recorder = AckRecorder(phase.first_doc, BATCH)
        plan = LoadPlan(head, HTTP_PORT, CONNECTIONS, PHASE_MAX_S, RATE_RPS, TERMINAL_TIMEOUT_S,
                        drain_s=TERMINAL_TIMEOUT_S + 5)
        start = time.monotonic() + 1.0
        stop = asyncio.Event()

        async def ready() -> float:
            return start

        def indexes():  # the engine ends its run once this runs dry
            for i in range(requests):
                if stop.is_set():
                    return
                yield i

        self.log(f"{phase.name}: load {RATE_RPS:.0f} requests/s x {BATCH} documents"
                 f" + a probe every {PROBE_INTERVAL_S} s")
        load = asyncio.ensure_future(run_load(plan, builder, indexes(), recorder, ready=ready))
        probes = asyncio.ensure_future(probe_loop(self.http, single, probes_first, start, PHASE_MAX_S, stop))
        phase.fault = await fault(start)
        await asyncio.sleep(max(0.0, min(TAIL_S, start + PHASE_MAX_S - time.monotonic())))
        stop.set()
        phase.load, phase.probes, phase.recorder = await load, await probes, recorder
        self.log(f"{phase.name}: load stopped at {phase.load.elapsed_s:.1f} s: {sum(phase.load.accepted):,} "
                 f"documents acknowledged, errors {dict(phase.load.errors)}, "
                 f"document errors {dict(recorder.doc_errors)}")
        # Acks so far; then a terminal's retry of everything sent and not acknowledged.
        for mine, theirs in zip(phase.acks, recorder.acks()):
            mine.extend(theirs)
        for p in phase.probes:
            if p.kind == "accepted":
                for mine, value in zip(phase.acks, (p.doc, p.shard, p.seq)):
                    mine.append(value)
        sent = set(range(phase.first_doc, phase.first_doc + (phase.load.last_index + 1) * BATCH))
        sent |= {p.doc for p in phase.probes}
        unacked = sorted(sent - set(phase.acks[0]))
        phase.sent_documents = len(sent)
        phase.resend, acks = await resend(self.http, self.series, unacked, RESEND_TIMEOUT_S)
        for j, shard, seq in acks:
            for mine, value in zip(phase.acks, (j, shard, seq)):
                mine.append(value)
        self.log(f"{phase.name}: resent {len(unacked)} unacknowledged documents: {phase.resend}")
        phase.check = await self._check(phase.first_doc, phase.acks)
        self.log(f"{phase.name}: exactly once {'PASSED' if phase.check['passed'] else 'FAILED'}: {phase.check}")
        self.results["phases"][phase.name] = summarize(phase)

    async def _check(self, first_doc: int, acks) -> dict:
        from tooling.bench.ledger import check_exactly_once

        started = time.monotonic()
        drained = await self.monitor.wait_drained(DRAIN_TIMEOUT_S, lambda backlog, captured: None)
        drain_s = round(time.monotonic() - started, 2)
        recorded = await check_exactly_once(self.pool, self.series, first_doc, acks, set())
        return {"passed": recorded.exactly_once and drained, "drained": drained, "drain_s": drain_s,
                **recorded.counts, "examples": recorded.examples}

    async def _final_check(self, phases: list[Phase]) -> None:
        acks = (array("q"), array("q"), array("q"))
        for phase in phases:
            for mine, theirs in zip(acks, phase.acks):
                mine.extend(theirs)
        self.results["overall"] = await self._check(0, acks)
        self.results["placement_at_end"] = await asyncio.to_thread(self.placement)
        self.results["replicas_at_end"] = await asyncio.to_thread(self.replicas)
        self.results["nodes_at_end"] = await asyncio.to_thread(self.driver.call, "nodes")
        self.log(f"overall exactly once: {self.results['overall']}")

    # ---- the faults

    async def _ingress_answers(self) -> bool:
        try:
            return (await self.http.get("/healthz", timeout=2)).status_code == 200
        except Exception:
            return False

    async def _watch(self, start: float, victim: str, facts: dict, moved: bool, over) -> None:
        """Poll until the fault is `over()` and everything answers again (or the phase's time is up).

        Records (seconds from the load's start) when the GCS declared the victim dead, when an actor
        first did not answer, and when every actor (from a surviving node, if `moved`) and the
        ingress answer again.
        """
        victim_ip = self.net.address(victim)
        while time.monotonic() < start + PHASE_MAX_S - TAIL_S:
            t = round(time.monotonic() - start, 2)
            nodes = await asyncio.to_thread(self.driver.call, "nodes")
            if "node_declared_dead_s" not in facts and any(
                    n["ip"] == victim_ip and not n["alive"] for n in nodes):
                facts["node_declared_dead_s"] = t
                self.log(f"  {victim} declared dead by the GCS at {t} s")
            placement = await asyncio.to_thread(self.placement, 2.0)
            actors_ok = all(node in NODES and (node != victim or not moved) for node in placement.values())
            if not actors_ok:
                facts.setdefault("actors_unanswering_first_s", t)
            ingress_ok = await self._ingress_answers()
            if not ingress_ok:
                facts.setdefault("ingress_unanswering_first_s", t)
            if actors_ok and ingress_ok and over():
                if "actors_unanswering_first_s" in facts:
                    facts["actors_all_answering_s"] = t
                facts["placement_after"] = placement
                self.log(f"  every actor and the ingress answer again at {t} s: {placement}")
                return
            await asyncio.sleep(0.5)
        facts["gave_up_waiting_at_s"] = round(time.monotonic() - start, 2)

    async def _partition(self, start: float) -> dict:
        victim = self.victim
        facts = {"node": victim, "cut_at_s": FAULT_AT_S, "cut_for_s": CUT_S,
                 "actors_on_node": sorted(a for a, n in self.placement_before.items() if n == victim),
                 "replicas_on_node": self.results["replicas_after_deploy"].get(victim)}
        await asyncio.sleep(max(0.0, start + FAULT_AT_S - time.monotonic()))
        self.net.cut(victim)
        self.log(f"  cut {victim}'s link ({facts['actors_on_node']}, {facts['replicas_on_node']} replicas)")
        watcher = asyncio.ensure_future(
            self._watch(start, victim, facts, False, lambda: "restored_at_s" in facts))
        try:
            await asyncio.sleep(max(0.0, start + FAULT_AT_S + CUT_S - time.monotonic()))
        finally:
            self.net.restore(victim)
        facts["restored_at_s"] = round(time.monotonic() - start, 2)
        self.log(f"  restored {victim}'s link")
        await watcher
        return facts

    async def _kill(self, start: float) -> dict:
        placement = await asyncio.to_thread(self.placement)
        replicas = await asyncio.to_thread(self.replicas)
        # The partition's victim again, unless the partition made it lose its actors.
        victim = self.victim if self.victim in placement.values() else choose_victim(placement, replicas)
        facts = {"node": victim, "killed_at_s": FAULT_AT_S,
                 "actors_on_node": sorted(a for a, n in placement.items() if n == victim),
                 "replicas_on_node": replicas.get(victim)}
        await asyncio.sleep(max(0.0, start + FAULT_AT_S - time.monotonic()))
        facts["processes_killed"] = self.net.kill_all(victim)
        self.log(f"  kill -9 of all {facts['processes_killed']} processes of {victim} "
                 f"({facts['actors_on_node']}, {facts['replicas_on_node']} replicas)")
        await self._watch(start, victim, facts, True, lambda: "node_declared_dead_s" in facts)
        facts["replicas_after"] = await asyncio.to_thread(self.replicas)
        return facts


def choose_victim(placement: dict, replicas: dict) -> str:
    """The worker hosting both actor kinds if possible, then a replica, then the most actors."""
    def score(worker: str):
        actors = [name for name, node in placement.items() if node == worker]
        kinds = {name.rsplit("-", 2)[-2] for name in actors}  # "<prefix>-ingest-0" -> "ingest"
        return len(kinds), min(replicas.get(worker, 0), 1), len(actors)
    return max(WORKERS, key=score)


# -- figures ------------------------------------------------------------------------------------


def _events(phase: Phase) -> list[tuple[float, float, bool]]:
    """(due, latency, succeeded) of every request and probe, seconds from the load's start."""
    load = phase.load
    events = [(d, lat, status == 200 and accepted == BATCH)
              for d, lat, status, accepted in zip(load.due_s, load.latency_s, load.status, load.accepted)]
    events += [(p.sent_s, p.latency_s, p.kind == "accepted") for p in phase.probes]
    return sorted(events)


def recovery(phase: Phase) -> dict:
    """How long the fault hurt, from the terminals' side.

    slow: an answer later than max(SLOW_S, twice the p99 latency before the fault) after it was
    due (on a busy machine the baseline itself can be seconds).
    impaired: a request or probe that failed or was slow.
    recovery_s: from the fault to the answer of the last impaired request (the service is back
    to normal, including the backlog of requests that waited).
    longest_gap_s: the longest time after the fault without one successful answer.
    """
    fault_s = phase.fault.get("cut_at_s", phase.fault.get("killed_at_s"))
    events = _events(phase)
    before = sorted(lat for due, lat, ok in events if 1.0 <= due and due + lat < fault_s and ok)
    baseline_p99 = before[int(0.99 * (len(before) - 1))] if before else 0.0
    slow_s = max(SLOW_S, 2 * baseline_p99)
    impaired = [due + lat for due, lat, ok in events if due + lat >= fault_s and not (ok and lat <= slow_s)]
    successes = sorted(due + lat for due, lat, ok in events if ok and due + lat >= fault_s)
    end = max((due + lat for due, lat, _ in events), default=fault_s)
    edges = [fault_s, *successes, end]
    out = {
        "baseline_p99_s": round(baseline_p99, 3),
        "slow_s": round(slow_s, 2),
        "impaired_requests": len(impaired),
        "first_impaired_s": round(min(impaired) - fault_s, 2) if impaired else None,
        "recovery_s": round(max(impaired) - fault_s, 2) if impaired else 0.0,
        "longest_gap_s": round(max(b - a for a, b in zip(edges, edges[1:])), 2),
    }
    if "restored_at_s" in phase.fault:
        out["recovery_after_restore_s"] = round(max(0.0, fault_s + out["recovery_s"]
                                                    - phase.fault["restored_at_s"]), 2)
    return out


def summarize(phase: Phase) -> dict:
    import collections

    load, probes = phase.load, phase.probes
    latencies = sorted(load.latency_s)
    errors = collections.Counter(load.errors) + phase.recorder.doc_errors
    probe_kinds = collections.Counter(p.kind for p in probes)
    probe_503 = [p for p in probes if p.status == 503]
    return {
        "fault": phase.fault,
        "load_s": round(load.elapsed_s, 1),
        "requests_sent": load.sent,
        "documents_sent": phase.sent_documents,
        "acknowledged_during_load": int(sum(load.accepted)) + probe_kinds.get("accepted", 0),
        "errors_by_kind": dict(errors),
        "probes": dict(probe_kinds),
        "probe_503_with_retry_after": sum(p.retry_after is not None for p in probe_503),
        "probe_503_without_retry_after": sum(p.retry_after is None for p in probe_503),
        "requests_timed_out": load.errors.get("timeout", 0) + load.errors.get("no_answer", 0)
                              + probe_kinds.get("timeout", 0),
        "latency_p50_s": round(latencies[len(latencies) // 2], 3) if latencies else None,
        "latency_p99_s": round(latencies[int(0.99 * (len(latencies) - 1))], 3) if latencies else None,
        "latency_max_s": round(latencies[-1], 2) if latencies else None,
        "probe_latency_max_s": round(max(p.latency_s for p in probes), 2) if probes else None,
        **recovery(phase),
        "resend": phase.resend,
        "exactly_once": phase.check,
    }


def table(results: dict) -> str:
    """The results as a Markdown table, one column per scenario."""
    phases = results["phases"]
    names = list(phases)

    def fault(p):
        f = p["fault"]
        if "cut_for_s" in f:
            return f"{f['node']}'s link down for {f['cut_for_s']:.0f} s"
        return f"kill -9 of all {f.get('processes_killed')} processes of {f['node']}"

    rows = [
        ("fault (at 5 s into the load)", fault),
        ("posray actors on that node", lambda p: ", ".join(a.split("-", 1)[1] for a in p["fault"]["actors_on_node"])
         or "none"),
        ("Serve replicas on that node", lambda p: str(p["fault"].get("replicas_on_node"))),
        ("node declared dead by Ray after", lambda p: _after(p, p["fault"].get("node_declared_dead_s"), "no")),
        ("every actor answering again after", lambda p: _after(p, p["fault"].get("actors_all_answering_s"), "-")),
        ("  placed on", lambda p: ", ".join(f"{a.split('-', 1)[1]}@{n}" for a, n in
                                            sorted(p["fault"].get("placement_after", {}).items())
                                            if a in p["fault"]["actors_on_node"]) or "-"),
        (f"load (open loop, {RATE_RPS:.0f} req/s x {BATCH} docs) ran for", lambda p: f"{p['load_s']} s"),
        ("documents sent", lambda p: f"{p['documents_sent']:,}"),
        ("acknowledged during the load", lambda p: f"{p['acknowledged_during_load']:,}"),
        ("not acknowledged, resent after the load", lambda p: f"{p['resend']['documents']:,}"),
        ("  of which already captured (ack lost)", lambda p: f"{p['resend']['answered_duplicate']:,}"),
        ("acknowledged in total", lambda p: f"{p['exactly_once']['acknowledged']:,}"),
        ("recorded in PostgreSQL", lambda p: f"{p['exactly_once']['recorded']:,}"),
        ("missing / recorded twice / unexpected",
         lambda p: f"{p['exactly_once']['missing']} / {p['exactly_once']['recorded_twice']} / "
                   f"{p['exactly_once']['unexpected']}"),
        ("exactly once", lambda p: "PASSED" if p["exactly_once"]["passed"] else "FAILED"),
        ("load errors by kind", lambda p: ", ".join(f"{k} {v:,}" for k, v in sorted(p["errors_by_kind"].items()))
         or "none"),
        ("probes (1 document each, every 0.25 s)", lambda p: ", ".join(f"{k} {v}" for k, v in sorted(p["probes"].items()))),
        ("probe 503s with / without Retry-After",
         lambda p: f"{p['probe_503_with_retry_after']} / {p['probe_503_without_retry_after']}"),
        ("answers later than the 30 s terminal timeout", lambda p: str(p["requests_timed_out"])),
        ("latency p50 / p99 / max (from due time)",
         lambda p: f"{p['latency_p50_s']} / {p['latency_p99_s']} / {p['latency_max_s']} s"),
        ("latency p99 before the fault", lambda p: f"{p['baseline_p99_s']} s"),
        ("impaired requests (failed, or slower than)", lambda p: f"{p['impaired_requests']:,} ({p['slow_s']} s)"),
        ("longest time without a successful answer", lambda p: f"{p['longest_gap_s']} s"),
        ("time to recover (fault to last impaired answer)", lambda p: f"{p['recovery_s']} s"),
        ("  of which after the link came back", lambda p: f"{p['recovery_after_restore_s']} s"),
        ("ledger drained after the resend in", lambda p: f"{p['exactly_once']['drain_s']} s"),
    ]
    out = ["| | " + " | ".join(names) + " |", "| --- | " + " | ".join("---" for _ in names) + " |"]
    for label, cell in rows:
        values = []
        for name in names:
            try:
                values.append(cell(phases[name]))
            except (KeyError, TypeError):
                values.append("-")
        out.append(f"| {label} | " + " | ".join(values) + " |")
    overall = results.get("overall", {})
    out.append("")
    out.append(f"Overall: {overall.get('acknowledged', 0):,} acknowledged, {overall.get('recorded', 0):,} "
               f"recorded, {overall.get('recorded_twice', '?')} twice, {overall.get('missing', '?')} missing, "
               f"exactly once {'PASSED' if overall.get('passed') else 'FAILED'}. Ray start "
               f"{results.get('ray_start_s')} s, deploy {results.get('deploy_s')} s, whole run "
               f"{results.get('total_s')} s.")
    return "\n".join(out)


def _after(phase: dict, at_s, absent: str) -> str:
    if at_s is None:
        return absent
    fault_at = phase["fault"].get("cut_at_s", phase["fault"].get("killed_at_s", 0.0))
    return f"{at_s - fault_at:.1f} s"
