-- purpose: the key index rows of a run's new lake files, in the index's key order (event_id as Postgres bytea hex input)
-- NOTE: sorted so Postgres's primary-key btree takes them page by page instead of at
-- every leaf: one day file after another interleaves with the days before (2M keys:
-- 15.7 s unsorted, see bench/README.md). DuckDB spills the sort to disk past its
-- memory_limit, so the memory is bounded whatever the run's size.
SELECT tenant_id,
       '\x' || hex(encode(event_id)) AS event_id,
       metric,
       quantity_micros,
       strftime(occurred_at AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%f+00:00') AS occurred_at
FROM read_parquet($files)
ORDER BY tenant_id, event_id  -- the hex text sorts as its bytes do
