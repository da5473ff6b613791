"""Merchant API tokens: self-describing bearer tokens, checked without storing any secret.

A token reads `pm_<merchant_id>.<version>.<mac>`, where mac is the unpadded base64url of
HMAC-SHA256(merchant token key, "posray/merchant-token|<merchant_id>|<version>"). It names its
merchant, so a server verifies it with the key alone; revocation bumps the merchant's
token_version, after which tokens carrying an older version no longer match.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

PREFIX = "pm_"
TOKEN_CHARS_MAX = 128
_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_VERSION_DIGITS_MAX = 9


@dataclass(frozen=True, slots=True)
class MerchantClaim:
    """What a token with a valid MAC says: its merchant and the token version it was issued at."""

    merchant_id: str
    version: int


def _mac(key: bytes, merchant_id: str, version: int) -> str:
    label = f"posray/merchant-token|{merchant_id}|{version}".encode()
    digest = hmac.new(key, label, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def issue_token(key: bytes, merchant_id: str, version: int) -> str:
    """The merchant token of `merchant_id` at token `version`.

    Args:
        key: the operator's merchant token key (OperatorKeys.merchant_token).
        merchant_id: 1-32 characters of A-Z a-z 0-9 _ . - (as merchant ids are).
        version: the merchant's current token_version, at least 1.

    Raises:
        ValueError: the merchant id or version cannot appear in a token.
    """
    if not 1 <= len(merchant_id) <= 32 or not set(merchant_id) <= _ID_CHARS:
        raise ValueError("a merchant id is 1-32 characters of A-Z a-z 0-9 _ . -")
    if not 1 <= version < 10**_VERSION_DIGITS_MAX:
        raise ValueError("a token version is a positive integer")
    return f"{PREFIX}{merchant_id}.{version}.{_mac(key, merchant_id, version)}"


def verify_token(key: bytes, token: str) -> MerchantClaim | None:
    """The claim of `token` when its MAC is right, else None (never says what was wrong).

    The MAC is compared in constant time. The caller still has to check the claim's version
    against the merchant's current token_version (revocation).
    """
    if not token.startswith(PREFIX) or len(token) > TOKEN_CHARS_MAX or not token.isascii():
        return None
    parts = token[len(PREFIX):].rsplit(".", 2)
    if len(parts) != 3:
        return None
    merchant_id, version_text, mac = parts
    if not version_text.isdigit() or version_text != str(int(version_text)):
        return None
    version = int(version_text)
    try:
        expected = issue_token(key, merchant_id, version)
    except ValueError:
        return None
    if not hmac.compare_digest(expected.encode(), token.encode()):
        return None
    return MerchantClaim(merchant_id, version)
