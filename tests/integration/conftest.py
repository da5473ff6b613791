"""Integration fixtures: the operator's keys from the run's seed file."""

from __future__ import annotations

import pytest

from posray.adapters.keyfile import load_keys
from posray.domain.keys import OperatorKeys


@pytest.fixture(scope="session")
def keys(seed_file) -> OperatorKeys:
    return load_keys(seed_file)
