"""The QR-link page checks a receipt's proof and the log's signature in a real browser.

Debian's headless Chromium loads GET /r/{code} from the running cluster. With a virtual-time
budget Chromium fast-forwards the page's timers and waits for its fetches, then --dump-dom prints
the DOM the script left: the verdict element and one <li data-step> per verification step.
Tampered inputs are genuine same-origin answers the page is pointed at with ?bundle=.
"""

from __future__ import annotations

import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pytest

from tooling.simulator import make_document

from tests.cluster.conftest import wait_until
from tests.cluster.test_end_to_end import register

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
    "--no-first-run", "--disable-background-networking", "--disable-component-update",
    "--disable-sync",
)
FINAL = {"verified", "failed", "pending"}
ALL_STEPS = {"code", "receipt", "position", "leaf", "checkpoint", "tree-head", "inclusion"}
HOSTILE_NAME = "</script><script>document.title='pwned'</script>"
UNICODE_NAME = "Brötchen « frisch » 1 €"

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                       "(apt-get install -y chromium chromium-driver)"),
]


class _PageState(HTMLParser):
    """Collects the verdict's attributes, each step's outcome and the shown verifier key."""

    def __init__(self):
        super().__init__()
        self.verdict: dict = {}
        self.steps: dict[str, bool] = {}
        self.title = ""
        self.verifier_key = ""
        self.source = ""  # where the script took the proof from: "tiles" or "bundle"
        self._text_of: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id") == "verdict":
            self.verdict = a
        elif a.get("id") == "verify":
            self.source = a.get("data-source", "")
        elif tag == "li" and "data-step" in a:
            self.steps[a["data-step"]] = a.get("data-ok") == "true"
        self._text_of = "verifier-key" if a.get("id") == "verifier-key" else "title" if tag == "title" else None

    def handle_data(self, data):
        if self._text_of == "verifier-key":
            self.verifier_key += data
        elif self._text_of == "title":
            self.title += data

    def handle_endtag(self, tag):
        self._text_of = None

    @property
    def status(self) -> str:
        return self.verdict.get("data-status", "")

    @property
    def failed(self) -> set[str]:
        return set(self.verdict.get("data-failed", "").split())


def browse(url: str, budget_ms: int = 15_000) -> _PageState:
    """Load `url` in headless Chromium and return the state the page's script reached.

    Virtual time normally lets the script finish within one load; a load that still shows
    "checking" (a slow machine) is repeated, at most three times.
    """
    for _ in range(3):
        with tempfile.TemporaryDirectory(prefix="posray-chromium-") as profile:
            out = subprocess.run(
                [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                 f"--virtual-time-budget={budget_ms}", "--dump-dom", url],
                capture_output=True, text=True, timeout=120,
            )
        assert out.returncode == 0, out.stderr[-2000:]
        state = _PageState()
        state.feed(out.stdout)
        if state.status in FINAL:
            return state
    return state


def recorded_codes(http, token, documents: int) -> list[str]:
    """Submit `documents` sales of one new terminal in one batch; wait until each is in a checkpoint."""
    terminal_id, key = register(http, token)
    items = [{"name": UNICODE_NAME, "qty_milli": 1500, "unit_price_minor": 299, "vat_rate_bp": 1000},
             {"name": HOSTILE_NAME, "qty_milli": 1000, "unit_price_minor": 1250, "vat_rate_bp": 2000}]
    docs = [make_document(terminal_id, n, key, items=items) for n in range(1, documents + 1)]
    results = http.post("/v1/transactions/batch", json={"documents": docs}).json()["results"]
    assert [r["status"] for r in results] == ["accepted"] * documents, results
    codes = [r["code"] for r in results]
    for code in codes:
        assert wait_until(lambda: http.get(f"/v1/receipts/{code}/proof").status_code == 200, timeout_s=30)
    return codes


