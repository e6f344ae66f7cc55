-- purpose: pushed events not yet drained into the lake (the partial index ix_ingest_inbox_undrained)
SELECT count(*) FROM ingest_inbox WHERE drained_run_id IS NULL
