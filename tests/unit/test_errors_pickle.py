"""Errors cross Ray calls by pickle: each must come back equal in kind, field and status."""

import pickle

import pytest

from deployments.api.errors import status_of
from posray.domain.errors import (
    AlreadyRegistered,
    AuditDivergence,
    DocumentConflict,
    InvalidDocument,
    InvalidRequest,
    LedgerConflict,
    LedgerRace,
    NotFenced,
    StoreRestarted,
    Overloaded,
    RateLimited,
    StreamGap,
    TooLarge,
    Unauthenticated,
    Unavailable,
)


@pytest.mark.parametrize("error", [
    DocumentConflict("counter", "used"),
    InvalidDocument("items[0].qty_milli", "too big"),
    TooLarge("body", "is larger than 10 bytes"),
    InvalidRequest("tree_size", "must be an integer"),
    AlreadyRegistered("terminal_id", "is already registered"),
    Unauthenticated("mac", "bad"),
    Overloaded("full", 3),
    Unavailable("down", 4),
    NotFenced("store restarted", 1),
    StoreRestarted("scripts gone", 1),
    RateLimited("too many", 2),
    LedgerConflict("seq 5 differs", 3, (5, 6)),
    LedgerRace("batch 4 is recorded"),
    StreamGap("sequence 12 is missing"),
    AuditDivergence("leaf hash differs"),
])
def test_an_error_survives_pickling_with_its_status_and_json(error):
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error)
    assert status_of(back) == status_of(error)
    assert back.to_json() == error.to_json()
    assert getattr(back, "retry_after_s", None) == getattr(error, "retry_after_s", None)
