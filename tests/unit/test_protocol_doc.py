"""docs/protocol.md tells the truth: every number of its worked example is recomputed here.

The doc tags its example blocks with `<!-- example:NAME -->` on the line before the fence;
these tests read those blocks and check them against posray's own code.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import pytest

import posray
from deployments.api.errors import status_of
from posray.adapters.pg_terminals import TerminalRow
from posray.domain.codes import make_code, normalize_code
from posray.domain.errors import InvalidDocument
from posray.domain.keys import OperatorKeys, fiscal_sign
from posray.domain.terminal_mac import signed_bytes
from posray.domain.transaction import (
    Rules,
    Submission,
    canonical_document,
    check_document,
    document_hash,
    half_up_div,
    issued_at_ms,
    shard_of,
)
from posray.services import intake as intake_module
from deployments.api.transactions import receipt_json
from posray.services.capture import Accepted
from posray.wire import Document, Item, Payment, VatLine, validate_document

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
DEFAULT_RULES = Rules(vat_rates_bp=frozenset({0, 500, 1000, 1300, 2000}))
EXAMPLE_OPERATOR_SEED = bytes(32)
EXAMPLE_SHARD_COUNT = 8
EXAMPLE_BASE_URL = "https://receipts.example.com"
_BLOCK = re.compile(r"<!-- example:([\w-]+) -->\s*\n```[\w-]*\n(.*?)\n```", re.DOTALL)


def _blocks() -> dict[str, str]:
    found: dict[str, str] = {}
    for name, text in _BLOCK.findall(DOC.read_text(encoding="utf-8")):
        assert name not in found, f"example:{name} appears twice"
        found[name] = text
    return found


@pytest.fixture(scope="module")
def blocks() -> dict[str, str]:
    return _blocks()


@pytest.fixture(scope="module")
def key_hex(blocks) -> str:
    return blocks["key"].strip()


@pytest.fixture(scope="module")
def body(blocks) -> dict:
    return json.loads(blocks["body"])


def _near_issued_ms(document: dict) -> int:
    return issued_at_ms(document["issued_at"]) + 60_000


class TestWorkedExample:
    def test_the_key_is_32_bytes_in_lowercase_hex(self, key_hex):
        assert re.fullmatch(r"[0-9a-f]{64}", key_hex)

    def test_the_signed_bytes_are_the_canonical_document_without_its_mac(self, blocks, body):
        assert signed_bytes(body) == blocks["signed-bytes"].encode("utf-8")

    def test_the_signed_bytes_length_and_digest_are_as_printed(self, blocks):
        shown = blocks["signed-bytes"].encode("utf-8")
        digest = blocks["signed-digest"]
        assert int(re.search(r"length\s+(\d+) bytes", digest).group(1)) == len(shown)
        assert re.search(r"sha256\s+([0-9a-f]{64})", digest).group(1) == hashlib.sha256(shown).hexdigest()

    def test_the_mac_shown_is_the_mac_of_the_document_under_the_key(self, blocks, key_hex, body):
        mac = blocks["mac"].strip()
        assert mac == posray.document_mac(bytes.fromhex(key_hex), body)
        assert body["mac"] == mac

    def test_the_body_passes_the_wire_checks_and_the_business_rules(self, body):
        validate_document(body)
        check_document(body, DEFAULT_RULES, _near_issued_ms(body))

    def test_the_example_has_what_the_doc_promises(self, body):
        assert (body["terminal_id"], body["counter"], body["type"], body["currency"]) == (
            "T-0001", 42, "sale", "EUR"
        )
        assert body["issued_at"].endswith("+01:00")
        assert len(body["items"]) == 3
        assert len({item["vat_rate_bp"] for item in body["items"]}) == 2
        assert any(item["qty_milli"] == 1250 for item in body["items"])
        assert sorted(p["method"] for p in body["payments"]) == ["card", "cash"]

    def test_the_edge_accepts_the_body_with_the_example_key(self, monkeypatch, key_hex, body):
        results = _run_intake(monkeypatch, bytes.fromhex(key_hex), body)
        assert isinstance(results[0], Submission)
        assert results[0].canonical == canonical_document(body)

    def test_the_curl_command_posts_the_body_to_the_single_endpoint(self, blocks):
        assert "POST" in blocks["curl"] and "/v1/transactions " in blocks["curl"]
        assert "--data-binary @doc.json" in blocks["curl"]


class TestArithmetic:
    def test_each_rounded_division_is_exact_and_rounded_half_up(self, blocks):
        divisions = re.findall(r"(\d+) × (\d+) / (\d+) = ([\d.]+)(…)? → (\d+)", blocks["arithmetic"])
        assert len(divisions) == 5
        for a, b, c, shown, cut, rounded in divisions:
            exact = Fraction(int(a) * int(b), int(c))
            if cut:
                places = len(shown.split(".")[1])
                assert math.floor(exact * 10**places) == int(shown.replace(".", ""))
            else:
                assert exact == Fraction(shown)
            assert half_up_div(int(a) * int(b), int(c)) == int(rounded)

    def test_each_sum_adds_up(self, blocks):
        sums = re.findall(r"= (\d+(?: \+ \d+)+) = (\d+)", blocks["arithmetic"])
        assert len(sums) == 3
        for terms, total in sums:
            assert sum(int(t) for t in terms.split(" + ")) == int(total)

    def test_the_worked_numbers_are_the_documents_numbers(self, blocks, body):
        text = blocks["arithmetic"]
        rounded = [int(r) for r in re.findall(r"→ (\d+)", text)]
        assert rounded == [i["amount_minor"] for i in body["items"]] + [
            v["vat_minor"] for v in body["vat"]
        ]
        for item in body["items"]:
            assert f"{item['qty_milli']} × {item['unit_price_minor']} / 1000" in text
        for line in body["vat"]:
            assert f"rate_bp {line['rate_bp']}" in text
            assert f"gross_minor = {line['gross_minor']}" in text or re.search(
                rf"gross_minor = [\d +]+ = {line['gross_minor']}\b", text
            )
        assert f"= {body['total_minor']}\n" in text


class TestResponse:
    def test_the_illustrative_response_is_exactly_what_posray_would_answer(self, blocks, body):
        shown = json.loads(blocks["response"])
        keys = OperatorKeys.from_seed(EXAMPLE_OPERATOR_SEED)
        shard = shard_of(body["terminal_id"], EXAMPLE_SHARD_COUNT)
        assert shown["shard"] == shard
        accepted_ms = issued_at_ms(shown["accepted_at"])
        digest = document_hash(canonical_document(body))
        code = make_code(keys.code, shard, shown["seq"], digest)
        sign = fiscal_sign(keys.fiscal, code, digest, accepted_ms)
        expected = Accepted(code, shard, shown["seq"], accepted_ms, sign, False)
        assert shown == receipt_json(expected, EXAMPLE_BASE_URL)
        assert normalize_code(shown["code_display"]) == shown["code"]

    def test_the_batch_example_repeats_the_response_as_a_duplicate(self, blocks):
        text = DOC.read_text(encoding="utf-8")
        batch = json.loads(re.search(r'```json\n(\{\n  "results".*?)\n```', text, re.DOTALL).group(1))
        first = json.loads(blocks["response"]) | {"duplicate": True}
        assert batch["results"][0] == first
        assert batch["results"][1]["status"] == "rejected"


class TestErrors:
    def test_the_422_example_is_what_the_rules_say_for_a_truncated_line(self, blocks, body):
        broken = json.loads(json.dumps(body))
        broken["items"][1]["amount_minor"] = 372
        with pytest.raises(InvalidDocument) as caught:
            check_document(broken, DEFAULT_RULES, _near_issued_ms(body))
        assert status_of(caught.value) == 422
        assert caught.value.to_json() == json.loads(blocks["error-422"])

    def test_the_401_example_is_what_the_edge_says_for_another_key(self, monkeypatch, blocks, body):
        results = _run_intake(monkeypatch, bytes(32), body)
        assert status_of(results[0]) == 401
        assert results[0].to_json() == json.loads(blocks["error-401"])


class TestFieldTables:
    @pytest.mark.parametrize("model", [Document, Item, Payment, VatLine])
    def test_every_wire_field_is_documented(self, model):
        text = DOC.read_text(encoding="utf-8")
        for name in model.model_fields:
            assert f"| `{name}` |" in text, f"{model.__name__}.{name} is not in a field table"


class TestReferenceSnippets:
    def test_the_python_snippet_computes_the_same_bytes_and_mac(self, blocks, key_hex, body):
        namespace: dict = {"__name__": "protocol_doc_snippet"}
        exec(compile(blocks["python-mac"], "protocol.md:python-mac", "exec"), namespace)
        unsigned = {k: v for k, v in body.items() if k != "mac"}
        assert namespace["canonical"](unsigned) == blocks["signed-bytes"].encode("utf-8")
        assert namespace["document_mac"](key_hex, body) == blocks["mac"].strip()

    @pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
    def test_the_javascript_snippet_computes_the_same_bytes_and_mac(self, tmp_path, blocks, key_hex, body):
        harness = (
            "\nconst [keyHex, doc] = JSON.parse(require('fs').readFileSync(0, 'utf8'));\n"
            "const { mac, ...unsigned } = doc;\n"
            "process.stdout.write(canonicalize(unsigned) + '\\n' + documentMac(keyHex, doc));\n"
        )
        script = tmp_path / "mac.js"
        script.write_text(blocks["js-mac"] + harness, encoding="utf-8")
        done = subprocess.run(
            [shutil.which("node"), str(script)],
            input=json.dumps([key_hex, body]).encode(),
            capture_output=True,
            timeout=30,
            check=True,
        )
        canonical, mac = done.stdout.decode("utf-8").rsplit("\n", 1)
        assert canonical.encode("utf-8") == blocks["signed-bytes"].encode("utf-8")
        assert mac == blocks["mac"].strip()


class _OneTerminal:
    """A terminal directory that knows T-0001 with the given key."""

    def __init__(self, key: bytes):
        self._key = key

    async def resolve(self, terminal_ids: set[str]) -> dict:
        row = TerminalRow("T-0001", "M-0001", 1, True, 1)
        return {tid: (row, self._key) if tid == "T-0001" else None for tid in terminal_ids}


def _run_intake(monkeypatch, key: bytes, document: dict) -> list:
    now_s = _near_issued_ms(document) / 1000
    monkeypatch.setattr(intake_module, "time", SimpleNamespace(time=lambda: now_s))
    checker = intake_module.Intake(DEFAULT_RULES, _OneTerminal(key), EXAMPLE_SHARD_COUNT)
    return asyncio.run(checker.check([document]))
