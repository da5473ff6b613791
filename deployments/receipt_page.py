"""The receipt page behind the QR link: a small, self-contained HTML view of one receipt."""

from __future__ import annotations

from html import escape

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;background:#f4f5f7;margin:0;padding:24px;color:#1d2330}
.card{max-width:420px;margin:auto;background:#fff;border-radius:12px;box-shadow:0 2px 12px #0002;padding:20px 24px}
h1{font-size:18px;margin:0 0 4px} .muted{color:#667085;font-size:13px}
table{width:100%;border-collapse:collapse;margin:12px 0;font-size:14px}
td{padding:4px 0;vertical-align:top} td.r{text-align:right;white-space:nowrap}
tr.total td{border-top:1px solid #d0d5dd;font-weight:600;padding-top:8px}
.code{font-family:ui-monospace,monospace;font-size:16px;letter-spacing:1px}
.status{display:inline-block;padding:2px 8px;border-radius:999px;font-size:12px;font-weight:600}
.recorded{background:#dcfae6;color:#067647} .accepted{background:#fef0c7;color:#93370d}
.error{background:#fee4e2;color:#b42318}
"""


def _money(minor: int, currency: str) -> str:
    return f"{minor // 100:,}.{minor % 100:02d} {escape(currency)}"


def render_receipt_page(receipt: dict) -> str:
    """HTML for a receipt as returned by the lookup, or for a lookup error."""
    if "error" in receipt:
        reason = escape(str(receipt["error"].get("reason") or receipt["error"].get("detail", "")))
        body = f'<h1>Receipt not found</h1><p><span class="status error">{reason}</span></p>'
        return _page("posray receipt", body)
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
    status = receipt["status"]
    ledger = receipt.get("ledger")
    where = (
        f"batch {ledger['batch_no']} of shard {receipt['shard']}, leaf {ledger['leaf_index']}"
        if ledger else "captured; being written to the ledger"
    )
    body = f"""
<h1>{escape(receipt.get('merchant_id') or '')} · terminal {escape(receipt['terminal_id'])}</h1>
<div class=muted>{escape(receipt['type'])} no. {receipt['counter']} · issued {escape(receipt['issued_at'])}</div>
<table>{rows}<tr class=total><td>Total</td><td class=r>{_money(receipt['total_minor'], cur)}</td></tr>{vat}</table>
<div class=muted>Paid: {paid}</div>
<p class=code>{escape(receipt['code_display'])}</p>
<p><span class="status {status}">{status}</span> <span class=muted>{escape(where)}</span></p>
<p class=muted>Accepted {escape(receipt['accepted_at'])} · document hash {escape(receipt['document_hash'][:16])}…</p>
"""
    return _page(f"Receipt {receipt['code_display']}", body)


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><div class=card>{body}</div></body></html>"
    )
