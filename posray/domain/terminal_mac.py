"""The terminal's MAC over a document: HMAC-SHA256 of the canonical bytes without "mac".

This is the whole authentication rule a terminal vendor implements (docs/protocol.md):
remove the "mac" member, canonicalize with RFC 8785, HMAC-SHA256 with the terminal key,
lowercase hex.
"""

from __future__ import annotations

import hashlib
import hmac

from posray.domain.canonical import canonical_bytes, canonical_wire_document


def signed_bytes(document: dict) -> bytes:
    """The exact bytes a terminal authenticates: canonical JSON of the document minus "mac"."""
    return canonical_bytes({k: v for k, v in document.items() if k != "mac"})


def document_mac(key: bytes, document: dict) -> str:
    """Return the lowercase hex HMAC-SHA256 of `signed_bytes(document)` under `key`."""
    return hmac.new(key, signed_bytes(document), hashlib.sha256).hexdigest()


def canonical_mac_matches(key: bytes, canonical: bytes, mac: str) -> bool:
    """`mac_matches` for a wire-validated document given as its canonical bytes (MAC included).

    The signed bytes are the canonical bytes minus the member `,"mac":"<64 hex>"`: keys are
    sorted and "counter" (required) sorts before "mac", so the member is never first; its value
    is validated hex; and the byte sequence cannot occur anywhere else (quotes inside strings are
    escaped, nested objects have no "mac" member). One serialization instead of two.
    """
    member = b',"mac":"' + mac.encode() + b'"'
    signed = canonical.replace(member, b"", 1)
    if len(signed) != len(canonical) - len(member):
        return False
    expected = hmac.new(key, signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, mac.lower())


def mac_matches(key: bytes, document: dict, mac: str) -> bool:
    """Constant-time check of a received MAC on a document that passed wire validation."""
    unsigned = {k: v for k, v in document.items() if k != "mac"}
    expected = hmac.new(key, canonical_wire_document(unsigned), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, mac.lower())
