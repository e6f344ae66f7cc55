-- purpose: recompute quota_usage for the period (all tenants, or :tenant_ids) in one set-based statement
WITH active_subscriptions AS (
    -- NOTE: the subscriptions active on :today are those with a window in the one-day
    -- period [today, today + 1) (exactly starts_on <= today < ends_on, null = open); each
    -- one's window in the period containing :today (the caller passes that period) is
    -- what its usage is counted over. Both from subscription_windows (migration 0010);
    -- asking for the day (not filtering the month's windows on today) keeps the planner's
    -- row estimate right: a filter on the computed bounds halved the speed of a full refresh.
    SELECT w.subscription_id AS id, w.tenant_id, w.plan_id, p.code AS plan_code,
           w.window_start, w.window_end
    FROM subscription_windows(CAST(:today AS date), CAST(:today AS date) + 1,
                              CAST(:tenant_ids AS text[])) AS a
    JOIN subscription_windows(CAST(:period_start AS date), CAST(:period_end AS date),
                              CAST(:tenant_ids AS text[])) AS w
      ON w.subscription_id = a.subscription_id
    JOIN plans p ON p.id = w.plan_id
),
active_overrides AS (
    -- NOTE: several override windows may be stored for one metric; today's one wins, and if
    -- windows were ever to overlap the latest effective_from wins (deterministic).
    SELECT DISTINCT ON (o.tenant_id, o.metric)
           o.tenant_id, o.metric, o."limit", o.included, o.enforcement
    FROM quota_overrides o
    JOIN active_subscriptions a ON a.tenant_id = o.tenant_id
    WHERE (o.effective_from IS NULL OR o.effective_from <= CAST(:today AS date))
      AND (o.effective_to IS NULL OR o.effective_to > CAST(:today AS date))
    ORDER BY o.tenant_id, o.metric, o.effective_from DESC NULLS LAST, o.id DESC
),
entitled AS (
    -- a metric is covered by the plan's quota, by an override, or by both
    SELECT a.tenant_id, a.id AS subscription_id, a.plan_code, a.window_start, a.window_end,
           m.metric,
           -- NOTE (issue 13): a billable metric of this code governs the quota (section 4a)
           COALESCE(bm.aggregation, pq.aggregation, 'sum') AS aggregation,
           bm.code IS NOT NULL AS billable,
           COALESCE(ao.included, pq.included, 0) AS included,
           CASE WHEN ao.metric IS NOT NULL AND ao."limit" IS NOT NULL THEN ao."limit"
                ELSE pq."limit" END AS "limit",
           COALESCE(ao.enforcement, pq.enforcement, 'hard') AS enforcement,
           CASE WHEN ao.metric IS NULL THEN 'plan' ELSE 'override' END AS source
    FROM active_subscriptions a
    JOIN LATERAL (
        SELECT metric FROM plan_quotas WHERE plan_id = a.plan_id
        UNION
        SELECT metric FROM active_overrides WHERE tenant_id = a.tenant_id
    ) m ON true
    LEFT JOIN plan_quotas pq ON pq.plan_id = a.plan_id AND pq.metric = m.metric
    LEFT JOIN active_overrides ao ON ao.tenant_id = a.tenant_id AND ao.metric = m.metric
    LEFT JOIN metrics bm ON bm.code = m.metric
),
computed AS (
    SELECT e.tenant_id, e.metric, e.subscription_id, e.plan_code, e.aggregation, e.included,
           e."limit", e.enforcement, e.source,
           CASE
               WHEN e.billable THEN COALESCE(MAX(mu.value), 0)
               WHEN e.aggregation = 'count' THEN COALESCE(SUM(u.event_count), 0)
               WHEN e.aggregation = 'max' THEN COALESCE(MAX(u.quantity_max), 0)
               ELSE COALESCE(SUM(u.quantity_sum), 0)
           END AS used,
           CASE WHEN e.billable THEN MAX(mu.as_of) ELSE MAX(u.updated_at) END AS aggregated_at
    FROM entitled e
    LEFT JOIN usage_daily u
        ON NOT e.billable AND u.tenant_id = e.tenant_id AND u.metric = e.metric
       AND u.usage_date >= e.window_start AND u.usage_date < e.window_end
    -- the billable metric's total over the subscription's window (precomputed, section 4a)
    LEFT JOIN metric_usage mu
        ON e.billable AND mu.metric_code = e.metric AND mu.tenant_id = e.tenant_id
       AND mu.window_start = e.window_start AND mu.window_end = e.window_end
       AND mu.group_key = ''
    GROUP BY e.tenant_id, e.metric, e.subscription_id, e.plan_code, e.aggregation, e.included,
             e."limit", e.enforcement, e.source, e.billable
),
upserted AS (
    INSERT INTO quota_usage AS q (
        tenant_id, metric, subscription_id, plan_code, period_start, period_end, aggregation,
        included, "limit", enforcement, source, used, as_of, refreshed_at
    )
    SELECT c.tenant_id, c.metric, c.subscription_id, c.plan_code, CAST(:period_start AS date),
           CAST(:period_end AS date), c.aggregation, c.included, c."limit", c.enforcement,
           c.source, c.used, COALESCE(CAST(:as_of AS timestamptz), c.aggregated_at), now()
    FROM computed c
    ON CONFLICT (tenant_id, metric) DO UPDATE SET
        subscription_id = EXCLUDED.subscription_id,
        plan_code = EXCLUDED.plan_code,
        period_start = EXCLUDED.period_start,
        period_end = EXCLUDED.period_end,
        aggregation = EXCLUDED.aggregation,
        included = EXCLUDED.included,
        "limit" = EXCLUDED."limit",
        enforcement = EXCLUDED.enforcement,
        source = EXCLUDED.source,
        used = EXCLUDED.used,
        -- NOTE: without an as_of (a catalog change) the usage behind `used` is unchanged, so
        -- the previous as_of stays; a new row takes the aggregation time of its usage rows.
        as_of = CASE WHEN CAST(:as_of AS timestamptz) IS NOT NULL THEN EXCLUDED.as_of
                     ELSE COALESCE(q.as_of, EXCLUDED.as_of) END,
        refreshed_at = EXCLUDED.refreshed_at
    RETURNING 1
),
removed AS (
    DELETE FROM quota_usage q
    WHERE (CAST(:tenant_ids AS text[]) IS NULL OR q.tenant_id = ANY(CAST(:tenant_ids AS text[])))
      AND NOT EXISTS (
          SELECT 1 FROM computed c WHERE c.tenant_id = q.tenant_id AND c.metric = q.metric
      )
    RETURNING 1
)
SELECT (SELECT count(*) FROM upserted) AS upserted, (SELECT count(*) FROM removed) AS removed
