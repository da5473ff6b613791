"""Integrity checks over the snapshot: signs of unreported, late, refunded or repeated sales.

Polars LazyFrame -> LazyFrame, no I/O. Each check looks at one terminal's documents and says
what it found with the evidence an inspector needs (docs/analytics.md, "Integrity"):

- counter_gaps: document counters a terminal skipped (possible sales it never reported);
- late_uploads: documents accepted long after they were issued, per terminal and upload day;
- refund_outliers: refunds per sale of each terminal against its peers (same merchant kind);
- duplicate_receipts: the same basket, total and payment twice within a minute under
  different counters.

A finding is a lead for a person to follow, not a verdict: a till that was offline uploads
late for a good reason, and two customers can buy the same coffee a minute apart.
"""

from __future__ import annotations

from datetime import timedelta

import polars as pl

_TYPE = pl.col("type")
# 1.4826 x MAD estimates the standard deviation of normally distributed data.
MAD_TO_SD = 1.4826
LATE_AFTER = timedelta(hours=1)
DUPLICATE_WINDOW = timedelta(minutes=1)
DUPLICATE_CHANCE_MAX = 0.01
REFUND_K = 5.0
REFUND_SALES_MIN = 30
REFUND_SCALE_MIN = 0.005
PEERS_MIN = 3
REFUNDS_MIN = 5


def counter_gaps(documents: pl.LazyFrame) -> pl.LazyFrame:
    """Runs of counters missing between two documents of the same terminal.

    Only gaps inside the counters the data holds can be seen: counters skipped before the
    first or after the last document of a selection are not reported.

    Columns: merchant_id, terminal_id, first_missing, last_missing, missing (count),
    before_issued_at and after_issued_at (issue times of the documents around the gap).
    """
    previous = pl.col("counter").shift(1).over("terminal_id")
    return (
        documents.select("merchant_id", "terminal_id", "counter", "issued_at")
        .sort("terminal_id", "counter")
        .with_columns(
            previous.alias("_previous"),
            pl.col("issued_at").shift(1).over("terminal_id").alias("before_issued_at"),
        )
        .filter(pl.col("counter") - pl.col("_previous") > 1)
        .select(
            "merchant_id", "terminal_id",
            (pl.col("_previous") + 1).alias("first_missing"),
            (pl.col("counter") - 1).alias("last_missing"),
            (pl.col("counter") - pl.col("_previous") - 1).alias("missing"),
            "before_issued_at",
            pl.col("issued_at").alias("after_issued_at"),
        )
    )


def upload_delay() -> pl.Expr:
    """accepted_at - issued_at of a document, as a duration (`delay`)."""
    return (pl.col("accepted_at").cast(pl.Datetime("us", "UTC")) - pl.col("issued_at")).alias("delay")


def late_uploads(documents: pl.LazyFrame, late_after: timedelta = LATE_AFTER) -> pl.LazyFrame:
    """Documents accepted more than `late_after` after they were issued, per terminal and
    local upload day (one row per backlog a till sent when it came back online).

    Columns: merchant_id, terminal_id, uploaded_on (local date of acceptance), late_documents,
    first_issued_date, last_issued_date (local dates printed on them), delay_h_median,
    delay_h_max.
    """
    hours = pl.col("delay").dt.total_milliseconds() / 3_600_000
    accepted_local = pl.col("accepted_at").dt.replace_time_zone(None) + pl.duration(minutes=pl.col("utc_offset_min"))
    return (
        documents.with_columns(upload_delay())
        .filter(pl.col("delay") > late_after)
        .group_by("merchant_id", "terminal_id", accepted_local.dt.date().alias("uploaded_on"))
        .agg(
            pl.len().cast(pl.Int64).alias("late_documents"),
            pl.col("issued_local_date").min().alias("first_issued_date"),
            pl.col("issued_local_date").max().alias("last_issued_date"),
            hours.median().alias("delay_h_median"),
            hours.max().alias("delay_h_max"),
        )
        .sort("terminal_id", "uploaded_on")
    )


