-- purpose: release the ingest/backfill session advisory lock
SELECT pg_advisory_unlock(:key)
