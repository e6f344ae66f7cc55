-- purpose: mark ingest/backfill runs left 'running' by a killed process as failed (run under the usage lock, so none of them is alive)
UPDATE job_runs
SET status = 'failed',
    finished_at = clock_timestamp(),
    duration_ms = (extract(epoch FROM clock_timestamp() - started_at) * 1000)::bigint,
    error = 'interrupted: the process ended before the run recorded an outcome'
WHERE status = 'running'
  AND job IN ('ingest_usage', 'backfill_usage')
