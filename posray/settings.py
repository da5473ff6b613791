"""One frozen Settings for every process; built from POSRAY_* variables in entrypoints only.

Precedence: defaults < POSRAY_* environment < explicit keyword arguments. A bad value raises
SettingsError naming the variable. Nothing here reads the environment at import time.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, fields
from pathlib import Path

from posray.domain.errors import SetupError


class SettingsError(SetupError, ValueError):
    """A POSRAY_* variable holds a value of the wrong type or range."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything configurable, as POSRAY_<NAME> variables (README "Configuration", docs/operations.md)."""

    # Where things are. None means "embedded default" for `posray up`.
    redis_url: str | None = None
    # Sentinel-managed capture store: "host:port,host:port" of the sentinels and the name they
    # monitor the primary under. When set, every Redis client follows the primary they name
    # (redis_url then only contributes credentials and the database number).
    redis_sentinels: str | None = None
    redis_master: str = "posray"
    pg_dsn: str | None = None
    ray_address: str | None = None
    data_dir: Path = Path(".posray")
    operator_seed_file: Path | None = None
    key_prefix: str = "posray"
    ray_namespace: str = "posray"
    dashboard_port: int = 8265
    # HTTP edge.
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    public_base_url: str = "http://127.0.0.1:8000"
    log_name: str | None = None
    checkpoint_interval_s: float = 1.0
    # Witnesses (c2sp.org/tlog-witness) that cosign every shard's checkpoints:
    # "<submission URL>=<witness verifier key>,..." (the URL must not contain "=" or ",").
    witnesses: str | None = None
    # Publish (checkpoint routes, proof bundles, tile exports) the latest checkpoint carrying at
    # least this many witness cosignatures; 0 publishes the latest with those it has so far.
    witness_quorum: int = 0
    witness_interval_s: float = 1.0
    witness_timeout_s: float = 5.0
    replicas: int = 2
    replica_ongoing_requests_max: int = 2000
    body_bytes_max: int = 4 * 1024 * 1024
    batch_documents_max: int = 1000
    # Public (customer) endpoints: a token bucket per client address and replica; rate 0 = off.
    public_rate_per_s: float = 20.0
    public_burst: int = 40
    public_clients_max: int = 100_000
    # Proxies in front of Serve that append X-Forwarded-For (0: limit by the connecting peer).
    trusted_proxy_hops: int = 0
    # Ingest: micro-batching in replicas and the IngestShard actors behind them.
    shard_count: int = 8
    ingest_actors: int = 2
    ledger_actors: int = 2
    # Ray scheduling strategy of those actors: None is Ray's default (they pack onto the driver's
    # node while it has room); "SPREAD" spreads them over the cluster's nodes.
    actor_scheduling: str | None = None
    shard_batch_max: int = 1000
    shard_batch_wait_ms: float = 0.0  # linger for a fuller batch; 0: only while calls are busy
    shard_calls_in_flight_max: int = 2  # per replica and IngestShard actor
    shard_queue_max: int = 20000
    actor_call_timeout_s: float = 10.0
    stream_backlog_max: int = 2_000_000
    redis_require_aof: bool = True
    # Sequences a capture store may hand out per shard before it asks the ledger for more
    # (one PostgreSQL round trip each, made ahead of use). Also the most a store that lost its
    # data can leave unaccounted: those sequences are reported as possibly lost.
    capture_reservation: int = 1000
    # Replicated capture: a document is acknowledged only once the primary's AOF and this many
    # replicas' AOFs hold it (WAITAOF); 0 acknowledges after the primary's own fsync only.
    capture_replicas_min: int = 0
    capture_replicas_timeout_ms: int = 1000
    # `posray up` without a Redis URL: replicas started next to the embedded primary (with three
    # sentinels); 0 starts the single embedded Redis.
    embedded_replicas: int = 0
    # Document rules.
    vat_rates_bp: tuple[int, ...] = (0, 500, 1000, 1300, 2000)
    future_skew_s: int = 300
    upload_window_s: int = 30 * 86400
    # Terminal directory cache on the hot path.
    terminal_cache_max: int = 1_000_000
    revocation_poll_s: float = 2.0
    # Ledger writers.
    ledger_batch_max: int = 2000
    ledger_batch_wait_ms: int = 200
    # Health: GET /readyz answers 503 once any shard's stream holds this many unrecorded documents.
    ready_backlog_max: int = 100_000
    # Retention's archives (docs/operations.md, "Partitions and retention"): the C2SP tiles export
    # (a directory, or an http(s) URL of its copy) that keeps detached days verifiable, and the
    # Parquet snapshot folder (default <data_dir>/snapshot) that indexes them by printed fields.
    tiles_archive: str | None = None
    snapshot_dir: Path | None = None

    def __post_init__(self) -> None:
        if sentinel_addresses(self.redis_sentinels) and not self.redis_master:  # malformed: fails here
            raise SettingsError("POSRAY_REDIS_MASTER must name the primary the sentinels monitor")
        if self.capture_replicas_min < 0 or self.capture_replicas_timeout_ms <= 0:
            raise SettingsError("POSRAY_CAPTURE_REPLICAS_MIN must be >= 0 and "
                                "POSRAY_CAPTURE_REPLICAS_TIMEOUT_MS > 0")
        if self.embedded_replicas < 0:
            raise SettingsError("POSRAY_EMBEDDED_REPLICAS must be >= 0")
        if not 0 <= self.witness_quorum <= len(witness_list(self.witnesses)):  # malformed: fails here
            raise SettingsError("POSRAY_WITNESS_QUORUM must be 0 .. the number of POSRAY_WITNESSES")
        if self.witness_interval_s <= 0 or self.witness_timeout_s <= 0:
            raise SettingsError("POSRAY_WITNESS_INTERVAL_S and POSRAY_WITNESS_TIMEOUT_S must be > 0")

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{f.name}={_redact(f.name, getattr(self, f.name))!r}" for f in fields(self)
        )
        return f"Settings({shown})"

    @property
    def seed_file(self) -> Path:
        return self.operator_seed_file or self.data_dir / "keys" / "operator.seed"

    @property
    def snapshot_path(self) -> Path:
        """The Parquet snapshot folder: POSRAY_SNAPSHOT_DIR, else <data_dir>/snapshot."""
        return self.snapshot_dir or self.data_dir / "snapshot"

    @property
    def log_key_name(self) -> str:
        """Name of the operator's log key and prefix of every shard's log origin (C2SP)."""
        if self.log_name:
            return self.log_name
        return self.public_base_url.split("://", 1)[-1].rstrip("/") + "/log"

    @property
    def sentinels(self) -> tuple[tuple[str, int], ...]:
        """The sentinels' (host, port) pairs; empty when the store is addressed by redis_url."""
        return sentinel_addresses(self.redis_sentinels)

    @property
    def capture_store_id(self) -> str:
        """Which capture store this deployment uses, as the ledger's fences record it.

        Its address (without credentials) and key prefix: two deployments with different
        stores on one ledger are refused instead of handing out the same sequences. A
        Sentinel-managed set is named by its master name, not by the primary's address, so that
        a failover to a replica of the same set is the same store (the fence then finds what
        the promoted replica lacks); the sentinels' addresses may change too.
        """
        if self.redis_sentinels:
            return f"sentinel:{self.redis_master}#{self.key_prefix}"
        url = _redact("redis_url", self.redis_url or "")
        return f"{url}#{self.key_prefix}"

    def log_origin(self, shard: int) -> str:
        return f"{self.log_key_name}/{shard}"

    @property
    def idempotency_ttl_s(self) -> int:
        """Idempotency keys outlive the upload window plus the allowed clock skew."""
        return self.upload_window_s + self.future_skew_s + 86400

    def replace(self, **changes) -> "Settings":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, environ: dict | None = None, **overrides) -> "Settings":
        """Build Settings from POSRAY_* variables, then apply explicit `overrides`."""
        env = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            name = "POSRAY_" + f.name.upper()
            if name in env:
                values[f.name] = _parse(name, f.type, env[name])
        values.update(overrides)
        return cls(**values)


