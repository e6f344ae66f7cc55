-- purpose: release an invoice run's session lock on a period
SELECT pg_advisory_unlock(CAST(:lock_class AS integer), CAST(:period_key AS integer))
