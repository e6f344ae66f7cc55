-- purpose: the latest run of each job with its status (for /metrics)
SELECT DISTINCT ON (job) job, status, started_at, finished_at
FROM job_runs
ORDER BY job, started_at DESC
