"""posray: capture point-of-sale documents at scale into a tamper-evident ledger.

The public API of the core package: pure domain functions that third parties (terminal
vendors, auditors, customers' verifiers) can reuse without Ray, Redis or PostgreSQL.
"""

from posray.domain.canonical import canonical_bytes
from posray.domain.merkle import (
    leaf_hash,
    node_hash,
    root_hash,
    inclusion_proof,
    verify_inclusion,
)
from posray.domain.terminal_mac import document_mac

__all__ = [
    "canonical_bytes",
    "document_mac",
    "leaf_hash",
    "node_hash",
    "root_hash",
    "inclusion_proof",
    "verify_inclusion",
]
__version__ = "0.1.0"