def refund_outliers(
    documents: pl.LazyFrame, kinds: pl.LazyFrame | None = None, *, k: float = REFUND_K,
    sales_min: int = REFUND_SALES_MIN, scale_min: float = REFUND_SCALE_MIN,
) -> pl.LazyFrame:
    """Refunds per sale of every terminal, compared with the terminals of its peer group.

    The peer group is the merchant's kind from `kinds` (columns merchant_id, kind: what a
    merchant registry or acquirer classifies), else the merchant itself. Peers are the group's
    terminals with at least `sales_min` sales (`peers` counts them); m is their median ratio,
    MAD the median absolute deviation from it and p the refunds per sale of the other peers
    together. A terminal with `sales_min` sales in a group of at least PEERS_MIN peers is
    `judged`, and flagged when it has REFUNDS_MIN refunds and

        z = (ratio - m) / max(1.4826 x MAD, sqrt(p (1 - p) / sales), scale_min)  >  k

    The second term is the sampling noise of a terminal with this many sales at the others'
    rate, the third a floor for groups that (almost) never refund; REFUNDS_MIN keeps a couple
    of refunds at a small till from counting as evidence. A smaller group has no norm to judge
    by (kinds refund very differently: fashion ten times more than a bakery), so its
    terminals are not judged.

    Columns: merchant_id, terminal_id, peer_group, sales, refunds, refund_ratio, peers,
    peer_median, peer_mad, z, judged, flagged; highest z first.
    """
    per_terminal = documents.group_by("merchant_id", "terminal_id").agg(
        (_TYPE == "sale").sum().cast(pl.Int64).alias("sales"),
        (_TYPE == "refund").sum().cast(pl.Int64).alias("refunds"),
    )
    if kinds is None:
        per_terminal = per_terminal.with_columns(pl.col("merchant_id").alias("peer_group"))
    else:
        per_terminal = per_terminal.join(
            kinds.select("merchant_id", pl.col("kind").alias("peer_group")), on="merchant_id", how="left",
        ).with_columns(pl.coalesce("peer_group", "merchant_id").alias("peer_group"))
    enough = pl.col("sales") >= sales_min
    in_peers = pl.when(enough).then(pl.col("refund_ratio"))
    own = {c: pl.when(enough).then(pl.col(c)).otherwise(0) for c in ("sales", "refunds")}
    others_rate = ((own["refunds"].sum().over("peer_group") - own["refunds"])
                   / (own["sales"].sum().over("peer_group") - own["sales"]))
    m, p = pl.col("peer_median"), pl.col("_others_rate")
    scale = pl.max_horizontal(MAD_TO_SD * pl.col("peer_mad"), (p * (1 - p) / pl.col("sales")).sqrt(), pl.lit(scale_min))
    return (
        per_terminal.with_columns(pl.when(pl.col("sales") > 0).then(pl.col("refunds") / pl.col("sales")).alias("refund_ratio"))
        .with_columns(
            enough.sum().over("peer_group").cast(pl.Int64).alias("peers"),
            in_peers.median().over("peer_group").alias("peer_median"),
            others_rate.alias("_others_rate"),
        )
        .with_columns((in_peers - m).abs().median().over("peer_group").alias("peer_mad"))
        .with_columns(
            ((pl.col("refund_ratio") - m) / scale).alias("z"),
            (enough & (pl.col("peers") >= PEERS_MIN)).alias("judged"),
        )
        .with_columns((pl.col("judged") & (pl.col("refunds") >= REFUNDS_MIN) & (pl.col("z") > k))
                      .fill_null(False).alias("flagged"))
        .select("merchant_id", "terminal_id", "peer_group", "sales", "refunds", "refund_ratio", "peers",
                "peer_median", "peer_mad", "z", "judged", "flagged")
        .sort("z", "terminal_id", descending=[True, False], nulls_last=True)
    )


def basket_signatures(items: pl.LazyFrame) -> pl.LazyFrame:
    """Per document (shard, seq): its item multiset as one string, order of lines ignored."""
    line = pl.concat_str(
        pl.col("sku").fill_null(""), pl.col("name"), pl.col("qty_milli").cast(pl.String),
        pl.col("unit_price_minor").cast(pl.String), separator="\x1f",
    )
    return items.group_by("shard", "seq").agg(line.sort().str.join("\x1e").alias("basket"))


