"""Embedded servers: real Valkey/Redis and PostgreSQL processes under tmp_path, no mocks."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from pathlib import Path

import asyncpg
import pytest
import redis

from tooling import embedded
from tooling.embedded import ChildPostgres, ChildRedis, EmbeddedError


def _redis_binaries() -> list[Path]:
    found = [embedded.redis_binary()]
    system = shutil.which("redis-server")
    if system and Path(system) not in found:
        found.append(Path(system))
    return found


def _gone(pid: int) -> bool:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return text[text.rindex(")") + 2] == "Z"


async def _pg(url: str, *statements: str) -> list:
    conn = await asyncpg.connect(url)
    try:
        for statement in statements[:-1]:
            await conn.execute(statement)
        return await conn.fetch(statements[-1])
    finally:
        await conn.close()


@pytest.fixture
def redis_dir(tmp_path: Path):
    data_dir = tmp_path / "redis"
    yield data_dir
    embedded.stop_redis(data_dir)


@pytest.fixture
def pg_dir(tmp_path: Path):
    data_dir = tmp_path / "postgres"
    yield data_dir
    embedded.stop_postgres(data_dir)


class TestRedisDaemon:
    def test_it_answers_ping_with_appendfsync_always_and_stops(self, redis_dir: Path):
        info = embedded.start_redis(redis_dir)
        client = redis.Redis.from_url(info.url)
        try:
            assert client.ping() is True
            assert client.config_get("appendfsync") == {"appendfsync": "always"}
            assert client.config_get("appendonly") == {"appendonly": "yes"}
        finally:
            client.close()
        assert info.port not in (5432, 6379)
        assert embedded.stop_redis(redis_dir) is True
        assert _gone(info.pid)
        assert embedded.server_status(redis_dir.parent)["redis"] is None
        assert embedded.stop_redis(redis_dir) is False

    def test_starting_twice_returns_the_running_server_and_a_restart_reuses_its_port(
        self, redis_dir: Path
    ):
        first = embedded.start_redis(redis_dir)
        assert embedded.start_redis(redis_dir) == first
        with pytest.raises(EmbeddedError, match="already runs"):
            embedded.start_redis(redis_dir, port=embedded.free_port())
        embedded.stop_redis(redis_dir)
        again = embedded.start_redis(redis_dir)
        assert again.port == first.port
        assert again.pid != first.pid


@pytest.mark.parametrize("binary", _redis_binaries(), ids=lambda p: p.name)
def test_child_redis_keeps_acknowledged_keys_after_kill_9(tmp_path: Path, binary: Path):
    with ChildRedis(tmp_path / "child", binary=binary) as child:
        client = redis.Redis.from_url(child.url)
        client.mset({f"k{i}": i for i in range(100)})
        client.close()
        old_pid = child.info.pid
        child.kill()
        assert _gone(old_pid)
        with pytest.raises(redis.ConnectionError):
            redis.Redis.from_url(child.url, socket_connect_timeout=0.5).ping()
        port = child.port
        child.start()
        assert child.port == port
        client = redis.Redis.from_url(child.url)
        assert client.mget([f"k{i}" for i in range(100)]) == [str(i).encode() for i in range(100)]
        client.close()
    assert _gone(child.info.pid)


class TestPostgresDaemon:
    def test_a_row_survives_stop_and_start(self, pg_dir: Path):
        info = embedded.start_postgres(pg_dir, fsync=False)
        assert info.url == f"postgresql://postgres@127.0.0.1:{info.port}/postgres"
        rows = asyncio.run(_pg(info.url, "CREATE TABLE t (v text)",
                               "INSERT INTO t VALUES ('kept')", "SELECT v FROM t"))
        assert [r["v"] for r in rows] == ["kept"]
        assert embedded.start_postgres(pg_dir) == info
        assert embedded.stop_postgres(pg_dir) is True
        assert _gone(info.pid)
        assert embedded.stop_postgres(pg_dir) is False
        again = embedded.start_postgres(pg_dir, fsync=False)
        assert again.port == info.port
        assert [r["v"] for r in asyncio.run(_pg(again.url, "SELECT v FROM t"))] == ["kept"]


def test_child_postgres_keeps_committed_rows_after_kill_9(tmp_path: Path):
    # A path too long for a Unix socket: the server must fall back to TCP only.
    with ChildPostgres(tmp_path / ("long" * 25) / "pg", fsync=False) as child:
        asyncio.run(_pg(child.url, "CREATE TABLE t (n int)",
                        "INSERT INTO t SELECT generate_series(1, 1000)", "SELECT 1"))
        old_pid = child.info.pid
        child.kill()
        assert _gone(old_pid)
        child.start()
        assert child.info.pid != old_pid
        rows = asyncio.run(_pg(child.url, "SELECT count(*) AS c, sum(n) AS s FROM t"))
        assert (rows[0]["c"], rows[0]["s"]) == (1000, 500500)
    assert _gone(child.info.pid)


def test_start_all_and_stop_all_manage_both_servers_under_one_folder(tmp_path: Path):
    try:
        redis_info, pg_info = embedded.start_all(tmp_path)
        assert redis_info.data_dir == (tmp_path / "redis").resolve()
        assert pg_info.data_dir == (tmp_path / "postgres").resolve()
        assert embedded.server_status(tmp_path) == {"redis": redis_info, "postgres": pg_info}
    finally:
        stopped = embedded.stop_all(tmp_path)
    assert stopped == {"redis": True, "postgres": True}
    assert embedded.server_status(tmp_path) == {"redis": None, "postgres": None}


def test_a_port_held_by_another_process_is_refused_before_spawning(redis_dir: Path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(EmbeddedError, match=f"port {port} .* in use"):
            embedded.start_redis(redis_dir, port=port)
    assert not (redis_dir / "redis.pid").exists()


def test_a_stale_pidfile_of_a_foreign_process_is_not_signalled(redis_dir: Path):
    redis_dir.mkdir(parents=True)
    (redis_dir / "redis.pid").write_text(f"{os.getpid()}\n")  # pid reuse: this is pytest.
    assert embedded.stop_redis(redis_dir) is False
    assert not (redis_dir / "redis.pid").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="PostgreSQL runs as another user only when started by root")
def test_postgres_runs_from_an_installation_under_a_home_other_users_cannot_enter(tmp_path: Path):
    """A venv under /root (mode 700), run as root: the postgres user cannot reach the binaries."""
    source = embedded.postgres_bin_dir()
    home = tmp_path / "home"
    package = home / "venv" / source.parent.parent.name
    shutil.copytree(source.parent, package / source.parent.name, symlinks=True,
                    ignore=shutil.ignore_patterns("include"))
    libs = source.parent.parent.with_name(f"{source.parent.parent.name}.libs")
    if libs.is_dir():
        shutil.copytree(libs, package.with_name(libs.name), symlinks=True)
    home.chmod(0o700)
    hidden_bin = package / source.parent.name / source.name
    data_dir = tmp_path / "data" / "postgres"
    try:
        info = embedded.start_postgres(data_dir, fsync=False, bin_dir=hidden_bin)
        rows = asyncio.run(_pg(info.url, "SELECT current_setting('server_version') AS v"))
        assert rows[0]["v"].split(".")[0].isdigit()
        running = Path(os.readlink(f"/proc/{info.pid}/exe"))
        assert home not in running.parents, "the server must run from a copy its user can reach"
        assert data_dir.resolve() in running.parents
    finally:
        embedded.stop_postgres(data_dir)
    assert oct(home.stat().st_mode & 0o777) == "0o700", "the home folder must stay closed"
    # A second start reuses the staged copy instead of copying again.
    stamp = data_dir / "pginstall" / "source"
    before = stamp.stat().st_mtime_ns
    try:
        embedded.start_postgres(data_dir, fsync=False, bin_dir=hidden_bin)
    finally:
        embedded.stop_postgres(data_dir)
    assert stamp.stat().st_mtime_ns == before
