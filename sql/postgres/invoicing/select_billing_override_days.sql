-- purpose: days of each subscription window on which an override of `included` is in force, per metric and value
WITH windows AS (
    -- the rule is the function subscription_windows (migration 0010), inlined by Postgres
    SELECT subscription_id, tenant_id, window_start, window_end
    FROM subscription_windows(CAST(:period_start AS date), CAST(:period_end AS date),
                              CAST(:tenant_ids AS text[]))
),
override_days AS (
    -- NOTE: effective_to is exclusive (like ends_on). If stored windows ever overlap, the
    -- latest effective_from wins on a day, then the newest row (as quota_usage does).
    SELECT DISTINCT ON (w.subscription_id, o.metric, d.day)
           w.subscription_id, o.metric, d.day, o.included
    FROM windows AS w
    JOIN quota_overrides AS o
      ON o.tenant_id = w.tenant_id
     AND o.included IS NOT NULL
     AND (o.effective_from IS NULL OR o.effective_from < w.window_end)
     AND (o.effective_to IS NULL OR o.effective_to > w.window_start)
    CROSS JOIN LATERAL generate_series(
        GREATEST(w.window_start, COALESCE(o.effective_from, w.window_start)),
        LEAST(w.window_end, COALESCE(o.effective_to, w.window_end)) - 1,
        interval '1 day'
    ) AS d(day)
    ORDER BY w.subscription_id, o.metric, d.day, o.effective_from DESC NULLS LAST, o.id DESC
)
SELECT subscription_id, metric, included, count(*) AS days
FROM override_days
GROUP BY subscription_id, metric, included
