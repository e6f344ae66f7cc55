-- purpose: the latest run of each job with its status (for /metrics)
-- NOTE: a loose index scan over ix_job_runs_job_started (job, started_at): one index probe
-- per job name and one per job's latest run, so the cost stays flat while deliver_webhooks
-- adds a run every minute (a DISTINCT ON would read every row of the table).
WITH RECURSIVE jobs AS (
    (SELECT job FROM job_runs ORDER BY job LIMIT 1)
    UNION ALL
    SELECT (SELECT j.job FROM job_runs j WHERE j.job > jobs.job ORDER BY j.job LIMIT 1)
    FROM jobs
    WHERE jobs.job IS NOT NULL
)
SELECT latest.job, latest.status, latest.started_at, latest.finished_at
FROM jobs
CROSS JOIN LATERAL (
    SELECT r.job, r.status, r.started_at, r.finished_at
    FROM job_runs r
    WHERE r.job = jobs.job
    ORDER BY r.started_at DESC
    LIMIT 1
) AS latest
ORDER BY latest.job
