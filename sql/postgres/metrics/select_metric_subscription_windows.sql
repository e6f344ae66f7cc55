-- purpose: every subscription's days inside each of the given periods (all tenants or :tenant_ids)
-- NOTE: the rule is the function subscription_windows (migration 0010), inlined by Postgres.
SELECT w.tenant_id, p.period_start, w.window_start, w.window_end
FROM unnest(CAST(:period_starts AS date[]), CAST(:period_ends AS date[]))
     AS p(period_start, period_end)
CROSS JOIN LATERAL subscription_windows(p.period_start, p.period_end,
                                        CAST(:tenant_ids AS text[])) AS w
ORDER BY w.tenant_id, p.period_start, w.window_start