def duplicate_receipts(
    documents: pl.LazyFrame, items: pl.LazyFrame, window: timedelta = DUPLICATE_WINDOW,
) -> pl.LazyFrame:
    """Pairs of documents of one terminal with the same type, total, payment split and item
    multiset, issued at most `window` apart under different counters (a receipt issued
    twice, or a sale rung up again instead of reprinted).

    Identical small baskets also meet by chance at a busy till (two coffees a minute apart).
    `expected_by_chance` is how many such pairs of that content the terminal shows by chance
    alone: with N documents, n of them with this content, and on average k other documents
    issued within `window` before each one, about n (n - 1) k / (N - 1). Pairs it explains
    poorly come first; `unlikely_by_chance` marks those below DUPLICATE_CHANCE_MAX.

    Columns: merchant_id, terminal_id, type, total_minor, first_counter, second_counter,
    first_code, second_code, first_issued_at, seconds_apart, same_content (n),
    expected_by_chance, unlikely_by_chance.
    """
    same = ["terminal_id", "type", "total_minor", "cash_minor", "card_minor", "other_minor", "basket"]
    earlier = {c: pl.col(c).shift(1).over(same) for c in ("counter", "code", "issued_at")}
    n = pl.col("same_content")
    return (
        documents.select("shard", "seq", "merchant_id", "terminal_id", "type", "counter", "code", "issued_at",
                         "total_minor", "cash_minor", "card_minor", "other_minor")
        .join(basket_signatures(items), on=["shard", "seq"], how="inner")
        .sort("terminal_id", "issued_at", "counter")
        .with_columns(
            earlier["counter"].alias("first_counter"),
            earlier["code"].alias("first_code"),
            earlier["issued_at"].alias("first_issued_at"),
            pl.len().over(same).cast(pl.Int64).alias("same_content"),
        )
        .with_columns(((pl.col("issued_at") - pl.col("first_issued_at")).dt.total_milliseconds() / 1000).alias("seconds_apart"))
        .filter(pl.col("first_counter").is_not_null() & (pl.col("counter") != pl.col("first_counter"))
                & (pl.col("seconds_apart") <= window.total_seconds()))
        .join(_traffic(documents, window), on="terminal_id", how="left")
        .with_columns((n * (n - 1) * pl.col("_neighbours") / (pl.col("_documents") - 1)).alias("expected_by_chance"))
        .with_columns((pl.col("expected_by_chance") < DUPLICATE_CHANCE_MAX).alias("unlikely_by_chance"))
        .select("merchant_id", "terminal_id", "type", "total_minor", "first_counter",
                pl.col("counter").alias("second_counter"), "first_code", pl.col("code").alias("second_code"),
                "first_issued_at", "seconds_apart", "same_content", "expected_by_chance", "unlikely_by_chance")
        .sort("expected_by_chance", "terminal_id", "first_counter")
    )


def _traffic(documents: pl.LazyFrame, window: timedelta) -> pl.LazyFrame:
    """Per terminal: its documents, and the mean number of others issued within `window`
    before each one (peaks included, which an even spread over opening hours would miss)."""
    return (
        documents.select("terminal_id", "issued_at").sort("terminal_id", "issued_at")
        .rolling(index_column="issued_at", period=window, group_by="terminal_id")
        .agg((pl.len() - 1).alias("_others"))
        .group_by("terminal_id")
        .agg(pl.len().alias("_documents"), pl.col("_others").mean().alias("_neighbours"))
    )


def by_terminal(gaps: pl.LazyFrame, late: pl.LazyFrame, refunds: pl.LazyFrame,
                duplicates: pl.LazyFrame) -> pl.LazyFrame:
    """One row per terminal with any finding: what each check found there.

    Columns: merchant_id, terminal_id, missing_counters, late_documents, refund_ratio and
    refund_z (when flagged), duplicate_pairs (unlikely by chance); most findings first.
    """
    parts = [
        gaps.group_by("merchant_id", "terminal_id").agg(pl.col("missing").sum().alias("missing_counters")),
        late.group_by("merchant_id", "terminal_id").agg(pl.col("late_documents").sum()),
        refunds.filter("flagged").select("merchant_id", "terminal_id", "refund_ratio", pl.col("z").alias("refund_z")),
        duplicates.filter("unlikely_by_chance").group_by("merchant_id", "terminal_id")
        .agg(pl.len().cast(pl.Int64).alias("duplicate_pairs")),
    ]
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.join(part, on=["merchant_id", "terminal_id"], how="full", coalesce=True)
    counts = ["missing_counters", "late_documents", "duplicate_pairs"]
    checks = pl.sum_horizontal(*(pl.col(c) > 0 for c in counts), pl.col("refund_z").is_not_null())
    return (
        merged.with_columns(pl.col(counts).fill_null(0))
        .with_columns(checks.alias("checks"))
        .sort("checks", "terminal_id", descending=[True, False])
        .select("merchant_id", "terminal_id", "missing_counters", "late_documents", "refund_ratio", "refund_z",
                "duplicate_pairs")
    )
