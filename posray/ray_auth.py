"""The Ray token of one posray deployment: created by `posray up`, used by every Ray process it starts.

Ray 2.60 with `RAY_AUTH_MODE=token` refuses to start or connect without a token, which it takes
from RAY_AUTH_TOKEN, else the file named by RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token. A fresh
machine has none of them, so posray keeps its own token file in the data folder (mode 600, in a
0700 folder) and points RAY_AUTH_TOKEN_PATH at it: the token itself never enters an environment
variable, a command line or any output. Nothing here imports ray.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

TOKEN_BYTES = 32  # 256 bits, as `ray get-auth-token --generate` makes


def token_path(data_dir: Path) -> Path:
    """Where the deployment of data_dir keeps its Ray token."""
    return Path(data_dir).resolve() / "ray" / "auth_token"


def create_token(data_dir: Path) -> Path:
    """Create the deployment's token file if it does not exist yet; return its path.

    O_EXCL with mode 0600 at creation: the token is never readable by others, not even briefly.
    """
    path = token_path(data_dir)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(TOKEN_BYTES))
    return path


def auth_env(data_dir: Path) -> dict[str, str]:
    """The variables a Ray process of this deployment needs (token auth, its token file if any)."""
    env = {"RAY_AUTH_MODE": "token"}
    path = token_path(data_dir)
    if path.is_file():
        env["RAY_AUTH_TOKEN_PATH"] = str(path)
    return env


def use_deployment_token(data_dir: Path) -> None:
    """Point this process (and its children) at the deployment's token, before `import ray`.

    A deployment that has its own token wins over a RAY_AUTH_TOKEN inherited from the shell,
    which Ray would otherwise prefer; without one, the shell's settings (or ~/.ray/auth_token)
    stay in force, as for a Ray cluster posray joined.
    """
    env = auth_env(data_dir)
    require_token_auth()
    if "RAY_AUTH_TOKEN_PATH" in env:
        os.environ.pop("RAY_AUTH_TOKEN", None)
        os.environ["RAY_AUTH_TOKEN_PATH"] = env["RAY_AUTH_TOKEN_PATH"]


def for_local_ray(address: str | None, data_dir: Path | None = None) -> None:
    """Before `ray.init(address="local")`: give the private Ray this process starts a token of
    its own (in `data_dir`, else in a fresh private folder), so Ray never writes ~/.ray/auth_token.

    A Ray that is joined (any other address) keeps the caller's token settings.
    """
    if address not in (None, "local"):
        return
    if data_dir is None:
        import tempfile

        data_dir = Path(tempfile.mkdtemp(prefix="posray-local-ray-"))
    create_token(data_dir)
    use_deployment_token(data_dir)


def require_token_auth() -> None:
    """posray's Ray runs with token authentication: say so before this process first imports ray
    (Ray reads RAY_AUTH_MODE once, at import). An explicit RAY_AUTH_MODE in the environment wins."""
    os.environ.setdefault("RAY_AUTH_MODE", "token")
