"""Columnar snapshots on disk: where the Parquet parts go, the watermark, and lazy scans.

The layout (docs/analytics.md): <dir>/<table>/day=YYYY-MM-DD/shard=N/part-<first>-<last>.parquet,
and <dir>/_watermark.json with, per shard, the last ledger sequence the snapshot holds. Scans
are limited to rows at or below the watermark. The tables' schemas and the pure transformations
are posray.analytics.snapshot; the export from the ledger is jobs/snapshot.py.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from posray.analytics.snapshot import SCHEMAS, TABLES, restrict
from posray.domain.errors import Unavailable

WATERMARK_FILE = "_watermark.json"
WATERMARK_FORMAT = 1
_PART = re.compile(r"^part-(\d{12})-(\d{12})\.parquet$")


def part_path(snapshot_dir: Path, table: str, day, shard: int, first_seq: int, last_seq: int) -> Path:
    """Where the rows of one ledger page and one day go."""
    return Path(snapshot_dir) / table / f"day={day}" / f"shard={shard}" / f"part-{first_seq:012d}-{last_seq:012d}.parquet"


def part_files(snapshot_dir: Path, table: str) -> list[tuple[int, int, Path]]:
    """(shard, first_seq, path) of every part file of `table`."""
    found = []
    for path in (Path(snapshot_dir) / table).glob("day=*/shard=*/part-*.parquet"):
        match = _PART.match(path.name)
        if match:
            found.append((int(path.parent.name.split("=", 1)[1]), int(match.group(1)), path))
    return found


def read_watermark(snapshot_dir: Path) -> dict[int, int]:
    """Per shard, the last ledger sequence the snapshot holds (empty for a new snapshot)."""
    path = Path(snapshot_dir) / WATERMARK_FILE
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    if data.get("format") != WATERMARK_FORMAT:
        raise ValueError(f"{path}: unknown watermark format {data.get('format')!r}")
    return {int(shard): int(seq) for shard, seq in data["shards"].items()}


def write_watermark(snapshot_dir: Path, shards: dict[int, int]) -> None:
    """Replace the watermark atomically (write, fsync, rename, fsync the folder)."""
    folder = Path(snapshot_dir)
    tmp = folder / (WATERMARK_FILE + ".tmp")
    body = {
        "format": WATERMARK_FORMAT,
        "updated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "shards": {str(s): seq for s, seq in sorted(shards.items())},
    }
    with open(tmp, "w") as handle:
        json.dump(body, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, folder / WATERMARK_FILE)
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def scan_table(snapshot_dir: Path, table: str) -> pl.LazyFrame:
    """A lazy scan of one snapshot table, limited to rows at or below the watermark."""
    if table not in SCHEMAS:
        raise ValueError(f"unknown snapshot table {table!r}; expected one of {', '.join(TABLES)}")
    marks = read_watermark(snapshot_dir)
    if not marks or not part_files(snapshot_dir, table):
        return pl.LazyFrame(schema=SCHEMAS[table])
    frame = pl.scan_parquet(
        str(Path(snapshot_dir) / table / "day=*" / "shard=*" / "part-*.parquet"),
        hive_partitioning=False, schema=SCHEMAS[table],
    )
    limit = pl.col("shard").replace_strict(marks, default=-1, return_dtype=pl.Int64)
    return frame.filter(pl.col("seq") <= limit)


def partitions(snapshot_dir: Path, count: int) -> list[list[str]]:
    """The snapshot's days (YYYY-MM-DD) in at most `count` runs of consecutive days of about
    equal size on disk (documents and items files)."""
    sizes: dict[str, int] = {}
    for table in SCHEMAS:
        for _, _, path in part_files(snapshot_dir, table):
            day = path.parent.parent.name.split("=", 1)[1]
            sizes[day] = sizes.get(day, 0) + path.stat().st_size
    days, total = sorted(sizes), sum(sizes.values())
    groups, current, filled = [], [], 0
    for day in days:
        current.append(day)
        filled += sizes[day]
        if filled >= total * (len(groups) + 1) / max(count, 1) and len(groups) < count - 1:
            groups.append(current)
            current = []
    return groups + ([current] if current else [])


def scan_partition(snapshot_dir: Path, table: str, days: list[str], marks: dict[int, int] | None = None,
                   since=None, until=None, merchants=None) -> pl.LazyFrame:
    """A lazy scan of `table`'s files of `days`, rows at or below the watermark (as scan_table)."""
    marks = read_watermark(snapshot_dir) if marks is None else marks
    paths = [str(Path(snapshot_dir) / table / f"day={day}" / "shard=*" / "part-*.parquet") for day in days]
    frame = pl.scan_parquet(paths, hive_partitioning=False, schema=SCHEMAS[table])
    limit = pl.col("shard").replace_strict(marks, default=-1, return_dtype=pl.Int64)
    return restrict(frame.filter(pl.col("seq") <= limit), since, until, merchants)


class SnapshotIndex:
    """The snapshot's `documents` table as an index of receipts that survives retention: by terminal
    and counter, the (shard, seq) of each recorded document (rows at or below the watermark)."""

    def __init__(self, snapshot_dir: Path):
        self._dir = Path(snapshot_dir)

    def find(self, terminal_id: str, counter: int) -> list[tuple[int, int]]:
        try:
            frame = (scan_table(self._dir, "documents")
                     .filter((pl.col("terminal_id") == terminal_id) & (pl.col("counter") == counter))
                     .select("shard", "seq").collect())
        except (OSError, ValueError, pl.exceptions.PolarsError) as e:
            raise Unavailable(f"cannot read the Parquet snapshot {self._dir}: {e}") from e
        return [(int(shard), int(seq)) for shard, seq in frame.iter_rows()]
