-- purpose: one ingest or backfill run at a time (session advisory lock, released on disconnect)
SELECT pg_advisory_lock(:key)
