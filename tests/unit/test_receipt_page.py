"""The receipt page's HTML: escaped receipt text, the embedded data and the inlined verifier."""

from __future__ import annotations

import re

import orjson
import pytest

from deployments.receipt_page import PRINTED_FIELDS, render_receipt_page

HOSTILE = "</script><script>alert(1)</script><!--"


@pytest.fixture
def receipt(make_document):
    doc = make_document()
    doc["items"][0]["name"] = HOSTILE
    return {
        "code": "ABCD1234EFGH5678JKMN", "code_display": "ABCD-1234-EFGH-5678-JKMN",
        "merchant_id": "<img src=x onerror=alert(2)>",
        **{k: doc.get(k) for k in PRINTED_FIELDS},
        "shard": 3, "seq": 17, "accepted_at": "2026-11-26T09:15:00.123Z", "document_hash": "ab" * 32,
        "status": "recorded",
        "ledger": {"batch_no": 2, "leaf_index": 16, "leaf_hash": "cd" * 32},
    }


def embedded_data(html: str) -> dict:
    match = re.search(r"<script type=application/json id=receipt-data>(.*?)</script>", html, re.S)
    assert match
    return orjson.loads(match.group(1))


class TestRenderingAReceipt:
    def test_hostile_item_and_merchant_names_are_escaped(self, receipt):
        html = render_receipt_page(receipt)
        assert "alert(1)" in html and "<script>alert(1)" not in html
        assert "&lt;/script&gt;&lt;script&gt;alert(1)" in html
        assert "<img" not in html and "&lt;img src=x onerror=alert(2)&gt;" in html
        assert len(re.findall(r"<script\b", html)) == 2  # the data and the verifier, nothing injected
        assert "<!--" not in html

    def test_the_printed_fields_are_embedded_as_data_that_cannot_close_the_script(self, receipt):
        html = render_receipt_page(receipt)
        data = embedded_data(html)
        assert data == {k: receipt.get(k) for k in PRINTED_FIELDS}
        assert data["items"][0]["name"] == HOSTILE

    def test_the_page_inlines_the_in_browser_verifier(self, receipt):
        html = render_receipt_page(receipt)
        assert 'id=verdict role=status aria-live=polite data-status=checking' in html
        for needle in ('crypto.subtle.digest("SHA-256"', 'crypto.subtle.verify({ name: "Ed25519" }',
                       "/.well-known/posray/log-key", "/proof", 'params.get("bundle")'):
            assert needle in html
        assert 'data-code="ABCD1234EFGH5678JKMN"' in html and f'data-leaf-hash="{"cd" * 32}"' in html
        assert "src=" not in html.replace("&lt;img src=x", "")  # no external script, style or image

    def test_an_accepted_receipt_has_no_ledger_leaf_hash_yet(self, receipt):
        html = render_receipt_page(receipt | {"status": "accepted", "ledger": None})
        assert 'data-leaf-hash=""' in html and "being written to the ledger" in html


class TestRenderingAnError:
    def test_the_reason_is_escaped_and_no_script_is_inlined(self):
        html = render_receipt_page({"error": {"error": "NotFound", "detail": "<b>no receipt</b>"}})
        assert "Receipt not found" in html and "&lt;b&gt;no receipt&lt;/b&gt;" in html
        assert "<script" not in html


class TestContentSecurityPolicy:
    def test_the_policy_allows_exactly_the_inlined_script_and_style_by_hash(self, receipt):
        import base64
        import hashlib

        from deployments.receipt_page import content_security_policy

        html = render_receipt_page(receipt)
        policy = dict(part.strip().split(" ", 1) for part in content_security_policy().split(";"))
        scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
        styles = re.findall(r"<style>(.*?)</style>", html, re.S)
        digest = lambda text: "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"
        assert len(scripts) == 1 and len(styles) == 1
        assert policy["script-src"] == digest(scripts[0])
        assert policy["style-src"] == digest(styles[0])
        assert policy["default-src"] == "'none'" and policy["connect-src"] == "'self'"
        assert "unsafe" not in content_security_policy()
        assert policy["frame-ancestors"] == "'none'" and policy["base-uri"] == "'none'"
