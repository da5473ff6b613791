"""Faults that make capture and the ledger disagree: the scenarios fencing exists for.

Each injects something that, without fencing and content-bound codes, would make an
acknowledged code resolve to another sale: the ledger written behind capture's back, the
capture store flushed or rewound to an older AOF, a second deployment's store on the same
ledger, a forged stream entry at a recorded place. Where posray stops a shard's recording on a
conflict, the scenario's restore step is what the operator does: `posray capture release`.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import orjson
import redis

from tooling.faults_stack import FaultStack

FOREIGN_DOCUMENTS = 40   # rows a foreign writer appends to shard 0's ledger
SECOND_DEPLOYMENT_DOCUMENTS = 20
FOREIGN_SHARD = 0
FOREIGN_ATTEMPTS = 20
FLUSH_BEHIND_S = 3.0  # how long the ledger falls behind before the flush


def _client(stack: FaultStack) -> redis.Redis:
    return redis.Redis.from_url(stack.redis.url, socket_timeout=5)


def _foreign_document(i: int) -> dict:
    """A valid document of a terminal no deployment registered (a foreign writer's own sale)."""
    from tooling.simulator import make_document

    at = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    return make_document(f"FOREIGN-{i % 7}", 1_000_000 + i, b"\x01" * 32, issued_at=at)


def foreign_writer(stack: FaultStack) -> str:
    """Append FOREIGN_DOCUMENTS chained rows to shard 0's ledger, as a ledger writer that does not
    know the capture store would (a generator or another deployment's writer on this PostgreSQL)."""
    return asyncio.run(_write_foreign(stack))


async def _write_foreign(stack: FaultStack) -> str:
    from posray.adapters.keyfile import load_keys
    from posray.adapters.pg import create_pool
    from posray.adapters.pg_ledger import PgLedger
    from posray.adapters.redis_stream import StreamEntry
    from posray.domain.transaction import canonical_document
    from posray.services.recording import ShardRecorder

    keys = load_keys(stack.settings.seed_file)
    pool = await create_pool(stack.settings.pg_dsn, size_max=1)
    try:
        for attempt in range(FOREIGN_ATTEMPTS):
            recorder = ShardRecorder(FOREIGN_SHARD, _NoCaptureStore(), PgLedger(pool), keys.code,
                                     FOREIGN_DOCUMENTS, 0)
            await recorder.resync()
            first = recorder.head.last_seq + 1
            now_ms = int(time.time() * 1000)
            entries = [StreamEntry(b"%d-0" % (first + i), first + i, now_ms,
                                   (canonical_document(_foreign_document(i)),)) for i in range(FOREIGN_DOCUMENTS)]
            try:
                written = await recorder.record(entries)
                break
            except Exception:  # the shard's own writer committed the same batch number first: again
                if attempt == FOREIGN_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.05)
    finally:
        await pool.close()
    return f"a foreign writer appended {written} rows to shard {FOREIGN_SHARD}'s ledger (seq {first}..{first + written - 1})"


class _NoCaptureStore:
    """The foreign writer's stream: it reads nothing from the capture store and tells it nothing."""

    async def ensure_group(self, shard: int) -> None:
        return None

    async def acknowledge(self, shard: int, entry_ids: list[bytes], recorded_height: int) -> None:
        return None

    async def report_recorded(self, shard: int, recorded_height: int) -> None:
        return None


def flush_store(stack: FaultStack) -> str:
    """With the ledger behind (PostgreSQL stopped for FLUSH_BEHIND_S, capture going on within its
    reservation), FLUSHALL on the capture store: every stream, counter, fence and idempotency key
    gone, with the acknowledged documents not yet recorded."""
    stack.pg.stop()
    time.sleep(FLUSH_BEHIND_S)
    _client(stack).flushall()
    return f"PostgreSQL stopped, {FLUSH_BEHIND_S:g} s later FLUSHALL on the capture store"


def start_pg(stack: FaultStack) -> str:
    return f"PostgreSQL started (pid {stack.pg.start().pid})"


def snapshot_aof(stack: FaultStack) -> str:
    """Copy the capture store's AOF now: what an operator's backup would hold."""
    source = stack.redis.data_dir / "appendonlydir"
    target = stack.root / "aof-backup"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
    return f"copied the capture store's AOF ({_size(target):,} bytes), as a backup would"


def restore_old_aof(stack: FaultStack) -> str:
    """kill -9 the capture store and restart it from the older AOF copy: acknowledged entries rewound."""
    stack.redis.kill()
    live = stack.redis.data_dir / "appendonlydir"
    shutil.rmtree(live)
    shutil.copytree(stack.root / "aof-backup", live)
    pid = stack.redis.start().pid
    return f"kill -9 the capture store, restarted from the older AOF copy (pid {pid})"


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir())


