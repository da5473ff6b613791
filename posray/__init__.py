"""posray: capture point-of-sale documents at scale into a tamper-evident ledger.

The public API of the core package: pure functions that third parties (terminal vendors,
auditors, customers' verifiers) can use without Ray, Redis or PostgreSQL:

- signing documents: `canonical_bytes`, `document_mac` (docs/protocol.md);
- RFC 6962 / RFC 9162 Merkle trees: `leaf_hash`, `node_hash`, `root_hash`, `inclusion_proof`,
  `verify_inclusion`, `consistency_proof`, `verify_consistency`;
- C2SP signed-note checkpoints: `NoteVerifier`, `open_checkpoint`, `NoteError`;
- a whole receipt: `verify_receipt_bundle` (docs/verification.md).
"""

from posray.domain.canonical import canonical_bytes
from posray.domain.merkle import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from posray.domain.note import NoteError, NoteVerifier, open_checkpoint
from posray.domain.receipt_proof import Check, verify_receipt_bundle
from posray.domain.terminal_mac import document_mac

__all__ = [
    "Check",
    "NoteError",
    "NoteVerifier",
    "canonical_bytes",
    "consistency_proof",
    "document_mac",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "open_checkpoint",
    "root_hash",
    "verify_consistency",
    "verify_inclusion",
    "verify_receipt_bundle",
]
__version__ = "0.1.0"
