-- purpose: mark exactly the drained inbox rows (in the run's transaction: exactly once)
UPDATE ingest_inbox SET drained_run_id = :run_id
WHERE id = ANY(:ids) AND drained_run_id IS NULL
