-- purpose: queue invoice runs of one period before their snapshot is taken (session advisory lock)
SELECT pg_advisory_lock(CAST(:lock_class AS integer), CAST(:period_key AS integer))
