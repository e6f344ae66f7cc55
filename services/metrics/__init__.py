"""Billable metrics (contract section 4a): catalog, computation from the lake, storage.

- `catalog`: create / list / get definitions (immutable).
- `compute`: a pure function from (lake files, definitions, windows) to rows, in DuckDB.
- `reference`: the same rules in plain Python (held to `compute` by a property test).
- `store` / `refresh`: the one call ingest and backfill runs make at their commit,
  `refresh_metric_usage(conn, lake_root, days, as_of)`.
"""
