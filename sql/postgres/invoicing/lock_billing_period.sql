-- purpose: serialise invoice runs of one period (transaction-level advisory lock, released at commit)
SELECT pg_advisory_xact_lock(CAST(:lock_class AS integer), CAST(:period_key AS integer))
