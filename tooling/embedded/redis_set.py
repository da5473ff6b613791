"""A replicated capture store on one machine: a primary, replicas and sentinels under one folder.

`posray up --replicated` runs it as daemons; tests and fault scenarios run it as children and
kill -9 its primary (ReplicatedRedis). Every data node runs with AOF and `appendfsync always`;
Sentinel monitors the primary under one name and promotes a replica when it dies.

A member's config file is written once, on its first start: Sentinel rewrites the files
(CONFIG REWRITE) when it turns a primary into a replica or back, so a later start must keep what
it wrote, or a restarted node would claim a role the set took away from it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tooling.embedded.common import (
    EmbeddedError,
    ServerInfo,
    _HOST,
    _REAP_WAIT_S,
    _REDIS_READY_S,
    _alive,
    _choose_port,
    _load_state,
    _locked,
    _read_pid,
    _save_state,
    _startup_error,
    _terminate,
    _wait_for,
    redis_binary,
)
from tooling.embedded.resp import pairs as _pairs, role as _role
from tooling.embedded.resp import try_command as _try_command, try_commands as _try_commands
from tooling.embedded.redis_server import _quote, _redis_running, await_redis, stop_redis

MASTER_NAME = "posray"


class ReplicatedRedis:
    """A primary, `replicas` replicas and `sentinels` sentinels (quorum 2) on free ports.

    Members live in `root`/node-<i> and `root`/sentinel-<i>; node-0 is the first primary. Used
    as a context manager (children, removed afterwards) or with daemon=True (outlives this
    process; `stop_replicated(root)` stops it from another one).
    """

    def __init__(self, root: Path | None = None, replicas: int = 1, sentinels: int = 3,
                 quorum: int = 2, master: str = MASTER_NAME, down_after_ms: int = 1000,
                 failover_timeout_ms: int = 3000, daemon: bool = False, binary: Path | None = None):
        self._owns_root = root is None
        self.root = Path(root or tempfile.mkdtemp(prefix="posray-redis-set-")).resolve()
        self.master = master
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.daemon = daemon
        self.binary = Path(binary) if binary else None
        self.node_dirs = [self.root / f"node-{i}" for i in range(1 + replicas)]
        self.sentinel_dirs = [self.root / f"sentinel-{i}" for i in range(sentinels)]
        self.ports: dict[Path, int] = {}

    # ------------------------------------------------------------------ lifecycle

    def start(self, ready_timeout_s: float = 30.0) -> None:
        """Start (or find) every member, then wait until the set can fail over and replicate."""
        first = self._start_member(self.node_dirs[0], self._node_conf)
        for replica in self.node_dirs[1:]:
            self._start_member(replica, lambda port: self._node_conf(port, first.port))
        for sentinel in self.sentinel_dirs:
            self._start_member(sentinel, lambda port: self._sentinel_conf(port, first.port), sentinel=True)
        self.wait_ready(ready_timeout_s)

    def stop(self) -> None:
        """Stop the sentinels first (no failover while the nodes go), then the nodes."""
        for folder in self.sentinel_dirs + self.node_dirs:
            stop_redis(folder)

    def __enter__(self) -> "ReplicatedRedis":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.stop()
        finally:
            if self._owns_root:
                shutil.rmtree(self.root, ignore_errors=True)

    # ------------------------------------------------------------------ addresses

    @property
    def sentinel_addresses(self) -> tuple[tuple[str, int], ...]:
        return tuple((_HOST, self._port(folder)) for folder in self.sentinel_dirs)

    @property
    def sentinels_text(self) -> str:
        """The value of POSRAY_REDIS_SENTINELS for this set."""
        return ",".join(f"{host}:{port}" for host, port in self.sentinel_addresses)

    def settings_changes(self, replicas_min: int = 1) -> dict:
        """Settings.replace(**this) points posray at the set, waiting for `replicas_min` replicas."""
        return {"redis_url": f"redis://{_HOST}:{self.primary_port()}/0",
                "redis_sentinels": self.sentinels_text, "redis_master": self.master,
                "capture_replicas_min": replicas_min}

    def primary_port(self) -> int:
        """The primary's port as a majority of answering sentinels names it.

        Raises:
            EmbeddedError: no sentinel answers, or they do not agree yet.
        """
        if not self.sentinel_dirs:  # a set without sentinels never fails over
            return self._port(self.node_dirs[0])
        named = []
        for _, port in self.sentinel_addresses:
            reply = _try_command(port, "SENTINEL", "get-master-addr-by-name", self.master)
            if isinstance(reply, list) and len(reply) == 2:
                named.append(int(reply[1]))
        for port in set(named):
            if named.count(port) >= self.quorum:
                return port
        raise EmbeddedError(f"the sentinels do not agree on a primary of {self.master!r}: {named}")

    def node_of(self, port: int) -> Path:
        for folder in self.node_dirs:
            if self._port(folder) == port:
                return folder
        raise EmbeddedError(f"no node of {self.root} listens on {port}")

    # ------------------------------------------------------------------ faults

    def kill(self, folder: Path) -> None:
        """kill -9 one member (a crash) and wait until it is gone."""
        info = _redis_running(folder)
        if info is not None and info.pid and _alive(info.pid):
            _terminate(info.pid, signal.SIGKILL, _REAP_WAIT_S)

    def pause(self, folder: Path) -> None:
        """SIGSTOP a member: its links stay open but it answers nothing (a lagging replica)."""
        self._signal(folder, signal.SIGSTOP)

    def resume(self, folder: Path) -> None:
        """SIGCONT a paused member."""
        self._signal(folder, signal.SIGCONT)

    def _signal(self, folder: Path, sig: int) -> None:
        pid = _read_pid(folder / "redis.pid")
        if pid is None or not _alive(pid):
            raise EmbeddedError(f"no running member in {folder}")
        os.kill(pid, sig)

    def kill_primary(self) -> int:
        """kill -9 the current primary; returns the port it listened on."""
        port = self.primary_port()
        self.kill(self.node_of(port))
        return port

    def restart(self, folder: Path) -> ServerInfo:
        """Start a stopped or killed member again on its folder, port and (rewritten) config."""
        return self._start_member(folder, lambda port: [], sentinel=folder in self.sentinel_dirs)

    def wait_promoted(self, old_port: int, timeout_s: float = 30.0) -> int:
        """Wait until the sentinels name another primary and it answers as one; returns its port.

        Raises:
            EmbeddedError: no promotion within timeout_s.
        """
        def promoted() -> bool:
            try:
                port = self.primary_port()
            except EmbeddedError:
                return False
            return port != old_port and _role(port) == "master"

        if not _wait_for(promoted, timeout_s):
            raise EmbeddedError(f"no replica was promoted within {timeout_s} s")
        return self.primary_port()

    def wait_ready(self, timeout_s: float = 30.0, replicas: int | None = None) -> None:
        """Wait until every sentinel knows the others and the replicas, and a write reaches the
        AOF of `replicas` replicas (default: all live ones) through WAITAOF.

        Raises:
            EmbeddedError: not ready within timeout_s.
        """
        want = len(self.node_dirs) - 1 if replicas is None else replicas
        others = len(self.sentinel_dirs) - 1

        def ready() -> bool:
            try:
                primary = self.primary_port()
            except EmbeddedError:
                return False
            for _, port in self.sentinel_addresses:
                view = _pairs(_try_command(port, "SENTINEL", "master", self.master))
                if int(view.get("num-other-sentinels", -1)) < others or int(view.get("num-slaves", -1)) < want:
                    return False
            acked = _try_commands(primary, ("SET", f"{self.master}:ready-probe", str(time.time())),
                                  ("WAITAOF", "1", str(want), "100"))
            return isinstance(acked, list) and int(acked[1]) >= want

        if not _wait_for(ready, timeout_s):
            raise EmbeddedError(f"the replicated Redis in {self.root} was not ready within {timeout_s} s")

    # ------------------------------------------------------------------ members

    def _port(self, folder: Path) -> int:
        if folder not in self.ports:
            info = _redis_running(folder)
            if info is None:
                port = _load_state(folder).get("port")
                if not port:
                    raise EmbeddedError(f"{folder} was never started")
                return int(port)
            self.ports[folder] = info.port
        return self.ports[folder]

    def _start_member(self, folder: Path, conf_lines, sentinel: bool = False) -> ServerInfo:
        info = start_member(folder, conf_lines, self.daemon, self.binary, sentinel)
        self.ports[folder] = info.port
        return info

    def _node_conf(self, port: int, primary_port: int | None = None) -> list[str]:
        lines = ["appendonly yes",
                 "appendfsync always",  # on every node: a promoted replica holds what it acked
                 "repl-diskless-sync-delay 0"]  # a (re)joining replica syncs at once
        if primary_port is not None:
            lines.append(f"replicaof {_HOST} {primary_port}")
        return lines

    def _sentinel_conf(self, port: int, primary_port: int) -> list[str]:
        m = self.master
        return [f"sentinel monitor {m} {_HOST} {primary_port} {self.quorum}",
                f"sentinel down-after-milliseconds {m} {self.down_after_ms}",
                f"sentinel failover-timeout {m} {self.failover_timeout_ms}",
                f"sentinel parallel-syncs {m} 1"]


def start_member(folder: Path, conf_lines, daemon: bool, binary: Path | None = None,
                 sentinel: bool = False) -> ServerInfo:
    """Start one member of a set on `folder` (or return the running one).

    Args:
        conf_lines: port -> the member's own config lines, used only when the folder has no
            config yet (first start).
        sentinel: run in Sentinel mode.

    Raises:
        EmbeddedError: the port is taken or the member did not answer PING in time.
    """
    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder):
        running = _redis_running(folder)
        if running is not None:
            return running
        binary = Path(binary) if binary else redis_binary()
        port = _choose_port(folder, None)
        _save_state(folder, kind="sentinel" if sentinel else "redis", port=port, binary=str(binary))
        conf = folder / "redis.conf"
        if not conf.exists():
            conf.write_text("\n".join(_common_conf(folder, port, daemon) + conf_lines(port)) + "\n")
        return await_redis(_spawn(binary, conf, folder, daemon, sentinel), folder, port, daemon)


def start_replicated(root: Path, replicas: int = 1, master: str = MASTER_NAME) -> ReplicatedRedis:
    """Start (or find) the daemons of a replicated set under root, for `posray up --replicated`.

    A primary is declared down after 5 s without answers (a laptop's hiccup is not a failover).

    Raises:
        EmbeddedError: a member did not start, or the set was not ready in time.
    """
    rs = ReplicatedRedis(root, replicas=replicas, master=master, down_after_ms=5000,
                         failover_timeout_ms=30000, daemon=True)
    rs.start(ready_timeout_s=60)
    return rs


def stop_replicated(root: Path) -> bool:
    """Stop every member under root (sentinels first); True if any was running."""
    root = Path(root).resolve()
    members = sorted(root.glob("sentinel-*")) + sorted(root.glob("node-*"))
    return any([stop_redis(folder) for folder in members])


def _common_conf(folder: Path, port: int, daemon: bool) -> list[str]:
    return [f"bind {_HOST}", f"port {port}", f"dir {_quote(folder)}",
            f"daemonize {'yes' if daemon else 'no'}", f"pidfile {_quote(folder / 'redis.pid')}",
            f"logfile {_quote(folder / 'redis.log')}", 'save ""']


def _spawn(binary: Path, conf: Path, folder: Path, daemon: bool, sentinel: bool) -> subprocess.Popen:
    (folder / "redis.pid").unlink(missing_ok=True)
    argv = [str(binary), str(conf)] + (["--sentinel"] if sentinel else [])
    with open(folder / "redis.log", "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=folder,
                                start_new_session=daemon)
    if daemon and proc.wait(_REDIS_READY_S) != 0:
        raise _startup_error("redis", folder / "redis.log", f"exit code {proc.returncode}")
    return proc
