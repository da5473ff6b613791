"""Synthetic sales for analytics, tests and benchmarks: a world of merchants and its history.

`world` and `catalogue` describe the merchants, stores, terminals and products; `generator`
draws signed documents one by one (recorded through posray.services.loading, as the ledger
writers would); `bulk` and `bulk_draw` draw the same world vectorised, straight into a Parquet
snapshot (for benchmarks at tens of millions of documents).
"""
