"""Ray job: export new ledger rows to the Parquet snapshot (tables `documents` and `items`).

    ray job submit -- python -m jobs.snapshot --dsn postgresql://... --out /shared/snapshot
    posray analytics snapshot          # the same, with the DSN and data folder of `posray up`

Incremental and idempotent: per shard it exports the rows after the stored watermark up to the
shard's last committed batch, page by page, writes the Parquet files (fsynced, renamed into
place), and only then advances the watermark, atomically. Files of an interrupted run lie
beyond the watermark: readers ignore them and the next run deletes them before exporting, so a
rerun never duplicates a row. Shards are exported in parallel as Ray tasks with --ray or when
RAY_ADDRESS is set (as under `ray job submit`), one after the other otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import polars as pl

from posray import ray_auth
from posray.adapters.pg import create_pool
from posray.adapters.pg_snapshot import PgSnapshotSource
from jobs.arguments import job_arguments, settings_for, snapshot_arguments
from posray.progress import Progress
from posray.analytics.snapshot import TABLES, decode_page
from posray.adapters.parquet_snapshot import part_files, part_path, read_watermark, write_watermark

PAGE_ROWS_MAX = 1_000_000


@dataclass(frozen=True, slots=True)
class ShardExported:
    """What one shard's export added."""

    shard: int
    last_seq: int
    documents: int
    items: int
    files: int
    seconds: float


@dataclass(slots=True)
class SnapshotReport:
    """What a run added, and the shards that failed (their watermark did not move)."""

    exported: list[ShardExported] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    removed_files: int = 0
    seconds: float = 0.0

    @property
    def documents(self) -> int:
        return sum(e.documents for e in self.exported)

    @property
    def items(self) -> int:
        return sum(e.items for e in self.exported)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.snapshot", description=__doc__.splitlines()[0])
    job_arguments(parser)
    snapshot_arguments(parser)
    return run(parser.parse_args(argv))


def run(args) -> int:
    """Run the export for parsed arguments; print what it did; 0 when every shard succeeded."""
    settings = settings_for(args)
    dsn = args.dsn or settings.pg_dsn
    if not dsn:
        print("snapshot: no ledger to read: pass --dsn, set POSRAY_PG_DSN or run `posray up`", file=sys.stderr)
        return 2
    if not 1 <= args.page_rows <= PAGE_ROWS_MAX:
        print(f"snapshot: --page-rows must be 1..{PAGE_ROWS_MAX}", file=sys.stderr)
        return 2
    out = Path(args.out or settings.data_dir / "snapshot")
    use_ray = args.ray or bool(os.environ.get("RAY_ADDRESS"))
    # RAY_ADDRESS (set by `ray job submit`), else the cluster `posray up` started, else a private one.
    ray_address = (os.environ.get("RAY_ADDRESS") or settings.ray_address or "local") if use_ray else None
    try:
        with Progress("snapshot", unit="ledger rows") as tick:
            report = export_snapshot(dsn, out, page_rows=args.page_rows, ray_address=ray_address, progress=tick)
    except BlockingIOError as e:
        print(f"snapshot: {e}", file=sys.stderr)
        return 2
    rate = report.documents / report.seconds if report.seconds else 0.0
    print(f"snapshot {out}: +{report.documents:,} documents, +{report.items:,} items from "
          f"{len(report.exported)} shards in {report.seconds:.2f} s ({rate:,.0f} documents/s)"
          + (f"; removed {report.removed_files} files of an interrupted run" if report.removed_files else ""))
    for shard, error in sorted(report.failed.items()):
        print(f"snapshot: shard {shard} failed, its watermark did not move: {error}", file=sys.stderr)
    return 1 if report.failed else 0


def export_snapshot(dsn: str, snapshot_dir: Path, *, page_rows: int = 50_000, ray_address: str | None = None,
                    progress: Callable[[int, int], None] | None = None) -> SnapshotReport:
    """Export every shard's rows beyond the watermark; advance it for the shards that succeeded.

    With `ray_address` ("local" for a private instance) shards are exported as Ray tasks.
    `progress` is called with (ledger rows exported so far, rows to export): after each page,
    or after each shard with Ray.

    Raises:
        BlockingIOError: another export holds the snapshot folder's lock.
    """
    started = time.perf_counter()
    snapshot_dir = Path(snapshot_dir)
    snapshot_dir.mkdir(parents=True, exist_ok=True)
    report = SnapshotReport()
    with _exclusive(snapshot_dir):
        marks = read_watermark(snapshot_dir)
        report.removed_files = _remove_unfinished(snapshot_dir, marks)
        heads = asyncio.run(_last_seqs(dsn))
        todo = [(s, marks.get(s, 0), last) for s, last in sorted(heads.items()) if last > marks.get(s, 0)]
        tracker = _Tracker(sum(upto - after for _, after, upto in todo), progress)
        if ray_address and todo:
            report.exported, report.failed = _export_with_ray(ray_address, dsn, snapshot_dir, todo, page_rows, tracker)
        else:
            report.exported, report.failed = _export_here(dsn, snapshot_dir, todo, page_rows, tracker)
        if report.exported:
            write_watermark(snapshot_dir, marks | {e.shard: e.last_seq for e in report.exported})
    report.seconds = time.perf_counter() - started
    return report


