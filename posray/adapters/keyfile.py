"""The operator's secret seed on disk: created once, readable by its owner only, never logged."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from posray.domain.errors import SetupError
from posray.domain.keys import SEED_BYTES, OperatorKeys


class KeyFileError(SetupError, RuntimeError):
    """The seed file is missing, malformed or readable by others."""


def create_seed(path: Path) -> bool:
    """Create a fresh random seed at `path` (mode 0600, folder 0700) unless one exists.

    Returns:
        True when a new seed was written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(SEED_BYTES) + "\n")
    return True


def load_keys(path: Path) -> OperatorKeys:
    """Read the seed and derive the operator's keys.

    Raises:
        KeyFileError: the file is missing, malformed, or group/world-accessible.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
        text = path.read_text().strip()
    except FileNotFoundError:
        raise KeyFileError(f"operator seed file {path} does not exist: run `posray up` (it creates one), "
                           "or point POSRAY_DATA_DIR or POSRAY_OPERATOR_SEED_FILE at the deployment's") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"operator seed file {path} must not be accessible to group or others (chmod 600)")
    try:
        seed = bytes.fromhex(text)
    except ValueError:
        raise KeyFileError(f"operator seed file {path} is not hex") from None
    if len(seed) != SEED_BYTES:
        raise KeyFileError(f"operator seed file {path} must hold {SEED_BYTES} bytes")
    return OperatorKeys.from_seed(seed)
