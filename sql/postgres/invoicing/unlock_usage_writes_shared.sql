-- purpose: release the shared usage-writes session lock of an invoice run
SELECT pg_advisory_unlock_shared(:key)
