"""The operator's keys, all derived from one 32-byte secret seed with HKDF-SHA256.

Separate labels give independent keys for separate purposes, so a key used to mint receipt
codes never doubles as the key that derives terminal keys. Reprs never show secrets.
"""

from __future__ import annotations

import hmac
import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from posray.domain.codes import CodeKey

SEED_BYTES = 32


def _derive(seed: bytes, label: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label.encode()).derive(seed)


@dataclass(frozen=True, slots=True)
class OperatorKeys:
    """Keys the operator holds; built once from the seed file by an entrypoint."""

    terminal_master: bytes
    code: CodeKey
    fiscal: bytes
    signing_seed: bytes
    api_token: str
    merchant_token: bytes

    def __repr__(self) -> str:
        return "OperatorKeys(<secret>)"

    @classmethod
    def from_seed(cls, seed: bytes) -> "OperatorKeys":
        if len(seed) != SEED_BYTES:
            raise ValueError(f"the operator seed must be {SEED_BYTES} bytes")
        return cls(
            terminal_master=_derive(seed, "posray/v1/terminal-master"),
            code=CodeKey(_derive(seed, "posray/v1/receipt-code")),
            fiscal=_derive(seed, "posray/v1/fiscal-sign"),
            signing_seed=_derive(seed, "posray/v1/checkpoint-ed25519"),
            api_token=_derive(seed, "posray/v1/operator-api-token").hex(),
            merchant_token=_derive(seed, "posray/v1/merchant-token"),
        )


def terminal_key(master: bytes, terminal_id: str, key_version: int) -> bytes:
    """The secret key of one terminal: HMAC-SHA256(master, "posray/terminal-key|id|version").

    Deriving rather than storing keys means the database holds no terminal secret at all;
    rotating a terminal's key bumps its key_version.
    """
    label = f"posray/terminal-key|{terminal_id}|{key_version}".encode()
    return hmac.new(master, label, hashlib.sha256).digest()


def fiscal_sign(fiscal_key: bytes, code: str, document_hash: bytes, accepted_at_ms: int) -> str:
    """The operator's fiscal sign of an accepted document: 128-bit HMAC, lowercase hex.

    It binds the receipt code, the document's SHA-256 and the acceptance time; the operator
    (or a tax office holding the fiscal key) can check it for any printed receipt.
    """
    message = b"posray/fiscal|%s|%s|%d" % (code.encode(), document_hash.hex().encode(), accepted_at_ms)
    return hmac.new(fiscal_key, message, hashlib.sha256).hexdigest()[:32]
