-- purpose: serialise the writers of metric_usage (ingest/backfill commits and subscription changes) until the transaction ends
SELECT pg_advisory_xact_lock(:key)
