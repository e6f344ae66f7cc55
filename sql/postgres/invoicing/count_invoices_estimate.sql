-- purpose: the planner's row estimate of invoices (reltuples; -1 when never analyzed)
SELECT reltuples FROM pg_class WHERE oid = 'invoices'::regclass
