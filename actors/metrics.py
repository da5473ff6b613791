"""posray's metrics for the Ray dashboard: every series is declared here (exported as ray_posray_*).

Ray's dashboard agent exports `ray.util.metrics` with a `ray_` prefix (counters also get
`_total`). The series are created on first use, inside the replica or actor process that
records them. Tags stay low-cardinality: endpoint, reason and shard, never a terminal id.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from ray.util.metrics import Counter, Gauge, Histogram

from posray.services.activity import ActiveTerminals
from posray.services.recording import BatchRecorded

ACK_LATENCY_MS_BOUNDARIES = [1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1000, 2000, 5000,
                             10_000, 30_000]  # the terminals time out at 30 s
LEDGER_LAG_MS_BOUNDARIES = [10, 25, 50, 100, 200, 300, 500, 750, 1000, 2000, 5000, 10_000, 30_000,
                            60_000, 300_000]
BATCH_DOCUMENTS_BOUNDARIES = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000]


@dataclass(frozen=True)
class _Series:
    accepted: Counter
    rejected: Counter
    ack_latency_ms: Histogram
    active_terminals: Gauge
    ingest_batch_documents: Histogram
    ledger_batch_documents: Histogram
    ledger_lag_ms: Histogram
    stream_backlog: Gauge
    checkpoint_age_s: Gauge
    ledger_conflicts: Gauge
    lost_sequences: Counter


@cache
def _series() -> _Series:
    return _Series(
        accepted=Counter("posray_documents_accepted", "Documents acknowledged with a receipt code "
                         "(identical resends included).", tag_keys=("endpoint",)),
        rejected=Counter("posray_documents_rejected", "Documents refused, by reason (a request "
                         "refused as a whole counts once).", tag_keys=("endpoint", "reason")),
        ack_latency_ms=Histogram("posray_ack_latency_ms", "Time from request body to answer, per "
                                 "transaction request, in ms.", ACK_LATENCY_MS_BOUNDARIES, ("endpoint",)),
        active_terminals=Gauge("posray_active_terminals", "Distinct terminals with an accepted "
                               "document on this replica in the last 5 minutes."),
        ingest_batch_documents=Histogram("posray_ingest_batch_documents", "Documents per IngestShard "
                                         "call.", BATCH_DOCUMENTS_BOUNDARIES, ("shard",)),
        ledger_batch_documents=Histogram("posray_ledger_batch_documents", "Documents per recorded "
                                         "ledger batch.", BATCH_DOCUMENTS_BOUNDARIES, ("shard",)),
        ledger_lag_ms=Histogram("posray_ledger_lag_ms", "Per ledger batch: from the acknowledgement "
                                "of its oldest document to the commit, in ms.", LEDGER_LAG_MS_BOUNDARIES,
                                ("shard",)),
        stream_backlog=Gauge("posray_stream_backlog", "Documents captured in the shard's Redis stream "
                             "and not yet recorded.", tag_keys=("shard",)),
        checkpoint_age_s=Gauge("posray_checkpoint_age_s", "Seconds since the shard's last signed "
                               "checkpoint while it has unsigned leaves; 0 when signed.", tag_keys=("shard",)),
        ledger_conflicts=Gauge("posray_ledger_conflicts", "Captured documents whose place the ledger "
                               "holds with another document: recording of the shard has stopped "
                               "while this is above 0.", tag_keys=("shard",)),
        lost_sequences=Counter("posray_capture_lost_sequences", "Acknowledged sequences a capture store "
                               "lost (or, as an upper bound, may have lost), found when re-fencing.",
                               tag_keys=("shard",)),
    )


class IngressMetrics:
    """What one Serve replica records: the observer of deployments.http_api."""

    def __init__(self, active: ActiveTerminals | None = None):
        self._series = _series()
        self._active = active or ActiveTerminals()

    def request_done(self, endpoint: str, elapsed_ms: float, accepted: int,
                     rejected: dict[str, int], terminal_ids: list[str]) -> None:
        series = self._series
        tags = {"endpoint": endpoint}
        series.ack_latency_ms.observe(elapsed_ms, tags)
        if accepted:
            series.accepted.inc(accepted, tags)
        for reason, count in rejected.items():
            series.rejected.inc(count, {"endpoint": endpoint, "reason": reason})
        if terminal_ids:
            self._active.see(terminal_ids)

    def report(self) -> None:
        """Refresh the gauges (called every few seconds by the replica)."""
        self._series.active_terminals.set(self._active.count())


class IngestMetrics:
    """What an IngestShard actor records."""

    def __init__(self):
        self._series = _series()

    def call(self, shard: int, documents: int) -> None:
        self._series.ingest_batch_documents.observe(documents, {"shard": str(shard)})

    def lost(self, shard: int, sequences: int) -> None:
        self._series.lost_sequences.inc(sequences, {"shard": str(shard)})


class LedgerMetrics:
    """What a LedgerWriter actor records."""

    def __init__(self):
        self._series = _series()

    def batch_recorded(self, batch: BatchRecorded) -> None:
        tags = {"shard": str(batch.shard)}
        self._series.ledger_batch_documents.observe(batch.documents, tags)
        self._series.ledger_lag_ms.observe(batch.lag_ms_max, tags)

    def shard(self, shard: int, backlog: int, checkpoint_age_s: float, conflicts: int = 0) -> None:
        tags = {"shard": str(shard)}
        self._series.stream_backlog.set(backlog, tags)
        self._series.checkpoint_age_s.set(checkpoint_age_s, tags)
        self._series.ledger_conflicts.set(conflicts, tags)
