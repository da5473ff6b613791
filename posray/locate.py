"""Where the `posray` command finds its deployment's data folder, from any directory.

`ray status` finds the running cluster wherever it is typed; posray does the same with a
per-user pointer that `posray up` writes: $XDG_CONFIG_HOME/posray/current (default
~/.config/posray/current) holds the absolute path of the last data folder brought up.
Precedence: --data-dir < POSRAY_DATA_DIR < ./.posray when it holds a deployment < the pointer <
./.posray. The pointer only names a folder: the keys and state stay in the data folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from posray.domain.errors import SetupError

DEFAULT_DATA_DIR = Path(".posray")
STATE_FILE = "state.json"


class NoDeployment(SetupError, RuntimeError):
    """The command needs a deployment (or a setting) that could not be found."""


def pointer_file(environ: Mapping[str, str] | None = None) -> Path:
    """The per-user file naming the data folder of the last `posray up`."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "posray" / "current"


def remember(data_dir: Path, environ: Mapping[str, str] | None = None) -> Path:
    """Make data_dir the folder later commands find (written atomically); return the pointer."""
    pointer = pointer_file(environ)
    pointer.parent.mkdir(parents=True, exist_ok=True)
    tmp = pointer.with_name(f".current.{os.getpid()}")
    tmp.write_text(f"{Path(data_dir).resolve()}\n")
    tmp.replace(pointer)
    return pointer


def remembered(environ: Mapping[str, str] | None = None) -> Path | None:
    """The folder the pointer names, if it names one that exists."""
    try:
        text = pointer_file(environ).read_text().strip()
    except OSError:
        return None
    return Path(text) if text and Path(text).is_dir() else None


def find_data_dir(flag: str | None, environ: Mapping[str, str] | None = None) -> Path:
    """The data folder a command works on (absolute); see the module docstring for the order."""
    env = os.environ if environ is None else environ
    if flag:
        return Path(flag).resolve()
    if env.get("POSRAY_DATA_DIR"):
        return Path(env["POSRAY_DATA_DIR"]).resolve()
    if (DEFAULT_DATA_DIR / STATE_FILE).is_file():
        return DEFAULT_DATA_DIR.resolve()
    return remembered(env) or DEFAULT_DATA_DIR.resolve()


def require(settings, *names: str) -> None:
    """Raise NoDeployment, naming the folder searched, unless every named setting is set.

    Raises:
        NoDeployment: e.g. no PostgreSQL DSN because no `posray up` ran for this data folder.
    """
    missing = [n for n in names if getattr(settings, n) is None]
    if missing:
        variables = ", ".join(f"POSRAY_{n.upper()}" for n in missing)
        raise NoDeployment(
            f"no running posray found in {settings.data_dir} (no {variables}): run `posray up`, "
            f"or point POSRAY_DATA_DIR (or --data-dir) at its data folder, or set {variables}")
