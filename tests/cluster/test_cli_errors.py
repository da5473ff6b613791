"""Every `posray` subcommand, run with no set-up, with its servers down and with broken files:
each failure is one line on stderr saying what to do, and never a traceback.

The commands come from the parser itself, so a new subcommand without an entry in ARGUMENTS
fails the test instead of escaping it. Real processes, real (dead) ports; nothing is mocked.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from posray.adapters.keyfile import create_seed
from tooling.cli import build_parser
from tooling.embedded import free_port

pytestmark = pytest.mark.cluster
POSRAY = str(Path(sys.executable).with_name("posray"))
# Arguments each leaf command needs to get past argparse ({csv}: a small terminals file, {tmp}:
# the test's folder).
ARGUMENTS = {
    "up": [], "down": [], "scale": [], "status": [], "token": [], "demo": [], "serve-config": [],
    "verify-receipt": ["C0DE"], "audit": [], "bench": ["--documents", "10"],
    "bench-suite": ["--duration-s", "1"],
    "terminals add": ["T-1", "--merchant", "m-1"], "terminals import": ["{csv}"],
    "terminals revoke": ["T-1"], "terminals count": [],
    "merchants token": ["m-1"], "merchants revoke-tokens": ["m-1"],
    "capture status": [], "capture release": ["3"], "capture rebind": ["--yes"],
    "lottery draw": ["--from", "2024-01-01", "--to", "2024-01-02", "--winners", "1"],
    "analytics generate": ["--documents", "10"], "analytics snapshot": [], "analytics fiscal": [],
    "analytics retail": [], "analytics demand": [], "analytics integrity": [],
    "bench-ledger-size": ["--sizes", "1000"], "tiles export": ["{tmp}/tiles"], "ledger detach": ["--before", "2024-01-01", "--dry-run"],
    "witness init": ["{tmp}/witness", "--name", "witness.example/1"], "witness key": ["{tmp}/no-witness"],
    "witness add-log": ["{tmp}/no-witness", "log.example/log+01234567+AAAA", "--origin", "log.example/log/0"],
    "witness serve": ["{tmp}/no-witness"],
}
# Commands that build everything they use themselves (their own servers and Ray, or generated
# data): no set-up of the operator's can be missing or wrong for them.
SELF_CONTAINED = {"faults", "analytics bench"}
# Run last and alone: `up` and `down` change the data folder the other commands read.
LAST = ("up", "down")


def leaf_commands(parser: argparse.ArgumentParser, prefix: str = "") -> list[str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return [leaf for name, sub in action.choices.items()
                    for leaf in leaf_commands(sub, f"{prefix} {name}".strip())]
    return [prefix]


def test_every_subcommand_is_covered():
    assert set(leaf_commands(build_parser())) == set(ARGUMENTS) | SELF_CONTAINED


def _dead_state(data_dir: Path) -> None:
    """A data folder whose recorded servers (and Ray) no longer answer."""
    create_seed(data_dir / "keys" / "operator.seed")
    (data_dir / "state.json").write_text(json.dumps({
        "redis_url": f"redis://127.0.0.1:{free_port()}/0",
        "pg_dsn": f"postgresql://postgres@127.0.0.1:{free_port()}/posray",
        "ray_address": f"127.0.0.1:{free_port()}", "started_ray": True}))


def _broken_files(data_dir: Path, home: Path) -> None:
    """The pointer names a folder with a corrupt state file and a seed others can read."""
    create_seed(data_dir / "keys" / "operator.seed")
    (data_dir / "keys" / "operator.seed").chmod(0o644)
    (data_dir / "state.json").write_text("{ not json")
    pointer = home / ".config" / "posray" / "current"
    pointer.parent.mkdir(parents=True)
    pointer.write_text(str(data_dir))


@pytest.fixture(params=["nothing", "servers-down", "broken-files"])
def set_up(request, tmp_path):
    """(environment, working folder) of one wrong set-up; HOME is always a fresh folder."""
    home, cwd, data_dir = tmp_path / "home", tmp_path / "cwd", tmp_path / "data"
    for folder in (home, cwd, data_dir):
        folder.mkdir()
    (tmp_path / "terminals.csv").write_text("T-1,m-1\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POSRAY_", "RAY_", "XDG_"))}
    # A port nobody listens on: nothing may reach a colleague's posray on 8000.
    env.update(HOME=str(home), POSRAY_HTTP_PORT=str(free_port()),
               POSRAY_DASHBOARD_PORT=str(free_port()))
    if request.param == "servers-down":
        _dead_state(data_dir)
        env.update(POSRAY_DATA_DIR=str(data_dir), POSRAY_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
                   POSRAY_PG_DSN=f"postgresql://postgres@127.0.0.1:{free_port()}/posray")
    elif request.param == "broken-files":
        _broken_files(data_dir, home)
    return env, cwd, tmp_path


def _run(command: str, env: dict, cwd: Path, tmp_path: Path):
    if command == "up" and "POSRAY_PG_DSN" not in env:
        return command, None  # up with nothing configured starts everything: test_cli.py's case
    args = [a.format(csv=tmp_path / "terminals.csv", tmp=tmp_path) for a in ARGUMENTS[command]]
    result = subprocess.run([POSRAY, *command.split(), *args], env=env, cwd=cwd,
                            capture_output=True, text=True, timeout=180)
    return command, result


def _problems(command: str, result) -> list[str]:
    text = result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    found = []
    if "Traceback" in text:
        found.append(f"`posray {command}` printed a traceback:\n{text[-1500:]}")
    elif result.returncode != 0 and len(lines) != 1:
        found.append(f"`posray {command}` failed ({result.returncode}) without exactly one line "
                     f"on stderr:\n{result.stderr[-1500:]}")
    return found


def test_no_subcommand_ends_in_a_traceback(set_up):
    env, cwd, tmp_path = set_up
    first = [c for c in ARGUMENTS if c not in LAST]
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda c: _run(c, env, cwd, tmp_path), first))
    results += [_run(c, env, cwd, tmp_path) for c in LAST]
    problems = [p for command, result in results if result is not None for p in _problems(command, result)]
    assert not problems, "\n\n".join(problems)
    failed = {command for command, result in results if result is not None and result.returncode != 0}
    # Commands that need a deployment must fail (not silently succeed) when it is missing or dead.
    assert {"status", "terminals count", "merchants token", "scale"} <= failed


# Fencing commands of the operator and the audit's reconciliation: they need both stores.
CAPTURE_COMMANDS = (["capture", "status"], ["capture", "status", "--json"], ["capture", "release", "3"],
                    ["capture", "rebind", "--yes"], ["capture", "rebind"], ["audit", "--reconcile"])


def test_capture_commands_fail_in_one_line_without_a_deployment(set_up):
    env, cwd, _ = set_up

    def run(words: list[str]):
        return words, subprocess.run([POSRAY, *words], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(run, CAPTURE_COMMANDS))
    problems = [p for words, result in results for p in _problems(" ".join(words), result)]
    assert not problems, "\n\n".join(problems)
    # None of them can succeed without a capture store and a ledger that answer.
    assert all(result.returncode != 0 for _, result in results), [(w, r.returncode) for w, r in results]
    # Without --yes, rebind refuses before touching anything (or the set-up is named first).
    assert dict((" ".join(w), r.returncode) for w, r in results)["capture rebind"] == 2