class TestTheReceiptPage:
    def test_a_recorded_receipt_is_verified_in_the_browser(self, http, operator_token, posray_cluster):
        _, base_url = posray_cluster
        (code,) = recorded_codes(http, operator_token, 1)
        page = browse(f"{base_url}/r/{code}")
        assert page.status == "verified", page.verdict
        assert page.source == "tiles", "a recorded receipt is checked from the static tiles by default"
        assert page.steps == dict.fromkeys(ALL_STEPS, True)
        assert page.verifier_key == http.get("/.well-known/posray/log-key").json()["verifier_key"]
        assert page.title.startswith("Receipt ")  # the hostile item name did not run

    def test_the_proof_api_gives_the_same_verdict_as_the_tiles(self, http, operator_token, posray_cluster):
        _, base_url = posray_cluster
        (code,) = recorded_codes(http, operator_token, 1)
        page = browse(f"{base_url}/r/{code}?bundle={quote(f'/v1/receipts/{code}/proof', safe='')}")
        assert page.status == "verified" and page.source == "bundle"
        assert page.steps == dict.fromkeys(ALL_STEPS, True)

    def test_a_tile_base_without_tiles_is_a_failed_download_never_a_verdict(self, http, operator_token,
                                                                            posray_cluster):
        _, base_url = posray_cluster
        (code,) = recorded_codes(http, operator_token, 1)
        page = browse(f"{base_url}/r/{code}?tiles={quote('/tlog/', safe='')}")
        assert page.source == "tiles" and page.status == "verified"  # the same base, with a slash
        elsewhere = browse(f"{base_url}/r/{code}?tiles={quote('/v1/log', safe='')}")  # a checkpoint, no tiles
        assert elsewhere.status == "failed" and elsewhere.failed == {"download"}

    def test_the_code_is_checked_as_the_customer_typed_it(self, http, operator_token, posray_cluster):
        _, base_url = posray_cluster
        (code,) = recorded_codes(http, operator_token, 1)
        typed = "-".join(code[i:i + 4] for i in range(0, 20, 4)).lower()
        assert browse(f"{base_url}/r/{typed}").status == "verified"

    def test_another_receipts_proof_fails_on_the_code_and_the_leaf(self, http, operator_token, posray_cluster):
        _, base_url = posray_cluster
        mine, other = recorded_codes(http, operator_token, 2)
        bundle = quote(f"/v1/receipts/{other}/proof", safe="")
        key = quote("/.well-known/posray/log-key", safe="")
        page = browse(f"{base_url}/r/{mine}?bundle={bundle}&key={key}")
        assert page.status == "failed"
        assert {"code", "leaf", "receipt"} <= page.failed
        assert page.steps["code"] is False and page.steps["leaf"] is False
        assert page.steps["checkpoint"] and page.steps["inclusion"]  # the other proof itself is genuine

    def test_a_proof_for_a_tree_without_a_signed_checkpoint_fails_on_the_checkpoint(
        self, http, operator_token, posray_cluster
    ):
        _, base_url = posray_cluster
        code = recorded_codes(http, operator_token, 5)[0]
        latest = http.get(f"/v1/receipts/{code}/proof").json()
        unsigned = [
            size for size in range(latest["leaf_index"] + 1, latest["tree_size"])
            if http.get(f"/v1/log/{latest['shard']}/checkpoint", params={"tree_size": size}).status_code == 404
        ]
        assert unsigned, "five documents of one batch should leave tree sizes without a checkpoint"
        bundle = quote(f"/v1/receipts/{code}/proof?tree_size={unsigned[0]}", safe="")
        page = browse(f"{base_url}/r/{code}?bundle={bundle}")
        assert page.status == "failed"
        assert page.failed == {"checkpoint", "tree-head"}
        assert page.steps["inclusion"] and page.steps["leaf"]  # a true proof, but for an unsigned root

    def test_a_receipt_not_yet_in_a_checkpoint_is_reported_as_pending_after_retries(
        self, http, operator_token, posray_cluster
    ):
        from posray.domain.codes import ALPHABET, _check_char  # a well-formed code of no receipt

        _, base_url = posray_cluster
        (code,) = recorded_codes(http, operator_token, 1)
        body = code[:-2] + ALPHABET[(ALPHABET.index(code[-2]) + 1) % 32]
        bundle = quote(f"/v1/receipts/{body + _check_char(body)}/proof", safe="")
        page = browse(f"{base_url}/r/{code}?bundle={bundle}", budget_ms=60_000)
        assert page.status == "pending" and not page.steps

    def test_a_bundle_from_another_site_is_refused(self, http, operator_token, posray_cluster):
        _, base_url = posray_cluster
        (code,) = recorded_codes(http, operator_token, 1)
        page = browse(f"{base_url}/r/{code}?bundle={quote('http://203.0.113.9/proof', safe='')}")
        assert page.status == "failed" and page.failed == {"download"}
