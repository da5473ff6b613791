"""Every adapter offers each method of its port, with the port's parameters (no servers).

Protocols are structural and nothing checks them at run time; this keeps the Redis, PostgreSQL
and in-memory adapters from drifting apart from the ports the services are written against.
"""

from __future__ import annotations

import inspect

import pytest

from posray.adapters.memory_capture import MemoryCaptureLog, MemoryShardStream
from posray.adapters.memory_ledger import MemoryFences, MemoryLedger
from posray.adapters.pg_fences import PgFences
from posray.adapters.pg_ledger import PgLedger
from posray.adapters.redis_capture import RedisCapture
from posray.adapters.memory_tiles import MemoryTiles
from posray.adapters.redis_stream import RedisShardStream
from posray.adapters.tile_files import TileDirectory
from posray.adapters.tile_http import HttpTiles
from posray.services.ports import CaptureLog, FenceLedger, Ledger, ShardStream, TileSink, TileSource

IMPLEMENTATIONS = [
    (CaptureLog, RedisCapture), (CaptureLog, MemoryCaptureLog),
    (ShardStream, RedisShardStream), (ShardStream, MemoryShardStream),
    (Ledger, PgLedger), (Ledger, MemoryLedger),
    (FenceLedger, PgFences), (FenceLedger, MemoryFences),
    (TileSink, TileDirectory), (TileSink, MemoryTiles), (TileSource, HttpTiles),
]


def _members(port) -> list[str]:
    return sorted(n for n in dir(port) if not n.startswith("_"))


def _parameters(function) -> list[tuple[str, object, object]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


@pytest.mark.parametrize("port, adapter", IMPLEMENTATIONS, ids=lambda x: x.__name__)
def test_the_adapter_has_every_method_of_its_port_with_the_same_parameters(port, adapter):
    assert _members(port), f"{port.__name__} names no method"
    for name in _members(port):
        assert hasattr(adapter, name), f"{adapter.__name__} lacks {port.__name__}.{name}"
        wanted, offered = getattr(port, name), getattr(adapter, name)
        assert inspect.iscoroutinefunction(offered) == inspect.iscoroutinefunction(wanted), name
        assert _parameters(offered) == _parameters(wanted), f"{adapter.__name__}.{name}"
