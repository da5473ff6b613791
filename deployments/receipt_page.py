"""The receipt page behind the QR link: the receipt, and a check of its proof in the browser.

The server renders the receipt; the inlined script (static/verify_receipt.js) then fetches the
proof bundle and the log key and checks the leaf hash, the inclusion proof and the checkpoint's
Ed25519 signature itself with WebCrypto, so the customer need not take the server's word.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from html import escape
from importlib import resources

import orjson

# The members of the printed receipt; the script compares them with the record it verifies.
PRINTED_FIELDS = ("terminal_id", "counter", "issued_at", "type", "currency", "items", "payments",
                  "total_minor", "vat", "refers_to")


@functools.cache
def _asset(name: str) -> str:
    """A file of deployments/static, checked to be safe to inline in a <script> or <style>."""
    text = resources.files("deployments").joinpath("static", name).read_text(encoding="utf-8")
    if "</" in text:
        raise ValueError(f"static/{name} contains '</' and cannot be inlined")
    return text


@functools.cache
def content_security_policy() -> str:
    """The page's CSP: nothing but its own inlined script and style (by hash) and same-origin fetches.

    No 'unsafe-inline': even if a value escaped into the HTML, a browser would run no script
    and load nothing but this origin's proof bundle and log key.
    """
    def digest(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    return ("default-src 'none'; "
            f"script-src {digest(_asset('verify_receipt.js'))}; "
            f"style-src {digest(_asset('receipt.css'))}; "
            "connect-src 'self'; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'")


def _money(minor: int, currency: str) -> str:
    sign = "-" if minor < 0 else ""
    return f"{sign}{abs(minor) // 100:,}.{abs(minor) % 100:02d} {escape(currency)}"


def _script_json(value) -> str:
    """JSON that cannot end its <script> element or open a comment, whatever the strings hold."""
    text = orjson.dumps(value).decode()
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_receipt_page(receipt: dict) -> str:
    """HTML for a receipt as returned by the lookup, or for a lookup error ({"error": {...}})."""
    if "error" in receipt:
        error = receipt["error"]
        reason = escape(str(error.get("reason") or error.get("detail") or "no receipt has this code"))
        body = f'<h1>Receipt not found</h1><p><span class="badge error">{reason}</span></p>'
        return _page("posray receipt", body)
    body = _receipt_html(receipt) + _verify_html(receipt)
    data = {k: receipt.get(k) for k in PRINTED_FIELDS}
    scripts = (f"<script type=application/json id=receipt-data>{_script_json(data)}</script>"
               f"<script>{_asset('verify_receipt.js')}</script>")
    return _page(f"Receipt {receipt['code_display']}", body, scripts)


def _receipt_html(receipt: dict) -> str:
    cur = receipt["currency"]
    rows = "".join(
        f"<tr><td>{escape(item['name'])}<div class=muted>{item['qty_milli'] / 1000:g} × "
        f"{_money(item['unit_price_minor'], cur)}</div></td>"
        f"<td class=r>{_money(item['amount_minor'], cur)}</td></tr>"
        for item in receipt["items"]
    )
    vat = "".join(
        f"<tr><td class=muted>VAT {line['rate_bp'] / 100:g}% of {_money(line['gross_minor'], cur)}</td>"
        f"<td class='r muted'>{_money(line['vat_minor'], cur)}</td></tr>"
        for line in receipt["vat"]
    )
    paid = ", ".join(f"{escape(p['method'])} {_money(p['amount_minor'], cur)}" for p in receipt["payments"])
    refers = (f"<p class=muted>Refers to receipt {escape(str(receipt['refers_to']))}</p>"
              if receipt.get("refers_to") else "")
    status = escape(receipt["status"])
    ledger = receipt.get("ledger")
    where = (f"batch {ledger['batch_no']} of shard {receipt['shard']}, leaf {ledger['leaf_index']}"
             if ledger else "captured; being written to the ledger")
    return f"""
<h1>{escape(receipt.get('merchant_id') or 'Receipt')} · terminal {escape(receipt['terminal_id'])}</h1>
<p class=muted>{escape(receipt['type'])} no. {receipt['counter']} · issued {escape(receipt['issued_at'])}</p>
<table><caption class=sr>Items</caption>{rows}
<tr class=total><td>Total</td><td class=r>{_money(receipt['total_minor'], cur)}</td></tr>{vat}</table>
<p class=muted>Paid: {paid}</p>{refers}
<p class=code><span class=sr>Receipt code </span>{escape(receipt['code_display'])}</p>
<p><span class="badge {status}">{status}</span> <span class=muted>{escape(where)}</span></p>
<p class=muted>Accepted {escape(receipt['accepted_at'])} · document hash {escape(receipt['document_hash'][:16])}…</p>
"""


def _verify_html(receipt: dict) -> str:
    ledger = receipt.get("ledger") or {}
    return f"""
<section id=verify aria-labelledby=verify-title data-code="{escape(receipt['code'])}"
 data-leaf-hash="{escape(ledger.get('leaf_hash') or '')}"{_place(receipt)}>
<h2 id=verify-title>Is it in the operator's signed log?</h2>
<div id=verdict role=status aria-live=polite data-status=checking>Checking in your browser…</div>
<noscript><p>Turn on JavaScript to check this receipt's proof in your browser.</p></noscript>
<ol id=steps aria-label="Verification steps"></ol>
<div id=key hidden>
<h3>Log key</h3>
<p class=muted>Compare it with the key the operator publishes.</p>
<dl><dt>Key name</dt><dd id=key-name class=mono></dd>
<dt>Key ID</dt><dd id=key-id class=mono></dd>
<dt>Fingerprint (SHA-256 of the Ed25519 public key)</dt><dd id=key-fingerprint class=mono></dd>
<dt>Verifier key</dt><dd id=verifier-key class=mono></dd></dl>
</div>
<p class=muted>Your browser downloads the proof and the log key (<span id=sources class=mono></span>) and
checks every hash and the signature itself, with WebCrypto.</p>
</section>
"""


TILES_BASE = "/tlog"  # the log's static tiles on this site (deployments/api/log.py)


def _place(receipt: dict) -> str:
    """Where the script finds a recorded receipt in the tiles; hints only: the record it fetches
    must name the page's code. Nothing for a receipt not recorded yet (it asks the proof API)."""
    if receipt.get("status") != "recorded":
        return ""
    return (f' data-shard="{int(receipt["shard"])}" data-seq="{int(receipt["seq"])}"'
            f' data-tiles="{TILES_BASE}"')


def _page(title: str, body: str, scripts: str = "") -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        "<meta name=referrer content=no-referrer>"
        f"<title>{escape(title)}</title><style>{_asset('receipt.css')}</style></head>"
        f"<body><main>{body}</main>{scripts}</body></html>"
    )
