"""A witness's own folder: its key (mode 600), its name, the logs it witnesses, its state.

    <dir>/witness.seed   32 random bytes, hex, mode 600 (the folder 700); never printed
    <dir>/witness.json   {"name": ...}: the witness's key name (its key ID depends on it)
    <dir>/logs.txt       the logs it witnesses: "<origin> <log verifier key>" per line
    <dir>/state.json     per origin, the latest checkpoint it cosigned (size, root, note)

The state is rewritten whole on every change: written aside, flushed and fsynced, renamed over
the old file, and the folder fsynced, so after a crash the file is the old state or the new one,
and a witness that answered 200 has its new state on disk.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
import tempfile
from pathlib import Path

from posray.domain.errors import SetupError
from posray.domain.note import SEED_BYTES
from posray.domain.witness import LogState

SEED_FILE, NAME_FILE, LOGS_FILE, STATE_FILE = "witness.seed", "witness.json", "logs.txt", "state.json"


class WitnessFolderError(SetupError, RuntimeError):
    """The witness folder is missing, malformed or its key is exposed."""


class WitnessFiles:
    """The files of one witness under `root`."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def create(self, name: str) -> bool:
        """Create the folder (700), a fresh seed (600) and the name file unless a seed exists; True if new."""
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        try:
            fd = os.open(self.root / SEED_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(SEED_BYTES) + "\n")
            out.flush()
            os.fsync(out.fileno())
        _write_atomically(self.root / NAME_FILE, json.dumps({"name": name}).encode() + b"\n", 0o644)
        return True

    def identity(self) -> tuple[str, bytes]:
        """(name, seed) of the witness.

        Raises:
            WitnessFolderError: no witness here, or its seed is readable by others.
        """
        path = self.root / SEED_FILE
        try:
            mode = path.stat().st_mode
            seed = bytes.fromhex(path.read_text().strip())
            name = json.loads((self.root / NAME_FILE).read_text())["name"]
        except FileNotFoundError:
            raise WitnessFolderError(f"no witness in {self.root}: run `posray witness init {self.root} "
                                     "--name NAME` first") from None
        except (ValueError, KeyError) as e:
            raise WitnessFolderError(f"the witness files in {self.root} are malformed: {e}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise WitnessFolderError(f"{path} must not be accessible to group or others (chmod 600)")
        if len(seed) != SEED_BYTES:
            raise WitnessFolderError(f"{path} must hold {SEED_BYTES} bytes")
        return name, seed

    def logs(self) -> list[tuple[str, str]]:
        """(origin, verifier key) of each log witnessed, as logs.txt lists them."""
        path = self.root / LOGS_FILE
        if not path.exists():
            return []
        out = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            parts = line.split()
            if len(parts) != 2:
                raise WitnessFolderError(f"{path}:{number}: expected '<origin> <verifier key>'")
            out.append((parts[0], parts[1]))
        return out

    def add_logs(self, entries: list[tuple[str, str]]) -> int:
        """Add (origin, verifier key) lines not listed yet; return how many were added."""
        known = set(self.logs())
        new = [e for e in dict.fromkeys(entries) if e not in known]
        if new:
            old = (self.root / LOGS_FILE).read_bytes() if (self.root / LOGS_FILE).exists() else b""
            text = "".join(f"{origin} {key}\n" for origin, key in new).encode()
            _write_atomically(self.root / LOGS_FILE, old + text, 0o644)
        return len(new)

    def load(self) -> dict[str, LogState]:
        """The state as last saved (empty when never saved)."""
        try:
            data = json.loads((self.root / STATE_FILE).read_text())
        except FileNotFoundError:
            return {}
        except ValueError as e:
            raise WitnessFolderError(f"{self.root / STATE_FILE} is not valid JSON: {e}") from None
        return {origin: LogState(origin, v["tree_size"], base64.b64decode(v["root_hash"]), v["note"])
                for origin, v in data["logs"].items()}

    def save(self, logs: dict[str, LogState]) -> None:
        """Replace the state, durably and atomically (fsync, rename, fsync of the folder)."""
        data = {"v": 1, "logs": {origin: {"tree_size": s.tree_size,
                                          "root_hash": base64.b64encode(s.root_hash).decode(),
                                          "note": s.note} for origin, s in sorted(logs.items())}}
        _write_atomically(self.root / STATE_FILE, json.dumps(data, indent=1).encode(), 0o600)


def _write_atomically(target: Path, data: bytes, mode: int) -> None:
    fd, temporary = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    folder = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
