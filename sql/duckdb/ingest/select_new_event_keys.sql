-- purpose: the key index rows (key hash, day) of lake files, in the index's key order
-- NOTE: sorted so Postgres's btree on key_hash takes them page by page instead of at every
-- leaf. DuckDB spills the sort to disk past its memory_limit, so the memory is bounded
-- whatever the number of files.
SELECT event_key_hash(tenant_id, event_id) AS key_hash, usage_date
FROM read_parquet($files)
ORDER BY key_hash