class _Tracker:
    """Ledger rows exported so far over all shards, passed on to a progress callback."""

    def __init__(self, total: int, progress: Callable[[int, int], None] | None):
        self.total, self.done, self._progress = total, 0, progress

    def add(self, rows: int) -> None:
        self.done += rows
        if self._progress is not None:
            self._progress(self.done, self.total)


def export_shard(dsn: str, snapshot_dir: str, shard: int, after_seq: int, upto_seq: int, page_rows: int,
                 on_page: Callable[[int], None] | None = None) -> ShardExported:
    """Write the rows after_seq < seq <= upto_seq of one shard (runs locally or as a Ray task).

    File names depend only on the ledger page, so a retried task overwrites what it wrote.
    `on_page` is called with the ledger rows (sequence numbers) each page covered.
    """
    return asyncio.run(_export_shard(dsn, Path(snapshot_dir), shard, after_seq, upto_seq, page_rows, on_page))


async def _export_shard(dsn, snapshot_dir: Path, shard, after_seq, upto_seq, page_rows, on_page=None) -> ShardExported:
    started = time.perf_counter()
    documents = items = files = 0
    folders: set[Path] = set()
    pool = await create_pool(dsn, size_max=1)
    try:
        source = PgSnapshotSource(pool)
        while after_seq < upto_seq:
            page = await source.page(shard, after_seq, upto_seq, page_rows)
            if not len(page):
                raise RuntimeError(f"shard {shard}: no rows after {after_seq} though batches reach {upto_seq}")
            docs, lines = decode_page(page)
            for table, frame in (("documents", docs), ("items", lines)):
                for path in _write_parts(snapshot_dir, table, shard, page.seq[0], page.seq[-1], frame):
                    folders.add(path.parent)
                    files += 1
            if on_page is not None:
                on_page(page.seq[-1] - after_seq)
            documents, items, after_seq = documents + docs.height, items + lines.height, page.seq[-1]
    finally:
        await pool.close()
    for folder in folders:
        _fsync_folder(folder)
    return ShardExported(shard, after_seq, documents, items, files, time.perf_counter() - started)


def _write_parts(snapshot_dir: Path, table: str, shard: int, first_seq: int, last_seq: int, frame: pl.DataFrame) -> list[Path]:
    written = []
    for (day,), part in frame.partition_by("issued_local_date", as_dict=True, maintain_order=True).items():
        path = part_path(snapshot_dir, table, day.isoformat(), shard, first_seq, last_seq)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        part.write_parquet(tmp, compression="zstd", statistics=True)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        written.append(path)
    return written


def _export_here(dsn, snapshot_dir, todo, page_rows, tracker: _Tracker):
    exported, failed = [], {}
    for shard, after_seq, upto_seq in todo:
        try:
            exported.append(export_shard(dsn, str(snapshot_dir), shard, after_seq, upto_seq, page_rows, tracker.add))
        except Exception as e:  # one shard's failure must not stop the others' progress
            failed[shard] = f"{type(e).__name__}: {e}"
    return exported, failed


def _export_with_ray(address, dsn, snapshot_dir, todo, page_rows, tracker: _Tracker):
    ray_auth.require_token_auth()
    import ray

    connected_here = not ray.is_initialized()
    if connected_here:
        ray_auth.for_local_ray(address)
        ray.init(address=address, log_to_driver=False)
    try:
        task = ray.remote(num_cpus=1, max_retries=2)(export_shard)
        pending = {task.remote(dsn, str(snapshot_dir), s, a, u, page_rows): (s, u - a) for s, a, u in todo}
        exported, failed = [], {}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            shard, rows = pending.pop(done[0])
            try:
                exported.append(ray.get(done[0]))
            except Exception as e:
                failed[shard] = f"{type(e).__name__}: {e}"
            tracker.add(rows)
        return exported, failed
    finally:
        if connected_here:
            ray.shutdown()


async def _last_seqs(dsn: str) -> dict[int, int]:
    pool = await create_pool(dsn, size_max=1)
    try:
        return await PgSnapshotSource(pool).last_seqs()
    finally:
        await pool.close()


def _remove_unfinished(snapshot_dir: Path, marks: dict[int, int]) -> int:
    """Delete part files beyond the watermark and temporary files: leftovers of a crash."""
    removed = 0
    for table in TABLES:
        for shard, first_seq, path in part_files(snapshot_dir, table):
            if first_seq > marks.get(shard, 0):
                path.unlink()
                removed += 1
        for tmp in (snapshot_dir / table).glob("day=*/shard=*/*.tmp"):
            tmp.unlink()
    return removed


@contextmanager
def _exclusive(snapshot_dir: Path):
    with open(snapshot_dir / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BlockingIOError(f"another snapshot export is running on {snapshot_dir}") from None
        yield


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


if __name__ == "__main__":
    sys.exit(main())
