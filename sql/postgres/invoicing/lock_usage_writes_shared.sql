-- purpose: an invoice run waits for (and holds off) ingest/backfill runs: the usage-writes session lock in shared mode
SELECT pg_advisory_lock_shared(:key)
