-- purpose: give the invoice run's aggregation memory for its hash tables (this transaction only)
SET LOCAL work_mem = '256MB'
