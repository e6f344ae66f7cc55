-- purpose: this run's drafts: invoice id per tenant, and whether the run created it
SELECT invoice_id, tenant_id, is_new FROM invoice_run_drafts
