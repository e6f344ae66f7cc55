-- purpose: a tenant's daily usage rows for [:start, :end), by metric and day
SELECT metric, usage_date, quantity_sum, event_count, quantity_max, updated_at
FROM usage_daily
WHERE tenant_id = :tenant_id AND usage_date >= :start AND usage_date < :end
ORDER BY metric, usage_date
