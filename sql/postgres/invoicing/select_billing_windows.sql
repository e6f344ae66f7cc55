-- purpose: the part of each subscription inside the period (all tenants or :tenant_ids)
-- NOTE: the rule is the function subscription_windows (migration 0010), inlined by Postgres.
SELECT w.subscription_id, w.tenant_id, w.plan_id, w.window_start, w.window_end
FROM subscription_windows(CAST(:period_start AS date), CAST(:period_end AS date),
                          CAST(:tenant_ids AS text[])) AS w
