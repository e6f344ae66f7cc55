-- purpose: which of these run ids are failed (or interrupted, marked failed) usage runs of this database
SELECT id FROM job_runs
WHERE id = ANY(CAST(:ids AS uuid[])) AND status = 'failed'
  AND job IN ('ingest_usage', 'backfill_usage')
