"""A log's C2SP tiles as files under a directory, as a static file server, bucket or CDN serves them.

Each resource is written to a temporary file in its own directory, flushed to disk, then renamed
over its path, so a reader (or a server) sees the whole old file or the whole new one, never a
part. Paths are the tlog-tiles paths below the tiles' base: `<shard>/checkpoint`, `<shard>/tile/...`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from posray.domain.errors import Unavailable


class TileDirectory:
    """The tiles of every exported shard under `root`."""

    def __init__(self, root: Path):
        self._root = Path(root)

    def _file(self, path: str) -> Path:
        if path.startswith("/") or ".." in path.split("/"):
            raise ValueError(f"not a path below the tiles' base: {path!r}")
        return self._root / path

    def get(self, path: str) -> bytes | None:
        try:
            return self._file(path).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            raise Unavailable(f"cannot read {self._file(path)}: {e}") from e

    def exists(self, path: str) -> bool:
        return self._file(path).is_file()

    def put(self, path: str, data: bytes) -> None:
        target = self._file(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(temporary, 0o644)  # served to anyone, like the public tiles they are
            os.replace(temporary, target)
        except BaseException:
            with _quietly():
                os.unlink(temporary)
            raise


class _quietly:  # noqa: N801 - a tiny context manager: ignore a failed cleanup
    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        return kind is not None and issubclass(kind, OSError)
