"""In-memory tiles: TileDirectory's semantics over a dict, for unit tests."""

from __future__ import annotations


class MemoryTiles:
    """Resources by path; `puts` counts every write (a full tile must be written once)."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.puts: list[str] = []

    def get(self, path: str) -> bytes | None:
        return self.files.get(path)

    def exists(self, path: str) -> bool:
        return path in self.files

    def put(self, path: str, data: bytes) -> None:
        self.files[path] = bytes(data)
        self.puts.append(path)
