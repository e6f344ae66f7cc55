-- purpose: usage rows (re)aggregated after their period's invoice was closed (late usage, never billed)
SELECT i.tenant_id, i.id AS invoice_id, i.number, i.period_start, u.metric,
       count(*) AS usage_days, SUM(u.quantity_sum) AS quantity_sum,
       SUM(u.event_count) AS events, MAX(u.updated_at) AS last_updated_at
FROM invoices AS i
JOIN usage_daily AS u
  ON u.tenant_id = i.tenant_id
 AND u.usage_date >= i.period_start
 AND u.usage_date < i.period_end
 AND u.updated_at > i.closed_at
WHERE i.status = 'closed'
  AND (CAST(:tenant_ids AS text[]) IS NULL OR i.tenant_id = ANY(CAST(:tenant_ids AS text[])))
GROUP BY i.tenant_id, i.id, i.number, i.period_start, u.metric
ORDER BY i.period_start, i.tenant_id, u.metric
LIMIT :max_rows