def witness_list(text: str | None) -> tuple[tuple[str, str], ...]:
    """Parse "url=verifier key,url=verifier key" into (url, verifier key) pairs, keys checked.

    Raises:
        SettingsError: an entry is not http(s)://...=<a cosignature/v1 verifier key> (names POSRAY_WITNESSES).
    """
    from posray.domain.cosignature import CosignatureVerifier
    from posray.domain.note import NoteError

    out = []
    for entry in (text or "").split(","):
        entry = entry.strip()
        if not entry:
            continue
        url, _, key = entry.partition("=")
        try:
            CosignatureVerifier.from_verifier_key(key)
        except NoteError as e:
            raise SettingsError(f"POSRAY_WITNESSES: {entry!r}: {e}") from None
        if not url.startswith(("http://", "https://")):
            raise SettingsError(f"POSRAY_WITNESSES: {entry!r} does not start with an http(s) URL")
        out.append((url, key))
    if len({key for _, key in out}) != len(out):
        raise SettingsError("POSRAY_WITNESSES names a witness key twice")
    return tuple(out)


def sentinel_addresses(text: str | None) -> tuple[tuple[str, int], ...]:
    """Parse "host:port,host:port" (IPv6 as "[::1]:26379") into (host, port) pairs.

    Raises:
        SettingsError: an entry has no host or no valid port (names POSRAY_REDIS_SENTINELS).
    """
    out = []
    for entry in (text or "").split(","):
        entry = entry.strip()
        if not entry:
            continue
        host, sep, port = entry.rpartition(":")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise SettingsError(f"POSRAY_REDIS_SENTINELS={text!r}: {entry!r} is not host:port")
        out.append((host, int(port)))
    return tuple(out)


def _redact(name: str, value):
    if name in ("redis_url", "pg_dsn") and isinstance(value, str) and "@" in value:
        scheme, sep, _ = value.partition("://")
        host = value.rsplit("@", 1)[1]
        return f"{scheme}{sep}<credentials>@{host}" if sep else f"<credentials>@{host}"
    return value


def _parse(name: str, kind: str, text: str):
    kind = str(kind)
    try:
        if kind.startswith("int"):
            return int(text)
        if kind.startswith("float"):
            return float(text)
        if kind.startswith("bool"):
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if kind.startswith("tuple"):
            return tuple(int(part) for part in text.split(",") if part.strip())
        if "Path" in kind:
            return Path(text) if text else None
        return text or None
    except ValueError:
        raise SettingsError(f"{name}={text!r} is not a valid {kind}") from None
