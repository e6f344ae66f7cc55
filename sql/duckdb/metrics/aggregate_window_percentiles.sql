-- purpose: the nearest-rank percentile of a metric's values per window and group, and per window: rank ceil(p/100 * n)
-- NOTE: $p_micros is p x 10^6 (p has at most 6 decimals), so the rank is exact integer maths.
WITH inside AS (
    SELECT w.tenant_id, w.period_start, w.window_start, w.window_end, e.g1, e.g2, e.g3,
           e.value_micros
    FROM metric_events e
    JOIN metric_windows w ON w.tenant_id = e.tenant_id AND e.at_us >= w.start_us AND e.at_us < w.end_us
    WHERE e.readable
),
sets AS (
    SELECT *, false AS is_total FROM inside
    UNION ALL
    SELECT tenant_id, period_start, window_start, window_end, NULL, NULL, NULL, value_micros, true
    FROM inside
),
ranked AS (
    SELECT *,
           row_number() OVER (PARTITION BY tenant_id, window_start, window_end, is_total, g1, g2, g3
                              ORDER BY value_micros) AS rn,
           count(*) OVER (PARTITION BY tenant_id, window_start, window_end, is_total, g1, g2, g3) AS n
    FROM sets
)
SELECT tenant_id, period_start, window_start, window_end, g1, g2, g3, is_total, value_micros
FROM ranked
WHERE rn = (n::HUGEINT * $p_micros + 99999999) // 100000000
