-- purpose: every subscription's days inside each of the given periods (all tenants or :tenant_ids)
SELECT s.tenant_id, p.period_start,
       GREATEST(s.starts_on, p.period_start) AS window_start,
       LEAST(COALESCE(s.ends_on, p.period_end), p.period_end) AS window_end
FROM unnest(CAST(:period_starts AS date[]), CAST(:period_ends AS date[]))
     AS p(period_start, period_end)
JOIN subscriptions s
  ON s.starts_on < p.period_end AND (s.ends_on IS NULL OR s.ends_on > p.period_start)
WHERE CAST(:tenant_ids AS text[]) IS NULL OR s.tenant_id = ANY(CAST(:tenant_ids AS text[]))
ORDER BY s.tenant_id, p.period_start, window_start
