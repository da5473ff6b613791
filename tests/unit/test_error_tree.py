"""One error tree, statuses decided at the edge: every class of the tree maps to an HTTP answer."""

from __future__ import annotations

import ast
import builtins
import importlib
from pathlib import Path

import pytest

from deployments.api import errors as edge
from posray.domain import errors
from posray.domain.errors import PosrayError

ROOT = Path(__file__).resolve().parents[2]
# Modules that define a class of the tree outside posray/domain/errors.py (see its docstring).
DEFINING_MODULES = ("posray.settings", "posray.adapters.keyfile", "tooling.embedded.common", "posray.locate",
                    "deployments.haproxy_guard", "posray.domain.note", "posray.domain.fence", "posray.domain.tiles",
                    "posray.services.lottery", "jobs.analytics_bench", "posray.domain.witness",
                    "posray.adapters.witness_files")
# Private signals that never leave their module (caught where raised).
# Control flow inside one module, never raised out of it.
PRIVATE_SIGNALS = {("posray/services/audit.py", "_Diverged"), ("posray/services/capture.py", "_KeysLost")}
ROOT_CLASS = ("posray/domain/errors.py", "PosrayError")
BUILTIN_EXCEPTIONS = {name for name, value in vars(builtins).items()
                      if isinstance(value, type) and issubclass(value, BaseException)}


def tree() -> list[type[PosrayError]]:
    for name in DEFINING_MODULES:
        importlib.import_module(name)
    found, todo = [], [PosrayError]
    while todo:
        klass = todo.pop()
        found.append(klass)
        todo.extend(klass.__subclasses__())
    return found


class TestTheTree:
    def test_the_tree_holds_every_class_its_docstring_draws(self):
        names = {klass.__name__ for klass in tree()}
        drawn = {line.split("──")[1].split()[0] for line in errors.__doc__.splitlines() if "──" in line}
        assert drawn | {"PosrayError"} == names

    def test_no_exception_class_of_posray_lives_outside_the_tree(self):
        outside = []
        for package in ("posray", "deployments", "actors", "jobs"):
            for path in sorted((ROOT / package).rglob("*.py")):
                for node in ast.walk(ast.parse(path.read_text())):
                    if not isinstance(node, ast.ClassDef):
                        continue
                    bases = [b.id for b in node.bases if isinstance(b, ast.Name)]
                    where = (str(path.relative_to(ROOT)), node.name)
                    if bases and bases[0] in BUILTIN_EXCEPTIONS and where not in PRIVATE_SIGNALS | {ROOT_CLASS}:
                        outside.append(where)
        assert outside == []

    def test_ledger_corruption_has_three_distinct_kinds_under_one_parent(self):
        kinds = (errors.LedgerRace, errors.StreamGap, errors.AuditDivergence)
        assert all(issubclass(k, errors.LedgerCorrupted) for k in kinds)
        assert len({k.__name__ for k in kinds}) == 3


class TestStatusMapping:
    @pytest.mark.parametrize("klass", tree(), ids=lambda k: k.__name__)
    def test_every_class_of_the_tree_maps_to_a_status(self, klass):
        answer = edge.answer_of(klass)
        assert 400 <= answer.status <= 599
        assert answer.shown or answer.status == 500

    def test_every_class_of_the_core_tree_is_decided_explicitly(self):
        core = [k for k in tree() if k.__module__ == errors.__name__]
        assert [k.__name__ for k in core if k not in edge.ANSWERS] == []

    def test_no_error_carries_an_http_status_any_more(self):
        assert [k.__name__ for k in tree() if "status" in vars(k)] == []

    @pytest.mark.parametrize(("error", "status"), [
        (errors.InvalidDocument("total_minor", "x"), 422), (errors.InvalidRequest("date", "x"), 400),
        (errors.TooLarge("body", "x"), 413), (errors.AlreadyRegistered("terminal_id", "x"), 409),
        (errors.Unauthenticated("mac", "x"), 401), (errors.DocumentConflict("counter", "x"), 409),
        (errors.CodeMalformed("x"), 400), (errors.NotFound("x"), 404), (errors.Forbidden("x"), 403),
        (errors.OperatorOnly("x"), 401), (errors.RateLimited("x", 2), 429), (errors.Overloaded("x"), 503),
        (errors.Unavailable("x"), 503), (errors.NotFenced("x"), 503), (errors.ReceiptLost("x"), 410),
        (errors.StreamGap("x"), 500), (errors.LedgerConflict("x"), 500),
    ])
    def test_the_statuses_clients_know(self, error, status):
        assert edge.status_of(error) == status

    def test_retry_later_errors_carry_retry_after(self):
        status, body, headers = edge.render(errors.Overloaded("queue full", 3))
        assert (status, headers[-1]) == (503, (b"retry-after", b"3"))
        assert body == b'{"error":"overloaded","reason":"queue full","retry_after_s":3}'

    def test_an_operator_only_refusal_carries_the_bearer_challenge(self):
        status, body, headers = edge.render(errors.OperatorOnly("operator token required"))
        assert status == 401 and (b"www-authenticate", b"Bearer") in headers
        assert body == b'{"error":"unauthorized","reason":"operator token required"}'

    def test_setup_errors_are_never_shown_to_clients(self):
        from posray.adapters.keyfile import KeyFileError
        error = KeyFileError("/secret/path/seed is readable by others")
        assert not edge.shown(error)
        assert edge.failed(error, "GET", "/v1/receipts/X") == edge.INTERNAL
