-- purpose: drop the staging tables of an earlier invoice run in this transaction (finalize runs several periods in one)
DROP TABLE IF EXISTS pg_temp.invoice_stage, pg_temp.invoice_line_stage, pg_temp.invoice_run_drafts
