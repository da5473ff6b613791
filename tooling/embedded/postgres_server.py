"""The embedded PostgreSQL (pgserver's binaries, or the local installation), run as its owner.

PostgreSQL refuses to run as root, so as root it runs as another user (postgres, else posray).
That user must reach its programs: a virtualenv under a home folder others cannot enter (/root,
mode 700) hides pgserver's binaries from it. Then a copy of the installation is staged under
the data folder, which that user reaches anyway (it owns pgdata there), and run from there.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile
from pathlib import Path

from tooling.embedded.common import (
    _children,
    EmbeddedError,
    ServerInfo,
    _HOST,
    _LOG_TAIL_LINES,
    _PG_NAMES,
    _PG_READY_S,
    _REAP_WAIT_S,
    _SOCKET_DIR_LEN_MAX,
    _check_same_port,
    _choose_port,
    _is_program,
    _locked,
    _proc_state,
    _save_state,
    _startup_error,
    _terminate,
    _wait_for,
    postgres_bin_dir,
)



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


def _runs_as(bin_dir: Path, owner: tuple[int, int]) -> bool:
    """Tells whether owner can run initdb of bin_dir (reach it, and load its libraries)."""
    try:
        result = subprocess.run([str(bin_dir / "initdb"), "--version"], stdin=subprocess.DEVNULL,
                                capture_output=True, timeout=30, cwd="/", **_as_owner(owner))
    except PermissionError:
        return False
    return result.returncode == 0


def _install_stamp(bin_dir: Path) -> str:
    """Names the installation a staged copy was made from (path, size and time of postgres)."""
    binary = (bin_dir / "postgres").stat()
    return f"{bin_dir.resolve()} {binary.st_size} {binary.st_mtime_ns}\n"


def _make_readable(root: Path) -> None:
    """Opens a staged copy to others for reading and running (never for writing)."""
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        runnable = path.is_dir() or mode & stat.S_IXUSR
        path.chmod(mode | 0o044 | (0o011 if runnable else 0))


def _stage_install(bin_dir: Path, stage: Path) -> Path:
    """Copies the installation of bin_dir under stage (once per installation); returns its bin.

    pgserver's programs find their libraries relative to themselves, in pginstall/lib and in
    the wheel's <package>.libs folder, so both are copied with the same relative layout.
    """
    install, package = bin_dir.parent, bin_dir.parent.parent
    staged_bin = stage / package.name / install.name / bin_dir.name
    stamp = _install_stamp(bin_dir)
    with contextlib.suppress(OSError):
        if (stage / "source").read_text() == stamp:
            return staged_bin
    shutil.rmtree(stage, ignore_errors=True)
    tmp = stage.with_name(f"{stage.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(install, tmp / package.name / install.name, symlinks=True,
                    ignore=shutil.ignore_patterns("include"))
    libs = package.with_name(f"{package.name}.libs")
    if libs.is_dir():
        shutil.copytree(libs, tmp / libs.name, symlinks=True)
    _make_readable(tmp)
    (tmp / "source").write_text(stamp)
    tmp.rename(stage)
    return staged_bin


def _reachable_bin_dir(bin_dir: Path, data_dir: Path, owner: tuple[int, int] | None) -> Path:
    """bin_dir when owner can run its programs, else a copy staged under data_dir.

    Raises:
        EmbeddedError: not even the staged copy runs as owner.
    """
    if owner is None or _runs_as(bin_dir, owner):
        return bin_dir
    staged = _stage_install(bin_dir, data_dir / "pginstall")
    if not _runs_as(staged, owner):
        raise EmbeddedError(f"user {pwd.getpwuid(owner[0]).pw_name} can run neither {bin_dir} nor its "
                            f"copy {staged}: make {data_dir} reachable (o+x) for it")
    return staged


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


def _start_pg_process(data_dir: Path, port: int, daemon: bool, fsync: bool, bin_dir: Path | None) -> None:
    owner, pgdata = _pg_owner(), data_dir / "pgdata"
    _prepare_pgdata(pgdata, owner)
    bin_dir = _reachable_bin_dir(bin_dir or postgres_bin_dir(), data_dir, owner)
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
    data_dir: Path, port: int | None = None, daemon: bool = True, fsync: bool = True,
    bin_dir: Path | None = None,
) -> ServerInfo:
    """Starts PostgreSQL on data_dir/pgdata (initdb on first use), or returns the running one.

    Args:
        data_dir: Holds pgdata/ (with server.log) and server.json (the port, reused later).
        port: Explicit port; default is the persisted one, else a free one.
        daemon: True to detach via pg_ctl (outlives this process); False for a child process.
        fsync: False for throwaway test data (initdb --no-sync, fsync=off); never in production.
        bin_dir: PostgreSQL's bin folder; default pgserver's, else the system's (postgres_bin_dir).

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
        _start_pg_process(data_dir, port, daemon, fsync, bin_dir)
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


