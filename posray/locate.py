"""Where the `posray` command finds its deployment's data folder, from any directory.

`ray status` finds the running cluster wherever it is typed; posray does the same with a
per-user pointer that `posray up` writes: $XDG_CONFIG_HOME/posray/current (default
~/.config/posray/current) holds the absolute path of the last data folder brought up.
Precedence: --data-dir < POSRAY_DATA_DIR < ./.posray when it holds a deployment < the pointer <
./.posray. The pointer only names a folder: the keys and state stay in the data folder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from posray import ray_auth
from posray.domain.errors import SetupError
from posray.settings import Settings

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


def _ray_env(settings: Settings) -> None:
    """Ray reads RAY_AUTH_MODE when it is imported: set it (and the token file) before any `import ray`."""
    ray_auth.use_deployment_token(settings.data_dir)


def load_state(data_dir: Path) -> dict:
    """What `posray up` recorded in data_dir ({} when it never ran there)."""
    state_path = data_dir / STATE_FILE
    if not state_path.exists():
        return {}
    try:
        return json.loads(state_path.read_text())
    except ValueError:
        raise NoDeployment(f"{state_path} is not valid JSON: run `posray down`, then `posray up`") from None


def deployment_settings(args) -> Settings:
    """Defaults < POSRAY_* environment < what `posray up` recorded < command-line flags.

    What every command and job runs with. The data folder is found from any directory (above);
    the process is pointed at
    the deployment's Ray token, so that every Ray driver a command starts can connect.
    """
    base = Settings.from_env()
    data_dir = find_data_dir(getattr(args, "data_dir", None))
    base = base.replace(data_dir=data_dir)
    _ray_env(base)
    state = load_state(data_dir)
    if state:
        known = ("redis_url", "pg_dsn", "ray_address")
        base = base.replace(**{k: state[k] for k in known if state.get(k) and getattr(base, k) is None})
        # What `posray up` deployed with wins over defaults (not over explicit POSRAY_* variables).
        fixed = {k: v for k, v in state.get("deployed", {}).items()
                 if f"POSRAY_{k.upper()}" not in os.environ}
        base = base.replace(**fixed)
    return base
