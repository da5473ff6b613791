"""What every handler of the HTTP edge works with: the replica's Backend (built once by ingress.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Awaitable, Callable, Protocol

from posray.adapters.pg_fences import PgFences
from posray.adapters.pg_ledger import PgLedger
from posray.adapters.pg_merchants import PgMerchants
from posray.adapters.pg_terminals import PgTerminals
from posray.adapters.redis_capture import RedisCapture
from posray.domain.keys import OperatorKeys
from posray.services.batcher import IngestBatcher
from posray.services.health import Readiness
from posray.services.intake import Intake
from posray.services.ports import ReceiptIndex, TileSource
from posray.services.ratelimit import RateLimiter
from posray.services.tiles import TileCache
from posray.settings import Settings


class RequestObserver(Protocol):
    """Told about every transaction request (the ingress records metrics with it)."""

    def request_done(self, endpoint: str, elapsed_ms: float, accepted: int,
                     rejected: dict[str, int], terminal_ids: list[str]) -> None: ...


class _Unobserved:
    def request_done(self, *args) -> None:
        pass


@dataclass
class Backend:
    """Everything the API needs, built once per replica by the ingress deployment."""

    settings: Settings
    keys: OperatorKeys
    intake: Intake
    batcher: IngestBatcher
    ledger: PgLedger
    capture: RedisCapture
    terminals: PgTerminals
    readiness: Callable[[], Awaitable[Readiness]]
    observer: RequestObserver = field(default_factory=_Unobserved)
    limiter: RateLimiter | None = None
    merchants: PgMerchants | None = None
    fences: PgFences | None = None
    tiles: TileCache = field(default_factory=TileCache)  # full tiles recently served, bounded
    archive: TileSource | None = None  # the tiles archive of detached days (POSRAY_TILES_ARCHIVE)
    receipt_index: ReceiptIndex | None = None  # detached days' receipts by printed fields (the snapshot)

    def __post_init__(self) -> None:
        if self.limiter is None:
            s = self.settings
            self.limiter = RateLimiter(s.public_rate_per_s, s.public_burst, s.public_clients_max)
