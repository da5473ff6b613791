"""Private Redis-compatible and PostgreSQL servers under a local folder, for `posray up` and tests.

Daemons (the default) outlive the Python process that starts them: pid files, the chosen port
(server.json) and logs live in the data folder, so `posray down` can stop them from a later
process. ChildRedis and ChildPostgres wrap non-daemon children that tests kill -9 and restart on
the same data and port. free_port() never hands out 5432 or 6379, the system servers' ports.

Two quirks of containers shape the code. PID 1 may reap orphans late, so a zombie counts as
dead; and before signalling a pid read from a file we check /proc that it is still our program.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
from pathlib import Path

from tooling.embedded.common import (
    EmbeddedError,
    ServerInfo,
    _REAP_WAIT_S,
    _alive,
    _terminate,
    free_port,
    postgres_bin_dir,
    redis_binary,
)
from tooling.embedded.redis_server import (
    _redis_running,
    start_redis,
    stop_redis,
)
from tooling.embedded.redis_set import ReplicatedRedis, start_replicated, stop_replicated
from tooling.embedded.postgres_server import (
    _pg_running,
    start_postgres,
    stop_postgres,
)

__all__ = [
    "ChildPostgres", "ChildRedis", "EmbeddedError", "ReplicatedRedis", "ServerInfo", "free_port",
    "postgres_bin_dir", "redis_binary", "server_status", "start_all", "start_postgres",
    "start_redis", "start_replicated", "stop_all", "stop_postgres", "stop_redis", "stop_replicated",
]


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
