"""The `posray` command's one error handler: every failure is one line on stderr, never a traceback.

The line says what is wrong and what to do. Known errors carry their own advice; anything else
is named by its type with a hint. POSRAY_DEBUG=1 adds the traceback for developers.
Credentials in URLs are masked, because driver errors sometimes quote the DSN they were given.
"""

from __future__ import annotations

import os
import re
import sys
import traceback

# Exit codes: 2 for a set-up the operator must fix first, 1 for a failure while running.
SETUP_EXIT = 2
FAILURE_EXIT = 1
_CREDENTIALS = re.compile(r"://[^/@\s]+@")
_CONNECTION_HINT = ("check that posray is up (`posray status`) or that the configured server "
                    "answers (POSRAY_REDIS_URL, POSRAY_PG_DSN, POSRAY_RAY_ADDRESS)")


def _first_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else ""


def _is_connection_error(error: BaseException) -> bool:
    """OS-level, redis-py, asyncpg or Ray connection failures (their classes share no base)."""
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    name = type(error).__name__
    module = type(error).__module__ or ""
    return ("Connect" in name or "Timeout" in name) and module.split(".")[0] in (
        "redis", "asyncpg", "ray", "httpx", "httpcore")


def describe(error: BaseException) -> tuple[str, int]:
    """One line (what is wrong; what to do) and the exit code for an error of a command."""
    from posray.adapters.keyfile import KeyFileError
    from posray.domain.errors import PosrayError, Unavailable
    from tooling.embedded.common import EmbeddedError
    from posray.locate import NoDeployment
    from posray.settings import SettingsError

    if isinstance(error, (SettingsError, NoDeployment, KeyFileError)):
        return _first_line(error), SETUP_EXIT
    if isinstance(error, EmbeddedError):
        line = _first_line(error).replace("; tail of ", "; see the log ").rstrip(":")
        return line, FAILURE_EXIT
    if isinstance(error, Unavailable):
        return f"{_first_line(error)}; {_CONNECTION_HINT}", FAILURE_EXIT
    if isinstance(error, PosrayError):
        return _first_line(error), FAILURE_EXIT
    if _is_connection_error(error):
        return f"cannot connect ({type(error).__name__}: {_first_line(error)}); {_CONNECTION_HINT}", FAILURE_EXIT
    if isinstance(error, PermissionError):
        return f"{_first_line(error)}; run as the user who ran `posray up`, or fix the permissions", FAILURE_EXIT
    if isinstance(error, FileNotFoundError):
        return f"{_first_line(error)}; check the path (and POSRAY_DATA_DIR)", SETUP_EXIT
    return (f"unexpected {type(error).__name__}: {_first_line(error)} "
            "(POSRAY_DEBUG=1 shows where)"), FAILURE_EXIT


def report(command: str, error: BaseException) -> int:
    """Print the one line for error on stderr (traceback only with POSRAY_DEBUG=1); return the exit code."""
    line, code = describe(error)
    if os.environ.get("POSRAY_DEBUG"):
        traceback.print_exception(error, file=sys.stderr)
    print(_CREDENTIALS.sub("://<credentials>@", f"posray {command}: {line}"), file=sys.stderr)
    return code