def forge_entry(stack: FaultStack) -> str:
    """XADD to shard 0's stream an entry carrying an already-recorded seq and another document."""
    client = _client(stack)
    from posray.adapters.redis_keys import fence_key, recorded_key, stream_key
    from posray.domain.transaction import canonical_document

    p = stack.settings.key_prefix
    recorded = int(client.get(recorded_key(p, FOREIGN_SHARD)) or 0)
    seq = max(1, recorded - 3)
    forged = canonical_document(_foreign_document(999))
    for _ in range(50):
        top = client.xrevrange(stream_key(p, FOREIGN_SHARD), count=1)
        top_ms = int(top[0][0].split(b"-")[0]) if top else recorded
        epoch = (client.get(fence_key(p, FOREIGN_SHARD)) or b"0:0").split(b":")[0]
        try:
            client.xadd(stream_key(p, FOREIGN_SHARD), {"s": seq, "n": 1, "t": int(time.time() * 1000),
                                                      "e": epoch, "d": forged}, id=f"{top_ms}-1")
            return f"forged a stream entry in shard {FOREIGN_SHARD} at recorded seq {seq} (another document)"
        except redis.ResponseError:  # capture appended meanwhile: read the top again
            time.sleep(0.01)
    raise RuntimeError("could not place a forged entry: the stream kept moving")


def second_deployment(stack: FaultStack) -> str:
    """A second deployment with its own capture store, pointed at this ledger: its IngestShard must
    refuse to capture (the ledger's fences name the first store), and nothing of it is recorded."""
    import dataclasses

    import ray

    from actors.ingest_shard import IngestShard
    from tooling.embedded import ChildRedis
    from posray.domain.transaction import Submission, canonical_document, document_hash, shard_of

    other = ChildRedis(stack.root / "redis-second")
    other.start()
    try:
        s = dataclasses.replace(stack.settings, redis_url=other.url)
        actor = IngestShard.options(name=f"second-deployment-{s.key_prefix}", namespace=s.ray_namespace,
                                    max_restarts=0).remote(s, list(range(s.shard_count)))
        docs = [canonical_document(d) for d in stack.spare_documents(SECOND_DEPLOYMENT_DOCUMENTS)]
        subs = [tuple(Submission(d["terminal_id"], d["counter"], shard_of(d["terminal_id"], s.shard_count),
                                 document_hash(c), c)) for d, c in ((orjson.loads(c), c) for c in docs)]
        refused, why = 0, ""
        try:
            results = ray.get(actor.append.remote(subs), timeout=60)
            acknowledged = sum(1 for r in results if not isinstance(r, Exception))
        except ray.exceptions.RayError as e:
            acknowledged, refused, why = 0, len(subs), str(e.cause if hasattr(e, "cause") else e)
        ray.kill(actor)
    finally:
        other.stop()
    stack.second_deployment = {"sent": len(subs), "acknowledged": acknowledged, "refused": refused}
    if acknowledged:
        return f"a second deployment's capture store ACKNOWLEDGED {acknowledged} of {len(subs)} documents"
    return (f"a second deployment (own capture store, same PostgreSQL) tried {len(subs)} documents: "
            f"all refused ({_first_line(why)})")


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if "captured by" in line or "NotFenced" in line:
            return line.strip()[:200]
    return text.strip().splitlines()[-1][:200] if text.strip() else "no reason given"


REPLICA_LAG_S = 2.0  # how long the replicas fall behind before the primary dies


def kill_lagging_primary(stack: FaultStack) -> str:
    """The ledger stops (PostgreSQL down) and the replicas fall behind (SIGSTOP, links cut, for
    REPLICA_LAG_S), then kill -9 the primary; the replicas resume and the sentinels promote one. Without WAITAOF, what the primary acknowledged
    in those seconds is on no replica; with it, nothing unreplicated was acknowledged."""
    r = stack.redis
    old = r.primary_port()
    replicas = [folder for folder in r.node_dirs if folder != r.node_of(old)]
    stack.pg.stop()  # the ledger falls behind too: what was acknowledged is only in the stores
    for folder in replicas:
        r.pause(folder)
    # Cut the replication links: what the primary writes from now on reaches no replica (a paused
    # replica would otherwise still find it in its socket buffer when it resumes).
    redis.Redis(port=old, socket_timeout=5).client_kill_filter(_type="replica")
    try:
        time.sleep(REPLICA_LAG_S)
        r.kill(r.node_of(old))
    finally:
        for folder in replicas:
            r.resume(folder)
    new = r.wait_promoted(old)
    stack.old_primary = old
    return (f"PostgreSQL stopped, replicas paused and cut off {REPLICA_LAG_S:g} s, then kill -9 the "
            f"primary (:{old}); the sentinels promoted :{new}")


def restart_old_primary(stack: FaultStack) -> str:
    """PostgreSQL and the killed primary come back; the sentinels make it a replica of the new one."""
    r = stack.redis
    stack.pg.start()
    pid = r.restart(r.node_of(stack.old_primary)).pid
    return f"PostgreSQL started; the old primary restarted (pid {pid}) and rejoined as a replica"
