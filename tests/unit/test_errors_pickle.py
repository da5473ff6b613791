"""Errors cross Ray calls by pickle: each must come back equal in kind, field and status."""

import pickle

import pytest

from posray.domain.errors import (
    DocumentConflict,
    InvalidDocument,
    LedgerConflict,
    NotFenced,
    StoreRestarted,
    Overloaded,
    Unauthenticated,
    Unavailable,
)


@pytest.mark.parametrize("error", [
    DocumentConflict("counter", "used"),
    InvalidDocument("items[0].qty_milli", "too big", 413),
    Unauthenticated("mac", "bad"),
    Overloaded("full", 3),
    Unavailable("down", 4),
    NotFenced("store restarted", 1),
    StoreRestarted("scripts gone", 1),
    LedgerConflict("seq 5 differs", 3, (5, 6)),
])
def test_an_error_survives_pickling_with_its_status_and_json(error):
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error)
    assert back.status == error.status
    assert back.to_json() == error.to_json()
