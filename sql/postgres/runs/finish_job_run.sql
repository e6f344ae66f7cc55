-- purpose: record the outcome of a job run
UPDATE job_runs
SET status = :status,
    finished_at = clock_timestamp(),
    duration_ms = (extract(epoch FROM clock_timestamp() - started_at) * 1000)::bigint,
    summary = CAST(:summary AS jsonb),
    error = :error
WHERE id = :id
