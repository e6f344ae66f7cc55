-- purpose: record the outcome of an invoice run (succeeded with its summary, or failed with the error)
UPDATE job_runs
SET status = :status,
    finished_at = CAST(:finished_at AS timestamptz),
    duration_ms = CAST(EXTRACT(EPOCH FROM (CAST(:finished_at AS timestamptz) - started_at)) * 1000 AS bigint),
    summary = CAST(:summary AS jsonb),
    error = :error
WHERE id = CAST(:run_id AS uuid)
